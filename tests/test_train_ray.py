"""Integration: real Ray Train DDP runs on a local Ray instance, real MLflow SQLite stores."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from raytag.config import load_job
from raytag.cluster.training.checkpoints import latest_checkpoint
from raytag.cluster.training.driver import train
from raytag.locations import run_location
from raytag.models.export import read_exported, read_thresholds, thresholds_labels
from raytag.tracking import run_tags as T
from raytag.tracking.review import review_runs

pytestmark = pytest.mark.ray


def mlflow_run(job):
    client = MlflowClient(job.tracking.uri)
    experiment = client.get_experiment_by_name(job.tracking.experiment)
    runs = client.search_runs([experiment.experiment_id], filter_string=f"attributes.run_name = '{job.name}'")
    assert len(runs) == 1, f"expected one MLflow run for {job.name}, found {len(runs)}"
    return client, runs[0]


def artifacts(client, run_id, path=None):
    out = []
    for item in client.list_artifacts(run_id, path):
        out.extend(artifacts(client, run_id, item.path) if item.is_dir else [item.path])
    return out


def history(client, run, key):
    return [m.value for m in sorted(client.get_metric_history(run.info.run_id, key), key=lambda m: m.timestamp)]


def test_two_worker_ddp_training_is_recorded_in_mlflow(trained_run):
    """A 2-worker run, with Lu et al.'s protocol: the best epoch is selected within the first
    two epochs and the last two epochs' test metrics are averaged (the session's shared run,
    trained by ``raytag train``: see tests/conftest.py)."""
    job, outcome = trained_run.job, trained_run.outcome
    assert (job.train.epochs, job.train.select_until_epoch, job.eval.average_last) == (3, 2, 2)

    assert outcome.report.tracks == 6 and 0.0 <= outcome.report.roc_auc_macro <= 1.0
    assert (Path(outcome.model_location) / "model.pt").is_file() and outcome.skipped_files == 0
    client, run = mlflow_run(job)
    assert run.info.status == "FINISHED"
    assert run.data.params["scaling.num_workers"] == "2"
    assert run.data.params["model.name"] == "mtt-tiny"
    assert int(run.data.params["model.parameters"]) > 0
    assert [m.step for m in client.get_metric_history(run.info.run_id, "valid/roc_auc")] == [1, 2, 3]
    # Both DDP workers trained: rank 0 saw half the 28 training clips each epoch.
    assert history(client, run, "train/examples") == [14.0, 14.0, 14.0]
    assert "test/roc_auc" in run.data.metrics and run.data.tags["raytag.test_labels"] == "clean"
    assert run.data.tags["raytag.valid_labels"] == "manifest"  # validation is scored on what a user has
    files = artifacts(client, run.info.run_id)
    for expected in ("config/job.yaml", "metrics/per_tag_test.csv", "best_model/model.pt", "best_model/model.json",
                     "metrics/thresholds_valid.csv"):
        assert expected in files
    # Per-tag thresholds chosen on the validation split travel with the exported model, and the
    # validation scoring did not add a point to the per-epoch valid/* histories.
    exported = read_exported(outcome.model_location)
    thresholds = read_thresholds(exported)
    assert thresholds and set(thresholds) <= set(exported.recipe.tags)
    assert all(0.0 <= value <= 1.0 for value in thresholds.values())
    # The job has clean labels, but the thresholds are chosen on what a user has: the 6
    # validation tracks' manifest labels (none verified), and model.json and the run say so.
    assert thresholds_labels(exported) == {"labels": "noisy", "tracks": 6}
    assert run.data.tags["raytag.threshold_labels"] == "noisy"
    # No verified validation row: the best epoch was chosen on the noisy rows, and said so.
    assert run.data.tags["raytag.select_labels"] == "noisy" and "best/valid/roc_auc" in run.data.metrics
    assert not any(key.startswith("valid_verified/") for key in run.data.metrics)
    assert exported.info["select_labels"] == "noisy"
    assert outcome.best_epoch in (1, 2)  # only the selection window (epochs 1-2) can hold the best epoch
    per_epoch = {m.step: m.value for m in client.get_metric_history(run.info.run_id, "test_epoch/roc_auc")}
    assert sorted(per_epoch) == [2, 3]  # the last two epochs were evaluated on the test split
    assert run.data.metrics["test/avg_last/roc_auc"] == pytest.approx((per_epoch[2] + per_epoch[3]) / 2)
    assert run.data.metrics["test/avg_last/epochs"] == 2
    # Where the run's time went: seconds per phase, on the outcome and in MLflow.
    phases = {k: v for k, v in run.data.metrics.items() if k.startswith("time/")}
    assert {"time/start_s", "time/scan_s", "time/fit_s", "time/evaluate_s", "time/total_s"} <= set(phases)
    assert phases["time/fit_s"] > 0 and outcome.seconds["fit"] == pytest.approx(phases["time/fit_s"], abs=1e-3)
    assert phases["time/total_s"] >= sum(v for k, v in phases.items() if k != "time/total_s") - 0.01


def test_epochs_are_numbered_from_1_in_the_console_the_run_and_the_model(trained_run, tmp_path):
    """The shared run's 3 epochs: the progress lines, ``best epoch``, the MLflow steps and the
    epoch-valued metrics, the checkpoint's state and ``model.json`` all number them 1, 2, 3."""
    job, outcome = trained_run.job, trained_run.outcome
    progress = [line for line in trained_run.log if re.match(r"epoch \d+/3 ", line)]
    assert [int(line.split()[1].split("/")[0]) for line in progress] == [1, 2, 3], trained_run.log
    best = int(re.search(r"^best epoch (\d+);", trained_run.out, flags=re.MULTILINE).group(1))
    assert best == outcome.best_epoch and best in (1, 2)
    best_lines = [int(line.split()[1].split("/")[0]) for line in progress if line.endswith("best so far)")]
    assert best_lines[0] == 1 and best_lines[-1] == best  # the first epoch is the best so far; the best one said so
    assert any(line.startswith(f"best epoch {best} (valid roc_auc") for line in trained_run.log)
    client, run = mlflow_run(job)
    assert run.data.tags[T.EPOCHS_FROM] == "1"
    steps = {key: [(m.step, m.value) for m in client.get_metric_history(run.info.run_id, key)]
             for key in ("train/loss", "epoch", "best_epoch")}
    assert [step for step, _ in steps["train/loss"]] == [1, 2, 3]
    assert [(step, int(value)) for step, value in steps["epoch"]] == [(1, 1), (2, 2), (3, 3)]
    assert int(steps["best_epoch"][-1][1]) == best
    assert read_exported(outcome.model_location).info["best_epoch"] == best
    _, state = latest_checkpoint(run_location(job.storage, job.name))
    assert (state.epochs_done, state.best_epoch) == (3, best)
    assert [entry["epoch"] for entry in state.history] == [1, 2, 3]
    summary, = review_runs(tracking_uri=job.tracking.uri, run_ids=[run.info.run_id],
                           html_path=tmp_path / "review.html").review.runs
    assert summary.best_epoch == best


def test_corrupt_empty_and_missing_files_are_skipped_and_counted(ray_session, tiny_job, tiny_corpus, tmp_path,
                                                                 caplog):
    caplog.set_level("INFO", logger="raytag")
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "corrupt.wav").write_bytes(b"RIFF\x00\x00\x00\x00WAVEfmt " + os.urandom(400))
    (bad / "zero.ogg").write_bytes(b"")
    rows = (tiny_corpus / "manifest.csv").read_text().splitlines()
    header, body = rows[0], [r.replace("audio/", f"{tiny_corpus}/audio/", 1) for r in rows[1:]]
    extra = [
        f"{bad}/corrupt.wav,piano,train,false,x",
        f"{bad}/zero.ogg,bass,train,false,x",
        f"{bad}/missing.wav,kick,valid,false,x",
    ]
    real_empty = Path(__file__).resolve().parents[2] / "shared" / "data" / "real-audio" / "empty.wav"
    if real_empty.is_file():
        extra.append(f"{real_empty},flute,train,false,x")
    manifest = tmp_path / "manifest.csv"
    manifest.write_text("\n".join([header, *body, *extra]) + "\n")
    job = load_job(tiny_job("bad-files", manifest=manifest), ["scaling.num_workers=1", "train.epochs=1"])

    outcome = train(job)

    assert outcome.skipped_files == len(extra)
    client, run = mlflow_run(job)
    assert run.data.metrics["data/skipped_files"] == len(extra)
    assert "data/skipped_files.csv" in artifacts(client, run.info.run_id)
    assert run.data.metrics["train/examples"] == 28  # every good clip still trained
    # Every header was read once (the missing file's is not: the file system says it is gone) ...
    read = len(body) + len(extra) - 1
    assert (run.data.metrics["data/headers_read"], run.data.metrics["data/headers_reused"]) == (read, 0)
    # ... and a second run of the job (it evaluates its best epoch) reads none, still reporting
    # every skipped file.
    caplog.clear()
    assert train(job).skipped_files == len(extra)
    assert f"(0 headers read, {read} reused from the scan cache, 1 files missing)" in caplog.text


def _kill_a_train_worker_after_checkpoints(folder: Path, timeout: float = 300) -> int:
    """Waits for two epoch checkpoints (so the first is surely registered), then kills a worker."""
    import ray
    from ray.util.state import list_actors

    deadline = time.time() + timeout
    while len(list(folder.glob("checkpoint_*"))) < 2:
        assert time.time() < deadline, "no checkpoints appeared"
        time.sleep(0.2)
    # This test's instance by its address: auto-detection fails when another Ray instance runs on the machine.
    workers = list_actors(address=ray.get_runtime_context().gcs_address,
                          filters=[("class_name", "=", "RayTrainWorker"), ("state", "=", "ALIVE")])
    assert workers, "no live Ray Train worker to kill"
    pid = int(workers[-1]["pid"])
    os.kill(pid, signal.SIGKILL)
    return pid


def test_worker_killed_mid_run_resumes_from_checkpoint(ray_session, tiny_job):
    job = load_job(tiny_job("killed"), ["train.epochs=4", "scaling.max_failures=1"])
    outcome: dict = {}
    runner = threading.Thread(target=lambda: outcome.update(result=train(job)), daemon=True)
    runner.start()
    _kill_a_train_worker_after_checkpoints(Path(run_location(job.storage, job.name)))
    runner.join(timeout=900)

    assert "result" in outcome, "training did not complete after the worker was killed"
    client, run = mlflow_run(job)
    resumed = history(client, run, "resumed_from_epoch")
    assert resumed[0] == -1 and max(resumed) >= 1  # restarted from a checkpoint, not from scratch
    assert max(history(client, run, "epoch")) == 4  # epochs 1-4
    assert run.info.status == "FINISHED"


@pytest.mark.slow  # resuming from a checkpoint also: the killed-worker test, tests/test_multinode.py (b)
def test_rerun_of_a_failed_job_resumes_from_its_checkpoint(ray_session, tiny_job):
    job = load_job(tiny_job("rerun"), ["train.epochs=4", "scaling.max_failures=0"])
    failed: dict = {}

    def first_attempt():
        try:
            train(job)
        except Exception as exc:  # noqa: BLE001 - the killed worker fails this run
            failed["error"] = exc

    runner = threading.Thread(target=first_attempt, daemon=True)
    runner.start()
    _kill_a_train_worker_after_checkpoints(Path(run_location(job.storage, job.name)))
    runner.join(timeout=600)
    assert "error" in failed, "the run should fail when its worker dies and max_failures is 0"

    outcome = train(job)  # same job, same storage: resumes

    client, run = mlflow_run(job)  # the same MLflow run continues
    assert max(history(client, run, "resumed_from_epoch")) >= 1
    assert run.info.status == "FINISHED" and outcome.best_epoch is not None


def test_bad_config_key_exits_2_before_ray_starts(tmp_path, tiny_job):
    job = tiny_job("bad-key")
    proc = subprocess.run(
        [sys.executable, "-m", "raytag.cli", "train", str(job), "train.lrate=0.1"],
        capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 2
    assert "train.lrate: unknown key" in proc.stderr and "allowed:" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert "Ray" not in proc.stdout + proc.stderr  # nothing started
    assert not (tmp_path / "ray_results").exists()


def test_a_second_run_that_only_evaluates_keeps_the_models_lineage(ray_session, tiny_job):
    """Running a finished job again (a second ``make demo``) evaluates its best epoch in a new
    MLflow run; ``model.json`` still names the run that trained the model, and the evaluation
    run records that run as a tag."""
    job = load_job(tiny_job("lineage"), ["train.epochs=1"])
    first = train(job)
    second = train(job)  # the checkpoint is complete: evaluation only, in a new MLflow run
    assert second.run_id and second.run_id != first.run_id
    assert read_exported(second.model_location).info["mlflow_run_id"] == first.run_id
    client = MlflowClient(job.tracking.uri)
    assert client.get_run(second.run_id).data.tags[T.TRAINED_BY_RUN] == first.run_id
    assert T.TRAINED_BY_RUN not in client.get_run(first.run_id).data.tags
