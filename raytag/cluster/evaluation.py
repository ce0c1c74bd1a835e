"""Evaluating an exported model on a split: Ray Data batch inference, track-level metrics.

Every track of the split is accounted for: tracks the header scan skipped and tracks none of
whose chunks decoded are listed (count and paths, in MLflow), never silently left out.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from raytag.cluster import storage
from raytag.cluster.audio_cache import cached_tables
from raytag.cluster.datasets import ScanResult, decoded, scan_tracks, track_table
from raytag.cluster.inference import BLOCKS_PER_ACTOR, pool_size, score_tracks
from raytag.data.manifest import ManifestError, Track, multi_hot, read_labels
from raytag.data.rows import chunk_rows
from raytag.metrics import TaggingReport, tagging_report
from raytag.models.export import check_fits, read_exported, read_weights
from raytag.text import plural
from raytag.tracking.client import Tracker
from raytag.tracking.tags import labels_source

log = logging.getLogger("raytag")


@dataclass(frozen=True)
class Evaluation:
    """A split's metrics, and the track-level labels and scores (N', K) they came from."""

    report: TaggingReport
    labels: np.ndarray
    scores: np.ndarray


def evaluation_labels(job, tags: Sequence[str], tracks: Sequence[Track]) -> tuple[np.ndarray, str]:
    """Labels to evaluate ``tracks`` against: the clean label file when the job has one."""
    if not job.data.clean_labels:
        return multi_hot([t.tags for t in tracks], tags), "manifest"
    clean = read_labels(job.data.clean_labels)
    missing = [t.path for t in tracks if t.path not in clean]
    if missing:
        raise ManifestError(f"{job.data.clean_labels} (data.clean_labels): no clean labels for "
                            f"{plural(len(missing), 'track')}, e.g. {missing[0]}")
    return multi_hot([clean[t.path] for t in tracks], tags), "clean"


def evaluate(
    job,
    model_location: str,
    *,
    prepared=None,
    scan: ScanResult | None = None,
    tracker: Tracker | None = None,
    split: str | None = None,
) -> Evaluation:
    """Scores an exported model on a split, track-level, against clean labels when given.

    The audio is decoded at the exported model's rate and crop length, which may differ from
    the job's model (``raytag evaluate --model``).
    """
    from raytag.cluster.driver import ensure_ray, prepare

    prepared = prepared or prepare(job)
    tracker = tracker or Tracker.disabled()
    split = split or job.eval.split
    with storage.local_folder(model_location) as folder:
        exported = check_fits(read_exported(folder, "model"), key="model", tags=prepared.recipe.tags)
        weights = read_weights(folder)
    ensure_ray(job)
    tracks = prepared.manifest.split(split)
    if scan is None:
        scan = scan_tracks(tracks, num_cpus=job.data.decode_cpus)
    labels, label_source = evaluation_labels(job, prepared.recipe.tags, tracks)
    table, usable = track_table(tracks, labels, scan)
    # Tracks prepared at the exported model's rate are read from the cache; rows index ``table``,
    # whose order is kept, so unscored tracks are still named by their manifest paths.
    decode = cached_tables({split: table}, storage_root=job.storage, sample_rate=exported.sample_rate)[0][split]
    rows = chunk_rows(decode, sample_rate=exported.sample_rate, crop_samples=exported.crop_samples,
                      max_chunks=job.eval.max_chunks)
    actors = pool_size(-(-len(rows) // job.eval.batch_size))
    chunks = decoded(rows, sample_rate=exported.sample_rate, crop_samples=exported.crop_samples,
                     num_cpus=job.data.decode_cpus, min_blocks=actors * BLOCKS_PER_ACTOR)
    scored = score_tracks(
        chunks, exported.recipe, weights, num_tracks=len(table), batch_size=job.eval.batch_size,
        actors=actors, num_gpus=0.5 if job.scaling.use_gpu else 0.0,
    )
    scores, kept, failed = scored.scores, scored.tracks, scored.failed_chunks
    report = tagging_report(table.labels[kept], scores, list(exported.recipe.tags))
    unscored = _unscored(tracks, usable, kept, scan)
    log.info(
        "%s split, %s labels, %s: macro ROC-AUC %.4f, PR-AUC %.4f",
        split, label_source, plural(len(kept), "track"), report.roc_auc_macro, report.pr_auc_macro,
    )
    if unscored:
        log.warning("%s of the %s split could not be scored and are not in these metrics, e.g. %s",
                    plural(len(unscored), "track"), split, unscored[0]["path"])
        tracker.log_table(unscored, f"metrics/unscored_{split}.csv")
    prefix = f"{split}/"
    tracker.log_metrics({**report.as_metrics(prefix), f"{prefix}decode_failures": failed,
                         f"{prefix}unscored_tracks": len(unscored), f"{prefix}scoring_nodes": scored.nodes})
    tracker.set_tags({labels_source(split): label_source})
    tracker.log_table(report.table_rows(), f"metrics/per_tag_{split}.csv")
    return Evaluation(report, table.labels[kept], scores)


def _unscored(tracks: Sequence[Track], usable: list[int], kept: np.ndarray, scan: ScanResult) -> list[dict]:
    """The split's tracks that have no score, with the reason."""
    reasons = dict(scan.skipped)
    rows = [{"path": t.path, "reason": reasons.get(t.path, "unreadable")} for t in tracks if t.path not in scan.usable]
    scored = set(int(i) for i in kept)
    rows += [{"path": tracks[i].path, "reason": "no chunk of the track could be decoded"}
             for position, i in enumerate(usable) if position not in scored]
    return rows
