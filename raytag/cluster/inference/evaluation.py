"""Evaluating an exported model on splits: Ray Data batch inference, track-level metrics.

Every track of a split is accounted for: tracks the header scan skipped and tracks none of
whose chunks decoded are listed (count and paths, in MLflow), never silently left out. Several
evaluations of one model (the validation split for thresholds, the test split for the report)
share one scoring pass (:func:`score_splits`), each split scored once: in the driver's process
for few tracks, else one Ray Data dataset and one actor pool.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from raytag import storage
from raytag.cluster.data.audio_cache import cached_tables
from raytag.cluster.data.datasets import ScanResult, scan_tracks, track_table
from raytag.cluster.inference.actor_pool import score_chunks
from raytag.cluster.session import ensure_ray
from raytag.data.manifest import Track, multi_hot
from raytag.data.rows import TrackTable, chunk_rows
from raytag.engine.inference import score_table
from raytag.metrics import TaggingReport, tagging_report
from raytag.models.export import check_fits, read_exported, read_weights
from raytag.plan import evaluation_labels, plan_job
from raytag.text import plural
from raytag.tracking.client import Tracker
from raytag.tracking.run_tags import labels_source

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


@dataclass(frozen=True)
class _Split:
    """A split's tracks, its usable ones (``table``, their indices ``usable`` in the split) and
    what the scoring pass gave them: scores (N', K) of the table rows ``kept``, failed chunks."""

    tracks: Sequence[Track]
    table: TrackTable
    usable: list[int]
    scores: np.ndarray
    kept: np.ndarray
    failed: int


class ScoredSplits:
    """An exported model's track-level scores on some splits (:func:`score_splits`), to
    evaluate against any labels without scoring again."""

    def __init__(self, job, job_plan, tags: Sequence[str], splits: dict[str, _Split], scan: ScanResult, nodes: int):
        self.job, self.job_plan, self.tags = job, job_plan, list(tags)
        self.splits, self.scan, self.nodes = splits, scan, nodes

    def evaluate(self, split: str, *, manifest_labels: bool = False, tracker: Tracker | None = None) -> Evaluation:
        """The split's metrics against clean labels when the job has them (``manifest_labels``:
        against the manifest's, as a user of the model has them); the metrics, per-tag table and
        unscored tracks go to ``tracker``."""
        tracker = tracker or Tracker.disabled()
        scored = self.splits[split]
        tracks, kept = scored.tracks, scored.kept
        if manifest_labels:  # the table holds the manifest's labels of the usable tracks
            labels, label_source = scored.table.labels[kept], "manifest"
        else:
            labels, label_source = evaluation_labels(self.job, self.job_plan.recipe.tags, tracks)
            labels = np.asarray(labels, dtype=np.float32)[scored.usable][kept]
        report = tagging_report(labels, scored.scores, self.tags)
        unscored = _unscored(tracks, scored.usable, kept, self.scan)
        log.info("%s split, %s labels, %s: macro ROC-AUC %.4f, PR-AUC %.4f", split, label_source,
                 plural(len(kept), "track"), report.roc_auc_macro, report.pr_auc_macro)
        if unscored:
            log.warning("%s of the %s split could not be scored and are not in these metrics, e.g. %s",
                        plural(len(unscored), "track"), split, unscored[0]["path"])
            tracker.log_table(unscored, f"metrics/unscored_{split}.csv")
        prefix = f"{split}/"
        tracker.log_metrics({**report.as_metrics(prefix), f"{prefix}decode_failures": scored.failed,
                             f"{prefix}unscored_tracks": len(unscored), f"{prefix}scoring_nodes": self.nodes})
        tracker.set_tags({labels_source(split): label_source})
        tracker.log_table(report.table_rows(), f"metrics/per_tag_{split}.csv")
        return Evaluation(report, labels, scored.scores, label_source, tuple(scored.table.paths[int(i)] for i in kept))


def evaluate(
    job,
    model_location: str,
    *,
    job_plan=None,
    scan: ScanResult | None = None,
    tracker: Tracker | None = None,
    split: str | None = None,
    manifest_labels: bool = False,
) -> Evaluation:
    """Scores an exported model on a split (default ``eval.split``) and evaluates it
    (:meth:`ScoredSplits.evaluate`)."""
    split = split or job.eval.split
    scored = score_splits(job, model_location, [split], job_plan=job_plan, scan=scan)
    return scored.evaluate(split, manifest_labels=manifest_labels, tracker=tracker)


def score_splits(
    job,
    model_location: str,
    splits: Sequence[str],
    *,
    job_plan=None,
    scan: ScanResult | None = None,
) -> ScoredSplits:
    """Scores an exported model on every track of ``splits`` in one pass, track-level: in this
    process when they hold at most ``eval.ray_above`` tracks together, else one Ray Data
    dataset and one actor pool for all of them (track indices offset split after split).

    The audio is decoded at the exported model's rate and crop length, which may differ from
    the job's model (``raytag evaluate --model``).
    """
    job_plan = job_plan or plan_job(job)
    with storage.local_folder(model_location) as folder:
        exported = check_fits(read_exported(folder, "model"), key="model", tags=job_plan.recipe.tags)
        weights = read_weights(folder)
    ensure_ray(job)
    splits = list(dict.fromkeys(splits))
    tracks = {s: job_plan.manifest.split(s) for s in splits}
    if scan is None:
        scan = scan_tracks([t for s in splits for t in tracks[s]], num_cpus=job.data.decode_cpus)
    tables = {s: track_table(tracks[s], multi_hot([t.tags for t in tracks[s]], job_plan.recipe.tags), scan)
              for s in splits}
    # Tracks job_plan at the exported model's rate are read from the cache; rows index the
    # tables, whose order is kept, so unscored tracks are still named by their manifest paths.
    decode = cached_tables({s: tables[s][0] for s in splits}, storage_root=job.storage,
                           sample_rate=exported.sample_rate)[0]
    total = sum(len(decode[s]) for s in splits)
    if total <= job.eval.ray_above:
        log.info("scoring %s in this process (eval.ray_above %d)", plural(total, "track"), job.eval.ray_above)
        scored, nodes = _score_in_process(job, exported, weights, decode), 1
    else:
        scored, nodes = _score_on_ray(job, exported, weights, decode)
    out = {s: _Split(tracks[s], tables[s][0], tables[s][1], *scored[s]) for s in splits}
    return ScoredSplits(job, job_plan, exported.recipe.tags, out, scan, nodes)


def _score_on_ray(job, exported, weights, tables: dict[str, TrackTable]) -> tuple[dict, int]:
    """One Ray Data pass over the chunks of every table (track indices offset table after
    table), cut back into ``{name: (scores, kept, failed chunks)}``; and the nodes it used."""
    rows, offsets = [], {}
    for name, table in tables.items():
        offsets[name] = sum(len(tables[n]) for n in offsets)
        for row in chunk_rows(table, sample_rate=exported.sample_rate, crop_samples=exported.crop_samples,
                              max_chunks=job.eval.max_chunks):
            rows.append({**row, "track": row["track"] + offsets[name]})
    scored = score_chunks(rows, exported, weights, num_tracks=sum(len(t) for t in tables.values()),
                        batch_size=job.eval.batch_size, num_cpus=job.data.decode_cpus,
                        num_gpus=0.5 if job.scaling.use_gpu else 0.0)
    out = {}
    for name, table in tables.items():
        start, end = offsets[name], offsets[name] + len(table)
        inside = (scored.tracks >= start) & (scored.tracks < end)
        out[name] = (scored.scores[inside], scored.tracks[inside] - start, int(scored.failed_by_track[start:end].sum()))
    return out, scored.nodes


def _score_in_process(job, exported, weights, tables: dict[str, TrackTable]) -> dict:
    """Every table scored by the Ray-free loop ``raytag predict`` runs in process (same chunks,
    same model, same averaging): ``{name: (scores, kept, failed chunks)}``."""
    model = exported.recipe.build()
    model.load_state_dict(weights)
    out = {}
    for name, table in tables.items():
        scores, kept, failed, _ = score_table(model, table, sample_rate=exported.sample_rate,
                                              crop_samples=exported.crop_samples, max_chunks=job.eval.max_chunks,
                                              batch_size=job.eval.batch_size, num_tags=len(exported.recipe.tags))
        out[name] = (scores, kept, failed)
    return out


def _unscored(tracks: Sequence[Track], usable: list[int], kept: np.ndarray, scan: ScanResult) -> list[dict]:
    """The split's tracks that have no score, with the reason."""
    reasons = dict(scan.skipped)
    rows = [{"path": t.path, "reason": reasons.get(t.path, "unreadable")} for t in tracks if t.path not in scan.usable]
    scored = set(int(i) for i in kept)
    rows += [{"path": tracks[i].path, "reason": "no chunk of the track could be decoded"}
             for position, i in enumerate(usable) if position not in scored]
    return rows
