"""Segment-level inference in one process: tag activations over time (a taggram) and embeddings.

Where :mod:`raytag.scoring.scorer` averages the chunks that cover a track into one
prediction, this module keeps every segment: a window of ``segment_samples`` (at the model's
rate) moved along the track by a fixed hop, as musicnn's and Essentia's taggrams do. Each
segment gets the model's probabilities and its embedding (what the classifier reads,
``model.embed``), from one forward pass: ``classifier(embed(x))`` is the model's ``forward``.

Segment placement (:func:`segment_starts`): segments start at 0, hop, 2·hop, ... as long as
they fit in the track; when the last one ends before the track does, one more segment ends
exactly at the track's end, so the rows always cover the whole file. A track shorter than one
segment gets a single segment, zero-padded (as a short track is scored for training).

Segments are decoded and scored by the scorer's own steps (:func:`raytag.data.batches.decode_batch`,
:func:`raytag.scoring.chunks.chunk_outputs`), so a segment of the training crop placed where a
chunk is gets that chunk's probabilities.

Core module: no Ray, no MLflow.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from torch import nn

from raytag.audio.io import source_frames
from raytag.data.batches import decode_batch, rows_to_batch
from raytag.data.rows import TrackTable
from raytag.scoring.chunks import chunk_outputs
from raytag.scoring.options import ScoringError
from raytag.scoring.scorer import Tagger


def segment_starts(total_frames: int, segment_frames: int, hop_frames: int) -> list[int]:
    """First frames of the segments of a track (see the module docstring).

    Args:
        total_frames: the track's length in frames.
        segment_frames: one segment's length in frames (same rate).
        hop_frames: frames between consecutive segment starts, at least 1.

    Raises:
        ScoringError: ``segment_frames`` or ``hop_frames`` below 1.
    """
    if segment_frames < 1 or hop_frames < 1:
        raise ScoringError(f"segment and hop must be at least one frame; got {segment_frames} and {hop_frames}")
    if total_frames <= segment_frames:
        return [0]
    last = total_frames - segment_frames
    starts = list(range(0, last + 1, hop_frames))
    if starts[-1] != last:
        starts.append(last)
    return starts


def segment_rows(table: TrackTable, *, sample_rate: int, segment_samples: int, hop_seconds: float) -> list[dict]:
    """Decode rows (:mod:`raytag.data.rows`) of every segment of every track, track by track.

    Args:
        table: the tracks.
        sample_rate: the model's rate (Hz); ``segment_samples`` is counted at it.
        segment_samples: one segment's length at ``sample_rate``.
        hop_seconds: seconds between consecutive segment starts.
    """
    rows = []
    for index in range(len(table)):
        rate = int(table.rates[index])
        segment = source_frames(segment_samples, rate, sample_rate)
        hop = max(1, round(hop_seconds * rate))
        for start in segment_starts(int(table.frames[index]), segment, hop):
            rows.append(table.row(index, start=start, seed=0))
    return rows


@dataclass(frozen=True)
class SegmentScores:
    """Every decodable segment's outputs, track by track, segments in time order.

    Attributes:
        track: (S,) indices into the scored table.
        start_s, end_s: (S,) each segment's first and last second in its file (``end_s`` is at
            most the file's duration; a padded short file's segment ends at its end).
        probabilities: (S, K) float32 tag probabilities.
        embeddings: (S, D) float32 embeddings (``model.embed``).
        failed: segments that failed to decode (left out of the arrays).
    """

    track: np.ndarray
    start_s: np.ndarray
    end_s: np.ndarray
    probabilities: np.ndarray
    embeddings: np.ndarray
    failed: int


def check_segment_length(model: nn.Module, segment_samples: int) -> None:
    """Raises :class:`ScoringError` naming the limits when the model cannot take ``segment_samples``
    (shorter than its ``min_samples`` or longer than its ``max_samples``, where it has them)."""
    rate = int(model.sample_rate)
    shortest = int(getattr(model, "min_samples", 1))
    longest = getattr(model, "max_samples", None)
    if segment_samples < shortest or (longest is not None and segment_samples > int(longest)):
        upper = f" to {int(longest) / rate:.3f} s" if longest is not None else " or more"
        raise ScoringError(
            f"--segment-s of {segment_samples / rate:.3f} s does not fit the model: it takes "
            f"{shortest / rate:.3f} s{upper}"
        )


def score_segments(
    tagger: Tagger,
    table: TrackTable,
    *,
    segment_samples: int,
    hop_seconds: float,
    batch_size: int,
    progress: Callable[[int], None] | None = None,
) -> SegmentScores:
    """Probabilities and embeddings of every segment of every track of ``table``.

    Args:
        tagger: the model; it needs ``embed`` (B, T) → (B, D) and ``classifier`` (B, D) → logits (B, K).
        table: the tracks.
        segment_samples: segment length at the model's rate.
        hop_seconds: seconds between segment starts (positive).
        batch_size: segments per forward pass.
        progress: called with the number of segments after each batch.

    Raises:
        ScoringError: a non-positive hop, or a segment length the model cannot take.
    """
    if not (hop_seconds > 0 and math.isfinite(hop_seconds)):
        raise ScoringError(f"--hop-s must be a positive number of seconds; got {hop_seconds}")
    check_segment_length(tagger.model, segment_samples)
    rate = tagger.sample_rate
    rows = segment_rows(table, sample_rate=rate, segment_samples=segment_samples, hop_seconds=hop_seconds)
    tracks, starts, ends, probabilities, embeddings = [], [], [], [], []
    failed = 0
    for first in range(0, len(rows), batch_size):
        part = rows[first : first + batch_size]
        batch = decode_batch(rows_to_batch(part), sample_rate=rate, crop_samples=segment_samples)
        keep = batch["decoded"]
        failed += int((~keep).sum())
        if keep.any():
            scored, embedded = chunk_outputs(tagger.model, batch["audio"][keep], device=tagger.device, amp=tagger.amp,
                                             embeddings=True)
            probabilities.append(scored)
            embeddings.append(embedded)
        for row, kept in zip(part, keep):
            if kept:
                segment = source_frames(segment_samples, row["rate"], rate)
                tracks.append(row["track"])
                starts.append(row["start"] / row["rate"])
                ends.append(min(row["start"] + segment, row["frames"]) / row["rate"])
        if progress is not None:
            progress(len(part))
    width = getattr(tagger.model, "num_features", 0)
    return SegmentScores(
        track=np.asarray(tracks, dtype=np.int64),
        start_s=np.asarray(starts, dtype=np.float64),
        end_s=np.asarray(ends, dtype=np.float64),
        probabilities=np.concatenate(probabilities) if probabilities else np.zeros((0, len(tagger.tags)), np.float32),
        embeddings=np.concatenate(embeddings) if embeddings else np.zeros((0, width), np.float32),
        failed=failed,
    )
