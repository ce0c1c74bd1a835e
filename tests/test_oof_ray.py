"""Integration (issue 25 items 1 and 2): a pipeline whose first stage trains 2 out-of-fold
teachers side by side on local Ray, whose Balanced-Masking student gets every training track
scored by a fold teacher that did not see it; every run chooses its best epoch on the verified
validation rows (``train.select_labels: auto`` with enough of them) and logs both signals;
the stage resumes without retraining a fold; ``raytag audit`` takes the out-of-fold stage."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import pandas as pd
import pytest
from mlflow.tracking import MlflowClient

from raytag.cluster.inference.audit import run_audit
from raytag.cluster.inference.teacher_scores import CACHE_KIND
from raytag.cluster.training.oof import fold_jobs
from raytag.cluster.training.pipeline import run_pipeline
from raytag.config import load_job, stage_jobs
from raytag.data.manifest import read_manifest
from raytag.folds import read_oof_teacher, track_fold
from raytag.locations import cache_location
from raytag.plan import training_tracks
from raytag.tracking import run_tags as T

pytestmark = pytest.mark.ray

STAGES = """
stages:
  - name: teacher
    folds: 2
    overrides:
      objective: {name: balanced_training}
  - name: student
    teacher: teacher
    overrides:
      objective:
        name: balanced_masking
        percentile: 80
"""


def verified_manifest(corpus: Path, out: Path, verified: int) -> Path:
    """The corpus manifest with its first ``verified`` validation rows checked by a person:
    their clean tags, ``verified=true``."""
    clean = {row["path"]: row["tags"] for row in csv.DictReader(io.StringIO((corpus / "clean.csv").read_text()))}
    rows = list(csv.DictReader(io.StringIO((corpus / "manifest.csv").read_text())))
    done = 0
    for row in rows:
        path = row["path"]
        row["path"] = path if Path(path).is_absolute() else str(corpus / path)  # the copy lies elsewhere
        if row["split"] == "valid" and done < verified:
            row["tags"] = clean.get(path, clean.get(row["path"], row["tags"]))
            row["verified"] = "true"
            done += 1
    assert done == verified
    with out.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return out


def test_out_of_fold_teachers_feed_balanced_masking_and_selection_uses_verified_rows(
        ray_session, tiny_job, tiny_corpus, tmp_path, caplog):
    manifest = verified_manifest(tiny_corpus, tmp_path / "manifest-verified.csv", verified=4)
    path = tiny_job("oof", manifest=manifest)
    path.write_text(path.read_text() + STAGES)
    job = load_job(path, ["train.epochs=1", "scaling.num_workers=1", "eval.threshold_min_verified=3"])

    results = run_pipeline(job)

    assert [r.name for r in results] == ["teacher", "student"] and not any(r.reused for r in results)
    oof = read_oof_teacher(results[0].model_location)
    assert oof is not None and oof.folds == 2 and all((Path(m) / "model.pt").is_file() for m in oof.models)
    client = MlflowClient(job.tracking.uri)
    experiment = client.get_experiment_by_name(job.tracking.experiment)
    runs = {r.info.run_name: r for r in client.search_runs([experiment.experiment_id])}
    stage, student = runs["oof-teacher"], runs["oof-student"]
    folds = [runs["oof-teacher-fold0"], runs["oof-teacher-fold1"]]
    assert stage.data.tags[T.KIND] == "folds" and stage.data.tags[T.FOLDS] == "2"
    assert [f.data.tags[T.FOLD] for f in folds] == ["0", "1"]
    assert all(f.data.tags[T.PARENT_RUN] == stage.info.run_id for f in folds)
    assert student.data.tags[T.TEACHER_RUN_ID] == stage.info.run_id
    assert "test/roc_auc" in stage.data.metrics  # the fold teachers' mean
    # Item 1: 4 verified validation rows >= eval.threshold_min_verified (3): every run chose on
    # them, logged both signals each epoch and says so.
    for run in [*folds, student]:
        assert run.data.tags[T.SELECT_LABELS] == "verified"
        for key in ("valid/roc_auc", "valid_verified/roc_auc", "best/valid_verified/roc_auc"):
            assert [m.step for m in client.get_metric_history(run.info.run_id, key)] == [1], (run.info.run_name, key)
    # Fold teacher k trained on the training tracks outside fold k.
    (_, teacher_job), _ = stage_jobs(job)
    tracks = read_manifest(manifest).split("train")
    for k, fold_job in enumerate(fold_jobs(teacher_job, 2)):
        seen = {t.path for t in training_tracks(fold_job, read_manifest(manifest))}
        assert seen == {t.path for t in tracks if track_fold(t.path, folds=2, seed=job.seed) != k}
        assert folds[k].data.metrics["data/usable_files"] >= len(seen)
    # The student's mask came from out-of-fold scores, cached by content, one per training track.
    assert student.data.metrics["masking/masked_entries"] > 0
    cached = list(Path(cache_location(job.storage, CACHE_KIND)).glob("oof-*.parquet"))
    assert len(cached) == 1
    scores = pd.read_parquet(cached[0])
    assert sorted(scores["path"]) == sorted(t.path for t in tracks)
    assert not scores.drop(columns="path").isna().any().any()
    assert student.data.tags[T.TEACHER_SCORES] == str(cached[0])

    # Resumable: without the stage's record, the stage is redone from its finished folds.
    Path(results[0].model_location).parent.joinpath("stage.json").unlink()
    caplog.set_level("INFO", logger="raytag")
    again = run_pipeline(job)
    assert [r.reused for r in again] == [False, True]
    assert "fold teachers [0, 1] already finished; not retrained" in caplog.text
    fold_runs = [r for r in client.search_runs([experiment.experiment_id]) if r.data.tags.get(T.FOLD)]
    assert len(fold_runs) == 2

    # raytag audit takes the out-of-fold stage as its teacher and reads the same scores.
    audited = run_audit(job, teacher=results[0].model_location, split="train")
    assert audited.scores_reused and audited.scores_location == str(cached[0])
    assert (audited.split, audited.tracks, audited.unscored) == ("train", len(tracks), 0)
    assert len(audited.audit.per_tag) == len(read_manifest(manifest).vocabulary)
