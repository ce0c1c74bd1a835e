"""Evaluating an exported model on splits: track-level scores and statuses from the scoring
owner (:mod:`raytag.scoring`), metrics over the tracks it tagged.

Every track of a split is accounted for: tracks the header scan skipped (``unreadable``), and
tracks the scorer did not tag (``too short``, ``silent``, no chunk decoded) are listed with
their status and reason (count and paths, in MLflow), never silently left out; the metrics are
over the ``ok`` tracks, those ``raytag predict`` would tag. Several evaluations of one model
(the validation split for thresholds, the test split for the report) share one scoring pass
(:func:`score_splits`), each split scored once: in the driver's process up to
``eval.ray_above`` tracks (:func:`raytag.scoring.scorer.score_rows`), else one Ray Data dataset
and one actor pool; both give the same numbers.
"""

from __future__ import annotations

import dataclasses
import logging
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from raytag import storage
from raytag.cluster.data.audio_cache import cached_tables
from raytag.cluster.data.datasets import ScanResult, scan_tracks, track_table
from raytag.cluster.inference.actor_pool import SCORING_GPUS, gpu_share, score_chunks
from raytag.cluster.session import ensure_ray
from raytag.data.manifest import Track, multi_hot
from raytag.data.rows import TrackTable
from raytag.metrics import TaggingReport, tagging_report
from raytag.models.export import check_fits, read_exported, read_weights
from raytag.plan import evaluation_labels, plan_job
from raytag.scoring.scorer import Tagger, score_rows
from raytag.scoring.status import TrackResult, TrackStatus
from raytag.scoring.tracks import ChunkPlan, TrackScores, TrackTally, audio_error_reason, plan_chunks, table_results
from raytag.text import plural
from raytag.tracking.client import Tracker
from raytag.tracking.run_tags import labels_source

log = logging.getLogger("raytag")


@dataclass(frozen=True)
class Evaluation:
    """A split's metrics, the track-level labels and scores (N', K) they came from (the ``ok``
    tracks), which labels those are (``"clean"`` or ``"manifest"``,
    :func:`raytag.plan.evaluation_labels`), the scored tracks' manifest paths (N',), in row
    order, and every track's :class:`~raytag.scoring.status.TrackResult` (manifest order,
    sources named by their manifest paths)."""

    report: TaggingReport
    labels: np.ndarray
    scores: np.ndarray
    label_source: str
    paths: tuple[str, ...] = ()
    results: tuple[TrackResult, ...] = ()


@dataclass(frozen=True)
class _Split:
    """A split's tracks, its usable ones (``table``, their indices ``usable`` in the split), one
    result per table row (sources named by the table's paths) and its failed chunks."""

    tracks: Sequence[Track]
    table: TrackTable
    usable: list[int]
    results: list[TrackResult]
    failed: int

    def tagged(self) -> np.ndarray:
        """Indices into ``table`` of the ``ok`` tracks."""
        return np.asarray([i for i, r in enumerate(self.results) if r.status == TrackStatus.OK], dtype=np.int64)


class ScoredSplits:
    """An exported model's track-level scores on some splits (:func:`score_splits`), to
    evaluate against any labels without scoring again."""

    def __init__(self, job, job_plan, tags: Sequence[str], splits: dict[str, _Split], scan: ScanResult, nodes: int):
        self.job, self.job_plan, self.tags = job, job_plan, list(tags)
        self.splits, self.scan, self.nodes = splits, scan, nodes

    def evaluate(self, split: str, *, manifest_labels: bool = False, tracker: Tracker | None = None) -> Evaluation:
        """The split's metrics against clean labels when the job has them (``manifest_labels``:
        against the manifest's, as a user of the model has them); the metrics, per-tag table and
        untagged tracks go to ``tracker``."""
        tracker = tracker or Tracker.disabled()
        scored = self.splits[split]
        tagged = scored.tagged()
        scores = (np.stack([scored.results[i].probabilities for i in tagged]) if len(tagged)
                  else np.zeros((0, len(self.tags))))
        if manifest_labels:  # the table holds the manifest's labels of the usable tracks
            labels, label_source = scored.table.labels[tagged], "manifest"
        else:
            labels, label_source = evaluation_labels(self.job, self.job_plan.recipe.tags, scored.tracks)
            labels = np.asarray(labels, dtype=np.float32)[scored.usable][tagged]
        report = tagging_report(labels, scores, self.tags)
        results = split_results(scored, self.scan)
        unscored = [{"path": r.source, "status": str(r.status), "reason": r.reason}
                    for r in results if r.status != TrackStatus.OK]
        log.info("%s split, %s labels, %s: macro ROC-AUC %.4f, PR-AUC %.4f", split, label_source,
                 plural(len(tagged), "track"), report.roc_auc_macro, report.pr_auc_macro)
        if unscored:
            kinds = Counter(row["status"] for row in unscored)
            log.warning("%s of the %s split not tagged and not in these metrics (%s), e.g. %s: %s",
                        plural(len(unscored), "track"), split, ", ".join(f"{n} {k}" for k, n in sorted(kinds.items())),
                        unscored[0]["path"], unscored[0]["reason"])
            tracker.log_table(unscored, f"metrics/unscored_{split}.csv")
        prefix = f"{split}/"
        tracker.log_metrics({**report.as_metrics(prefix), f"{prefix}decode_failures": scored.failed,
                             f"{prefix}unscored_tracks": len(unscored), f"{prefix}scoring_nodes": self.nodes})
        tracker.set_tags({labels_source(split): label_source})
        tracker.log_table(report.table_rows(), f"metrics/per_tag_{split}.csv")
        return Evaluation(report, labels, scores, label_source, tuple(scored.table.paths[int(i)] for i in tagged),
                          tuple(results))


def split_results(scored: _Split, scan: ScanResult) -> list[TrackResult]:
    """One result per track of the split, in manifest order: the header scan's skipped tracks
    ``unreadable`` with its reason, the others their scoring result."""
    reasons = dict(scan.skipped)
    by_position = dict(zip(scored.usable, scored.results))
    out = []
    for position, track in enumerate(scored.tracks):
        if position in by_position:
            out.append(by_position[position])
        else:
            reason = audio_error_reason(track.path, reasons.get(track.path, "unreadable"))
            out.append(TrackResult(track.path, TrackStatus.UNREADABLE, reason=reason))
    return out


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
    """Scores an exported model on every track of ``splits`` in one pass with the job's
    scoring options (``eval.max_chunks``, ``eval.batch_size``, ``eval.ray_above``): in this
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
    options = job.eval.scoring_options()
    splits = list(dict.fromkeys(splits))
    tracks = {s: job_plan.manifest.split(s) for s in splits}
    if scan is None:
        scan = scan_tracks([t for s in splits for t in tracks[s]], num_cpus=job.data.decode_cpus)
    tables = {s: track_table(tracks[s], multi_hot([t.tags for t in tracks[s]], job_plan.recipe.tags), scan)
              for s in splits}
    # Tracks prepared at the exported model's rate are read from the cache; rows index the
    # tables, whose order is kept, so results are named by the manifest paths again below.
    decode = cached_tables({s: tables[s][0] for s in splits}, storage_root=job.storage,
                           sample_rate=exported.sample_rate)[0]
    plans = {s: plan_chunks(decode[s], sample_rate=exported.sample_rate, crop_samples=exported.crop_samples,
                            max_chunks=options.max_chunks) for s in splits}
    total = sum(len(decode[s]) for s in splits)
    if total <= options.ray_above:
        log.info("scoring %s in this process (eval.ray_above %d)", plural(total, "track"), options.ray_above)
        tagger = Tagger.from_exported(exported, weights)
        scores, nodes = {s: score_rows(tagger, plans[s], batch_size=options.batch_size) for s in splits}, 1
    else:
        scores, nodes = _score_on_ray(job, exported, weights, plans, batch_size=options.batch_size)
    out = {}
    for s in splits:
        table, usable = tables[s]
        named = [dataclasses.replace(result, source=path)
                 for result, path in zip(table_results(plans[s], scores[s]), table.paths)]
        out[s] = _Split(tracks[s], table, usable, named, scores[s].failed_chunks)
    return ScoredSplits(job, job_plan, exported.recipe.tags, out, scan, nodes)


def _score_on_ray(job, exported, weights, plans: dict[str, ChunkPlan], *, batch_size: int
                  ) -> tuple[dict[str, TrackScores], int]:
    """One Ray Data pass over the chunks of every plan (track indices offset table after
    table), cut back into ``{name: TrackScores}``; and the nodes it used."""
    rows, offsets, total = [], {}, 0
    for name, plan in plans.items():
        offsets[name] = total
        rows += [{**row, "track": row["track"] + total} for row in plan.rows]
        total += len(plan.table)
    if not rows:  # nothing long enough to score
        num_tags = len(exported.recipe.tags)
        return {name: TrackTally(len(plan.table), num_tags).result() for name, plan in plans.items()}, 0
    pooled = score_chunks(rows, exported, weights, num_tracks=total, batch_size=batch_size,
                          num_cpus=job.data.decode_cpus, num_gpus=gpu_share(SCORING_GPUS, use_gpu=job.scaling.use_gpu))
    return ({name: pooled.tracks.part(offsets[name], offsets[name] + len(plan.table)) for name, plan in plans.items()},
            pooled.nodes)
