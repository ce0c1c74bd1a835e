"""Teacher scoring for Balanced-Masking (Lu et al. §2.2, eq. 3), as Ray Data batch inference.

A stage-1 teacher scores every training track (chunk probabilities averaged per track). The
scores are written next to the manifest, in ``.raytag-teacher-scores/<key>.parquet``, where the
key hashes the teacher's weights and the manifest, so every later student run (and every trial
of a sweep) with the same teacher and corpus reads them instead of recomputing them. The per-tag
thresholds ξ_j and masked counts for a percentile go beside them as JSON.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from raytag.data.manifest import Track
from raytag.cluster.datasets import ScanResult, chunk_dataset
from raytag.cluster.inference import score_tracks
from raytag.models.export import WEIGHTS_FILE, read_exported, read_weights
from raytag.objectives import negative_thresholds, suspected_missing_mask

log = logging.getLogger("raytag")

SCORES_DIR = ".raytag-teacher-scores"


@dataclass(frozen=True)
class TeacherMasks:
    """The eq. 3 keep-mask for the training tracks, and how it was made."""

    keep: np.ndarray  # (N, K) float32: 0 = suspected missing tag
    thresholds: np.ndarray  # (K,)
    masked: np.ndarray  # (K,) masked entries per tag
    negatives: np.ndarray  # (K,) labelled negatives per tag
    scores_file: Path
    reused: bool

    def table_rows(self, tags: list[str]) -> list[dict]:
        return [
            {"tag": t, "threshold": float(x), "negatives": int(n), "masked": int(m)}
            for t, x, n, m in zip(tags, self.thresholds, self.negatives, self.masked)
        ]


def _file_digest(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def scores_key(teacher_dir: Path, manifest_path: Path, max_chunks: int | None) -> str:
    """Names a score file by what determines its contents."""
    parts = [_file_digest(Path(teacher_dir) / WEIGHTS_FILE), _file_digest(Path(manifest_path)), str(max_chunks)]
    return hashlib.sha256("|".join(parts).encode()).hexdigest()[:16]


def teacher_scores(
    teacher_dir: Path,
    tracks: list[Track],
    scan: ScanResult,
    *,
    manifest_path: Path,
    tags: tuple[str, ...],
    max_chunks: int | None,
    batch_size: int,
    num_cpus: float,
    num_gpus: float = 0.0,
) -> tuple[np.ndarray, Path, bool]:
    """Track-level teacher probabilities (N, K) for ``tracks``, cached next to the manifest.

    The teacher must have been trained on ``tags`` (the driver checks this before Ray starts).

    Returns:
        ``(scores, score file, whether the file was reused)``.
    """
    recipe = read_exported(teacher_dir, "objective.masking.teacher").recipe
    weights = read_weights(teacher_dir)
    folder = Path(manifest_path).resolve().parent / SCORES_DIR
    path = folder / f"{scores_key(teacher_dir, manifest_path, max_chunks)}.parquet"
    wanted = [t.path for t in tracks]
    if path.is_file():
        frame = pd.read_parquet(path).set_index("path")
        if set(wanted) <= set(frame.index):
            log.info("reusing teacher scores %s", path)
            return frame.loc[wanted, list(tags)].to_numpy(dtype=np.float32), path, True
    model = recipe.build()
    labels = np.zeros((len(tracks), len(tags)), dtype=np.float32)  # not needed for scoring
    chunks = chunk_dataset(
        tracks, labels, scan, sample_rate=model.sample_rate, crop_samples=model.crop_samples,
        max_chunks=max_chunks, num_cpus=num_cpus,
    )
    log.info("scoring %d training tracks with teacher %s", len(tracks), teacher_dir)
    scores, kept, failed = score_tracks(
        chunks, recipe, weights, num_tracks=len(tracks), batch_size=batch_size, num_gpus=num_gpus
    )
    full = np.full((len(tracks), len(tags)), np.nan, dtype=np.float32)
    full[kept] = scores
    if failed:
        log.warning("teacher scoring: %d chunks failed to decode", failed)
    frame = pd.DataFrame(full, columns=list(tags))
    frame.insert(0, "path", wanted)
    folder.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    frame.to_parquet(tmp, index=False)
    tmp.replace(path)  # readers never see a half-written file
    return full, path, False


def balanced_masking(
    scores: np.ndarray,
    labels: np.ndarray,
    *,
    tags: list[str],
    percentile: float,
    scores_file: Path,
    reused: bool,
) -> TeacherMasks:
    """Eq. 3 mask from teacher scores; writes the thresholds beside the score file.

    Tracks the teacher could not score (NaN) are never masked.
    """
    scored = ~np.isnan(scores).any(axis=1)
    thresholds = negative_thresholds(scores[scored], labels[scored], percentile)
    keep = np.ones_like(labels, dtype=np.float32)
    keep[scored] = suspected_missing_mask(scores[scored], labels[scored], thresholds)
    masks = TeacherMasks(
        keep=keep,
        thresholds=thresholds,
        masked=(1 - keep).sum(axis=0),
        negatives=(labels[scored] < 0.5).sum(axis=0),
        scores_file=scores_file,
        reused=reused,
    )
    sidecar = scores_file.with_name(f"{scores_file.stem}.thresholds-p{percentile:g}.json")
    record = {"percentile": percentile, "scores": scores_file.name, "per_tag": masks.table_rows(tags)}
    sidecar.write_text(json.dumps(record, indent=1))
    return masks
