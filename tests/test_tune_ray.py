"""Integration: a Ray Tune sweep of a tiny job on local Ray, with ASHA and nested MLflow runs."""

from __future__ import annotations

import pytest
from mlflow.tracking import MlflowClient

from raytag.config import load_job
from raytag.search_space import read_space
from raytag.cluster.training.sweep import SweepOptions, run_sweep

pytestmark = pytest.mark.ray


@pytest.mark.slow  # sweeps also: the pipeline-stage sweep below, tests/test_multinode.py (f)
def test_three_trial_asha_sweep_resumes_and_writes_its_best_job(ray_session, tiny_job, tmp_path):
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

    best = load_job(outcome.best_job_file)  # a complete, valid job file with the best values
    assert best.train.lr == pytest.approx(outcome.best_config["train.lr"])
    assert best.model.args["width"] == outcome.best_config["model.args.width"]
    assert best.data.manifest == job.data.manifest and best.train.epochs == job.train.epochs


def test_sweeping_a_pipeline_stage_runs_the_teacher_and_its_scores_once(ray_session, tiny_job, tiny_corpus, caplog):
    caplog.set_level("INFO", logger="raytag")
    path = tiny_job("psweep")
    path.write_text(
        path.read_text()
        + "stages:\n  - name: teacher\n    overrides: {objective: {name: balanced_training}}\n"
        "  - name: student\n    teacher: teacher\n    overrides: {objective: {name: balanced_masking}}\n"
    )
    job = load_job(path, ["train.epochs=1", "scaling.num_workers=1", "eval.max_chunks=1"])
    space_file = path.parent / "space.yaml"
    space_file.write_text("stage: student\nparams:\n  objective.percentile: {grid: [70, 90]}\n")

    outcome = run_sweep(job, read_space(space_file), SweepOptions(samples=1, scheduler="fifo"))

    assert outcome.trials == 2
    client = MlflowClient(job.tracking.uri)
    experiment = client.get_experiment_by_name(job.tracking.experiment)
    runs = client.search_runs([experiment.experiment_id])
    assert sum(r.info.run_name == "psweep-teacher" for r in runs) == 1  # stage 1 ran once
    trials = [r for r in runs if "raytag.trial_id" in r.data.tags]
    assert len(trials) == 2
    # The scores were computed before the trials; every trial read them.
    assert all(r.data.tags["raytag.teacher_scores_reused"] == "True" for r in trials)
    assert {r.data.params["objective.percentile"] for r in trials} == {"70.0", "90.0"}
    # The trial table: a header, then one line per trial as it finished, with its sampled value.
    table = [r.getMessage() for r in caplog.records if r.getMessage().startswith("sweep trial")]
    assert table[0] == "sweep trials: trial  status  epochs  valid/roc_auc  best so far  objective.percentile"
    lines = sorted(line.split("  ")[1:] for line in table[1:])
    assert [(status, epochs, value) for status, epochs, _, _, value in lines] == [
        ("finished", "1", "70"), ("finished", "1", "90")]
