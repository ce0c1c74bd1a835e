"""Multi-stage jobs: stage after stage as one job, one MLflow parent run, resumable.

Each stage is a stand-alone job (see :func:`raytag.config.stage_jobs`) trained by
:func:`raytag.cluster.training.driver.train` in a child run of the job's parent run. A stage that names a
``teacher`` is tagged with the teacher's run id and model. A stage with ``folds: K`` trains K
out-of-fold teachers instead (:mod:`raytag.cluster.training.oof`). A finished stage leaves
``stage.json`` in its folder and is not run again when the job is resumed.
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass

from raytag import storage
from raytag.cluster.training.driver import train
from raytag.cluster.training.oof import run_fold_stage
from raytag.config import JobConfig, stage_jobs
from raytag.locations import STAGE_RECORD, run_location
from raytag.tracking import run_tags as T
from raytag.tracking.runs import lineage_tags, start_run

log = logging.getLogger("raytag")

SUMMARY_KEYS = ("roc_auc", "pr_auc", "lwlrap")


@dataclass(frozen=True)
class StageResult:
    name: str
    run_id: str | None
    model_location: str
    metrics: dict[str, float]
    reused: bool
    model_uri: str | None = None  # the stage's MLflow model, models:/<model_id>


def _record(location: str) -> dict | None:
    text = storage.read_text(location)
    return json.loads(text) if text is not None else None


def run_pipeline(job: JobConfig) -> list[StageResult]:
    """Runs every stage in order; returns each stage's result (finished stages are reused)."""
    stages = stage_jobs(job)
    parent = start_run(job, run_tags={T.KIND: "pipeline"})
    results: dict[str, StageResult] = {}
    for stage, stage_job in stages:
        record_location = f"{run_location(stage_job.storage, stage_job.name)}/{STAGE_RECORD}"
        record = _record(record_location)
        if record is not None:
            log.info("stage %s already finished (MLflow run %s); not rerun", stage.name, record["run_id"])
            results[stage.name] = StageResult(**{**record, "reused": True})
            continue
        tags = {T.STAGE: stage.name, T.PIPELINE: job.name}
        if stage.teacher is not None:
            teacher = results[stage.teacher]
            tags.update(lineage_tags(teacher_stage=stage.teacher, teacher_run_id=teacher.run_id,
                                     teacher_model=teacher.model_location))
        if stage.folds is not None:
            log.info("stage %s: training %d out-of-fold teachers of %s", stage.name, stage.folds, stage_job.name)
            run_id, location, metrics = run_fold_stage(stage_job, stage.folds, parent_run_id=parent.run_id, tags=tags)
            result = StageResult(stage.name, run_id, location, metrics, False)
        else:
            log.info("stage %s: training %s", stage.name, stage_job.name)
            outcome = train(stage_job, parent_run_id=parent.run_id, run_tags=tags)
            split = stage_job.eval.split
            metrics = {key: float(value) for key, value in outcome.report.as_metrics(f"{split}/").items()}
            result = StageResult(stage.name, outcome.run_id, outcome.model_location, metrics, False, outcome.model_uri)
        storage.write_text(record_location, json.dumps(asdict(result), indent=1))
        results[stage.name] = result
        parent.log_metrics({f"{stage.name}/{key}": value for key, value in metrics.items()})
    rows = [{"stage": r.name, "run_id": r.run_id, **r.metrics} for r in results.values()]
    parent.log_table(rows, "stages.csv")
    final = list(results.values())[-1]
    parent.set_tags({T.FINAL_MODEL: final.model_location, T.FINAL_RUN_ID: str(final.run_id)})
    parent.end()
    return list(results.values())


def format_stages(results: list[StageResult], split: str) -> str:
    """A comparison table of the stages' evaluation metrics."""
    width = max(len(r.name) for r in results + [StageResult("stage", None, "", {}, False)])
    lines = [f"{'stage':<{width}}  " + "  ".join(f"{key:>8}" for key in SUMMARY_KEYS)]
    for r in results:
        values = [r.metrics.get(f"{split}/{key}", float("nan")) for key in SUMMARY_KEYS]
        note = "  (reused)" if r.reused else ""
        lines.append(f"{r.name:<{width}}  " + "  ".join(f"{v:>8.4f}" for v in values) + note)
    return "\n".join(lines)

