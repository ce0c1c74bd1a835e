"""Fills an MLflow store (any URI) with a two-stage pipeline as the driver logs it, for the
review tests: a parent run, a teacher and a student stage with lineage tags, flattened-config
params, per-epoch histories, final test metrics, per-tag CSVs, a logged plot and a model
description."""

from __future__ import annotations

import io
import time

from mlflow.entities import Metric, Param
from PIL import Image

from raytag.tracking import run_tags as tag_names

TAGS = ["genre---rock", "genre---pop", "instrument---piano", "mood/theme---sad", "instrument---violin"]
EPOCHS = 4
# Per-tag test ROC-AUC of each stage; "mood/theme---sad" has no positive (undefined).
TEACHER_ROC = [0.80, 0.70, 0.90, None, 0.60]
STUDENT_ROC = [0.82, 0.78, 0.85, None, 0.61]
# Sorted by |Δ ROC-AUC|: pop +0.08, piano −0.05, rock +0.02, violin +0.01, then the undefined tag.
EXPECTED_ORDER = ["genre---pop", "instrument---piano", "genre---rock", "instrument---violin", "mood/theme---sad"]


# The student's decision thresholds, as the driver logs them; the tag without positives has none.
THRESHOLDS_CSV = (
    "tag,threshold,f1,precision,recall,positives,tracks,status\n"
    "genre---rock,0.41,0.8,0.75,0.857,7,40,ok\n"
    "genre---pop,0.55,0.7,0.7,0.7,7,40,ok\n"
    "instrument---piano,0.3,0.9,0.9,0.9,7,40,ok\n"
    "mood/theme---sad,,,,,0,40,no positive validation track\n"
    "instrument---violin,0.62,0.5,0.5,0.5,7,40,ok\n"
)


def per_tag_csv(roc: list) -> str:
    lines = ["tag,positives,negatives,roc_auc,pr_auc"]
    for tag, value in zip(TAGS, roc):
        positives = 0 if value is None else 7
        cell = "" if value is None else f"{value}"
        pr = "" if value is None else f"{value / 2}"
        lines.append(f"{tag},{positives},{40 - positives},{cell},{pr}")
    return "\n".join(lines) + "\n"


def png_bytes(color=(200, 30, 30)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (320, 200), color).save(buffer, format="PNG")
    return buffer.getvalue()


def _log_history(client, run_id: str, series: dict[str, list[float]], first_epoch: int = 1) -> None:
    now = int(time.time() * 1000)
    metrics = [Metric(key, float(v), now + step, step) for key, values in series.items()
               for step, v in enumerate(values, start=first_epoch)]
    for i in range(0, len(metrics), 500):
        client.log_batch(run_id, metrics=metrics[i : i + 500])


def _stage(client, experiment_id, parent_id, stage, params, tags, roc, extra_series, final_roc, first_epoch=1):
    """One stage's run; ``first_epoch`` 0 logs it as raytag did before epochs were numbered
    from 1 (steps and epoch numbers from 0, no ``raytag.epochs_from`` tag)."""
    numbering = {tag_names.EPOCHS_FROM: tag_names.EPOCHS_FROM_1} if first_epoch == 1 else {}
    run = client.create_run(
        experiment_id,
        run_name=f"demo-progressive-{stage}",
        tags={tag_names.PARENT_RUN: parent_id, tag_names.STAGE: stage, tag_names.PIPELINE: "demo-progressive",
              tag_names.MODEL: "shortres-tiny", tag_names.METHOD: params["objective.name"],
              tag_names.labels_source("test"): "clean", tag_names.labels_source("valid"): "clean",
              tag_names.THRESHOLD_LABELS: "noisy", **numbering, **tags},
    )
    run_id = run.info.run_id
    common = {"name": f"demo-progressive-{stage}", "model.name": "shortres-tiny", "train.epochs": "4",
              "train.batch_size": "8", "eval.split": "test", "data.manifest": "/data/synth/manifest.csv"}
    client.log_batch(run_id, params=[Param(k, v) for k, v in {**common, **params}.items()])
    series = {
        "train/loss": [0.7, 0.5, 0.4, 0.35],
        "valid/loss": [0.72, 0.6, 0.55, 0.56],
        "valid/roc_auc": [0.6, 0.7, 0.75, 0.74],
        "valid/pr_auc": [0.3, 0.35, 0.4, 0.39],
        "valid/lwlrap": [0.4, 0.45, 0.5, 0.49],
        "train/examples_per_s": [50, 52, 51, 53],
        "epoch_seconds": [10, 9.5, 9.8, 9.6],
        "epoch": [first_epoch + i for i in range(EPOCHS)],
        "best_epoch": [first_epoch + i for i in (0, 1, 2, 2)],
        **extra_series,
    }
    _log_history(client, run_id, series, first_epoch)
    client.log_batch(run_id, metrics=[
        Metric("test/roc_auc", final_roc, int(time.time() * 1000) + 100, 0),
        Metric("test/pr_auc", final_roc / 2, int(time.time() * 1000) + 100, 0),
        Metric("test/lwlrap", final_roc - 0.1, int(time.time() * 1000) + 100, 0),
    ])
    client.log_text(run_id, per_tag_csv(roc), "metrics/per_tag_test.csv")
    return run_id


def fill_pipeline(client, experiment_id: str, first_epoch: int = 1) -> dict[str, str]:
    """Logs the pipeline; returns the run ids (parent, teacher, student). ``first_epoch`` 0:
    as raytag logged runs before epochs were numbered from 1."""
    parent = client.create_run(experiment_id, run_name="demo-progressive", tags={tag_names.KIND: "pipeline"})
    parent_id = parent.info.run_id
    teacher = _stage(
        client, experiment_id, parent_id, "teacher",
        {"objective.name": "balanced_training", "objective.mean_teacher.enabled": "False", "train.lr": "0.001"},
        {}, TEACHER_ROC, {}, 0.75, first_epoch,
    )
    client.log_text(teacher, '{"format": 1, "name": "shortres-tiny", "tags": []}', "best_model/model.json")
    client.log_text(teacher, "not an image, and not a .png", "plots/readme.txt")
    masked = {f"mask/masked/{tag}": [10.0 + i, 12.0 + i, 11.0 + i, 13.0 + i] for i, tag in enumerate(TAGS)}
    student = _stage(
        client, experiment_id, parent_id, "student",
        {"objective.name": "balanced_masking", "objective.mean_teacher.enabled": "True", "train.lr": "0.0003",
         "objective.teacher": "/runs/demo-progressive-teacher/best_model"},
        {tag_names.TEACHER_RUN_ID: teacher, tag_names.TEACHER_STAGE: "teacher",
         tag_names.TEACHER_MODEL: "/runs/demo-progressive-teacher/best_model", tag_names.SELECT_LABELS: "verified"},
        STUDENT_ROC, {**masked, "mask/masked_fraction": [0.4, 0.41, 0.39, 0.4], "mean_teacher/beta": [0, 0, 0.2, 0.4],
                      "mask/percentile": [80.0] * EPOCHS, "mask/teacher_tracks": [40.0]},  # two constants
        0.78, first_epoch,
    )
    client.log_text(student, THRESHOLDS_CSV, "metrics/thresholds_valid.csv")
    for run_id in (teacher, student, parent_id):
        client.set_terminated(run_id)
    return {"parent": parent_id, "teacher": teacher, "student": student}


def log_plot(client, run_id: str, name: str) -> None:
    """Logs a PNG under ``plots/`` (as the driver would)."""
    import tempfile
    from pathlib import Path

    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / name
        path.write_bytes(png_bytes())
        client.log_artifact(run_id, str(path), "plots")
