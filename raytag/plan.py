"""A job's plan, before any cluster work: data, model recipe, method, and which labels go where.

Everything here runs without Ray: reading and checking the manifest, building the model once
(for its rate, crop and size), building the method and checking the exported teachers it names,
and choosing the tracks and labels each part of the run uses. The driver
(:mod:`raytag.cluster.training.driver`) plans a job with :func:`plan_job` and then serves the method's
needs and fits on the cluster; evaluation and the CLI plan with it too.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from raytag import storage
from raytag.audio.files import audio_files
from raytag.data.manifest import Manifest, ManifestError, Track, multi_hot, read_labels, read_manifest
from raytag.errors import JobError
from raytag.folds import read_oof_teacher, track_fold
from raytag.methods import build_method
from raytag.methods.base import Method, TeacherNeed
from raytag.models import count_parameters
from raytag.models.export import ModelRecipe, check_fits, read_exported
from raytag.selection import resolve_select_labels
from raytag.text import plural

log = logging.getLogger("raytag")


@dataclass
class JobPlan:
    """What the driver knows before any cluster work: data, model recipe, method."""

    manifest: Manifest
    recipe: ModelRecipe
    method: Method
    sample_rate: int
    crop_samples: int
    parameters: int
    select_labels: str = "noisy"
    """The validation labels that choose the model: ``train.select_labels`` resolved
    (:func:`select_labels`)."""


def plan_job(job) -> JobPlan:
    """Reads the manifest, builds the model once and checks the method's teachers (no Ray).

    Raises:
        JobError: an empty split, no verified row for ``data.train_subset: verified``, or a
            missing unlabeled folder.
        raytag.selection.SelectionError: ``train.select_labels: verified`` with too few
            verified validation rows.
        raytag.models.export.ExportError: a teacher or ``model.init`` that does not fit.
    """
    manifest = read_manifest(job.data.manifest, job.data.tags)
    recipe = ModelRecipe(job.model.name, dict(job.model.args), manifest.vocabulary, job.model.head)
    model = recipe.build()
    counts = manifest.counts()
    for split in ("train", "valid", job.eval.split):
        if counts[split] == 0:
            raise JobError(f"{job.data.manifest}: the '{split}' split is empty")
    if manifest.dropped_tags:
        log.warning("dropped %d tag occurrences outside the vocabulary", manifest.dropped_tags)
    if job.data.train_subset == "verified" and not any(t.verified for t in manifest.split("train")):
        raise JobError(f"data.train_subset is verified but {job.data.manifest} marks no training row verified")
    if job.model.init is not None:
        with storage.local_folder(job.model.init) as folder:
            check_fits(read_exported(folder, "model.init"), key="model.init", recipe=recipe)
    method = build_method(job, tags=list(recipe.tags))
    needs = method.needs
    if needs.scores_teacher is not None:
        _check_teacher(needs.scores_teacher, recipe.tags, sample_rate=None)
    if needs.unlabeled_teacher is not None:
        _check_teacher(needs.unlabeled_teacher, recipe.tags, sample_rate=model.sample_rate)
        if job.semi.unlabeled_dir is not None and not Path(job.semi.unlabeled_dir).is_dir():
            raise JobError(f"semi.unlabeled_dir: {job.semi.unlabeled_dir} is not a folder")
    return JobPlan(manifest, recipe, method, model.sample_rate, model.crop_samples, count_parameters(model),
                   select_labels(job, manifest))


def select_labels(job, manifest: Manifest) -> str:
    """``train.select_labels`` resolved on the manifest's verified validation rows: ``"noisy"``
    or ``"verified"`` (:func:`raytag.selection.resolve_select_labels`).

    Raises:
        raytag.selection.SelectionError: ``verified`` with too few verified validation rows.
    """
    verified = sum(t.verified for t in manifest.split("valid"))
    return resolve_select_labels(job.train.select_labels, verified_rows=verified,
                                 min_verified=job.eval.threshold_min_verified)


def _check_teacher(need: TeacherNeed, tags: tuple[str, ...], *, sample_rate: int | None) -> None:
    """An exported teacher must exist and be trained on the job's tags (and rate, when it
    labels crops the student sees); checked before any cluster work. An out-of-fold teacher
    (:mod:`raytag.folds`) scores training tracks only: each of its fold models is checked, and
    it cannot label crops the student sees."""
    if need.folder is None:
        read_exported(None, need.key)  # raises: names the missing config key
    oof = read_oof_teacher(need.folder)
    if oof is not None:
        if sample_rate is not None:
            raise JobError(f"{need.key}: {need.folder} is an out-of-fold teacher ({oof.folds} fold models); it scores "
                           "training tracks, it cannot label the student's unlabeled crops: use a stage without folds")
        for model in oof.models:
            with storage.local_folder(model) as folder:
                check_fits(read_exported(folder, need.key), key=need.key, tags=tags)
        return
    with storage.local_folder(need.folder) as folder:
        check_fits(read_exported(folder, need.key), key=need.key, tags=tags, sample_rate=sample_rate)


def training_tracks(job, manifest: Manifest) -> list[Track]:
    """The training split, or its verified rows (``data.train_subset``), without the fold
    ``train.leave_out`` leaves out (an out-of-fold teacher, :mod:`raytag.folds`)."""
    tracks = manifest.split("train")
    if job.data.train_subset == "verified":
        tracks = [t for t in tracks if t.verified]
    leave_out = job.train.leave_out
    if leave_out is not None:
        tracks = [t for t in tracks if track_fold(t.path, folds=leave_out.folds, seed=leave_out.seed) != leave_out.fold]
    return tracks


def unlabeled_tracks(job, manifest: Manifest) -> list[Track]:
    """The manifest's unlabeled split plus the audio files under ``semi.unlabeled_dir``."""
    tracks = manifest.split("unlabeled")
    if job.semi.unlabeled_dir is not None:
        known = {t.path for t in tracks}
        tracks += [Track(p, (), "unlabeled") for p in audio_files(Path(job.semi.unlabeled_dir)) if p not in known]
    if not tracks:
        raise JobError("semi.enabled but there is no unlabeled audio (manifest split or semi.unlabeled_dir)")
    return tracks


def evaluation_labels(job, tags: Sequence[str], tracks: Sequence[Track]) -> tuple[np.ndarray, str]:
    """Labels to evaluate ``tracks`` against: the clean label file when the job has one.

    Returns:
        ``(labels (N, K), "clean" or "manifest")``.

    Raises:
        ManifestError: the clean label file lacks some of the tracks (bad input).
    """
    if not job.data.clean_labels:
        return multi_hot([t.tags for t in tracks], tags), "manifest"
    clean = read_labels(job.data.clean_labels)
    missing = [t.path for t in tracks if t.path not in clean]
    if missing:
        raise ManifestError(f"{job.data.clean_labels} (data.clean_labels): no clean labels for "
                            f"{plural(len(missing), 'track')}, e.g. {missing[0]}")
    return multi_hot([clean[t.path] for t in tracks], tags), "clean"


def clean_labels(job, tags: Sequence[str], tracks: Sequence[Track]) -> np.ndarray | None:
    """The clean labels of ``tracks`` when the job's clean label file has them all (they feed
    the methods' diagnostics, never their training), else None."""
    if not job.data.clean_labels:
        return None
    try:
        return evaluation_labels(job, tags, tracks)[0]
    except ManifestError as exc:
        log.info("no diagnostics against clean labels: %s", exc)
        return None
