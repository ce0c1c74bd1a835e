"""What a review shows, computed from plain data: run summaries, the table of runs, lineage,
per-tag tables and differences. No MLflow queries here (:mod:`raytag.tracking.review`
fetches; :mod:`raytag.tracking.report_console` prints ``rich`` tables;
:mod:`raytag.tracking.report_html` renders HTML).
"""

from __future__ import annotations

import dataclasses
import datetime
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from raytag.tracking import run_tags as tag_names
from raytag.tracking.audit_runs import AUDIT_METHOD, run_split

MISSING = "—"
# Params shown in their own columns (or as the run's name), never among the differing ones.
SHOWN_PARAMS = ("name", "model.name", "objective.name")
METRIC_COLUMNS = (("roc_auc", "ROC-AUC"), ("pr_auc", "PR-AUC"), ("lwlrap", "lwlrap"))
INLINE_PARAMS_FROM_RUNS = 8  # more runs than this: differing params become runs-table columns


@dataclass(frozen=True)
class RunSummary:
    """One run as a review shows it.

    Attributes:
        run_id, name, status: MLflow's.
        start_time: start in ms since the epoch (orders the runs), or None.
        stage: the pipeline stage (``raytag.stage``), or None.
        model: the model preset.
        method: the training method, e.g. ``balanced_masking + mean teacher``.
        split: the evaluated split (``eval.split``, default ``test``).
        final: final ``roc_auc``, ``pr_auc``, ``lwlrap`` on ``split`` (NaN when absent).
        best_epoch: the selected epoch, or None.
        teacher_run_id, teacher_model, teacher_stage: lineage tags, or None.
        trial_id: a sweep trial's id, or None.
        params: every param, as logged.
        end_time: end in ms since the epoch, or None (still running).
        label_source: which labels ``split`` was evaluated against (``clean`` or ``manifest``,
            the run's ``raytag.<split>_labels`` tag), or None (not recorded).
        threshold_labels: the labels its decision thresholds were chosen on (the
            ``raytag.threshold_labels`` tag: noisy, verified or clean), or None.
        select_labels: the validation labels its best epoch was chosen on (the
            ``raytag.select_labels`` tag: noisy or verified), or None (not recorded).
        alias: the label to show when another reviewed run has the same one (its short id
            added), else None.
        model_uri: the MLflow model of the run's best epoch (``models:/<model_id>``), or None.
    """

    run_id: str
    name: str
    status: str
    start_time: int | None
    stage: str | None
    model: str | None
    method: str
    split: str
    final: Mapping[str, float]
    best_epoch: float | None
    teacher_run_id: str | None
    teacher_model: str | None
    teacher_stage: str | None
    trial_id: str | None
    params: Mapping[str, str] = field(default_factory=dict)
    end_time: int | None = None
    label_source: str | None = None
    alias: str | None = None
    threshold_labels: str | None = None
    model_uri: str | None = None
    select_labels: str | None = None

    @property
    def label(self) -> str:
        """Short name for headings: the stage, else the run name, else the id's head (with the
        short id added where two reviewed runs would share it, see :func:`distinct_labels`)."""
        return self.alias or self.stage or self.name or self.short_id

    @property
    def short_id(self) -> str:
        """The run id's first 8 characters, as MLflow's UI shows it."""
        return self.run_id[:8]

    @property
    def labels(self) -> str:
        """The evaluated split's labels in words: ``clean labels``, ``manifest labels``,
        :data:`MISSING` when not recorded; ``train: verified`` added when only verified rows
        were trained on."""
        text = labels_words(self.label_source) or MISSING
        if self.params.get("data.train_subset") == "verified":
            text += " (train: verified)"
        return text


def summarize_run(
    *,
    run_id: str,
    name: str,
    status: str,
    params: Mapping[str, str],
    tags: Mapping[str, str],
    final: Mapping[str, float],
    best_epoch: float | None,
    start_time: int | None = None,
    end_time: int | None = None,
) -> RunSummary:
    """A :class:`RunSummary` from a run's params, tags and final metrics (plain dicts)."""
    split = run_split(params, tags)
    return RunSummary(
        run_id=run_id,
        name=name,
        status=status,
        start_time=start_time,
        stage=tags.get(tag_names.STAGE),
        model=params.get("model.name") or tags.get(tag_names.MODEL),
        method=describe_method(params, tags),
        split=split,
        final=dict(final),
        best_epoch=best_epoch,
        teacher_run_id=tags.get(tag_names.TEACHER_RUN_ID),
        teacher_model=tags.get(tag_names.TEACHER_MODEL),
        teacher_stage=tags.get(tag_names.TEACHER_STAGE),
        trial_id=tags.get(tag_names.TRIAL_ID),
        params=dict(params),
        end_time=end_time,
        label_source=tags.get(tag_names.labels_source(split)),
        threshold_labels=tags.get(tag_names.THRESHOLD_LABELS),
        select_labels=tags.get(tag_names.SELECT_LABELS),
        model_uri=f"models:/{tags[tag_names.LOGGED_MODEL_ID]}" if tags.get(tag_names.LOGGED_MODEL_ID) else None,
    )


def labels_words(source: str | None) -> str | None:
    """A recorded label source (``raytag.<split>_labels``: ``clean``, ``manifest``) in words
    for tables and figure titles (``"clean labels"``); None when not recorded."""
    return f"{source} labels" if source else None


def distinct_labels(runs: Sequence[RunSummary]) -> list[RunSummary]:
    """``runs`` with the short run id added to every label two or more of them share (two runs
    of the same job name), so tables, headings and captions tell them apart."""
    counts: dict[str, int] = {}
    for run in runs:
        counts[run.label] = counts.get(run.label, 0) + 1
    return [dataclasses.replace(run, alias=f"{run.label} [{run.short_id}]") if counts[run.label] > 1 else run
            for run in runs]


def format_time(ms: int | None) -> str:
    """A start or end time (ms since the epoch) as local ``YYYY-MM-DD HH:MM``; MISSING for None."""
    if ms is None:
        return MISSING
    return datetime.datetime.fromtimestamp(ms / 1000).astimezone().strftime("%Y-%m-%d %H:%M")


def format_duration(start_ms: int | None, end_ms: int | None) -> str:
    """How long a run took: ``45s``, ``12m 05s``, ``2h 03m``; ``running`` without an end."""
    if start_ms is None:
        return MISSING
    if end_ms is None:
        return "running"
    seconds = max(0, round((end_ms - start_ms) / 1000))
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m {seconds % 60:02d}s"
    return f"{seconds // 3600}h {seconds % 3600 // 60:02d}m"


def describe_method(params: Mapping[str, str], tags: Mapping[str, str]) -> str:
    """The training method in words: ``objective.name`` plus what is switched on; a label-noise
    audit run is ``label-noise audit``."""
    if tags.get(tag_names.KIND) == tag_names.KIND_AUDIT:
        return AUDIT_METHOD
    parts = [params.get("objective.name") or tags.get(tag_names.METHOD) or "?"]
    for key, words in (("objective.mean_teacher.enabled", "mean teacher"), ("semi.enabled", "noisy student"),
                       ("augment.enabled", "augmented")):
        if str(params.get(key, "")).lower() == "true":
            parts.append(words)
    return " + ".join(parts)


def differing_params(runs: Sequence[RunSummary], exclude: Sequence[str] = SHOWN_PARAMS) -> list[str]:
    """Params whose value is not the same in every run (a missing param counts as a value)."""
    if len(runs) < 2:
        return []
    keys = sorted({k for run in runs for k in run.params} - set(exclude))
    return [k for k in keys if len({run.params.get(k) for run in runs}) > 1]


def shorten(text: str, width: int = 32) -> str:
    """``text`` cut to ``width`` characters, keeping its end (paths differ at the end)."""
    return text if len(text) <= width else "…" + text[-(width - 1):]


def format_number(value: float | None, digits: int = 4) -> str:
    """A metric for display; :data:`MISSING` for None or NaN."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return MISSING
    return f"{value:.{digits}f}" if isinstance(value, float) and not float(value).is_integer() else f"{value:g}"


def teacher_label(run: RunSummary, runs: Sequence[RunSummary]) -> str:
    """Who taught ``run``: a listed run's label, else the teacher stage, run id head or model."""
    if run.teacher_run_id:
        for other in runs:
            if other.run_id == run.teacher_run_id:
                return other.label
        return run.teacher_stage or run.teacher_run_id[:8]
    if run.teacher_model:
        return shorten(run.teacher_model, 24)
    return MISSING


def params_inline(runs: Sequence[RunSummary]) -> bool:
    """Whether differing params go in the runs table as columns (many runs, e.g. sweep trials,
    which differ in a few swept params) or in a table of their own, one row per param (a few
    runs, e.g. pipeline stages, which can differ in many long-named params)."""
    return len(runs) > INLINE_PARAMS_FROM_RUNS


def runs_table(
    runs: Sequence[RunSummary], *, width: int = 32, inline: bool | None = None
) -> tuple[list[str], list[list[str]]]:
    """Header and rows of the runs table: run, id (short), stage, model, method, [the differing
    params, when ``inline`` (default :func:`params_inline`)], final ROC-AUC, PR-AUC, lwlrap
    (with the split), the labels they were computed on, best epoch, the validation rows that
    chose it (``noisy rows`` or ``verified rows``), teacher, started, duration, status."""
    inline = params_inline(runs) if inline is None else inline
    differing = differing_params(runs) if inline else []
    splits = {run.split for run in runs}
    suffix = f" ({splits.pop()})" if len(splits) == 1 else ""
    header = ["run", "id", "stage", "model", "method", *differing,
              *(name + suffix for _, name in METRIC_COLUMNS), "labels", "best epoch", "chosen on", "teacher", "started",
              "duration", "status"]
    rows = []
    for run in runs:
        rows.append([
            run.name or run.short_id,
            run.short_id,
            run.stage or MISSING,
            run.model or MISSING,
            run.method,
            *(shorten(run.params.get(k, MISSING), width) for k in differing),
            *(format_number(run.final.get(key)) + ("" if suffix else f" ({run.split})") for key, _ in METRIC_COLUMNS),
            run.labels,
            format_number(run.best_epoch),
            f"{run.select_labels} rows" if run.select_labels else MISSING,
            teacher_label(run, runs),
            format_time(run.start_time),
            format_duration(run.start_time, run.end_time),
            run.status,
        ])
    return header, rows


def per_tag_table(
    rows: Sequence[Mapping], thresholds: Mapping[str, Mapping] | None = None
) -> tuple[list[str], list[list[str]]]:
    """One run's per-tag table: tag, positives, ROC-AUC, PR-AUC on the evaluated split and,
    when the run logged them, the decision threshold chosen on the validation split and its
    F1 there (:data:`MISSING` for a tag without threshold).

    Args:
        rows: the run's ``metrics/per_tag_<split>.csv`` rows (``tag``, ``positives``,
            ``roc_auc``, ``pr_auc``).
        thresholds: ``{tag: row of metrics/thresholds_valid.csv}`` (``threshold``, ``f1``), or None.
    """
    header = ["tag", "positives", "ROC-AUC", "PR-AUC"] + (["threshold", "F1 (valid)"] if thresholds is not None else [])
    table = []
    for row in rows:
        tag = str(row["tag"])
        cells = [tag, format_number(_number(row.get("positives"))), format_number(_number(row.get("roc_auc"))),
                 format_number(_number(row.get("pr_auc")))]
        if thresholds is not None:
            chosen = thresholds.get(tag, {})
            cells += [format_number(_number(chosen.get("threshold"))), format_number(_number(chosen.get("f1")))]
        table.append(cells)
    return header, table


def tags_by_run_table(runs: Sequence[RunSummary], per_tag: Mapping[str, Sequence[Mapping]]) -> tuple[list[str], list[list[str]]]:
    """Per-tag ROC-AUC of several runs side by side: one row per tag (in the first run's order,
    then tags only later runs have), one column per run that has per-tag rows."""
    shown = [run for run in runs if per_tag.get(run.run_id)]
    values = {run.run_id: {str(r["tag"]): _number(r.get("roc_auc")) for r in per_tag[run.run_id]} for run in shown}
    tags = list(dict.fromkeys(tag for run in shown for tag in values[run.run_id]))
    header = ["tag", *(f"ROC-AUC {run.label}" for run in shown)]
    return header, [[tag, *(format_number(values[run.run_id].get(tag)) for run in shown)] for tag in tags]


def _number(value) -> float | None:
    """A CSV cell as a number: None for empty, missing or non-numeric cells."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(number) else number


def params_table(runs: Sequence[RunSummary], *, width: int = 48) -> tuple[list[str], list[list[str]]]:
    """The differing params as rows, one column per run (headed by its label)."""
    header = ["param", *(run.label for run in runs)]
    rows = [[key, *(shorten(run.params.get(key, MISSING), width) for run in runs)] for key in differing_params(runs)]
    return header, rows


def lineage(runs: Sequence[RunSummary]) -> list[str]:
    """One line per taught run: ``teacher (id) → student (id)``, with the teacher's model."""
    lines = []
    for run in runs:
        if not (run.teacher_run_id or run.teacher_model):
            continue
        teacher = teacher_label(run, runs)
        source = f" [{run.teacher_run_id[:8]}]" if run.teacher_run_id else ""
        model = f" — model {run.teacher_model}" if run.teacher_model else ""
        lines.append(f"{teacher}{source} → {run.label} [{run.run_id[:8]}]{model}")
    return lines


def tag_differences(
    first: Sequence[Mapping], second: Sequence[Mapping], *, sort_by: str = "roc_auc"
) -> pd.DataFrame:
    """Per-tag metrics of two runs side by side, largest change first.

    Args:
        first, second: per-tag rows (``tag``, ``positives``, ``roc_auc``, ``pr_auc``) of the
            two runs, e.g. their ``metrics/per_tag_<split>.csv``.
        sort_by: ``"roc_auc"`` or ``"pr_auc"``: order by the absolute change of that metric;
            tags where it is undefined in either run come last.

    Returns:
        Columns: tag, positives (of ``second``), roc_auc_first, roc_auc_second, roc_auc_delta,
        pr_auc_first, pr_auc_second, pr_auc_delta (second − first). Tags present in only one
        run are kept with NaN for the other.

    Raises:
        ValueError: an unknown ``sort_by`` or rows without a ``tag`` column.
    """
    if sort_by not in ("roc_auc", "pr_auc"):
        raise ValueError(f"sort_by must be roc_auc or pr_auc; got {sort_by!r}")
    a, b = _per_tag_frame(first, "first"), _per_tag_frame(second, "second")
    merged = a.merge(b, on="tag", how="outer")
    merged["positives"] = merged["positives_second"].fillna(merged["positives_first"])
    columns = ["tag", "positives"]
    for metric in ("roc_auc", "pr_auc"):
        merged[f"{metric}_delta"] = merged[f"{metric}_second"] - merged[f"{metric}_first"]
        columns += [f"{metric}_first", f"{metric}_second", f"{metric}_delta"]
    merged["_size"] = merged[f"{sort_by}_delta"].abs()
    merged = merged.sort_values(["_size", "tag"], ascending=[False, True], na_position="last", kind="stable")
    return merged[columns].reset_index(drop=True)


def difference_summary(differences: pd.DataFrame, *, first: str, second: str) -> str:
    """One sentence: on how many tags ``second`` beats ``first``, and the mean changes."""
    parts = []
    for metric, name in (("roc_auc", "ROC-AUC"), ("pr_auc", "PR-AUC")):
        delta = differences[f"{metric}_delta"].dropna()
        if len(delta):
            parts.append(f"{name}: better on {int((delta > 0).sum())} of {len(delta)} tags, "
                         f"worse on {int((delta < 0).sum())}, mean change {delta.mean():+.4f}")
    if not parts:
        return f"no tag has a value in both {first} and {second}"
    return f"{second} vs {first}: " + "; ".join(parts)


def _per_tag_frame(rows: Sequence[Mapping], which: str) -> pd.DataFrame:
    frame = pd.DataFrame(list(rows))
    if "tag" not in frame.columns:
        raise ValueError(f"per-tag rows of the {which} run have no 'tag' column")
    for column in ("positives", "roc_auc", "pr_auc"):
        values = frame[column] if column in frame.columns else pd.Series(float("nan"), index=frame.index)
        frame[column] = pd.to_numeric(values, errors="coerce")
    frame["tag"] = frame["tag"].astype(str)
    return frame[["tag", "positives", "roc_auc", "pr_auc"]].rename(
        columns={c: f"{c}_{which}" for c in ("positives", "roc_auc", "pr_auc")}
    )


@dataclass
class ReportImage:
    """A PNG in a report: its file, a caption, and the run it belongs to (None: the review)."""

    path: Path
    caption: str
    run_id: str | None = None


@dataclass
class Review:
    """Everything a review prints and renders."""

    title: str
    tracking_uri: str
    runs: list[RunSummary]
    differences: pd.DataFrame | None = None
    images: list[ReportImage] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    generated: str = ""
    per_tag: dict[str, list[dict]] = field(default_factory=dict)
    """``{run id: per-tag rows of its evaluated split}`` (plotted runs only)."""
    thresholds: dict[str, dict[str, dict]] = field(default_factory=dict)
    """``{run id: {tag: its metrics/thresholds_valid.csv row}}`` for the runs that logged them."""
    constants: dict[str, list[tuple[str, float, int]]] = field(default_factory=dict)
    """``{run id: [(statistic, value, epochs logged)]}``: method statistics that never changed,
    shown as a table instead of a flat line."""


def per_tag_title(run: RunSummary) -> str:
    """Heading of a run's per-tag table: split and labels, and where thresholds come from."""
    return f"{run.label}: per tag on the {run.split} split ({run.labels})"
