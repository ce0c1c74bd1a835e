"""A pipeline stage with ``folds: K``: K out-of-fold teachers, run as a Ray Tune grid over the
fold index (:mod:`raytag.folds` says what they are).

Fold teacher k is the stage's job named ``<job>-<stage>-fold<k>`` with ``train.leave_out``
``{folds: K, fold: k, seed: <the job's seed>}``: it trains without fold k of the training
split. Each runs through :func:`raytag.cluster.training.driver.train`, as a sweep's trial does
(a Tune function trainable with a tiny CPU request beside the driver; its Train workers go
wherever the cluster has room). As many run side by side as the cluster's free resources hold
(:func:`fold_concurrency`), the rest one after another. A finished fold leaves ``stage.json``
in its run folder and is not trained again when the pipeline is resumed; an interrupted one
resumes from its checkpoint. When all K are done, the stage's exported-model folder gets the
out-of-fold teacher record (:func:`raytag.folds.write_oof_teacher`), which is what a later
stage's teacher key points at.

MLflow: one run for the stage (``raytag.kind`` ``folds``) under the pipeline's, with the fold
runs nested under it and the mean of their evaluation metrics.
"""

from __future__ import annotations

import copy
import json
import logging
import math
from collections.abc import Mapping
from typing import Any

from raytag import storage
from raytag.config import JobConfig, validate_job
from raytag.errors import JobError
from raytag.folds import OofTeacher, write_oof_teacher
from raytag.locations import STAGE_RECORD, run_location
from raytag.models.export import best_model_location
from raytag.tracking import run_tags as T

log = logging.getLogger("raytag")

TRIAL_CPUS = 0.1
"""A fold trial only drives its Ray Train run (as a sweep's trial)."""


def fold_jobs(stage_job: JobConfig, folds: int) -> list[JobConfig]:
    """The K fold teachers' jobs: ``<stage job>-fold<k>`` trained without fold k, validated."""
    base = stage_job.model_dump(mode="json", exclude={"stages"})
    jobs = []
    for fold in range(folds):
        tree = copy.deepcopy(base)
        tree["name"] = f"{stage_job.name}-fold{fold}"
        tree["train"]["leave_out"] = {"folds": folds, "fold": fold, "seed": stage_job.seed}
        jobs.append(validate_job(tree))
    return jobs


def fold_concurrency(job: JobConfig, available: Mapping[str, float], pending: int) -> int:
    """How many fold teachers fit side by side in ``available`` resources (Ray's
    ``available_resources()``): each needs its Train workers (the most of an elastic range),
    one decode task and its trial's driver; at least 1, at most ``pending``."""
    workers = job.scaling.worker_range[1]
    cpus = workers * job.scaling.cpus_per_worker + job.data.decode_cpus + TRIAL_CPUS
    fits = math.floor(available.get("CPU", 0.0) / cpus + 1e-9)
    if job.scaling.use_gpu:
        fits = min(fits, math.floor(available.get("GPU", 0.0) / (workers * job.scaling.gpus_per_worker) + 1e-9))
    return max(1, min(pending, fits))


def fold_record_location(fold_job: JobConfig) -> str:
    """The record a finished fold teacher leaves in its run folder."""
    return f"{run_location(fold_job.storage, fold_job.name)}/{STAGE_RECORD}"


def _read_record(location: str) -> dict | None:
    text = storage.read_text(location)
    return json.loads(text) if text is not None else None


def _fold_trial(config: dict[str, Any], *, jobs: list[dict], parent_run_id: str | None, tags: dict[str, str]) -> None:
    """One Tune trial: fold teacher ``config["fold"]`` trained, evaluated and recorded."""
    from raytag.cluster.training.driver import train

    fold = int(config["fold"])
    job = JobConfig.model_validate(jobs[fold])
    run_tags = {**tags, T.FOLD: str(fold)}
    if T.STAGE in run_tags:
        run_tags[T.STAGE] = f"{run_tags[T.STAGE]}-fold{fold}"
    outcome = train(job, parent_run_id=parent_run_id, run_tags=run_tags)
    split = job.eval.split
    metrics = {key: float(value) for key, value in outcome.report.as_metrics(f"{split}/").items()}
    record = {"fold": fold, "run_id": outcome.run_id, "model_location": outcome.model_location, "metrics": metrics}
    storage.write_text(fold_record_location(job), json.dumps(record, indent=1))


def run_fold_stage(stage_job: JobConfig, folds: int, *, parent_run_id: str | None,
                   tags: dict[str, str]) -> tuple[str | None, str, dict[str, float]]:
    """Trains the stage's K fold teachers (those not finished yet) and writes its out-of-fold
    teacher record.

    Args:
        stage_job: the stage's job (name ``<job>-<stage>``).
        folds: K (≥ 2).
        parent_run_id: the pipeline's MLflow run.
        tags: the stage's run tags (stage, pipeline, lineage).

    Returns:
        ``(the stage's MLflow run id, the out-of-fold teacher's folder, the mean of the fold
        teachers' evaluation metrics)``.

    Raises:
        JobError: a fold teacher that did not finish (its error named).
    """
    from ray import tune

    from raytag.cluster.session import driver_node_resource, ensure_ray
    from raytag.locations import resolve_storage
    from raytag.tracking.client import resolve_uri
    from raytag.tracking.runs import start_run

    ensure_ray(stage_job)
    import ray

    tracker = start_run(stage_job, parent_run_id=parent_run_id, run_tags={**tags, T.KIND: "folds", T.FOLDS: str(folds)})
    jobs = fold_jobs(stage_job, folds)
    pending = [k for k, job in enumerate(jobs) if _read_record(fold_record_location(job)) is None]
    if len(pending) < folds:
        log.info("fold teachers %s already finished; not retrained", sorted(set(range(folds)) - set(pending)))
    if pending:
        concurrency = fold_concurrency(stage_job, ray.available_resources(), len(pending))
        log.info("training %d fold teacher(s) of %s, %d at a time", len(pending), stage_job.name, concurrency)
        resolved = []
        for job in jobs:  # trial processes run in their own working folders: absolute paths and URI
            tree = job.resolved()
            tree["tracking"]["uri"] = resolve_uri(job.tracking.uri)
            resolved.append(tree)
        trainable = tune.with_resources(
            tune.with_parameters(_fold_trial, jobs=resolved, parent_run_id=tracker.run_id, tags=dict(tags)),
            {"cpu": TRIAL_CPUS, driver_node_resource(): 0.001},
        )
        tuner = tune.Tuner(
            trainable,
            param_space={"fold": tune.grid_search(pending)},
            tune_config=tune.TuneConfig(max_concurrent_trials=concurrency),
            run_config=tune.RunConfig(name=f"{stage_job.name}-folds", storage_path=resolve_storage(stage_job.storage)),
        )
        results = tuner.fit()
        errors = [(str(r.error).strip().splitlines() or [repr(r.error)])[-1] for r in results if r.error is not None][:3]
    else:
        errors = []
    records = [_read_record(fold_record_location(job)) for job in jobs]
    missing = [k for k, record in enumerate(records) if record is None]
    if missing:
        tracker.end("FAILED")
        raise JobError(f"{stage_job.name}: fold teacher(s) {missing} did not finish; rerun the pipeline to resume "
                       f"them (first errors: {errors})")
    location = best_model_location(stage_job.storage, stage_job.name)
    write_oof_teacher(location, OofTeacher(folds, stage_job.seed, tuple(r["model_location"] for r in records)))
    keys = sorted(set.intersection(*(set(r["metrics"]) for r in records)))
    metrics = {key: sum(r["metrics"][key] for r in records) / folds for key in keys}
    tracker.log_metrics(metrics)
    tracker.log_table([{"fold": r["fold"], "run_id": r["run_id"], "model": r["model_location"], **r["metrics"]}
                       for r in records], "folds/folds.csv")
    tracker.set_tags({T.FINAL_MODEL: location})
    tracker.end()
    log.info("out-of-fold teacher of %s: %d fold models, record in %s", stage_job.name, folds, location)
    return tracker.run_id, location, metrics
