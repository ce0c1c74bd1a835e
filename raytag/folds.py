"""Out-of-fold teachers (cross-fitting): which fold a track is in, the record of a stage's K
fold teachers, and assembling their scores.

A teacher that scores the clips it trained on has memorised their missing tags. With
``folds: K`` a pipeline stage trains K teachers instead: teacher k trains on the training
split without fold k and scores only the tracks of fold k. A track's fold is a seeded hash of
its path (:func:`track_fold`): stable across runs, machines and manifest orders, and defined
for any track, so the fold a track falls in is always one its scoring teacher never saw.

The stage's exported-model folder (``<storage>/<job>-<stage>/best_model``, where a later
stage's teacher key points) then holds :data:`OOF_TEACHER_FILE` instead of a model: the fold
count, the seed and the K fold teachers' exported models, fold by fold
(:func:`write_oof_teacher`, :func:`read_oof_teacher`). Whoever scores tracks with a teacher
(:mod:`raytag.cluster.inference.teacher_scores`: Balanced-Masking, any scoring teacher of a
stage, ``raytag audit --teacher``) scores each track with the teacher of its fold and puts the
scores together with :func:`assemble_fold_scores`.

Core module: no Ray, no MLflow.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from raytag import storage
from raytag.errors import InputError
from raytag.locations import is_mlflow_uri

OOF_TEACHER_FILE = "oof-teacher.json"
OOF_TEACHER_FORMAT = 1


class FoldError(InputError):
    """An out-of-fold teacher record that cannot be used (exit 2); the message names the file."""


def track_fold(path: str, *, folds: int, seed: int) -> int:
    """The fold (0 … ``folds`` − 1) of the track at ``path``: the first 8 bytes of
    SHA-256(``"<seed>\\t<path>"``) modulo ``folds``."""
    if folds < 2:
        raise ValueError(f"folds must be at least 2; got {folds}")
    digest = hashlib.sha256(f"{seed}\t{path}".encode()).digest()
    return int.from_bytes(digest[:8], "big") % folds


def fold_indices(paths: Sequence[str], *, folds: int, seed: int) -> np.ndarray:
    """(N,) int64: :func:`track_fold` of every path."""
    return np.array([track_fold(p, folds=folds, seed=seed) for p in paths], dtype=np.int64)


@dataclass(frozen=True)
class OofTeacher:
    """A stage's out-of-fold teachers.

    Attributes:
        folds: K (≥ 2).
        seed: the fold hash's seed.
        models: K exported-model locations; ``models[k]`` trained without fold k.
    """

    folds: int
    seed: int
    models: tuple[str, ...]

    def __post_init__(self) -> None:
        if self.folds < 2 or len(self.models) != self.folds:
            raise ValueError(f"an out-of-fold teacher needs K >= 2 fold models, got K={self.folds} and "
                             f"{len(self.models)} model(s)")


def oof_teacher_location(folder: str) -> str:
    """Where the record of the out-of-fold teacher exported at ``folder`` lies."""
    return f"{str(folder).rstrip('/')}/{OOF_TEACHER_FILE}"


def write_oof_teacher(folder: str, teacher: OofTeacher) -> str:
    """Writes ``teacher``'s record into ``folder`` (a storage location); returns its location."""
    location = oof_teacher_location(folder)
    storage.write_text(location, json.dumps({"format": OOF_TEACHER_FORMAT, "folds": teacher.folds,
                                             "seed": teacher.seed, "models": list(teacher.models)}, indent=1))
    return location


def read_oof_teacher(folder: str | None) -> OofTeacher | None:
    """The out-of-fold teacher exported at ``folder``, or None when ``folder`` holds none
    (e.g. an ordinary exported model, or a models:/ URI).

    Raises:
        FoldError: a record that is not one this raytag reads.
    """
    if folder is None or is_mlflow_uri(str(folder)):
        return None
    location = oof_teacher_location(folder)
    text = storage.read_text(location)
    if text is None:
        return None
    try:
        data = json.loads(text)
        if data.get("format") != OOF_TEACHER_FORMAT:
            raise FoldError(f"{location}: format {data.get('format')!r}, this raytag reads {OOF_TEACHER_FORMAT}")
        return OofTeacher(int(data["folds"]), int(data["seed"]), tuple(str(m) for m in data["models"]))
    except (json.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
        if isinstance(exc, FoldError):
            raise
        raise FoldError(f"{location}: not an out-of-fold teacher record ({exc})") from None


def assemble_fold_scores(folds: np.ndarray, parts: Mapping[int, np.ndarray], *, num_tags: int) -> np.ndarray:
    """Every track's score from the teacher of its fold.

    Args:
        folds: (N,) the fold of each track (:func:`fold_indices`).
        parts: ``{k: (n_k, num_tags) scores}``, the tracks of fold k in table order, scored by
            the teacher that trained without fold k; a fold with no track may be left out.
        num_tags: K tags.

    Returns:
        (N, num_tags) float32: each track's row from its own fold's part (NaN rows stay NaN:
        tracks that teacher could not score).

    Raises:
        ValueError: a part for a fold with another number of tracks, a part of another width,
            or a fold with tracks and no part (a track would go unscored).
    """
    folds = np.asarray(folds, dtype=np.int64)
    out = np.full((len(folds), num_tags), np.nan, dtype=np.float32)
    for k in np.unique(folds):
        if int(k) not in parts:
            raise ValueError(f"fold {int(k)} has {int((folds == k).sum())} track(s) but no scores")
    for k, scores in parts.items():
        members = np.flatnonzero(folds == k)
        scores = np.asarray(scores, dtype=np.float32)
        if scores.shape != (len(members), num_tags):
            raise ValueError(f"fold {k}: scores of shape {scores.shape} for {len(members)} track(s) and {num_tags} tags")
        out[members] = scores
    return out
