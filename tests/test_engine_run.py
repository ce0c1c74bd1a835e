"""The run in the core (raytag.engine.run): one multi-epoch run that the Ray Train worker and the
benchmark runner both call. Pure tests drive ``fit`` with plain hooks; one Ray test runs a tiny
job through the Ray Train worker and through the benchmark runner and compares the losses."""

from __future__ import annotations

import copy
import json
from dataclasses import asdict
from pathlib import Path

import pytest
import torch

from raytag.config import validate_job
from raytag.engine.checkpoint import Snapshot, TrainingState
from raytag.engine.run import build_training, fit
from raytag.engine.state import parse_state
from bench_modules import load_bench

CPU = torch.device("cpu")
TAGS = ["a", "b", "c"]


def _job(**train):
    return validate_job({"name": "t", "seed": 3, "data": {"manifest": "m.csv"},
                     "model": {"name": "mtt-tiny", "args": {"crop_seconds": 0.25}},
                     "train": {"epochs": 5, "batch_size": 4, "lr": 0.01, **train},
                     "eval": {"average_last": 2}})


class ListHooks:
    """Fixed batches; a validation score that the caller scripts per epoch."""

    def __init__(self, valid_scores: list[float]):
        generator = torch.Generator().manual_seed(0)
        self.data = [{"audio": 0.1 * torch.randn(4, 5512, generator=generator),
                      "labels": torch.randint(0, 2, (4, 3), generator=generator).float(),
                      "decoded": torch.ones(4, dtype=torch.bool)} for _ in range(2)]
        self.valid_scores, self.evaluated, self.reported = valid_scores, [], []
        self.weights_at_start: list[torch.Tensor] = []

    def batches(self, epoch):
        return iter(self.data)

    def evaluate(self, model, split, *, prefix):
        epoch = sum(1 for s in self.evaluated if s == "valid") - (split != "valid")
        self.evaluated.append(split)
        value = self.valid_scores[epoch] if split == "valid" else 0.5 + epoch / 100
        return {f"{prefix}{key}": value for key in ("roc_auc", "pr_auc", "lwlrap", "loss")}

    def report(self, metrics, *, state, best, latest):
        assert isinstance(best, Snapshot) and isinstance(latest(), Snapshot)
        self.reported.append(dict(metrics))


def test_fit_selects_in_the_window_restores_the_best_and_averages_the_last_epochs(monkeypatch):
    job = _job(select_until_epoch=3)
    training = build_training(job, TAGS)
    # Epochs are numbered from 1. Validation peaks at epoch 2 inside the window (epochs 1-3);
    # epoch 5 is better but after it.
    hooks = ListHooks([0.6, 0.9, 0.7, 0.1, 0.99])
    restored = {}
    original = Snapshot.restore

    def spy(self, model, optimizer, method):
        restored["weights"] = {k: v.clone() for k, v in self.model.items()}
        original(self, model, optimizer, method)

    monkeypatch.setattr(Snapshot, "restore", spy)
    state, best = fit(job, training, hooks, steps=2, device=CPU)
    assert isinstance(state, TrainingState) and state.epochs_done == 5
    assert state.best_epoch == 2 and state.best_value == 0.9
    # Before epoch 4 the whole best snapshot came back (the model state of epoch 2, not of epoch 3).
    assert restored and all(torch.equal(restored["weights"][k], best.model[k]) for k in best.model)
    assert [m["epoch"] for m in hooks.reported] == [1, 2, 3, 4, 5]
    assert [m["best_epoch"] for m in hooks.reported] == [1, 2, 2, 2, 2]
    assert hooks.evaluated == ["valid"] * 3 + ["valid", "test", "valid", "test"]
    last = hooks.reported[-1]
    assert last["test/avg_last/epochs"] == 2
    assert last["test/avg_last/roc_auc"] == pytest.approx((0.53 + 0.54) / 2)
    assert [h["train/loss"] for h in state.history] == [m["train/loss"] for m in hooks.reported]


def test_the_same_job_gives_the_same_losses():
    job = _job()
    first = fit(job, build_training(job, TAGS), ListHooks([0.5] * 5), steps=2, device=CPU)[0]
    again = fit(job, build_training(job, TAGS), ListHooks([0.5] * 5), steps=2, device=CPU)[0]
    losses = [h["train/loss"] for h in first.history]
    assert losses == [h["train/loss"] for h in again.history] and len(set(losses)) == 5


def test_the_benchmark_runner_runs_lu_et_al_selection_window(tmp_path):
    from raytag.data.synth.corpus import SynthSpec, write_corpus

    runner = load_bench("noise_runner")
    write_corpus(tmp_path, SynthSpec(clips=24, seconds=0.5, sample_rate=16000, seed=2, valid_fraction=0.25,
                                     test_fraction=0.25))
    corpus = runner.load_corpus(tmp_path / "manifest.csv", tmp_path / "clean.csv")
    job = validate_job({"name": "window", "data": {"manifest": str(tmp_path / "manifest.csv")},
                    "model": {"name": "shortres-tiny", "args": {"crop_samples": 8000}},
                    "train": {"epochs": 4, "batch_size": 8, "lr": 1e-3, "select_until_epoch": 2},
                    "eval": {"batch_size": 16, "average_last": 2}, "tracking": {"enabled": False}})
    result = runner.run_job(job, corpus, log=lambda line: None)
    assert result["best_epoch"] in (1, 2) and len(result["history"]) == 4
    assert set(result["test_last"]) == {"roc_auc", "pr_auc", "lwlrap"}
    assert result["history"][-1]["test/avg_last/epochs"] == 2


@pytest.mark.ray
def test_the_ray_train_worker_and_the_benchmark_runner_run_the_same_epochs(ray_session, tiny_corpus, tmp_path):
    """One tiny job (1 Train worker, 3 epochs, a selection window of 2) through the Ray path
    (driver → TorchTrainer → worker → engine.fit, Ray Data batches from the files) and through
    the benchmark runner (engine.fit, batches from memory): the same per-epoch training losses."""
    from raytag.cluster.training.checkpoints import latest_checkpoint
    from raytag.cluster.training.driver import train
    from raytag.engine import checkpoint as ckpt
    from raytag.locations import run_location

    runner = load_bench("noise_runner")
    tree = {"name": "same-run", "seed": 4, "storage": str(tmp_path / "ray_results"),
            "data": {"manifest": str(tiny_corpus / "manifest.csv"), "clean_labels": str(tiny_corpus / "clean.csv"),
                     "decode_cpus": 0.25},
            "model": {"name": "shortres-tiny", "args": {"crop_samples": 8000}},
            "train": {"epochs": 3, "batch_size": 8, "lr": 3e-3, "select_until_epoch": 2, "log_every": 100},
            "scaling": {"num_workers": 1, "cpus_per_worker": 0.5, "max_failures": 0},
            "eval": {"max_chunks": 2, "batch_size": 8, "average_last": 1},
            "tracking": {"enabled": False}}
    job = validate_job(tree)
    outcome = train(job)
    location, _ = latest_checkpoint(run_location(job.storage, job.name))
    ray_history = ckpt.load_state(Path(location)).history

    corpus = runner.load_corpus(tiny_corpus / "manifest.csv", tiny_corpus / "clean.csv")
    # One thread, as the Train worker (0.5 CPU: Ray sets OMP_NUM_THREADS=1) and the benchmark
    # run: another thread count sums gradients in another order, and Adam turns those last-bit
    # differences into visibly different losses within an epoch.
    threads = torch.get_num_threads()
    runner.configure_process()
    try:
        bench = runner.run_job(job, corpus, log=lambda line: None)
    finally:
        torch.set_num_threads(threads)
    ray_losses = [h["train/loss"] for h in ray_history]
    assert len(ray_losses) == 3
    assert [h["train/loss"] for h in bench["history"]] == pytest.approx(ray_losses, rel=1e-6)
    assert bench["best_epoch"] == outcome.best_epoch
    assert [h["valid/roc_auc"] for h in bench["history"]] == pytest.approx([h["valid/roc_auc"] for h in ray_history],
                                                                          abs=1e-4)


SCORES = [0.5, 0.7, 0.6, 0.9, 0.8]
"""Validation scores of the runs below, epoch by epoch: epoch 4 is the best."""


class CheckpointHooks(ListHooks):
    """Also keeps what the last reported epoch's checkpoint holds: ``(state, latest, best)``."""

    def report(self, metrics, *, state, best, latest):
        super().report(metrics, state=state, best=best, latest=latest)
        self.checkpoint = (copy.deepcopy(state), latest(), best)


@pytest.fixture(scope="module")
def whole_run():
    """The final state of :func:`_job` trained through its 5 epochs."""
    job = _job()
    return fit(job, build_training(job, TAGS), ListHooks(SCORES), steps=2, device=CPU)[0]


@pytest.fixture(scope="module")
def stopped_run():
    """:func:`_job` stopped by a request after epoch 3: ``(hooks, when the request was asked
    (epochs reported), final state)``; ``hooks.checkpoint`` is epoch 3's. Tests copy it."""
    job, hooks, asked = _job(), CheckpointHooks(SCORES), []

    def stop_requested():
        asked.append(len(hooks.reported))
        return len(hooks.reported) == 3  # `raytag stop` while epoch 3 trained

    state, _ = fit(job, build_training(job, TAGS), hooks, steps=2, device=CPU, stop_requested=stop_requested)
    return hooks, asked, state


def test_a_stop_request_ends_the_run_after_the_epoch_it_came_in(stopped_run):
    hooks, asked, state = stopped_run
    assert [m["epoch"] for m in hooks.reported] == [1, 2, 3] and state.epochs_done == 3
    assert asked == [1, 2, 3] and state.best_epoch == 2
    # After the last epoch there is nothing to stop: the request is not even asked for.
    job, hooks, asked = _job(epochs=2), ListHooks(SCORES), []
    fit(job, build_training(job, TAGS), hooks, steps=2, device=CPU,
        stop_requested=lambda: asked.append(len(hooks.reported)) or False)
    assert asked == [1] and len(hooks.reported) == 2


def test_resuming_from_an_epoch_snapshot_continues_the_same_run(whole_run, stopped_run):
    job = _job()
    resumed = fit(job, build_training(job, TAGS), ListHooks(SCORES), steps=2, device=CPU,
                  resume=copy.deepcopy(stopped_run[0].checkpoint))[0]
    assert resumed.resumed_from_epoch == 3 and [h["epoch"] for h in resumed.history] == [1, 2, 3, 4, 5]
    assert [h["train/loss"] for h in resumed.history] == [h["train/loss"] for h in whole_run.history]


def test_a_checkpoint_written_with_epochs_numbered_from_0_resumes_the_same_run(whole_run, stopped_run):
    """A state.json of format 1 (an older raytag numbered epochs from 0) is renumbered when read:
    the run resumes after its third epoch, numbers the rest 4 and 5 and trains what a whole run
    trains."""
    saved, latest, best = copy.deepcopy(stopped_run[0].checkpoint)
    state = asdict(saved)
    old = {"next_epoch": state.pop("epochs_done"), "best_epoch": state.pop("best_epoch") - 1, **state,
           "history": [{**h, "epoch": h["epoch"] - 1, "best_epoch": h["best_epoch"] - 1} for h in state["history"]]}
    restored = parse_state(json.dumps({"state": old, "job": {}}))
    assert restored == saved
    job, hooks = _job(), ListHooks(SCORES)
    hooks.evaluated = ["valid"] * 3  # validation is scripted per epoch: the first three are done
    resumed = fit(job, build_training(job, TAGS), hooks, steps=2, device=CPU, resume=(restored, latest, best))[0]
    assert [m["epoch"] for m in hooks.reported] == [4, 5] and resumed.resumed_from_epoch == 3
    assert [h["train/loss"] for h in resumed.history] == [h["train/loss"] for h in whole_run.history]
    assert (resumed.best_epoch, whole_run.best_epoch) == (4, 4)


class OptimizerHooks(ListHooks):
    """ListHooks that keep each epoch's state, its optimizer's settings and a copy of its snapshot."""

    def __init__(self, valid_scores):
        super().__init__(valid_scores)
        self.groups, self.snapshots, self.states = [], [], []

    def report(self, metrics, *, state, best, latest):
        super().report(metrics, state=state, best=best, latest=latest)
        snapshot = latest()
        self.groups.append(dict(snapshot.optimizer["param_groups"][0]))
        self.snapshots.append((copy.deepcopy(snapshot), copy.deepcopy(best)))
        self.states.append(copy.deepcopy(state))


def test_won_et_al_handoff_reloads_the_best_and_continues_with_nesterov_sgd():
    from raytag.engine.run import WON_SGD

    job = _job(select_until_epoch=2, after_window="sgd", epochs=4)
    training = build_training(job, TAGS)
    hooks = OptimizerHooks([0.9, 0.6, 0.5, 0.5])  # epoch 1 is the best of the window
    state, best = fit(job, training, hooks, steps=2, device=CPU)
    assert state.best_epoch == 1
    assert ["betas" in group for group in hooks.groups] == [True, True, False, False]  # Adam, then SGD
    for group in hooks.groups[2:]:
        assert {key: group[key] for key in WON_SGD} == WON_SGD
    assert isinstance(training.optimizer, torch.optim.SGD)

    # The same job on Adam all along (Lu et al.) trains other weights after the window.
    same = _job(select_until_epoch=2, epochs=4)
    adam = OptimizerHooks([0.9, 0.6, 0.5, 0.5])
    fit(same, build_training(same, TAGS), adam, steps=2, device=CPU)
    assert all("betas" in group for group in adam.groups)
    assert adam.reported[1]["train/loss"] == hooks.reported[1]["train/loss"]
    assert adam.reported[2]["train/loss"] != hooks.reported[2]["train/loss"]

    # Resumed from the checkpoint of epoch 3 (SGD state), the run ends as the uninterrupted one.
    (latest, best_then), resumed_state = hooks.snapshots[2], hooks.states[2]
    resumed = OptimizerHooks([0.5])
    again = build_training(job, TAGS)
    fit(job, again, resumed, steps=2, device=CPU, resume=(resumed_state, latest, best_then))
    assert isinstance(again.optimizer, torch.optim.SGD)
    assert resumed.reported[-1]["train/loss"] == hooks.reported[-1]["train/loss"]


def test_the_sgd_handoff_needs_a_selection_window():
    from raytag.config import ConfigError

    with pytest.raises(ConfigError, match="after_window"):
        _job(after_window="sgd")
