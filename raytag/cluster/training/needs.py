"""Serving a training method's needs on the cluster: the tables a run streams from.

The driver never names a method: it asks the method what it needs (:class:`raytag.methods.base.Needs`)
and this module serves it: a scoring teacher's scores over the training tracks (Ray Data batch
inference, cached under storage) turned into per-track columns by the method; an unlabeled
stream labelled by a frozen teacher; the clean labels for the method's diagnostics; and every
table read from the job_plan audio cache where ``raytag prepare`` filled it.
"""

from __future__ import annotations

import dataclasses
import logging

import numpy as np
import ray

from raytag import storage
from raytag.cluster.data.audio_cache import cached_tables
from raytag.cluster.data.datasets import EpochData, ScanResult, UnlabeledSource, scan_tracks, track_table
from raytag.cluster.inference.actor_pool import LABELING_GPUS, SCORING_GPUS, SoftLabeler, gpu_share
from raytag.cluster.inference.teacher_scores import teacher_scores
from raytag.cluster.session import ensure_ray
from raytag.config import JobConfig
from raytag.data.manifest import Track
from raytag.data.rows import TrackTable
from raytag.errors import JobError
from raytag.methods.base import Method
from raytag.models.export import read_exported, read_weights
from raytag.plan import JobPlan, clean_labels, evaluation_labels, plan_job, training_tracks
from raytag.tracking import run_tags as T
from raytag.tracking.client import Tracker

log = logging.getLogger("raytag")


def epoch_data(job: JobConfig, job_plan: JobPlan, scan: ScanResult, unlabeled: list[Track], tracker: Tracker) -> EpochData:
    """The tables a training run streams from, with the method's per-track columns."""
    manifest, method = job_plan.manifest, job_plan.method
    train_tracks = training_tracks(job, manifest)
    train, kept = track_table(train_tracks, manifest.label_matrix(train_tracks), scan)
    valid_tracks = manifest.split("valid")
    valid, valid_kept = track_table(valid_tracks, manifest.label_matrix(valid_tracks), scan)
    valid_verified = np.array([valid_tracks[i].verified for i in valid_kept], dtype=bool)
    if not len(train) or not len(valid):
        raise JobError("no readable audio in the train or valid split; see the skipped files above")
    verified = np.array([train_tracks[i].verified for i in kept], dtype=bool)
    columns = method.track_columns(
        labels=train.labels, verified=verified, scores=_teacher_scores(job, method, train, tracker),
        clean=clean_labels(job, job_plan.recipe.tags, [train_tracks[i] for i in kept]),
    )
    if columns.message:
        log.info(columns.message)
    tracker.log_metrics(columns.metrics)
    for artifact, rows in columns.tables.items():
        tracker.log_table(rows, artifact)
    missing = set(method.needs.columns) - set(columns.columns)
    if missing:
        raise JobError(f"method {job.objective.name} needs columns {sorted(missing)} it did not make")
    train = dataclasses.replace(train, columns=columns.columns)
    test = None
    if job.eval.average_last:
        eval_tracks = manifest.split(job.eval.split)
        test, _ = track_table(eval_tracks, evaluation_labels(job, job_plan.recipe.tags, eval_tracks)[0], scan)
    train, valid, test = _read_prepared_audio(job, job_plan, tracker, train=train, valid=valid, test=test)
    return EpochData(
        train=ray.put(train), valid=ray.put(valid), test=None if test is None else ray.put(test),
        sample_rate=job_plan.sample_rate, crop_samples=job_plan.crop_samples, num_cpus=job.data.decode_cpus,
        seed=job.seed, shuffle=job.train.shuffle, augment=job.augment.spec(), max_chunks=job.eval.max_chunks,
        unlabeled=_unlabeled_source(job, job_plan, unlabeled, scan, tracker),
        valid_verified=valid_verified if valid_verified.any() else None,
    )


def _read_prepared_audio(job: JobConfig, job_plan: JobPlan, tracker: Tracker, prefix: str = "data/",
                         **tables: TrackTable | None):
    """The tables with every track that ``raytag prepare`` cached at the model's rate read from
    its cache file (the rest decode from their audio files); the counts go to MLflow."""
    cached, use = cached_tables(tables, storage_root=job.storage, sample_rate=job_plan.sample_rate)
    tracker.log_metrics(use.metrics(prefix))
    return tuple(cached[name] for name in tables)


def _teacher_scores(job: JobConfig, method: Method, table, tracker: Tracker) -> np.ndarray | None:
    """The scores of the method's scoring teacher over the training table, if it needs them."""
    need = method.needs.scores_teacher
    if need is None:
        return None
    scored = teacher_scores(
        need.folder, table, key=need.key, storage_root=job.storage, max_chunks=job.eval.max_chunks,
        batch_size=job.eval.batch_size, num_cpus=job.data.decode_cpus, num_gpus=gpu_share(SCORING_GPUS, use_gpu=job.scaling.use_gpu),
    )
    tracker.set_tags({T.TEACHER_SCORES: scored.location, T.TEACHER_SCORES_REUSED: str(scored.reused)})
    if not scored.reused:
        tracker.log_metrics({"teacher_scores/scoring_nodes": scored.nodes})
    return scored.scores


def precompute_teacher_scores(job: JobConfig) -> None:
    """Scores the training set with the method's scoring teacher once (cached under storage),
    so that the runs that follow, e.g. every trial of a sweep, only read them."""
    job_plan = plan_job(job)
    if job_plan.method.needs.scores_teacher is None:
        return
    ensure_ray(job)
    tracks = training_tracks(job, job_plan.manifest)
    scan = scan_tracks(tracks, num_cpus=job.data.decode_cpus, storage_root=job.storage)
    table, _ = track_table(tracks, job_plan.manifest.label_matrix(tracks), scan)
    _teacher_scores(job, job_plan.method, table, Tracker.disabled())


def _unlabeled_source(job, job_plan: JobPlan, tracks: list[Track], scan: ScanResult, tracker: Tracker):
    """The noisy-student stream: the unlabeled tracks and the teacher that labels them."""
    need = job_plan.method.needs.unlabeled_teacher
    if need is None:
        return None
    table, _ = track_table(tracks, np.zeros((len(tracks), len(job_plan.recipe.tags)), np.float32), scan)
    if not len(table):
        raise JobError("none of the unlabeled audio files could be read")
    (table,) = _read_prepared_audio(job, job_plan, tracker, "data/unlabeled_", unlabeled=table)
    with storage.local_folder(need.folder) as folder:
        recipe = read_exported(folder, need.key).recipe
        weights = read_weights(folder)
    log.info("noisy student: %d unlabeled tracks, teacher %s", len(table), need.folder)
    tracker.set_tags({T.TEACHER_MODEL: need.folder})
    tracker.log_metrics({"data/unlabeled_tracks": len(table)})
    return UnlabeledSource(
        table=ray.put(table), labeler=SoftLabeler,
        labeler_kwargs={"recipe": recipe, "weights_ref": ray.put(weights), "use_gpu": job.scaling.use_gpu},
        teacher_cpus=job.semi.teacher_cpus, teacher_gpus=gpu_share(LABELING_GPUS, use_gpu=job.scaling.use_gpu), ratio=job.semi.ratio,
    )
