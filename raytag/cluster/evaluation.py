"""Evaluating an exported model on a split: Ray Data batch inference, track-level metrics.

Every track of the split is accounted for: tracks the header scan skipped and tracks none of
whose chunks decoded are listed (count and paths, in MLflow), never silently left out.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from raytag import storage
from raytag.cluster.audio_cache import cached_tables
from raytag.cluster.datasets import ScanResult, scan_tracks, track_table
from raytag.cluster.inference import score_rows
from raytag.cluster.session import ensure_ray
from raytag.data.manifest import Track, multi_hot
from raytag.data.rows import chunk_rows
from raytag.metrics import TaggingReport, tagging_report
from raytag.models.export import check_fits, read_exported, read_weights
from raytag.plan import evaluation_labels, prepare
from raytag.text import plural
from raytag.tracking.client import Tracker
from raytag.tracking.tags import labels_source

log = logging.getLogger("raytag")


@dataclass(frozen=True)
class Evaluation:
    """A split's metrics, the track-level labels and scores (N', K) they came from, which
    labels those are (``"clean"`` or ``"manifest"``, :func:`raytag.plan.evaluation_labels`) and
    the scored tracks' manifest paths (N',), in row order."""

    report: TaggingReport
    labels: np.ndarray
    scores: np.ndarray
    label_source: str
    paths: tuple[str, ...] = ()


def evaluate(
    job,
    model_location: str,
    *,
    prepared=None,
    scan: ScanResult | None = None,
    tracker: Tracker | None = None,
    split: str | None = None,
    manifest_labels: bool = False,
) -> Evaluation:
    """Scores an exported model on a split, track-level, against clean labels when given
    (``manifest_labels``: against the manifest's, as a user of the model has them).

    The audio is decoded at the exported model's rate and crop length, which may differ from
    the job's model (``raytag evaluate --model``).
    """
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
    if manifest_labels:
        labels, label_source = multi_hot([t.tags for t in tracks], prepared.recipe.tags), "manifest"
    else:
        labels, label_source = evaluation_labels(job, prepared.recipe.tags, tracks)
    table, usable = track_table(tracks, labels, scan)
    # Tracks prepared at the exported model's rate are read from the cache; rows index ``table``,
    # whose order is kept, so unscored tracks are still named by their manifest paths.
    decode = cached_tables({split: table}, storage_root=job.storage, sample_rate=exported.sample_rate)[0][split]
    rows = chunk_rows(decode, sample_rate=exported.sample_rate, crop_samples=exported.crop_samples,
                      max_chunks=job.eval.max_chunks)
    scored = score_rows(rows, exported, weights, num_tracks=len(table), batch_size=job.eval.batch_size,
                        num_cpus=job.data.decode_cpus, num_gpus=0.5 if job.scaling.use_gpu else 0.0)
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
    return Evaluation(report, table.labels[kept], scores, label_source, tuple(table.paths[int(i)] for i in kept))


def _unscored(tracks: Sequence[Track], usable: list[int], kept: np.ndarray, scan: ScanResult) -> list[dict]:
    """The split's tracks that have no score, with the reason."""
    reasons = dict(scan.skipped)
    rows = [{"path": t.path, "reason": reasons.get(t.path, "unreadable")} for t in tracks if t.path not in scan.usable]
    scored = set(int(i) for i in kept)
    rows += [{"path": tracks[i].path, "reason": "no chunk of the track could be decoded"}
             for position, i in enumerate(usable) if position not in scored]
    return rows
