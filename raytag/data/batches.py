"""Per-batch transforms: pure ``dict[str, np.ndarray] -> dict[str, np.ndarray]`` functions.

These run inside Ray Data ``map_batches`` on CPU workers but know nothing of Ray, so they are
tested directly. Row columns:

- ``path`` (str), ``track`` (int64): the audio file and its index in its split;
- ``frames``, ``rate`` (int64): file length and sample rate, from :func:`scan_batch`;
- ``start`` (int64): first frame of the crop, or -1 for a random crop;
- ``labels`` (float32, K): multi-hot targets;
- ``keep`` (float32, K, optional): a per-track loss mask (Balanced-Masking), passed through.
"""

from __future__ import annotations

import numpy as np

from raytag.audio.io import AudioError, load_crop, probe, random_start, source_frames

RANDOM_START = -1


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


def decode_batch(
    batch: dict[str, np.ndarray],
    *,
    sample_rate: int,
    crop_samples: int,
    rng: np.random.Generator,
) -> dict[str, np.ndarray]:
    """Decodes one crop per row at the model's rate.

    Rows with ``start == -1`` get a uniformly random crop (drawn from ``rng``). A file that fails
    to decode (e.g. truncated after its header was read) yields silence and ``valid = False``;
    the row is kept so every DDP rank still sees the same number of rows.

    Returns:
        ``audio`` (B, crop_samples) float32, ``labels`` (B, K) float32, ``track`` (B,) int64,
        ``valid`` (B,) bool, and ``keep`` (B, K) when the rows carry a loss mask.
    """
    count = len(batch["path"])
    audio = np.zeros((count, crop_samples), dtype=np.float32)
    valid = np.ones(count, dtype=bool)
    for i in range(count):
        rate, frames = int(batch["rate"][i]), int(batch["frames"][i])
        start = int(batch["start"][i])
        if start == RANDOM_START:
            start = random_start(frames, source_frames(crop_samples, rate, sample_rate), rng)
        try:
            audio[i] = load_crop(str(batch["path"][i]), start, crop_samples, sample_rate, rate)
        except AudioError:
            valid[i] = False
    out = {
        "audio": audio,
        "labels": np.asarray(batch["labels"], dtype=np.float32).reshape(count, -1),
        "track": np.asarray(batch["track"], dtype=np.int64),
        "valid": valid,
    }
    if "keep" in batch:
        out["keep"] = np.asarray(batch["keep"], dtype=np.float32).reshape(count, -1)
    return out
