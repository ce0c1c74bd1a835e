"""Integration: the progressive two-stage pipeline on local Ray, with MLflow lineage."""

from __future__ import annotations

from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from raytag.config import load_job
from raytag.cluster.training.pipeline import run_pipeline
from raytag.cluster.inference.teacher_scores import CACHE_KIND
from raytag.locations import cache_location
from raytag.models.export import read_exported

pytestmark = pytest.mark.ray

STAGES = """
stages:
  - name: teacher
    overrides:
      objective: {name: balanced_training}
  - name: student
    teacher: teacher
    overrides:
      train: {epochs: 2}
      objective:
        name: balanced_masking
        percentile: 80
        mean_teacher: {enabled: true, eta: 0.9, t0: 4, warmup_epochs: 1}
"""


def test_two_stage_run_records_parent_child_runs_with_lineage(ray_session, tiny_job, tiny_corpus):
    path = tiny_job("prog")
    path.write_text(path.read_text() + STAGES)
    job = load_job(path, ["train.epochs=1", "scaling.num_workers=1"])

    results = run_pipeline(job)

    assert [r.name for r in results] == ["teacher", "student"] and not any(r.reused for r in results)
    client = MlflowClient(job.tracking.uri)
    experiment = client.get_experiment_by_name(job.tracking.experiment)
    runs = {r.info.run_name: r for r in client.search_runs([experiment.experiment_id])}
    parent, teacher, student = runs["prog"], runs["prog-teacher"], runs["prog-student"]
    assert parent.data.tags["raytag.kind"] == "pipeline"
    for child in (teacher, student):
        assert child.data.tags["mlflow.parentRunId"] == parent.info.run_id
    assert student.data.tags["raytag.teacher_run_id"] == teacher.info.run_id
    assert student.data.tags["raytag.teacher_model"].endswith("prog-teacher/best_model")
    assert "student/test/roc_auc" in parent.data.metrics
    # Stage 2 trained with the teacher's eq. 3 mask and the mean teacher.
    assert student.data.params["objective.name"] == "balanced_masking"
    assert student.data.metrics["masking/masked_entries"] > 0
    history = client.get_metric_history(student.info.run_id, "mean_teacher/steps")
    assert [m.value for m in sorted(history, key=lambda m: m.step)][0] == 0 and history[-1].value > 0
    artifacts = [a.path for a in client.list_artifacts(student.info.run_id, "masking")]
    assert "masking/thresholds.csv" in artifacts
    # The teacher's scores are cached under storage, never beside the manifest.
    assert list(Path(cache_location(job.storage, CACHE_KIND)).glob("*.parquet"))
    assert not any(p.name.startswith(".raytag") for p in tiny_corpus.iterdir())

    again = run_pipeline(job)  # resumed: finished stages are not rerun
    assert all(r.reused for r in again)
    assert [r.run_id for r in again] == [r.run_id for r in results]


HE_STAGES = """
model: {name: cnn-gru-tiny, args: {}, head: sigmoid_sparsemax}
stages:
  - name: verified
    overrides: {data: {train_subset: verified}}
  - name: all
    init_from: verified
    overrides: {objective: {name: staged_training, k: 3}}
"""


def test_he_staged_training_with_the_multi_activation_head(ray_session, tiny_job):
    """He et al.'s first two stages on 2 DDP workers (the third is the first again, started
    from the second): stage 2 starts from stage 1's best model, trains on every row and ignores
    unverified clips above its threshold."""
    path = tiny_job("he")
    path.write_text(path.read_text().replace("model:\n  name: mtt-tiny\n  args: {crop_seconds: 1.0}\n", "")
                    + HE_STAGES)
    job = load_job(path, ["train.epochs=1"])

    results = run_pipeline(job)

    assert [r.name for r in results] == ["verified", "all"]
    client = MlflowClient(job.tracking.uri)
    experiment = client.get_experiment_by_name(job.tracking.experiment)
    runs = {r.info.run_name: r for r in client.search_runs([experiment.experiment_id])}
    verified, everything = runs["he-verified"], runs["he-all"]
    assert verified.data.params["data.train_subset"] == "verified"
    assert everything.data.params["model.init"].endswith("he-verified/best_model")
    assert everything.data.params["model.head"] == "sigmoid_sparsemax"
    assert verified.data.metrics["train/examples"] < everything.data.metrics["train/examples"]
    assert "staged/threshold" in everything.data.metrics and "staged/ignored_share" in everything.data.metrics
    assert "staged/ignored_precision" in everything.data.metrics  # clean labels known: diagnostics
    final = read_exported(results[-1].model_location)
    assert final.recipe.head == "sigmoid_sparsemax" and final.recipe.name == "cnn-gru-tiny"
