"""Model selection on verified rows (``train.select_labels``, issue 25 item 1): the rule that
resolves ``auto`` (shared with the decision thresholds), the engine choosing the best epoch and
bounding Lu et al.'s window on the chosen signal, the plan and a sweep's ranking metric."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from raytag.cluster.training.sweep import ranking_metric
from raytag.config import ConfigError, validate_job
from raytag.data.manifest import read_manifest
from raytag.engine.run import build_training, fit
from raytag.errors import InputError
from raytag.plan import select_labels
from raytag.search_space import Param, SearchSpace, read_space
from raytag.selection import SelectionError, resolve_select_labels, selection_key
from raytag.threshold_choice import enough_verified
from raytag.thresholds import threshold_labels

CPU = torch.device("cpu")
TAGS = ["a", "b", "c"]


def test_auto_takes_the_verified_rows_by_the_thresholds_rule():
    for rows, expected in ((99, "noisy"), (100, "verified"), (0, "noisy")):
        assert resolve_select_labels("auto", verified_rows=rows, min_verified=100) == expected
        # The decision thresholds' auto choice follows the same rule on the same count.
        flags = np.zeros(150, dtype=bool)
        flags[:rows] = True
        chosen = threshold_labels("auto", noisy=np.zeros((150, 2)), verified=flags, min_verified=100)
        assert chosen.source == expected == ("verified" if enough_verified(rows, 100) else "noisy")
    assert resolve_select_labels("noisy", verified_rows=500, min_verified=100) == "noisy"
    assert resolve_select_labels("verified", verified_rows=100, min_verified=100) == "verified"


def test_verified_with_too_few_rows_is_an_input_error_naming_the_keys():
    with pytest.raises(SelectionError, match=r"train.select_labels is verified.*has 3 verified row.*"
                                             r"eval.threshold_min_verified \(100\)") as caught:
        resolve_select_labels("verified", verified_rows=3, min_verified=100)
    assert isinstance(caught.value, InputError)
    with pytest.raises(ValueError, match="must be one of"):
        resolve_select_labels("clean", verified_rows=3, min_verified=1)


def test_select_labels_is_a_validated_train_key():
    job = validate_job({"name": "t", "data": {"manifest": "m.csv"}})
    assert job.train.select_labels == "auto"
    with pytest.raises(ConfigError, match="train.select_labels"):
        validate_job({"name": "t", "data": {"manifest": "m.csv"}, "train": {"select_labels": "clean"}})


def test_selection_keys():
    assert selection_key("noisy", "roc_auc") == "valid/roc_auc"
    assert selection_key("verified", "loss") == "valid_verified/loss"


def _job(**train):
    return validate_job({"name": "t", "seed": 3, "data": {"manifest": "m.csv"},
                         "model": {"name": "mtt-tiny", "args": {"crop_seconds": 0.25}},
                         "train": {"epochs": 5, "batch_size": 4, "lr": 0.01, **train}})


class TwoSignalHooks:
    """Fixed batches; scripted noisy and verified validation scores per epoch."""

    def __init__(self, noisy: list[float], verified: list[float] | None):
        generator = torch.Generator().manual_seed(0)
        self.data = [{"audio": 0.1 * torch.randn(4, 5512, generator=generator),
                      "labels": torch.randint(0, 2, (4, 3), generator=generator).float(),
                      "decoded": torch.ones(4, dtype=torch.bool)} for _ in range(2)]
        self.noisy, self.verified, self.epoch, self.reported = noisy, verified, 0, []

    def batches(self, epoch):
        return iter(self.data)

    def evaluate(self, model, split, *, prefix):
        index = self.epoch
        self.epoch += 1
        metrics = {f"valid/{key}": self.noisy[index] for key in ("roc_auc", "pr_auc", "lwlrap", "loss")}
        if self.verified is not None:
            metrics.update({f"valid_verified/{key}": self.verified[index] for key in ("roc_auc", "pr_auc", "lwlrap",
                                                                                     "loss")})
        return metrics

    def report(self, metrics, *, state, best, latest):
        self.reported.append(dict(metrics))


NOISY = [0.6, 0.9, 0.7, 0.65, 0.8]
VERIFIED = [0.5, 0.55, 0.8, 0.6, 0.95]


@pytest.mark.parametrize(("signal", "window", "best", "value"), [
    ("noisy", None, 2, 0.9), ("verified", None, 5, 0.95),
    ("verified", 4, 3, 0.8),  # Lu et al.'s window bounds the verified signal too
])
def test_fit_chooses_the_best_epoch_on_the_chosen_signal(signal, window, best, value):
    job = _job(select_until_epoch=window)
    hooks = TwoSignalHooks(NOISY, VERIFIED)
    state, _ = fit(job, build_training(job, TAGS), hooks, steps=2, device=CPU, select_labels=signal)
    assert (state.best_epoch, state.best_value, state.select_labels) == (best, value, signal)
    last = hooks.reported[-1]
    assert last[f"best/{selection_key(signal, 'roc_auc')}"] == value
    # Both signals are in every epoch's metrics, whichever chose.
    assert all("valid/roc_auc" in m and "valid_verified/roc_auc" in m for m in hooks.reported)


def test_fit_refuses_to_select_on_verified_rows_it_does_not_get():
    job = _job()
    with pytest.raises(ValueError, match="no valid_verified/roc_auc"):
        fit(job, build_training(job, TAGS), TwoSignalHooks(NOISY, None), steps=2, device=CPU, select_labels="verified")


def test_a_resumed_run_keeps_its_signal():
    job = _job(epochs=2)
    hooks = TwoSignalHooks(NOISY, VERIFIED)
    state, best = fit(job, build_training(job, TAGS), hooks, steps=2, device=CPU, select_labels="noisy")
    training = build_training(job, TAGS)
    from raytag.engine.checkpoint import Snapshot

    latest = Snapshot.capture(training.model, training.optimizer, training.method)
    with pytest.raises(ValueError, match="chose its best epoch on the noisy validation labels"):
        fit(_job(epochs=4), training, TwoSignalHooks(NOISY, VERIFIED), steps=2, device=CPU,
            resume=(state, latest, best), select_labels="verified")


def _manifest(tmp_path, verified_valid: int):
    lines = ["path,tags,split,verified"]
    for i in range(4):
        lines.append(f"train{i}.wav,a;b,train,false")
    for i in range(5):
        lines.append(f"valid{i}.wav,a,valid,{str(i < verified_valid).lower()}")
    lines.append("test0.wav,c,test,false")
    path = tmp_path / "manifest.csv"
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.mark.parametrize(("choice", "verified", "expected"), [
    ("auto", 3, "verified"), ("auto", 2, "noisy"), ("noisy", 5, "noisy"), ("verified", 3, "verified"),
])
def test_the_plan_resolves_select_labels_on_the_manifests_verified_validation_rows(tmp_path, choice, verified,
                                                                                  expected):
    path = _manifest(tmp_path, verified)
    job = validate_job({"name": "t", "data": {"manifest": str(path)}, "train": {"select_labels": choice},
                        "eval": {"threshold_min_verified": 3}})
    assert select_labels(job, read_manifest(path)) == expected


def test_the_plan_refuses_verified_selection_with_too_few_rows(tmp_path):
    path = _manifest(tmp_path, 2)
    job = validate_job({"name": "t", "data": {"manifest": str(path)}, "train": {"select_labels": "verified"},
                        "eval": {"threshold_min_verified": 3}})
    with pytest.raises(SelectionError, match="has 2 verified row"):
        select_labels(job, read_manifest(path))


def test_a_sweep_ranks_trials_on_the_selection_signal_by_default(tmp_path):
    path = _manifest(tmp_path, 3)
    space = SearchSpace(params=(Param("train.lr", "choice", (0.1,)),))
    job = validate_job({"name": "t", "data": {"manifest": str(path)}, "eval": {"threshold_min_verified": 3}})
    assert ranking_metric(job, space) == ("valid_verified/roc_auc", "max")
    loss = job.model_copy(update={"train": job.train.model_copy(update={"select_metric": "loss"})})
    assert ranking_metric(loss, space) == ("valid_verified/loss", "min")
    noisy = job.model_copy(update={"train": job.train.model_copy(update={"select_labels": "noisy"})})
    assert ranking_metric(noisy, space) == ("valid/roc_auc", "max")
    named = SearchSpace(params=space.params, metric="valid/pr_auc", mode="max")
    assert ranking_metric(job, named) == ("valid/pr_auc", "max")


def test_the_shipped_search_spaces_default_to_the_selection_signal():
    from pathlib import Path

    for path in sorted(Path(__file__).parents[1].joinpath("tune_spaces").glob("*.yaml")):
        assert read_space(path).metric is None, path
