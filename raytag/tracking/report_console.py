"""A review for a terminal: ``rich`` tables of the runs, the params that differ, lineage and
per-tag values or changes, computed by :mod:`raytag.tracking.report` (the HTML twin is
:mod:`raytag.tracking.report_html`).
"""

from __future__ import annotations

import math

from raytag.tracking.console_tables import DEFAULT_WIDTH, fitted_tables
from raytag.tracking.report import (
    METRIC_COLUMNS,
    MISSING,
    Review,
    difference_summary,
    differing_params,
    format_number,
    lineage,
    params_inline,
    params_table,
    per_tag_table,
    per_tag_title,
    runs_table,
    tags_by_run_table,
)

KEEP_WHOLE = ("id",)


def rich_tables(review: Review, *, max_tags: int = 15, width: int = DEFAULT_WIDTH) -> list:
    """The review for a terminal ``width`` characters wide: the runs table, the params that
    differ, lineage, and the top per-tag values or differences. A table wider than ``width``
    is stacked into narrower ones that repeat its first column
    (:func:`raytag.tracking.console_tables.fitted_tables`); no column is dropped.

    Every string is wrapped in ``rich.text.Text``, so brackets in names or ids ("[3f2a]") are
    printed, not read as markup."""
    from rich.text import Text

    header, rows = runs_table(review.runs)
    splits = sorted({run.split for run in review.runs})
    title = f"{review.title}, final metrics on the {'/'.join(splits)} split"
    labels = header.index("labels")
    if len({row[labels] for row in rows}) == 1 and rows[0][labels] != MISSING:  # one column fewer: into the title
        title += f", {rows[0][labels]}"
        header, rows = _without(header, labels), [_without(row, labels) for row in rows]
    started, took = header.index("started"), header.index("duration")  # one column: narrower
    header = header[:started] + ["started, took"] + header[took + 1:]
    rows = [row[:started] + [f"{row[started]}, {row[took]}"] + row[took + 1:] for row in rows]
    header = [column.split(" (")[0] for column in header]  # the split is in the title
    numeric = {name for _, name in METRIC_COLUMNS} | {"best epoch"}
    out: list = fitted_tables(header, rows, width=width, title=title,
                              right=[i for i, column in enumerate(header) if column in numeric],
                              whole=[i for i, column in enumerate(header) if column in KEEP_WHOLE])
    if not params_inline(review.runs) and differing_params(review.runs):
        header, rows = params_table(review.runs)
        out.extend(fitted_tables(header, rows, width=width, title="params that differ"))
    for line in lineage(review.runs):
        out.append(Text(f"lineage: {line}"))
    out.extend(_per_tag_console(review, max_tags, width))
    if review.differences is not None and len(review.differences):
        first, second = review.runs[0].label, review.runs[1].label
        header = ["tag", "pos", "ROC A", "ROC B", "Δ ROC", "PR A", "PR B", "Δ PR"]
        rows = [[str(row.tag), format_number(row.positives), *_delta_cells(row)]
                for row in review.differences.head(max_tags).itertuples(index=False)]
        out.extend(fitted_tables(
            header, rows, width=width, title=f"per-tag change {second} − {first}, largest first",
            caption=f"A = {first}, B = {second}; ROC = ROC-AUC, PR = PR-AUC, Δ = B − A, pos = positive tracks",
            right=range(1, len(header)),
        ))
        out.append(Text(difference_summary(review.differences, first=first, second=second)))
        if len(review.differences) > max_tags:
            out.append(Text(f"... {len(review.differences) - max_tags} more tags in the HTML report"))
    out.extend(Text(f"note: {note}") for note in review.notes)
    return out


def _without(cells: list[str], index: int) -> list[str]:
    return cells[:index] + cells[index + 1:]


def _per_tag_console(review: Review, max_tags: int, width: int) -> list:
    """One run: its per-tag table with thresholds; three or more: tags × runs ROC-AUC (two runs
    get the table of differences instead). At most ``max_tags`` rows."""
    from rich.text import Text

    if len(review.runs) == 1 and review.per_tag.get(review.runs[0].run_id):
        run = review.runs[0]
        header, rows = per_tag_table(review.per_tag[run.run_id], review.thresholds.get(run.run_id))
        title = per_tag_title(run) + (", thresholds chosen on the valid split" if run.run_id in review.thresholds else "")
    elif len(review.runs) > 2 and any(review.per_tag.get(run.run_id) for run in review.runs):
        header, rows = tags_by_run_table(review.runs, review.per_tag)
        title = "per-tag ROC-AUC by run"
    else:
        return []
    out: list = fitted_tables(header, rows[:max_tags], width=width, title=title, right=range(1, len(header)))
    if len(rows) > max_tags:
        out.append(Text(f"... {len(rows) - max_tags} more tags in the HTML report"))
    return out


def _delta_cells(row, digits: int = 3) -> list[str]:
    cells = []
    for metric in ("roc_auc", "pr_auc"):
        delta = getattr(row, f"{metric}_delta")
        cells += [format_number(getattr(row, f"{metric}_first"), digits),
                  format_number(getattr(row, f"{metric}_second"), digits),
                  MISSING if math.isnan(delta) else f"{delta:+.{digits}f}"]
    return cells
