"""Teacher scores over a training set, as Ray Data batch inference, cached under storage.

A frozen teacher scores every track of a table (chunk probabilities averaged per track). The
scores are kept in ``<storage>/.raytag-cache/teacher-scores/<key>.parquet``; the key hashes
what determines them (the teacher's weights, the tracks and their lengths, the chunking), so
every later run with the same teacher and tracks (e.g. every trial of a sweep) reads them
instead of recomputing them, and a read-only manifest folder is never written to. An
out-of-fold teacher (:mod:`raytag.folds`) is scored fold by fold, each track by the fold model
that did not train on it, and cached the same way (``oof-<key>.parquet``).
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from raytag import storage
from raytag.cluster.data.audio_cache import cached_tables
from raytag.cluster.inference.actor_pool import score_chunks
from raytag.data.rows import TrackTable, chunk_rows
from raytag.folds import assemble_fold_scores, fold_indices, read_oof_teacher
from raytag.locations import cache_location
from raytag.models.export import ExportError, read_exported, read_weights, weights_bytes
from raytag.text import plural

log = logging.getLogger("raytag")

CACHE_KIND = "teacher-scores"


@dataclass(frozen=True)
class TeacherScores:
    """A teacher's track-level probabilities (N, K; NaN rows for tracks it could not score),
    the cache file they are kept in, whether it was reused, and how many nodes scored them
    (0 when reused)."""

    scores: np.ndarray
    location: str
    reused: bool
    nodes: int


def scores_key(weights: bytes, table: TrackTable, max_chunks: int | None) -> str:
    """Names a score file by what determines its contents."""
    digest = hashlib.sha256(hashlib.sha256(weights).digest())
    for path, frames, rate in zip(table.paths, table.frames, table.rates):
        digest.update(f"{path}\t{frames}\t{rate}\n".encode())
    digest.update(f"max_chunks={max_chunks}".encode())
    return digest.hexdigest()[:20]


def teacher_scores(
    teacher: str,
    table: TrackTable,
    *,
    key: str,
    storage_root: str,
    max_chunks: int | None,
    batch_size: int,
    num_cpus: float,
    num_gpus: float = 0.0,
    scoring: str = "training tracks",
) -> TeacherScores:
    """Track-level probabilities (N, K) of the exported ``teacher`` (named by config ``key``)
    for every track of ``table``; NaN rows for tracks it could not score. ``scoring`` says
    which tracks they are in the log line (default ``"training tracks"``; an audit names its
    split).

    An out-of-fold teacher (a folder holding :data:`raytag.folds.OOF_TEACHER_FILE`) scores each
    track with the fold model that trained without the track's fold
    (:func:`raytag.folds.assemble_fold_scores`); its cache key hashes every fold model, the
    fold count and seed.
    """
    oof = read_oof_teacher(teacher)
    models = [teacher] if oof is None else list(oof.models)
    loaded = []
    for model in models:
        with storage.local_folder(model) as folder:
            loaded.append((read_exported(folder, key), read_weights(folder), weights_bytes(folder)))
    tags = list(loaded[0][0].recipe.tags)
    if oof is None:
        name = scores_key(loaded[0][2], table, max_chunks)
    else:
        fold_weights = b"".join(hashlib.sha256(w).digest() for _, _, w in loaded)
        name = "oof-" + scores_key(fold_weights + f"folds={oof.folds} seed={oof.seed}".encode(), table, max_chunks)
    location = f"{cache_location(storage_root, CACHE_KIND)}/{name}.parquet"
    if storage.is_file(location):
        frame = pq.read_table(pa.BufferReader(storage.read_bytes(location))).to_pandas().set_index("path")
        if set(table.paths) <= set(frame.index):
            log.info("reusing teacher scores %s", location)
            return TeacherScores(frame.loc[list(table.paths), tags].to_numpy(dtype=np.float32), location, True, 0)
    if oof is None:
        full, nodes = _score_table(loaded[0][0], loaded[0][1], table, teacher=teacher, storage_root=storage_root,
                                   max_chunks=max_chunks, batch_size=batch_size, num_cpus=num_cpus, num_gpus=num_gpus,
                                   scoring=scoring)
    else:
        folds = fold_indices(table.paths, folds=oof.folds, seed=oof.seed)
        parts, nodes = {}, 0
        for k in np.unique(folds).tolist():
            exported, weights, _ = loaded[k]
            if list(exported.recipe.tags) != tags:
                raise ExportError(f"{oof.models[k]} ({key}, fold {k}) has other tags than fold 0's model")
            members = np.flatnonzero(folds == k)
            part = _subset(table, members)
            log.info("out-of-fold teacher: fold %d of %d scores its %s", k, oof.folds, plural(len(part), "track"))
            parts[k], used = _score_table(exported, weights, part, teacher=oof.models[k], storage_root=storage_root,
                                          max_chunks=max_chunks, batch_size=batch_size, num_cpus=num_cpus,
                                          num_gpus=num_gpus, scoring=scoring)
            nodes = max(nodes, used)
        full = assemble_fold_scores(folds, parts, num_tags=len(tags))
    frame = pd.DataFrame(full, columns=tags)
    frame.insert(0, "path", list(table.paths))
    buffer = pa.BufferOutputStream()
    pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), buffer)
    storage.write_bytes(location, buffer.getvalue().to_pybytes())
    return TeacherScores(full, location, False, nodes)


def _subset(table: TrackTable, members: np.ndarray) -> TrackTable:
    """The tracks ``members`` (indices, in order) of ``table``."""
    return TrackTable(tuple(table.paths[i] for i in members), table.frames[members], table.rates[members],
                      table.labels[members], {name: array[members] for name, array in table.columns.items()})


def _score_table(exported, weights, table: TrackTable, *, teacher: str, storage_root: str, max_chunks: int | None,
                 batch_size: int, num_cpus: float, num_gpus: float,
                 scoring: str = "training tracks") -> tuple[np.ndarray, int]:
    """(N, K) probabilities of one exported model over ``table`` (NaN rows: unscored) and the
    number of nodes that scored them."""
    # Decode from the audio cache where it holds the teacher's rate; the key and the score file
    # keep the audio files' paths.
    decode = cached_tables({"teacher scoring": table}, storage_root=storage_root,
                           sample_rate=exported.sample_rate)[0]["teacher scoring"]
    rows = chunk_rows(decode, sample_rate=exported.sample_rate, crop_samples=exported.crop_samples, max_chunks=max_chunks)
    log.info("scoring %d %s with teacher %s", len(table), scoring, teacher)
    pooled = score_chunks(rows, exported, weights, num_tracks=len(table), batch_size=batch_size, num_cpus=num_cpus,
                          num_gpus=num_gpus)
    scored = pooled.tracks
    full = np.full((len(table), len(exported.recipe.tags)), np.nan, dtype=np.float32)
    full[scored.kept] = scored.scores
    log.info("teacher scoring ran on %d node(s)", pooled.nodes)
    if scored.failed_chunks:
        log.warning("teacher scoring: %s failed to decode", plural(scored.failed_chunks, "chunk"))
    return full, pooled.nodes
