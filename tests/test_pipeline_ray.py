"""Integration: the progressive two-stage pipeline on local Ray, with MLflow lineage."""

from __future__ import annotations

from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from raytag.config import load_job
from raytag.cluster.stages import run_pipeline
from raytag.cluster.scoring import CACHE_KIND
from raytag.locations import cache_location

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
        masking: {percentile: 80}
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
