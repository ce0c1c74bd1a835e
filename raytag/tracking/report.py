"""What a review shows, computed from plain data: run summaries, the table of runs, lineage and
per-tag differences, and their ``rich`` tables. No MLflow queries here
(:mod:`raytag.tracking.review` fetches; :mod:`raytag.tracking.report_html` renders HTML).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from raytag.tracking import tags as tag_names

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
    model_uri: str | None = None

    @property
    def label(self) -> str:
        """Short name for headings: the stage, else the run name, else the id's head."""
        return self.stage or self.name or self.run_id[:8]


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
) -> RunSummary:
    """A :class:`RunSummary` from a run's params, tags and final metrics (plain dicts)."""
    return RunSummary(
        run_id=run_id,
        name=name,
        status=status,
        start_time=start_time,
        stage=tags.get(tag_names.STAGE),
        model=params.get("model.name") or tags.get(tag_names.MODEL),
        method=describe_method(params, tags),
        split=params.get("eval.split", "test"),
        final=dict(final),
        best_epoch=best_epoch,
        teacher_run_id=tags.get(tag_names.TEACHER_RUN_ID),
        teacher_model=tags.get(tag_names.TEACHER_MODEL),
        teacher_stage=tags.get(tag_names.TEACHER_STAGE),
        trial_id=tags.get(tag_names.TRIAL_ID),
        params=dict(params),
        model_uri=f"models:/{tags[tag_names.LOGGED_MODEL_ID]}" if tags.get(tag_names.LOGGED_MODEL_ID) else None,
    )


def describe_method(params: Mapping[str, str], tags: Mapping[str, str]) -> str:
    """The training method in words: ``objective.name`` plus what is switched on."""
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
    """Header and rows of the runs table: run, stage, model, method, [the differing params,
    when ``inline`` (default :func:`params_inline`)], final ROC-AUC, PR-AUC, lwlrap (with the
    split), best epoch, teacher, status."""
    inline = params_inline(runs) if inline is None else inline
    differing = differing_params(runs) if inline else []
    splits = {run.split for run in runs}
    suffix = f" ({splits.pop()})" if len(splits) == 1 else ""
    header = ["run", "stage", "model", "method", *differing,
              *(name + suffix for _, name in METRIC_COLUMNS), "best epoch", "teacher", "status"]
    rows = []
    for run in runs:
        rows.append([
            run.name or run.run_id[:8],
            run.stage or MISSING,
            run.model or MISSING,
            run.method,
            *(shorten(run.params.get(k, MISSING), width) for k in differing),
            *(format_number(run.final.get(key)) + ("" if suffix else f" ({run.split})") for key, _ in METRIC_COLUMNS),
            format_number(run.best_epoch),
            teacher_label(run, runs),
            run.status,
        ])
    return header, rows


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


def rich_tables(review: Review, *, max_tags: int = 15) -> list:
    """The review for a terminal: the runs table, lineage, and the top per-tag differences.

    Every string is wrapped in ``rich.text.Text``, so brackets in names or ids ("[3f2a]") are
    printed, not read as markup."""
    from rich import box
    from rich.table import Table
    from rich.text import Text

    header, rows = runs_table(review.runs)
    splits = sorted({run.split for run in review.runs})
    title = f"{review.title}, final metrics on the {'/'.join(splits)} split"
    runs = Table(title=Text(title), header_style="bold", box=box.SIMPLE_HEAD)
    for column in header:
        column = column.split(" (")[0]  # the split is in the title
        numeric = column in {name for _, name in METRIC_COLUMNS} | {"best epoch"}
        if numeric:
            runs.add_column(Text(column), justify="right", min_width=6)
        else:
            runs.add_column(Text(column), overflow="fold")
    for row in rows:
        runs.add_row(*map(Text, row))
    out: list = [runs]
    if not params_inline(review.runs) and differing_params(review.runs):
        header, rows = params_table(review.runs)
        params = Table(title="params that differ", header_style="bold", box=box.SIMPLE_HEAD)
        for column in header:
            params.add_column(Text(column), overflow="fold")
        for row in rows:
            params.add_row(*map(Text, row))
        out.append(params)
    for line in lineage(review.runs):
        out.append(Text(f"lineage: {line}"))
    if review.differences is not None and len(review.differences):
        first, second = review.runs[0].label, review.runs[1].label
        table = Table(
            title=Text(f"per-tag change {second} − {first}, largest first"),
            caption=Text(f"A = {first}, B = {second}; ROC = ROC-AUC, PR = PR-AUC, Δ = B − A, pos = positive tracks"),
            header_style="bold",
            box=box.SIMPLE_HEAD,
        )
        for column in ("tag", "pos", "ROC A", "ROC B", "Δ ROC", "PR A", "PR B", "Δ PR"):
            if column == "tag":  # tag names are what the table is read by: keep them whole
                longest = max(len(str(tag)) for tag in review.differences["tag"].head(max_tags))
                table.add_column(Text(column), min_width=min(longest, 28), overflow="fold")
            else:
                table.add_column(Text(column), justify="right", min_width=3 if column == "pos" else 6)  # "+0.080"
        for row in review.differences.head(max_tags).itertuples(index=False):
            table.add_row(*map(Text, [row.tag, format_number(row.positives), *_delta_cells(row)]))
        out.append(table)
        out.append(Text(difference_summary(review.differences, first=first, second=second)))
        if len(review.differences) > max_tags:
            out.append(Text(f"... {len(review.differences) - max_tags} more tags in the HTML report"))
    out.extend(Text(f"note: {note}") for note in review.notes)
    return out


def _delta_cells(row, digits: int = 3) -> list[str]:
    cells = []
    for metric in ("roc_auc", "pr_auc"):
        delta = getattr(row, f"{metric}_delta")
        cells += [format_number(getattr(row, f"{metric}_first"), digits),
                  format_number(getattr(row, f"{metric}_second"), digits),
                  MISSING if math.isnan(delta) else f"{delta:+.{digits}f}"]
    return cells
