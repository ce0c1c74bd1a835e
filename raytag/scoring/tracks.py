"""Tracks before and after their chunks are scored: header probe, chunk plan, per-track
averaging and results with their status (:mod:`raytag.scoring.status`).

Whoever scores the chunks (this process, :mod:`raytag.scoring.scorer`, or a Ray Data actor
pool, :mod:`raytag.cluster.inference.actor_pool`), the tracks are planned, averaged and given
their status here, so both executions give the same rows.

Core module: no Ray, no MLflow; torch only through :mod:`raytag.audio.io`'s resampler.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from raytag.audio.io import AudioError, probe
from raytag.data.rows import TrackTable, chunk_rows
from raytag.scoring.status import NO_CHUNK_DECODED, TrackResult, TrackStatus, silence_reason, too_short_reason


def audio_error_reason(source, message: str) -> str:
    """An :class:`AudioError`'s message without its leading ``"<source>: "`` (the result row
    names the source already)."""
    prefix = f"{source}: "
    return message[len(prefix):] if message.startswith(prefix) else message


def probe_sources(
    sources: Sequence, *, num_tags: int, progress: Callable[[int], None] | None = None
) -> tuple[TrackTable, dict]:
    """Reads every source's header and checks that its audio decodes (:func:`raytag.audio.io.probe`).

    Args:
        sources: distinct audio files (paths or URIs) or in-memory waveforms.
        num_tags: width of the table's (all-zero) label matrix.
        progress: called with 1 after each source.

    Returns:
        ``(table of the readable sources in input order, {source: reason} of the others)``.
    """
    readable, frames, rates, reasons = [], [], [], {}
    for source in sources:
        try:
            info = probe(source)
        except AudioError as exc:
            reasons[source] = audio_error_reason(source, str(exc))
        else:
            readable.append(source)
            frames.append(info.frames)
            rates.append(info.sample_rate)
        if progress is not None:
            progress(1)
    table = TrackTable(
        paths=tuple(readable),
        frames=np.asarray(frames, dtype=np.int64),
        rates=np.asarray(rates, dtype=np.int64),
        labels=np.zeros((len(readable), num_tags), dtype=np.float32),
    )
    return table, reasons


@dataclass(frozen=True)
class ChunkPlan:
    """What will be scored of a track table.

    Attributes:
        table: the tracks (header facts known).
        too_short: ``{table index: reason}`` of the tracks that are ``too short``; they get no rows.
        rows: the chunk rows of every other track (:func:`raytag.data.rows.chunk_rows`), track by track.
    """

    table: TrackTable
    too_short: dict[int, str]
    rows: list[dict]


def plan_chunks(table: TrackTable, *, sample_rate: int, crop_samples: int, max_chunks: int | None) -> ChunkPlan:
    """The chunks that cover each long-enough track of ``table`` at the model's ``sample_rate``
    (Hz) and ``crop_samples``, at most ``max_chunks`` per track (None: the whole track)."""
    too_short = {}
    for index in range(len(table)):
        reason = too_short_reason(frames=int(table.frames[index]), rate=int(table.rates[index]),
                                  crop_samples=crop_samples, sample_rate=sample_rate)
        if reason is not None:
            too_short[index] = reason
    rows = [row for row in chunk_rows(table, sample_rate=sample_rate, crop_samples=crop_samples, max_chunks=max_chunks)
            if row["track"] not in too_short]
    return ChunkPlan(table, too_short, rows)


class TrackAverager:
    """Averages chunk probabilities into track-level probabilities (and keeps each track's labels)."""

    def __init__(self, num_tracks: int, num_tags: int):
        self.sums = np.zeros((num_tracks, num_tags), dtype=np.float64)
        self.counts = np.zeros(num_tracks, dtype=np.int64)
        self.labels = np.zeros((num_tracks, num_tags), dtype=np.float32)

    def add(self, track: np.ndarray, probs: np.ndarray, labels: np.ndarray | None = None) -> None:
        np.add.at(self.sums, track, probs)
        np.add.at(self.counts, track, 1)
        if labels is not None:
            self.labels[track] = labels

    def all_reduce(self, device) -> None:
        """Sums every rank's averager (each holding the tracks of its shard), so that all ranks
        hold every track's chunk sums, counts and labels. A no-op outside DDP."""
        import torch

        if not (torch.distributed.is_available() and torch.distributed.is_initialized()):
            return
        for name in ("sums", "counts", "labels"):
            array = getattr(self, name)
            tensor = torch.from_numpy(np.ascontiguousarray(array)).to(device)
            torch.distributed.all_reduce(tensor, op=torch.distributed.ReduceOp.SUM)
            setattr(self, name, tensor.cpu().numpy().astype(array.dtype, copy=False))

    def result(self) -> tuple[np.ndarray, np.ndarray]:
        """``(scores (N', K), kept track indices (N',))`` for tracks with at least one chunk."""
        kept = np.flatnonzero(self.counts > 0)
        return self.sums[kept] / self.counts[kept, None], kept


@dataclass(frozen=True)
class TrackScores:
    """Track-level scores of a table's chunks.

    Attributes:
        scores: (N', K) float64, the decoded chunks' probabilities averaged per track.
        kept: (N',) indices of the tracks with at least one decoded chunk.
        peaks: (N',) float32, the largest absolute sample of each kept track's decoded chunks.
        failed_by_track: (N,) chunks that failed to decode, per track of the table.
    """

    scores: np.ndarray
    kept: np.ndarray
    peaks: np.ndarray
    failed_by_track: np.ndarray

    @property
    def failed_chunks(self) -> int:
        return int(self.failed_by_track.sum())

    def part(self, start: int, stop: int) -> TrackScores:
        """The scores of tracks ``[start, stop)``, indexed from ``start`` (a table scored
        together with others, its tracks offset by ``start``)."""
        inside = (self.kept >= start) & (self.kept < stop)
        return TrackScores(self.scores[inside], self.kept[inside] - start, self.peaks[inside],
                           self.failed_by_track[start:stop])


class TrackTally:
    """Adds up scored chunk batches (:func:`raytag.scoring.chunks.score_decoded`: ``track``,
    ``probs``, ``decoded``, ``peak``) into :class:`TrackScores`; undecoded chunks are counted,
    never averaged."""

    def __init__(self, num_tracks: int, num_tags: int):
        self._averager = TrackAverager(num_tracks, num_tags)
        self._peaks = np.zeros(num_tracks, dtype=np.float32)
        self._failed = np.zeros(num_tracks, dtype=np.int64)

    def add(self, scored: Mapping[str, np.ndarray]) -> None:
        track, decoded = np.asarray(scored["track"]), np.asarray(scored["decoded"], dtype=bool)
        np.add.at(self._failed, track[~decoded], 1)
        self._averager.add(track[decoded], np.asarray(scored["probs"])[decoded])
        np.maximum.at(self._peaks, track[decoded], np.asarray(scored["peak"], dtype=np.float32)[decoded])

    def result(self) -> TrackScores:
        scores, kept = self._averager.result()
        return TrackScores(scores, kept, self._peaks[kept], self._failed.copy())


def table_results(plan: ChunkPlan, scores: TrackScores) -> list[TrackResult]:
    """One :class:`TrackResult` per track of ``plan.table``: ``too short`` (from the plan),
    ``unreadable`` (no chunk decoded), ``silent`` (:func:`raytag.scoring.status.silence_reason`)
    or ``ok`` with its probabilities."""
    scored = {int(track): row for row, track in enumerate(scores.kept)}
    out = []
    for index, source in enumerate(plan.table.paths):
        if index in plan.too_short:
            out.append(TrackResult(source, TrackStatus.TOO_SHORT, reason=plan.too_short[index]))
        elif index not in scored:
            out.append(TrackResult(source, TrackStatus.UNREADABLE, reason=NO_CHUNK_DECODED))
        else:
            row = scored[index]
            silent = silence_reason(float(scores.peaks[row]))
            if silent is not None:
                out.append(TrackResult(source, TrackStatus.SILENT, reason=silent))
            else:
                out.append(TrackResult(source, TrackStatus.OK, np.asarray(scores.scores[row], dtype=np.float64)))
    return out


def source_results(sources: Sequence, table_rows: Sequence[TrackResult], reasons: Mapping) -> list[TrackResult]:
    """One :class:`TrackResult` per source, in ``sources`` order: those the probe could not read
    (``reasons``) ``unreadable``, the others their row of ``table_rows`` (:func:`table_results`).

    Raises:
        ValueError: a source that is neither in the table nor given a reason (a bug, not input).
    """
    by_source = {row.source: row for row in table_rows}
    out = []
    for source in sources:
        if source in reasons:
            out.append(TrackResult(source, TrackStatus.UNREADABLE, reason=reasons[source]))
        elif source in by_source:
            out.append(by_source[source])
        else:
            raise ValueError(f"{source} was neither scored nor reported unreadable")
    return out
