"""Per-batch transforms: pure ``dict[str, np.ndarray] -> dict[str, np.ndarray]`` functions.

These run inside Ray Data ``map_batches`` on CPU workers but know nothing of Ray, so they are
tested directly. Row columns:

- ``path`` (str, or an in-memory :class:`raytag.audio.waveform.Waveform`), ``track`` (int64): the
  audio source and its index in its table;
- ``frames``, ``rate`` (int64): file length and sample rate, from :func:`scan_batch`;
- ``start`` (int64): first frame of the crop, or -1 for a random crop;
- ``seed`` (int64): the seed of the row's draws (random crop offset, augmentation);
- ``labels`` (float32, K): multi-hot targets;
- any other column (e.g. ``keep``, float32 K: Balanced-Masking's per-track loss mask) is passed
  through. See :mod:`raytag.data.rows` for how rows are made.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np

from raytag.audio.io import AudioError, load_crop, probe, random_start, source_frames
from raytag.data.rows import BASE_COLUMNS, RANDOM_START

log = logging.getLogger("raytag")
_reported_paths: set[str] = set()


def scan_batch(batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Reads each file's header; adds ``frames``, ``rate`` and ``error`` ("" when usable)."""
    frames, rates, errors = [], [], []
    for path in batch["path"]:
        try:
            info = probe(str(path))
        except AudioError as exc:
            frames.append(0)
            rates.append(0)
            errors.append(str(exc))
        else:
            frames.append(info.frames)
            rates.append(info.sample_rate)
            errors.append("")
    return {
        **batch,
        "frames": np.asarray(frames, dtype=np.int64),
        "rate": np.asarray(rates, dtype=np.int64),
        "error": np.asarray(errors, dtype=object),
    }


def rows_to_batch(rows: Sequence[dict]) -> dict[str, np.ndarray]:
    """Row dicts (:mod:`raytag.data.rows`) as one column batch, as Ray Data's numpy batches
    hold them: vectors stacked, integers as int64, anything else (paths, in-memory sources) as
    an object array."""
    batch = {}
    for name in rows[0]:
        values = [row[name] for row in rows]
        if isinstance(values[0], np.ndarray):
            batch[name] = np.stack(values)
        elif isinstance(values[0], (int, np.integer)):
            batch[name] = np.asarray(values, dtype=np.int64)
        else:
            column = np.empty(len(values), dtype=object)
            column[:] = values
            batch[name] = column
    return batch


def decode_batch(batch: dict[str, np.ndarray], *, sample_rate: int, crop_samples: int) -> dict[str, np.ndarray]:
    """Decodes one crop per row at the model's rate.

    Rows with ``start == RANDOM_START`` get a uniformly random crop drawn from the row's own
    ``seed``, so a crop depends on the row, not on which task decodes it or with which others. A
    crop that fails to decode (damaged data, or a file truncated after its header was read: a
    read that ends before the header's length is an error, not silence) yields zeros and
    ``decoded = False``, which training and evaluation leave out and count; the row is kept so
    every DDP rank still sees the same number of rows. The first failure of each file is
    logged (once per process) with its reason.

    Returns:
        ``audio`` (B, crop_samples) float32, ``labels`` (B, K) float32, ``track`` (B,) int64,
        ``seed`` (B,) int64, ``decoded`` (B,) bool, and every extra column the rows carry (a
        method's per-track columns such as ``keep``) as float32 with its row shape.
    """
    count = len(batch["path"])
    audio = np.zeros((count, crop_samples), dtype=np.float32)
    decoded = np.ones(count, dtype=bool)
    for i in range(count):
        rate, frames = int(batch["rate"][i]), int(batch["frames"][i])
        start = int(batch["start"][i])
        if start == RANDOM_START:
            rng = np.random.default_rng(int(batch["seed"][i]))
            start = random_start(frames, source_frames(crop_samples, rate, sample_rate), rng)
        try:
            source = batch["path"][i]
            audio[i] = load_crop(str(source) if isinstance(source, str) else source, start, crop_samples, sample_rate,
                                 rate)
        except AudioError as exc:
            decoded[i] = False
            if str(batch["path"][i]) not in _reported_paths:
                _reported_paths.add(str(batch["path"][i]))
                log.warning("crop left out (first failure of this file; later ones are only counted): %s", exc)
    out = {
        "audio": audio,
        "labels": np.asarray(batch["labels"], dtype=np.float32).reshape(count, -1),
        "track": np.asarray(batch["track"], dtype=np.int64),
        "seed": np.asarray(batch["seed"], dtype=np.int64),
        "decoded": decoded,
    }
    for name in batch.keys() - set(BASE_COLUMNS):
        column = np.asarray(batch[name], dtype=np.float32)
        out[name] = column.reshape(count, *column.shape[1:])
    return out


def batch_seed(row_seeds: np.ndarray) -> int:
    """One seed for a batch's vectorised draws (augmentation), from its rows' seeds: the same
    rows in the same order always give the same seed."""
    return int(np.random.SeedSequence([int(s) & 0xFFFFFFFFFFFFFFFF for s in row_seeds]).generate_state(1, np.uint64)[0])
