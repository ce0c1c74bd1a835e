"""Out-of-fold teachers for the benchmarks (bench_selection.py, evidence.py): the K fold jobs'
``train.leave_out``, their run names, and the out-of-fold teacher record Balanced-Masking reads.

The record is raytag's own (:mod:`raytag.folds`): ``noise_runner.teacher_track_scores`` scores
each training track with the fold teacher that trained without the track's fold, as the cluster's
teacher scoring does. The fold hash's seed is the job's seed, as a pipeline stage's ``folds: K``
sets it (``raytag.cluster.training.oof``).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from pathlib import Path

from raytag.folds import OofTeacher, fold_indices, write_oof_teacher


def leave_outs(folds: int, seed: int) -> list[dict]:
    """``train.leave_out`` of each of the ``folds`` fold teachers: fold k trains without fold k."""
    if folds < 2:
        raise ValueError(f"out-of-fold teachers need at least 2 folds, got {folds}")
    return [{"folds": folds, "fold": fold, "seed": seed} for fold in range(folds)]


def fold_run_name(prefix: str, fold: int, folds: int, seed: int) -> str:
    """The run name of fold teacher ``fold`` of ``folds``, e.g. ``sel-fold2of5-s0``."""
    return f"{prefix}-fold{fold}of{folds}-s{seed}"


def write_teacher_record(folder: str | Path, *, folds: int, seed: int, models: Sequence[str | Path]) -> str:
    """Writes the out-of-fold teacher record of the fold teachers exported at ``models`` (fold by
    fold) into ``folder``; returns the folder, which a job's ``objective.teacher`` then names."""
    write_oof_teacher(str(folder), OofTeacher(folds, seed, tuple(str(m) for m in models)))
    return str(folder)


def assignment_digest(paths: Sequence[str], *, folds: int, seed: int) -> str:
    """A short hash of which fold each training track falls in. The fold hashes the track's path
    (absolute in a benchmark's working folder), so a fold teacher cached under another folder
    left out other tracks: a cached fold teacher is reused only when this digest matches."""
    return hashlib.sha256(fold_indices(list(paths), folds=folds, seed=seed).tobytes()).hexdigest()[:16]
