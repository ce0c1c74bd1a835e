"""Integration: a Ray Tune sweep of a tiny job on local Ray, with ASHA and nested MLflow runs."""

from __future__ import annotations

import pytest
from mlflow.tracking import MlflowClient

from raytag.config import load_job
from raytag.search_space import read_space
from raytag.train.driver import train
from raytag.tune import SweepOptions, run_sweep

pytestmark = pytest.mark.ray


def test_three_trial_asha_sweep_and_its_best_job_trains(ray_session, tiny_job, tmp_path):
    job = load_job(tiny_job("sweep"), ["train.epochs=2", "scaling.num_workers=1", "eval.max_chunks=1"])
    space_file = tmp_path / "space.yaml"
    space_file.write_text(
        "metric: valid/roc_auc\nmode: max\nparams:\n"
        "  train.lr: {loguniform: [0.0003, 0.01]}\n"
        "  model.args.width: {choice: [16, 32]}\n"
    )
    outcome = run_sweep(job, read_space(space_file), SweepOptions(samples=3, scheduler="asha"))

    assert outcome.trials == 3 and outcome.finished >= 1
    assert set(outcome.best_config) == {"train.lr", "model.args.width"}
    client = MlflowClient(job.tracking.uri)
    experiment = client.get_experiment_by_name(job.tracking.experiment)
    runs = client.search_runs([experiment.experiment_id])
    parent = next(r for r in runs if r.info.run_name == "sweep-sweep")
    trials = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id]
    assert len(trials) == 3 and all("raytag.trial_id" in r.data.tags for r in trials)
    assert {r.data.params["model.args.width"] for r in trials} <= {"16", "32"}
    assert any(client.get_metric_history(r.info.run_id, "valid/roc_auc") for r in trials)
    artifacts = [a.path for a in client.list_artifacts(parent.info.run_id, "sweep")]
    assert "sweep/space.yaml" in artifacts and "sweep/best-job.yaml" in artifacts

    resumed = run_sweep(job, read_space(space_file), SweepOptions(samples=3, resume=True))
    assert resumed.trials == 3 and resumed.best_config == outcome.best_config  # restored, not rerun

    best = load_job(outcome.best_job_file, ["train.epochs=1"])  # a ready-to-run job file
    assert best.train.lr == pytest.approx(outcome.best_config["train.lr"])
    assert train(best).report.tracks == 6
