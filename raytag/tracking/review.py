"""``raytag review``: runs from MLflow as a table, per-tag differences and an HTML report.

Pick runs by experiment, by parent run (a pipeline's stages or a sweep's trials) or by id;
this module queries MLflow (through ``MlflowClient`` on an explicit tracking URI), downloads
the per-tag tables, plots and model descriptions it needs, draws plots from the per-epoch
histories, and hands plain data to :mod:`raytag.tracking.report` (tables) and
:mod:`raytag.tracking.report_html` (the self-contained HTML file). With a parent run, the HTML
is logged to it as ``review/<file>.html``.
"""

from __future__ import annotations

import datetime
import re
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pandas as pd

from raytag.engine.state import EPOCH_NUMBER_KEYS
from raytag.output_files import check_output_file
from raytag.models.export import description_path, description_tags
from raytag.tracking import plots, tag_plots
from raytag.tracking import run_tags as tag_names
from raytag.tracking.audit_runs import AUDIT_METHOD, audit_note, run_split
from raytag.tracking.client import existing_store
from raytag.tracking.run_lookup import DEFAULT_MAX_RUNS, ReviewError, select_runs
from raytag.tracking.report import (
    Review,
    ReportImage,
    RunSummary,
    distinct_labels,
    labels_words,
    summarize_run,
    tag_differences,
)
from raytag.tracking.report_html import write_html
from raytag.text import plural

REVIEW_ARTIFACT_DIR = "review"
MODEL_DESCRIPTION = description_path()
THRESHOLDS_TABLE = "metrics/thresholds_valid.csv"  # written by the driver (raytag.cluster.training.driver)
DEFAULT_MAX_PLOTTED_RUNS = 8


@dataclass(frozen=True)
class ReviewOutcome:
    """What :func:`review_runs` produced: the review, its HTML file, and the artifact path it
    was logged under on the parent run (None when there is no parent)."""

    review: Review
    html_path: Path
    logged_artifact: str | None


def review_runs(
    *,
    tracking_uri: str | None = None,
    experiment: str | None = None,
    parent_run_id: str | None = None,
    run_ids: Sequence[str] = (),
    html_path: str | Path | None = None,
    log_to_parent: bool = True,
    max_runs: int = DEFAULT_MAX_RUNS,
    sort_by: str = "roc_auc",
    max_plotted_runs: int = DEFAULT_MAX_PLOTTED_RUNS,
) -> ReviewOutcome:
    """Builds the review of the selected runs and writes (and logs) its HTML report.

    Args:
        tracking_uri: the store; default ``MLFLOW_TRACKING_URI``, else ``sqlite:///<cwd>/mlflow.db``.
        experiment: review the runs of this experiment (newest ``max_runs``; parent runs of
            pipelines and sweeps are left out, their children are listed; label-noise audit
            runs are left out with a note that names them).
        parent_run_id: review this pipeline's or sweep's child runs.
        run_ids: review these runs, in this order (two runs: per-tag differences second − first);
            full ids or unique prefixes of at least 4 characters (the 8 the table prints); a
            run given twice is reviewed once, where it first appears.
        html_path: where to write the report; default ``review-<name>.html`` in the cwd.
        log_to_parent: log the report to the parent run (``parent_run_id`` only). Default True.
        max_runs: most runs of an experiment or parent. Default 50.
        sort_by: order of per-tag differences: ``"roc_auc"`` or ``"pr_auc"`` change.
        max_plotted_runs: plots for at most this many runs (the best by final ROC-AUC). Default 8.

    Raises:
        ReviewError: not exactly one selection, an unknown experiment or run, nothing to show.
        raytag.output_files.OutputPathError: ``html_path`` in a missing or unwritable folder
            (checked before anything is read or built).
        raytag.tracking.client.StoreError: no store at ``tracking_uri`` (none is created), or a
            server that does not answer.
    """
    from mlflow.tracking import MlflowClient

    if html_path is not None:  # before anything is built (the default path is checked once it is known)
        check_output_file(html_path, "--html")
    uri = existing_store(tracking_uri, option="--uri")
    client = MlflowClient(tracking_uri=uri)
    selection = select_runs(
        client, experiment=experiment, parent_run_id=parent_run_id, run_ids=run_ids, max_runs=max_runs
    )
    runs, parent, title = selection.runs, selection.parent, selection.title
    path = Path(html_path) if html_path else check_output_file(Path.cwd() / f"review-{_slug(title)}.html", "--html")
    with tempfile.TemporaryDirectory(prefix="raytag-review-") as scratch:
        review = build_review(client, runs, title=title, tracking_uri=uri, workdir=Path(scratch), sort_by=sort_by,
                              max_plotted_runs=max_plotted_runs)
        review.notes.extend(selection.notes)
        repeated = len(run_ids) - len(runs) if run_ids else 0
        if repeated:
            review.notes.append(f"{plural(repeated, 'run id')} given more than once, shown once")
        write_html(review, path)
    logged = None
    if parent is not None and log_to_parent:
        client.log_artifact(parent.info.run_id, str(path), REVIEW_ARTIFACT_DIR)
        logged = f"{REVIEW_ARTIFACT_DIR}/{path.name}"
        client.set_tag(parent.info.run_id, tag_names.REVIEW_REPORT, logged)
    return ReviewOutcome(review, path, logged)


def build_review(
    client,
    runs,
    *,
    title: str,
    tracking_uri: str,
    workdir: Path,
    sort_by: str = "roc_auc",
    max_plotted_runs: int = DEFAULT_MAX_PLOTTED_RUNS,
) -> Review:
    """Summaries, per-tag differences (two runs) and plots of ``runs``; files go to ``workdir``.

    Plots (and the full metric histories and per-tag tables they need) are made for at most
    ``max_plotted_runs`` runs: all of them, or the ones with the best final ROC-AUC, so a
    review of a 50-trial sweep stays a readable, mailable file.
    """
    review = Review(
        title=title,
        tracking_uri=_display_uri(tracking_uri),
        runs=[],
        generated=datetime.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z"),
    )
    for run in runs:
        params, split = dict(run.data.params), run_split(run.data.params, run.data.tags)
        keys = [k for k in run.data.metrics if k.startswith(f"{split}/") or k == "best_epoch"]
        history, final = read_history(client, run.info.run_id, keys, split,
                                      first_epoch=tag_names.first_epoch(run.data.tags))
        review.runs.append(summarize_run(
            run_id=run.info.run_id, name=run.info.run_name or "", status=run.info.status, params=params,
            tags=dict(run.data.tags), final=final, best_epoch=_last(history.get("best_epoch")),
            start_time=run.info.start_time, end_time=run.info.end_time,
        ))
    review.runs = distinct_labels(review.runs)
    for run, summary in zip(runs, review.runs):
        if summary.method == AUDIT_METHOD:
            review.notes.append(audit_note(summary.label, summary.split, run.data.metrics))
    plotted = _runs_to_plot(review.runs, max_plotted_runs)
    if len(plotted) < len(review.runs):
        review.notes.append(
            f"plots for the {len(plotted)} runs with the best final ROC-AUC only: "
            + ", ".join(run.label for run in review.runs if run.run_id in plotted)
        )
    per_tag: dict[str, list[dict] | None] = {}
    for run, summary in zip(runs, review.runs):
        if summary.run_id not in plotted:
            continue
        folder = workdir / summary.run_id
        history, _ = read_history(client, summary.run_id, list(run.data.metrics), summary.split,
                                  first_epoch=tag_names.first_epoch(run.data.tags))
        audit = summary.method == AUDIT_METHOD  # its per-tag table is the audit's (see the note), not scores
        rows = per_tag[summary.run_id] = None if audit else _read_per_tag(
            client, summary.run_id, summary.split, folder, review.notes, summary.label)
        if rows:
            review.per_tag[summary.run_id] = rows
        thresholds = run_thresholds(client, summary.run_id, folder)
        if thresholds is not None:
            review.thresholds[summary.run_id] = thresholds
        vocabulary = [str(r["tag"]) for r in rows] if rows else _model_tags(client, summary.run_id, folder)
        constants = plots.constant_series(plots.split_history(history, vocabulary)[2])[1]
        if constants:
            review.constants[summary.run_id] = constants
        review.images.extend(_run_images(client, summary, history, rows, vocabulary, folder))
    if len(review.runs) == 2:
        first, second = review.runs
        rows_a, rows_b = per_tag.get(first.run_id), per_tag.get(second.run_id)
        if rows_a and rows_b and first.split == second.split:
            review.differences = tag_differences(rows_a, rows_b, sort_by=sort_by)
            where = f"{first.split} split" + (f", {first.labels}" if first.labels == second.labels else "")
            path = tag_plots.plot_tag_differences(
                review.differences.to_dict("records"), workdir / "differences.png", first=first.label,
                second=second.label, where=where,
            )
            review.images.append(ReportImage(path, f"Per-tag change on the {where}, {second.label} − {first.label}"))
            if first.labels != second.labels:
                review.notes.append(f"the two runs were evaluated on different labels ({first.labels}, {second.labels})")
        elif rows_a and rows_b:
            review.notes.append(f"no per-tag comparison: the runs were evaluated on different splits ({first.split}, {second.split})")
    return review


def _runs_to_plot(runs: Sequence[RunSummary], most: int) -> set[str]:
    """Ids of the runs that get plots: all, or the ``most`` best by final ROC-AUC."""
    if len(runs) <= most:
        return {run.run_id for run in runs}
    def score(run: RunSummary) -> float:
        value = run.final.get("roc_auc", float("nan"))
        return value if value == value else float("-inf")
    return {run.run_id for run in sorted(runs, key=score, reverse=True)[:most]}


def read_history(client, run_id: str, keys: Sequence[str], split: str, *,
                 first_epoch: int = 1) -> tuple[dict, dict[str, float]]:
    """A run's per-epoch history ``{key: [(epoch, value), ...]}`` and its final metrics on
    ``split`` (``roc_auc``, ``pr_auc``, ``lwlrap``).

    The final value of a metric is its latest logged one. When the evaluated split is ``valid``
    its final metrics share keys with the per-epoch ones; the final entry (logged after the
    last epoch, at a step that is not the last epoch) is then left out of the history.

    Epochs come numbered from 1: a run whose records number them from ``first_epoch`` 0 (one
    without the ``raytag.epochs_from`` tag, :func:`raytag.tracking.run_tags.first_epoch`) has
    its steps and its epoch-valued metrics (``epoch``, ``best_epoch``) renumbered.
    """
    shift = 1 - first_epoch
    history: dict[str, list[tuple[int, float]]] = {}
    final: dict[str, float] = {}
    for key in sorted(keys):
        points = sorted(client.get_metric_history(run_id, key), key=lambda m: (m.timestamp, m.step))
        if key.startswith(f"{split}/") and points:
            last = points[-1]
            final[key.split("/", 1)[1]] = last.value
            if len(points) > 1 and last.step < max(m.step for m in points):
                points = points[:-1]
        value_shift = shift if key in EPOCH_NUMBER_KEYS else 0
        history[key] = sorted((m.step + shift, m.value + value_shift) for m in points)
    return history, final


def _read_per_tag(client, run_id: str, split: str, folder: Path, notes: list[str], name: str | None):
    path = f"metrics/per_tag_{split}.csv"
    local = _download(client, run_id, path, folder)
    if local is None:
        notes.append(f"{name or run_id}: no {path} artifact")
        return None
    frame = pd.read_csv(local)
    if "tag" not in frame.columns:
        notes.append(f"{name or run_id}: {path} has no 'tag' column")
        return None
    return frame.to_dict("records")


def run_thresholds(client, run_id: str, folder: Path) -> dict[str, dict] | None:
    """A run's decision thresholds (``metrics/thresholds_valid.csv``) as ``{tag: row}`` (keys
    ``threshold``, ``f1``, ``precision``, ``recall``, ``positives``, ``status``; NaN where a tag
    got none), or None when the run has no such table."""
    local = _download(client, run_id, THRESHOLDS_TABLE, folder)
    if local is None:
        return None
    frame = pd.read_csv(local)
    if "tag" not in frame.columns or "threshold" not in frame.columns:
        return None
    return {str(row["tag"]): row for row in frame.to_dict("records")}


def _model_tags(client, run_id: str, folder: Path) -> list[str]:
    local = _download(client, run_id, MODEL_DESCRIPTION, folder)
    if local is None:
        return []
    return description_tags(local)


def _run_images(client, run: RunSummary, history, per_tag, vocabulary, folder: Path) -> list[ReportImage]:
    """The run's logged ``plots/*.png`` and the standard plots it lacks, drawn here, in reading
    order: curves, method statistics, per-tag heatmaps, per-tag scores, ROC and PR curves."""
    logged = _download_plots(client, run.run_id, folder / "logged")
    have = {path.name for path in logged}
    source = labels_words(run.label_source)
    drawn = plots.plot_run(history, folder / "drawn", tags=vocabulary, per_tag=per_tag, split=run.split,
                           title=run.label, labels=source, valid_labels=labels_words(run.threshold_labels))
    chosen = [(path, " (logged with the run)") for path in logged] + [(p, "") for p in drawn if p.name not in have]
    chosen.sort(key=lambda item: (_reading_order(item[0].name, run.split), item[0].name))
    return [ReportImage(path, f"{run.label}: {_caption(path.name, run.split, source)}{origin}", run.run_id)
            for path, origin in chosen]


def _known_plots(split: str, labels: str | None = None) -> list[tuple[str, str]]:
    roc, pr = tag_plots.curve_files(split)
    on = f"the {split} split" + (f" ({labels})" if labels else "")
    return [
        (plots.CURVES_FILE, "training and validation curves"),
        (plots.METHOD_FILE, "method statistics per epoch (the ones that change)"),
        ("tags_", "per tag and epoch: "),
        (tag_plots.per_tag_file(split), f"per-tag ROC-AUC and PR-AUC on {on}"),
        (roc, f"per-tag ROC curves on {on}"),
        (pr, f"per-tag precision-recall curves on {on}"),
    ]


def _reading_order(name: str, split: str) -> int:
    known = _known_plots(split)
    return next((i for i, (prefix, _) in enumerate(known) if name.startswith(prefix)), len(known))


def _caption(name: str, split: str, labels: str | None = None) -> str:
    for prefix, caption in _known_plots(split, labels):
        if name == prefix:
            return caption
        if prefix == "tags_" and name.startswith(prefix):
            return caption + name.removeprefix(prefix).removesuffix(".png").replace("_", "/")
    return name


def _download_plots(client, run_id: str, folder: Path) -> list[Path]:
    found: list[Path] = []
    pending = [plots.ARTIFACT_DIR]
    while pending:
        for item in client.list_artifacts(run_id, pending.pop()):
            if item.is_dir:
                pending.append(item.path)
            elif item.path.lower().endswith(".png"):
                local = _download(client, run_id, item.path, folder)
                if local is not None:
                    found.append(local)
    return sorted(found)


def _download(client, run_id: str, artifact: str, folder: Path) -> Path | None:
    """A run's artifact as a local file, or None when the run has no such artifact."""
    parent, _, name = artifact.rpartition("/")
    if name not in {Path(item.path).name for item in client.list_artifacts(run_id, parent or None)}:
        return None
    folder.mkdir(parents=True, exist_ok=True)
    return Path(client.download_artifacts(run_id, artifact, str(folder)))


def _last(points) -> float | None:
    return points[-1][1] if points else None


def _display_uri(uri: str) -> str:
    """The tracking URI without credentials (``http://user:secret@host`` → ``http://host``)."""
    parts = urlsplit(uri)
    if parts.username or parts.password:
        host = parts.hostname or ""
        netloc = f"{host}:{parts.port}" if parts.port else host
        return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))
    return uri


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-")[:80] or "runs"
