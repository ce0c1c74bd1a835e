"""Logging a finished run's plots under ``plots/``, for the driver: one best-effort call.

Like every tracking call during a job, a failure here is a warning, never the end of the job.
``raytag review`` embeds whatever a run has under ``plots/`` and draws only what is missing.
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from raytag.tracking import plots, tag_plots
from raytag.tracking import run_tags as tag_names
from raytag.tracking.client import Tracker

log = logging.getLogger(__name__)

def log_run_plots(
    tracker: Tracker,
    *,
    tags: Sequence[str],
    split: str,
    title: str = "",
    per_tag: Sequence[Mapping] | None = None,
    labels: np.ndarray | None = None,
    scores: np.ndarray | None = None,
) -> list[str]:
    """Draws the run's standard plots from its logged history and logs them to ``plots/``.

    Args:
        tracker: the run's tracker (a disabled or failed tracker logs nothing).
        tags: the tag vocabulary (K names).
        split: the evaluated split (``eval.split``).
        title: figure title prefix, e.g. the job or stage name.
        per_tag: the evaluation's per-tag rows (``TaggingReport.table_rows()``).
        labels, scores: (N, K) labels and track-level scores of the evaluated split; with them
            the per-tag ROC and PR curves are drawn too.

    Returns:
        The artifact paths logged (empty when nothing could be logged).
    """
    if tracker.failed:
        return []
    try:
        from raytag.tracking.report import labels_words
        from raytag.tracking.review import read_history, run_thresholds

        client = tracker.client
        run = client.get_run(tracker.run_id)
        history, _ = read_history(client, tracker.run_id, list(run.data.metrics), split,
                                  first_epoch=tag_names.first_epoch(run.data.tags))
        source = labels_words(run.data.tags.get(tag_names.labels_source(split)))
        valid_source = labels_words(run.data.tags.get(tag_names.labels_source("valid")))
        with tempfile.TemporaryDirectory(prefix="raytag-plots-") as scratch:
            chosen = run_thresholds(client, tracker.run_id, Path(scratch) / "thresholds")
            thresholds = {tag: float(row["threshold"]) for tag, row in (chosen or {}).items()}
            folder = Path(scratch) / "png"
            written = plots.plot_run(history, folder, tags=tags, per_tag=per_tag, split=split, title=title,
                                     labels=source, valid_labels=valid_source)
            if labels is not None and scores is not None:
                written += tag_plots.plot_roc_pr_curves(labels, scores, tags, folder, split=split, title=title,
                                                        thresholds=thresholds or None, labels_name=source)
            tracker.log_artifacts(folder, plots.ARTIFACT_DIR)
            names = [f"{plots.ARTIFACT_DIR}/{Path(path).name}" for path in written]
    except Exception as exc:  # noqa: BLE001 - plots must never fail a job
        log.warning("could not draw or log the run's plots (%s: %s); the run goes on without them", type(exc).__name__, exc)
        return []
    return [] if tracker.failed else names
