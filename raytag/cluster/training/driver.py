"""The driver: one function runs a job end to end on Ray.

plan the job, Ray-free (:mod:`raytag.plan`: manifest, model recipe, method, teachers checked) →
scan audio headers (Ray Data) → serve the method's needs (:mod:`raytag.cluster.training.needs`: teacher
scores → per-track columns; an unlabeled stream) → fit (:mod:`raytag.cluster.training.trainer`: TorchTrainer,
DDP workers running :func:`raytag.engine.run.fit`; per-epoch metrics to MLflow through the
controller's callback) → export the best model to storage, with decision thresholds → evaluate
it with Ray Data batch inference (validation for the thresholds and the eval split in one
pass) → MLflow. The seconds each phase took are logged at the end and recorded in MLflow.

Everything that can be checked without a cluster is checked before Ray starts. The driver
never names a training method: it asks the method what it needs.
"""

from __future__ import annotations

import dataclasses
import logging
import tempfile
from dataclasses import dataclass
from pathlib import Path

from raytag import storage
from raytag.cluster.training.checkpoints import latest_checkpoint
from raytag.cluster.data.datasets import ScanResult, scan_tracks
from raytag.cluster.inference.evaluation import ScoredSplits, score_splits
from raytag.cluster.training.trainer import run_trainer
from raytag.cluster.training.needs import epoch_data
from raytag.cluster.training.stop import take_stop_request
from raytag.cluster.session import ensure_ray
from raytag.config import JobConfig
from raytag.data.manifest import Track
from raytag.engine import checkpoint as ckpt
from raytag.errors import JobError
from raytag.locations import run_location
from raytag.metrics import TaggingReport
from raytag.models.export import (
    RUN_ID_KEY,
    best_model_location,
    description_path,
    description_with_thresholds,
    exported_run_id,
    write_exported,
)
from raytag.plan import JobPlan, evaluation_labels, plan_job, unlabeled_tracks
from raytag.selection import selection_key
from raytag.timing import Phases
from raytag.threshold_choice import ThresholdLabelChoice
from raytag.thresholds import THRESHOLD_CHOSEN, choose_thresholds, threshold_labels, threshold_map
from raytag.text import plural
from raytag.tracking import run_tags as T
from raytag.tracking.callback import log_missing_epochs
from raytag.tracking.client import Tracker
from raytag.tracking.mlflow_model import publish_model
from raytag.tracking.run_plots import log_run_plots
from raytag.tracking.runs import start_run

log = logging.getLogger("raytag")


@dataclass
class Outcome:
    """The result of a job: where the best model is, how it scored, which MLflow run has it,
    the MLflow model logged from it (``models:/<model_id>``; None without tracking) and the
    wall-clock seconds of the run's phases (:class:`raytag.timing.Phases`)."""

    model_location: str
    report: TaggingReport
    best_epoch: int | None
    run_id: str | None
    skipped_files: int
    model_uri: str | None = None
    seconds: dict[str, float] = dataclasses.field(default_factory=dict)


def _log_scan(scan: ScanResult, tracker: Tracker) -> None:
    log.info("audio scan: %s", scan.summary())
    for path, reason in scan.skipped[:20]:
        log.warning("skipped %s", reason if path in reason else f"{path}: {reason}")
    metrics = {"data/skipped_files": len(scan.skipped), "data/usable_files": len(scan.usable)}
    if scan.counts is not None:  # headers read now vs reused from the scan cache under storage
        metrics.update({"data/headers_read": scan.counts.read, "data/headers_reused": scan.counts.reused})
    tracker.log_metrics(metrics)
    if scan.skipped:
        tracker.log_table(({"path": p, "reason": r} for p, r in scan.skipped), "data/skipped_files.csv")


def scan_job_audio(job: JobConfig, job_plan: JobPlan) -> tuple[ScanResult, list[Track]]:
    """The header scan of every track the job reads (train, valid and evaluation splits, and
    the unlabeled stream's audio when its method uses one), through the header-scan cache
    under ``job.storage``; and the unlabeled stream's tracks. Needs Ray."""
    manifest = job_plan.manifest
    extra = unlabeled_tracks(job, manifest) if job_plan.method.needs.unlabeled_teacher else []
    splits = sorted({"train", "valid", job.eval.split})
    scan = scan_tracks([t for s in splits for t in manifest.split(s)] + extra, num_cpus=job.data.decode_cpus,
                       storage_root=job.storage)
    return scan, extra


def train(
    job: JobConfig,
    *,
    parent_run_id: str | None = None,
    run_tags: dict[str, str] | None = None,
    callbacks: list | None = None,
) -> Outcome:
    """Trains the job's model on Ray, exports the best epoch to storage and evaluates it.

    ``callbacks`` go to the Ray Train run (a Tune trial passes ``TuneReportCallback`` so every
    epoch's metrics reach Tune).
    """
    phases = Phases()
    job_plan = plan_job(job)
    log.info(
        "model %s: %s parameters, %d tags, %d Hz, %.2f s crops; method %s",
        job.model.name, f"{job_plan.parameters:,}", len(job_plan.recipe.tags),
        job_plan.sample_rate, job_plan.crop_samples / job_plan.sample_rate, job.objective.name,
    )
    log.info("the best epoch is chosen on the %s validation labels (train.select_labels %s)",
             job_plan.select_labels, job.train.select_labels)
    with phases("start"):
        ensure_ray(job)
        tracker = start_run(job, parameters=job_plan.parameters, parent_run_id=parent_run_id,
                            run_tags={**(run_tags or {}), T.SELECT_LABELS: job_plan.select_labels})
    with phases("scan"):
        scan, extra = scan_job_audio(job, job_plan)
    _log_scan(scan, tracker)

    run = run_location(job.storage, job.name)
    if take_stop_request(run):
        log.info("removed a stop request left in %s from before this run", run)
    previous = latest_checkpoint(run)
    if previous and previous[1].best_epoch is not None and previous[1].select_labels != job_plan.select_labels:
        tracker.end("FAILED")
        raise JobError(f"{job.name}: its checkpoint chose the best epoch on the {previous[1].select_labels} validation "
                       f"labels, and train.select_labels ({job.train.select_labels}) now resolves to the "
                       f"{job_plan.select_labels} ones; set train.select_labels={previous[1].select_labels} to resume it, "
                       "or train under another name")
    trained_by = tracker.run_id  # the MLflow run that trained the model: this one, unless it only evaluates
    if previous and previous[1].epochs_done >= job.train.epochs:
        log.info("%s already trained %s; evaluating its best epoch", job.name, plural(previous[1].epochs_done, "epoch"))
        final = previous[0]
        trained_by = _training_run(job, tracker)
    else:
        if previous:
            log.info("resuming %s from %s (%s done)", job.name, previous[0], plural(previous[1].epochs_done, "epoch"))
        with phases("needs"):
            data = epoch_data(job, job_plan, scan, extra, tracker)
        with phases("fit"):
            final = run_trainer(job, job_plan, tracker, data, callbacks or [])
    with phases("export"):
        model_location, state = _export_best(job, job_plan, final, trained_by)
    if take_stop_request(run) and state.epochs_done < job.train.epochs:
        log.info("%s stopped on request after epoch %d of %d; rerun it to train the rest", job.name,
                 state.epochs_done, job.train.epochs)
    missing = log_missing_epochs(tracker, state.history)
    if missing:  # training finished before this MLflow run started (see tracking.runs.start_run)
        log.info("logged %s of the checkpoint into MLflow run %s", plural(missing, "epoch"), tracker.run_id)
    log.info("best epoch %s (valid %s %.4f on the %s rows, %s); model in %s", state.best_epoch, state.select_metric,
             state.best_value, state.select_labels, selection_key(state.select_labels, state.select_metric),
             model_location)
    with phases("evaluate"):
        # One scoring pass for the validation split (thresholds) and the eval split.
        scored = score_splits(job, model_location, ["valid", job.eval.split], job_plan=job_plan, scan=scan)
        _save_thresholds(job, job_plan, model_location, scored, tracker)
        evaluation = scored.evaluate(job.eval.split, tracker=tracker)
    with phases("artifacts"):
        log_run_plots(tracker, tags=list(job_plan.recipe.tags), split=job.eval.split, title=job.name,
                      per_tag=evaluation.report.table_rows(), labels=evaluation.labels, scores=evaluation.scores)
        with storage.local_folder(model_location) as folder:
            tracker.log_artifacts(folder, "best_model")
            lineage = {k: v for k, v in (run_tags or {}).items() if k in T.LINEAGE}
            logged = publish_model(tracker, folder, register_as=job.tracking.register_as, lineage=lineage)
    tracker.log_metrics(phases.as_metrics())
    tracker.end()
    log.info("time: %s", phases.summary())
    return Outcome(model_location, evaluation.report, state.best_epoch, tracker.run_id, len(scan.skipped),
                   logged.uri if logged else None, phases.seconds)


def _training_run(job: JobConfig, tracker: Tracker) -> str | None:
    """The MLflow run that trained a job whose checkpoint is already complete (this run only
    evaluates it): the one the exported model names (``model.json``), which the model keeps
    as its lineage; this run records it as :data:`raytag.tracking.run_tags.TRAINED_BY_RUN`.
    None when no exported model names one (the training run is then unknown)."""
    trained_by = exported_run_id(storage.read_text(description_path(best_model_location(job.storage, job.name))))
    if trained_by and trained_by != tracker.run_id:
        log.info("the model was trained by MLflow run %s; run %s evaluates it", trained_by, tracker.run_id)
        tracker.set_tags({T.TRAINED_BY_RUN: trained_by})
    return trained_by


def _export_best(job: JobConfig, job_plan: JobPlan, final: str, trained_by: str | None) -> tuple[str, ckpt.TrainingState]:
    """Writes the final checkpoint's best weights as an exported model under the run folder;
    its ``model.json`` names ``trained_by``, the MLflow run that trained it."""
    location = best_model_location(job.storage, job.name)
    with storage.local_folder(final) as folder, tempfile.TemporaryDirectory(prefix="raytag-export-") as out:
        state = ckpt.load_state(Path(folder))
        write_exported(
            out, job_plan.recipe, ckpt.read_best_weights(Path(folder)),
            sample_rate=job_plan.sample_rate, crop_samples=job_plan.crop_samples,
            scoring=job.eval.scoring_options().recorded(),
            best_epoch=state.best_epoch, select_metric=state.select_metric, best_value=state.best_value,
            select_labels=state.select_labels,
            **{RUN_ID_KEY: trained_by},
        )
        storage.upload(out, location)
    return location, state


def _save_thresholds(job: JobConfig, job_plan: JobPlan, model_location: str, scored: ScoredSplits,
                     tracker: Tracker) -> None:
    """Chooses per-tag F1 thresholds on the exported model's validation scores, on the labels
    a user has (``eval.threshold_labels``), and writes them into its ``model.json`` (what
    ``raytag predict`` applies) with what they were chosen on; the table goes to MLflow."""
    try:  # not logged: the per-epoch valid/* histories keep one value per epoch
        valid = scored.evaluate("valid", manifest_labels=True)
        by_path = {t.path: t for t in job_plan.manifest.split("valid")}
        tracks = [by_path[path] for path in valid.paths]
        on_clean = job.eval.threshold_labels == ThresholdLabelChoice.CLEAN
        clean = evaluation_labels(job, job_plan.recipe.tags, tracks)[0] if on_clean else None
        chosen = threshold_labels(job.eval.threshold_labels, noisy=valid.labels, verified=[t.verified for t in tracks],
                                  clean=clean, min_verified=job.eval.threshold_min_verified)
    except (JobError, ValueError) as exc:  # e.g. no verified validation track, or no clean labels for it
        log.warning("no decision thresholds saved with the model: %s", exc)
        return
    rows = choose_thresholds(scores=valid.scores[chosen.rows], labels=chosen.labels, tags=list(job_plan.recipe.tags))
    # Only model.json changes: read and written where the model lies, weights untouched.
    location = description_path(model_location)
    storage.write_text(location, description_with_thresholds(storage.read_text(location), threshold_map(rows),
                                                             labels=chosen.source, tracks=chosen.tracks,
                                                             where=location))
    log.info("decision thresholds chosen on the %s labels of %d validation tracks (eval.threshold_labels %s)",
             chosen.source, chosen.tracks, job.eval.threshold_labels)
    missing = [row.tag for row in rows if row.status != THRESHOLD_CHOSEN]
    if missing:
        log.warning("no decision threshold for %s (%s): no positive validation track",
                    plural(len(missing), "tag"), ", ".join(missing[:5]))
    tracker.set_tags({T.THRESHOLD_LABELS: chosen.source})
    tracker.log_metrics({"thresholds/tracks": chosen.tracks})
    tracker.log_table([dataclasses.asdict(row) for row in rows], "metrics/thresholds_valid.csv")
    # The labels validation was scored on, per epoch and here: the manifest's (titles of the curves).
    tracker.set_tags({T.labels_source("valid"): valid.label_source})


