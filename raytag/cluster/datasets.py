"""Ray Data pipelines from manifest rows to decoded crops.

Rows stay light (a path, a few integers, a label vector) until the decode stage, which reads
only the crop each row needs. Lazy datasets re-run every time they are iterated, so training
crops are drawn anew each epoch.
"""

from __future__ import annotations

import logging
import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import ray

from raytag.audio.io import chunk_starts, source_frames
from raytag.data.batches import RANDOM_START, decode_batch, scan_batch
from raytag.data.manifest import Track

log = logging.getLogger(__name__)

SCAN_BATCH = 64
# libsndfile formats, then those FFmpeg decodes (raytag.audio.decoders).
AUDIO_SUFFIXES = {
    ".wav", ".flac", ".ogg", ".oga", ".mp3", ".aiff", ".aif", ".au",
    ".m4a", ".aac", ".mp4", ".opus", ".webm", ".mka", ".wma",
}
ROWS_PER_BLOCK = 32


def _from_rows(rows: list[dict]) -> ray.data.Dataset:
    # Light rows (paths and integers): a few dozen per block keeps per-task overhead small.
    return ray.data.from_items(rows, override_num_blocks=max(1, math.ceil(len(rows) / ROWS_PER_BLOCK)))


@dataclass(frozen=True)
class ScannedTrack:
    """A manifest track whose header could be read."""

    path: str
    frames: int
    rate: int


@dataclass(frozen=True)
class ScanResult:
    """Usable tracks by path, and the skipped ones with their reasons."""

    usable: dict[str, ScannedTrack]
    skipped: list[tuple[str, str]]

    def summary(self) -> str:
        total = len(self.usable) + len(self.skipped)
        if not self.skipped:
            return f"all {total} audio files are readable"
        kinds = Counter(_kind(reason) for _, reason in self.skipped)
        detail = ", ".join(f"{kind}: {n}" for kind, n in sorted(kinds.items()))
        return f"skipped {len(self.skipped)} of {total} audio files ({detail})"


def _kind(reason: str) -> str:
    if "no audio frames" in reason:
        return "empty"
    if "No such file" in reason or "not exist" in reason:
        return "missing"
    return "unreadable"


def scan_tracks(tracks: Sequence[Track], *, num_cpus: float) -> ScanResult:
    """Reads every file's header on Ray Data workers; unusable files are listed, not fatal."""
    paths = sorted({t.path for t in tracks})
    if not paths:
        return ScanResult({}, [])
    scanned = (
        _from_rows([{"path": p} for p in paths])
        .map_batches(scan_batch, batch_size=SCAN_BATCH, num_cpus=num_cpus, batch_format="numpy")
        .to_pandas()
    )
    usable, skipped = {}, []
    for row in scanned.itertuples(index=False):
        if row.error:
            skipped.append((row.path, row.error))
        else:
            usable[row.path] = ScannedTrack(row.path, int(row.frames), int(row.rate))
    skipped.sort()
    return ScanResult(usable, skipped)


def _rows(
    tracks: Sequence[Track], labels: np.ndarray, scan: ScanResult, starts, keep: np.ndarray | None = None
) -> list[dict]:
    rows = []
    for index, (track, label) in enumerate(zip(tracks, labels, strict=True)):
        info = scan.usable[track.path]
        for start in starts(info):
            row = {
                "path": info.path,
                "track": index,
                "frames": info.frames,
                "rate": info.rate,
                "start": start,
                "labels": label.astype(np.float32),
            }
            if keep is not None:
                row["keep"] = keep[index].astype(np.float32)
            rows.append(row)
    return rows


def _decoder(sample_rate: int, crop_samples: int, seed: int | None):
    def decode(batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        # A fresh generator per batch: with seed None crops differ in every epoch.
        return decode_batch(
            batch, sample_rate=sample_rate, crop_samples=crop_samples, rng=np.random.default_rng(seed)
        )

    return decode


def crop_dataset(
    tracks: Sequence[Track],
    labels: np.ndarray,
    scan: ScanResult,
    *,
    sample_rate: int,
    crop_samples: int,
    num_cpus: float,
    shuffle: bool = True,
    decode_batch_size: int = 16,
    keep: np.ndarray | None = None,
) -> ray.data.Dataset:
    """Training data: one random crop per usable track per epoch, decoded on CPU workers.

    Args:
        tracks: the split's usable tracks, ``labels`` their (N, K) targets, in the same order.
        scan: header scan of the tracks.
        sample_rate, crop_samples: the model's rate and crop length.
        num_cpus: CPUs per decode task (small, so Train workers always fit).
        keep: optional (N, K) per-track loss mask (Balanced-Masking), passed through as ``keep``.
    """
    rows = _rows(tracks, labels, scan, lambda info: [RANDOM_START], keep)
    ds = _from_rows(rows)
    if shuffle:
        ds = ds.random_shuffle()
    return ds.map_batches(
        _decoder(sample_rate, crop_samples, None),
        batch_size=decode_batch_size,
        num_cpus=num_cpus,
        batch_format="numpy",
    )


def with_augmentation(ds: ray.data.Dataset, *, sample_rate: int, spec, num_cpus: float) -> ray.data.Dataset:
    """Adds the waveform augmentation stage (CPU tasks) when ``spec.enabled``."""
    if not spec.enabled:
        return ds
    from raytag.audio.augment import augment_numpy_batch

    def augment(batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        # Unseeded: every epoch and every batch draws new augmentations.
        return augment_numpy_batch(batch, sample_rate=sample_rate, spec=spec, seed=None)

    return ds.map_batches(augment, batch_size=16, num_cpus=num_cpus, batch_format="numpy")


def unlabeled_dataset(
    tracks: Sequence[Track],
    scan: ScanResult,
    *,
    num_tags: int,
    sample_rate: int,
    crop_samples: int,
    num_cpus: float,
    labeler: type,
    labeler_kwargs: dict,
    teacher_cpus: float,
    teacher_gpus: float,
    augment_spec,
) -> ray.data.Dataset:
    """Noisy student stream: random clean crop → teacher inference workers attach ``soft`` →
    augmentation produces the student's view → columns renamed ``u_audio``, ``u_soft``, ``u_valid``.

    The teacher (an actor pool of ``labeler``) sees the crop before augmentation; the training
    workers never run it.
    """
    labels = np.zeros((len(tracks), num_tags), dtype=np.float32)
    ds = crop_dataset(
        tracks, labels, scan, sample_rate=sample_rate, crop_samples=crop_samples, num_cpus=num_cpus
    )
    ds = ds.map_batches(
        labeler,
        fn_constructor_kwargs=labeler_kwargs,
        batch_size=16,
        compute=ray.data.ActorPoolStrategy(size=1),
        num_cpus=teacher_cpus,
        num_gpus=teacher_gpus,
        batch_format="numpy",
    )
    ds = with_augmentation(ds, sample_rate=sample_rate, spec=augment_spec, num_cpus=num_cpus)

    def student_view(batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        return {"u_audio": batch["audio"], "u_soft": batch["soft"], "u_valid": batch["valid"]}

    return ds.map_batches(student_view, batch_format="numpy")


def audio_files(folder: Path) -> list[str]:
    """Audio files under ``folder`` (recursively), sorted."""
    return sorted(str(p.resolve()) for p in Path(folder).rglob("*") if p.suffix.lower() in AUDIO_SUFFIXES)


def usable(tracks: Sequence[Track], labels: np.ndarray, scan: ScanResult) -> tuple[list[Track], np.ndarray]:
    """The tracks (and their label rows) whose files could be read."""
    keep = [i for i, t in enumerate(tracks) if t.path in scan.usable]
    return [tracks[i] for i in keep], labels[keep]


def chunk_dataset(
    tracks: Sequence[Track],
    labels: np.ndarray,
    scan: ScanResult,
    *,
    sample_rate: int,
    crop_samples: int,
    max_chunks: int | None,
    num_cpus: float,
    decode_batch_size: int = 16,
) -> ray.data.Dataset:
    """Evaluation data: chunks that cover each track (see :func:`chunk_starts`), in order.

    ``track`` in each row indexes ``tracks``; callers average chunk predictions per track.
    Every track must be usable (filter with :func:`usable` first).
    """

    def starts(info: ScannedTrack) -> list[int]:
        crop_frames = source_frames(crop_samples, info.rate, sample_rate)
        return chunk_starts(info.frames, crop_frames, max_chunks)

    rows = _rows(tracks, labels, scan, starts)
    return _from_rows(rows).map_batches(
        _decoder(sample_rate, crop_samples, 0),
        batch_size=decode_batch_size,
        num_cpus=num_cpus,
        batch_format="numpy",
    )
