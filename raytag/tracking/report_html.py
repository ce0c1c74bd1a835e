"""A review as one self-contained HTML file: inline CSS, images embedded as data URIs, no
scripts, links or anything fetched from elsewhere, so it can be mailed, archived or logged as
an MLflow artifact and still open anywhere.
"""

from __future__ import annotations

import base64
import math
from html import escape
from pathlib import Path

from raytag.tracking.report import (
    MISSING,
    ReportImage,
    Review,
    difference_summary,
    differing_params,
    format_duration,
    format_number,
    format_time,
    lineage,
    params_inline,
    params_table,
    per_tag_table,
    per_tag_title,
    runs_table,
    tags_by_run_table,
)

NUMERIC_COLUMNS = {"ROC-AUC", "PR-AUC", "lwlrap", "best epoch", "positives", "threshold", "F1", "value",
                   "epochs logged", "duration"}

STYLE = """
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: #1d2330;
       margin: 0 auto; max-width: 1500px; padding: 24px 32px 64px; background: #fbfbfd; }
h1 { font-size: 24px; margin: 0 0 4px; }
h2 { font-size: 19px; margin: 36px 0 10px; padding-bottom: 4px; border-bottom: 2px solid #dde1ea; }
h3 { font-size: 16px; margin: 26px 0 6px; }
.meta { color: #5b6476; margin: 0 0 18px; }
.meta code { background: #eef0f5; padding: 1px 5px; border-radius: 3px; }
.scroll { overflow-x: auto; max-width: 100%; }
.scroll.tall { max-height: 80vh; overflow-y: auto; }
.scroll.tall th { position: sticky; top: 0; }
table.fit th { white-space: normal; }
table { border-collapse: collapse; margin: 6px 0 14px; background: #fff; font-size: 13px; }
th, td { border: 1px solid #dde1ea; padding: 4px 9px; text-align: left; vertical-align: top; }
th { background: #eef1f7; font-weight: 600; white-space: nowrap; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
td.up { color: #1b7a2e; } td.down { color: #b3261e; }
tr:nth-child(even) td { background: #f7f8fb; }
ul.lineage li { margin: 2px 0; }
figure { margin: 12px 0 22px; background: #fff; border: 1px solid #dde1ea; padding: 10px;
         display: inline-block; max-width: 100%; box-sizing: border-box; }
figure img { max-width: 100%; height: auto; display: block; }
figcaption { color: #5b6476; font-size: 12px; margin-top: 6px; }
.notes li { color: #7a5a00; }
.muted { color: #8a92a3; }
"""


def render_html(review: Review) -> str:
    """The whole report as one HTML document (a string)."""
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{escape(review.title)}</title>",
        f"<style>{STYLE}</style></head><body>",
        f"<h1>{escape(review.title)}</h1>",
        f'<p class="meta">{len(review.runs)} run{"s" if len(review.runs) != 1 else ""} from '
        f"<code>{escape(review.tracking_uri)}</code>"
        + (f" · generated {escape(review.generated)}" if review.generated else "") + "</p>",
        "<h2>Runs</h2>",
        _table(*runs_table(review.runs, width=60)),
    ]
    if not params_inline(review.runs) and differing_params(review.runs):
        parts.append("<h3>Params that differ</h3>")
        parts.append(_table(*params_table(review.runs, width=80)))
    lines = lineage(review.runs)
    if lines:
        parts.append("<h2>Lineage (teacher → student)</h2>")
        parts.append('<ul class="lineage">' + "".join(f"<li>{escape(line)}</li>" for line in lines) + "</ul>")
    if review.differences is not None:
        parts.append(_differences(review))
    if len(review.runs) > 2 and review.per_tag:
        parts.append("<h2>Per-tag ROC-AUC by run</h2>")
        parts.append(_table(*tags_by_run_table(review.runs, review.per_tag)))
    for run in review.runs:
        images = [image for image in review.images if image.run_id == run.run_id]
        parts.append(f"<h2>{escape(run.label)} <span class=\"muted\">run {escape(run.run_id)}</span></h2>")
        parts.append(
            f'<p class="meta">{escape(run.name)} · {escape(run.model or MISSING)} · {escape(run.method)} · '
            f"{escape(run.status)} · started {escape(format_time(run.start_time))}, took "
            f"{escape(format_duration(run.start_time, run.end_time))} · {escape(run.split)} split, "
            f"{escape(run.labels)}"
            + (f" · MLflow model <code>{escape(run.model_uri)}</code>" if run.model_uri else "") + "</p>"
        )
        parts.extend(_run_tables(review, run))
        parts.extend(_figure(image) for image in images)
        if not images:
            parts.append('<p class="muted">no plots for this run</p>')
    if review.notes:
        parts.append("<h2>Notes</h2>")
        parts.append('<ul class="notes">' + "".join(f"<li>{escape(note)}</li>" for note in review.notes) + "</ul>")
    parts.append("</body></html>")
    return "\n".join(parts)


def write_html(review: Review, path: str | Path) -> Path:
    """Writes :func:`render_html` to ``path`` (UTF-8; its folder must exist)."""
    path = Path(path)
    path.write_text(render_html(review), encoding="utf-8")
    return path


def data_uri(path: str | Path) -> str:
    """A PNG file as a ``data:image/png;base64,...`` URI."""
    return "data:image/png;base64," + base64.b64encode(Path(path).read_bytes()).decode("ascii")


def _run_tables(review: Review, run) -> list[str]:
    """A run's per-tag table (with its decision thresholds) and its constant method statistics."""
    out = []
    rows = review.per_tag.get(run.run_id)
    if rows:
        thresholds = review.thresholds.get(run.run_id)
        chosen = ""
        if thresholds is not None:
            source = f" ({run.threshold_labels} labels)" if run.threshold_labels else ""
            chosen = ("Threshold: the tag is predicted when its probability is at least this; chosen per tag "
                      f"for the best F1 on the valid split{source}.")
        out.append(f"<h3>{escape(per_tag_title(run))}</h3>")
        if chosen:
            out.append(f'<p class="meta">{escape(chosen)}</p>')
        out.append(_table(*per_tag_table(rows, thresholds)))
    constants = review.constants.get(run.run_id)
    if constants:
        out.append("<h3>Method statistics that did not change</h3>")
        out.append(_table(["statistic", "value", "epochs logged"],
                          [[key, format_number(value), str(count)] for key, value, count in constants]))
    return out


def _table(header: list[str], rows: list[list[str]]) -> str:
    numeric = {i for i, name in enumerate(header) if name.split(" (")[0] in NUMERIC_COLUMNS}
    head = "".join(f'<th class="num">{escape(h)}</th>' if i in numeric else f"<th>{escape(h)}</th>" for i, h in enumerate(header))
    body = "".join(
        "<tr>" + "".join(
            f'<td class="num">{escape(cell)}</td>' if i in numeric else f"<td>{escape(cell)}</td>"
            for i, cell in enumerate(row)
        ) + "</tr>"
        for row in rows
    )
    return f'<div class="scroll"><table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></div>'


def _differences(review: Review) -> str:
    first, second = review.runs[0].label, review.runs[1].label
    summary = difference_summary(review.differences, first=first, second=second)
    out = [f"<h2>Per-tag change: {escape(second)} − {escape(first)}</h2>", f"<p><b>{escape(summary)}.</b></p>"]
    out.extend(_figure(image) for image in review.images if image.run_id is None)
    # A and B, not the run names, head the columns: names are long and would make the table
    # wider than the page; the line above the table says which run is which.
    head = ["tag", "positives", "ROC-AUC A", "ROC-AUC B", "Δ ROC-AUC", "PR-AUC A", "PR-AUC B", "Δ PR-AUC"]
    cells = ["<th>tag</th>"] + [f'<th class="num">{escape(h)}</th>' for h in head[1:]]
    rows = []
    for row in review.differences.itertuples(index=False):
        tds = [f"<td>{escape(str(row.tag))}</td>", f'<td class="num">{format_number(row.positives)}</td>']
        for metric in ("roc_auc", "pr_auc"):
            delta = getattr(row, f"{metric}_delta")
            tds.append(f'<td class="num">{format_number(getattr(row, f"{metric}_first"))}</td>')
            tds.append(f'<td class="num">{format_number(getattr(row, f"{metric}_second"))}</td>')
            if math.isnan(delta):
                tds.append(f'<td class="num">{MISSING}</td>')
            else:
                tds.append(f'<td class="num {"up" if delta > 0 else "down" if delta < 0 else ""}">{delta:+.4f}</td>')
        rows.append("<tr>" + "".join(tds) + "</tr>")
    out.append(
        f'<p class="meta">{len(rows)} tags, largest change first; A = {escape(first)}, B = {escape(second)}, '
        f"Δ = B − A.</p>"
        f'<div class="scroll tall"><table class="fit"><thead><tr>{"".join(cells)}</tr></thead><tbody>{"".join(rows)}</tbody></table></div>'
    )
    return "\n".join(out)


def _figure(image: ReportImage) -> str:
    return (
        f'<figure><img src="{data_uri(image.path)}" alt="{escape(image.caption)}">'
        f"<figcaption>{escape(image.caption)}</figcaption></figure>"
    )
