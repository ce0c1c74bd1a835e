"""Track-level inference in one process: read headers, chunk, decode, batch, average.

The same protocol as raytag's Ray Data evaluation (:mod:`raytag.cluster.inference.actor_pool`), without
Ray: a header probe makes a :class:`~raytag.data.rows.TrackTable` of the readable files,
:func:`~raytag.data.rows.chunk_rows` lists the chunks that cover each track,
:func:`~raytag.data.batches.decode_batch` decodes them batch by batch, one model in eval mode
scores them and :class:`~raytag.engine.loop.TrackAverager` averages the chunk probabilities
per track. Given the same table, rows and model, both give the same numbers.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch
from torch import nn

from raytag.audio.io import AudioError, probe
from raytag.data.batches import decode_batch
from raytag.data.rows import TrackTable, chunk_rows
from raytag.engine.loop import TrackAverager, chunk_probabilities



def audio_error_reason(path: str, message: str) -> str:
    """An :class:`AudioError`'s message without its leading ``"<path>: "`` (the result row
    names the file already)."""
    prefix = f"{path}: "
    return message[len(prefix):] if message.startswith(prefix) else message


def probe_table(
    paths: Sequence[str], *, num_tags: int, progress: Callable[[int], None] | None = None
) -> tuple[TrackTable, dict[str, str]]:
    """Reads every file's header (and checks that its audio decodes, :func:`raytag.audio.io.probe`).

    Args:
        paths: audio files, distinct.
        num_tags: width of the table's (all-zero) label matrix.
        progress: called with 1 after each file.

    Returns:
        ``(table of the readable files in input order, {path: reason} of the others)``.
    """
    readable, frames, rates, reasons = [], [], [], {}
    for path in paths:
        try:
            info = probe(path)
        except AudioError as exc:
            reasons[path] = audio_error_reason(path, str(exc))
        else:
            readable.append(path)
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


def rows_to_batch(rows: Sequence[dict]) -> dict[str, np.ndarray]:
    """Row dicts (:mod:`raytag.data.rows`) as one column batch, as Ray Data's numpy batches:
    strings as an object array, numbers as int64, vectors stacked."""
    batch = {}
    for name in rows[0]:
        values = [row[name] for row in rows]
        if isinstance(values[0], str):
            batch[name] = np.asarray(values, dtype=object)
        elif isinstance(values[0], np.ndarray):
            batch[name] = np.stack(values)
        else:
            batch[name] = np.asarray(values, dtype=np.int64)
    return batch


def score_table(
    model: nn.Module,
    table: TrackTable,
    *,
    sample_rate: int,
    crop_samples: int,
    max_chunks: int | None,
    batch_size: int,
    num_tags: int,
    device: torch.device | None = None,
    amp: str = "auto",
    progress: Callable[[int], None] | None = None,
) -> tuple[np.ndarray, np.ndarray, int]:
    """Track-level probabilities of every track of ``table``, in one process.

    Args:
        model: a tagger (waveforms (B, crop_samples) → logits (B, K)); put in eval mode here.
        table: the tracks (from :func:`probe_table` or a header scan).
        sample_rate, crop_samples: the model's rate (Hz) and crop length (samples).
        max_chunks: most chunks per track (None: chunks covering the whole track).
        batch_size: chunks per forward pass.
        num_tags: K, the model's number of outputs.
        device: where the model runs (default: CPU).
        amp: autocast setting (:func:`raytag.engine.loop.autocast`). Default ``"auto"``.
        progress: called with the number of chunks after each batch.

    Returns:
        ``(scores (N', K) float64, track indices (N',) into table, chunks that failed to
        decode, peaks (N',): the largest absolute sample of each scored track's chunks)``; a
        track none of whose chunks decoded is absent from the indices.
    """
    device = device or torch.device("cpu")
    model.to(device).eval()
    rows = chunk_rows(table, sample_rate=sample_rate, crop_samples=crop_samples, max_chunks=max_chunks)
    averager = TrackAverager(len(table), num_tags)
    peaks = np.zeros(len(table), dtype=np.float32)
    failed = 0
    for start in range(0, len(rows), batch_size):
        part = rows[start : start + batch_size]
        batch = decode_batch(rows_to_batch(part), sample_rate=sample_rate, crop_samples=crop_samples)
        failed += int((~batch["decoded"]).sum())
        decoded = batch["decoded"]
        np.maximum.at(peaks, batch["track"][decoded], np.abs(batch["audio"][decoded]).max(axis=1, initial=0.0))
        for track, probabilities, _ in chunk_probabilities(model, [batch], device=device, amp=amp):
            averager.add(track, probabilities)
        if progress is not None:
            progress(len(part))
    scores, kept = averager.result()
    return scores, kept, failed, peaks[kept]
