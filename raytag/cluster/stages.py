"""Multi-stage jobs: stage after stage as one job, one MLflow parent run, resumable.

Each stage is a stand-alone job (see :func:`raytag.config.stage_jobs`) trained by
:func:`raytag.cluster.driver.train` in a child run of the job's parent run. A stage that names a
``teacher`` is tagged with the teacher's run id and model. A finished stage leaves
``stage.json`` in its folder and is not run again when the job is resumed.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path

from raytag.config import JobConfig, stage_jobs
from raytag.cluster.driver import job_dir, start_tracking, train

log = logging.getLogger("raytag")

STAGE_RECORD = "stage.json"
SUMMARY_KEYS = ("roc_auc", "pr_auc", "lwlrap")


@dataclass(frozen=True)
class StageResult:
    name: str
    run_id: str | None
    model_dir: str
    metrics: dict[str, float]
    reused: bool


def _record(folder: Path) -> dict | None:
    path = folder / STAGE_RECORD
    return json.loads(path.read_text()) if path.is_file() else None


def run_pipeline(job: JobConfig) -> list[StageResult]:
    """Runs every stage in order; returns each stage's result (finished stages are reused)."""
    stages = stage_jobs(job)
    parent = start_tracking(job, run_tags={"raytag.kind": "pipeline"})
    results: dict[str, StageResult] = {}
    for stage, stage_job in stages:
        folder = job_dir(stage_job)
        record = _record(folder)
        if record is not None:
            log.info("stage %s already finished (MLflow run %s); not rerun", stage.name, record["run_id"])
            results[stage.name] = StageResult(stage.name, record["run_id"], record["model_dir"], record["metrics"], True)
            continue
        tags = {"raytag.stage": stage.name, "raytag.pipeline": job.name}
        if stage.teacher is not None:
            teacher = results[stage.teacher]
            tags.update(
                {
                    "raytag.teacher_stage": stage.teacher,
                    "raytag.teacher_run_id": str(teacher.run_id),
                    "raytag.teacher_model": teacher.model_dir,
                }
            )
        log.info("stage %s: training %s", stage.name, stage_job.name)
        outcome = train(stage_job, parent_run_id=parent.run_id, run_tags=tags)
        split = stage_job.eval.split
        metrics = {key: float(value) for key, value in outcome.report.as_metrics(f"{split}/").items()}
        result = StageResult(stage.name, outcome.run_id, str(outcome.model_dir), metrics, False)
        (folder / STAGE_RECORD).write_text(json.dumps(result.__dict__, indent=1))
        results[stage.name] = result
        parent.log_metrics({f"{stage.name}/{key}": value for key, value in metrics.items()})
    rows = [{"stage": r.name, "run_id": r.run_id, **r.metrics} for r in results.values()]
    parent.log_table(rows, "stages.csv")
    final = list(results.values())[-1]
    parent.set_tags({"raytag.final_model": final.model_dir, "raytag.final_run_id": str(final.run_id)})
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

