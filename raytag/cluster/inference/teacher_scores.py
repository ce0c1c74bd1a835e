"""Teacher scores over a training set, as Ray Data batch inference, cached under storage.

A frozen teacher scores every track of a table (chunk probabilities averaged per track). The
scores are kept in ``<storage>/.raytag-cache/teacher-scores/<key>.parquet``; the key hashes
what determines them (the teacher's weights, the tracks and their lengths, the chunking), so
every later run with the same teacher and tracks (e.g. every trial of a sweep) reads them
instead of recomputing them, and a read-only manifest folder is never written to.
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
from raytag.locations import cache_location
from raytag.models.export import read_exported, read_weights, weights_bytes
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

    """
    with storage.local_folder(teacher) as folder:
        exported = read_exported(folder, key)
        weights = read_weights(folder)
        weights_file = weights_bytes(folder)
    tags = list(exported.recipe.tags)
    location = f"{cache_location(storage_root, CACHE_KIND)}/{scores_key(weights_file, table, max_chunks)}.parquet"
    if storage.is_file(location):
        frame = pq.read_table(pa.BufferReader(storage.read_bytes(location))).to_pandas().set_index("path")
        if set(table.paths) <= set(frame.index):
            log.info("reusing teacher scores %s", location)
            return TeacherScores(frame.loc[list(table.paths), tags].to_numpy(dtype=np.float32), location, True, 0)
    # Decode from the audio cache where it holds the teacher's rate; the key and the score file
    # keep the audio files' paths.
    decode = cached_tables({"teacher scoring": table}, storage_root=storage_root,
                           sample_rate=exported.sample_rate)[0]["teacher scoring"]
    rows = chunk_rows(decode, sample_rate=exported.sample_rate, crop_samples=exported.crop_samples, max_chunks=max_chunks)
    log.info("scoring %d %s with teacher %s", len(table), scoring, teacher)
    pooled = score_chunks(rows, exported, weights, num_tracks=len(table), batch_size=batch_size, num_cpus=num_cpus,
                          num_gpus=num_gpus)
    scored = pooled.tracks
    full = np.full((len(table), len(tags)), np.nan, dtype=np.float32)
    full[scored.kept] = scored.scores
    log.info("teacher scoring ran on %d node(s)", pooled.nodes)
    if scored.failed_chunks:
        log.warning("teacher scoring: %s failed to decode", plural(scored.failed_chunks, "chunk"))
    frame = pd.DataFrame(full, columns=tags)
    frame.insert(0, "path", list(table.paths))
    buffer = pa.BufferOutputStream()
    pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), buffer)
    storage.write_bytes(location, buffer.getvalue().to_pybytes())
    return TeacherScores(full, location, False, pooled.nodes)
