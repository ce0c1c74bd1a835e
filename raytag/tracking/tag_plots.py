"""Per-tag plots of an evaluated split: ROC-AUC / PR-AUC bars, ROC and PR curves, and the
per-tag change between two runs. Pure functions that write PNGs (no MLflow here).

Layouts, chosen to stay readable with 50 tags:

* per-tag bars: horizontal, one pair (ROC-AUC, PR-AUC) per tag, best ROC-AUC on top, each tag
  labelled with its number of positives; tags without a value listed at the bottom with the
  reason ("no positive in this split");
* ROC and PR curves: small multiples, one panel per tag in a grid (8 across for 50 tags), same
  axes everywhere, each titled with its tag, AUC and number of positives, a chance line (the
  diagonal, or the positive rate for PR); a tag with no positive (or no negative) gets an
  empty panel saying so;
* changes between runs: diverging bars of Δ ROC-AUC and Δ PR-AUC side by side, in the order
  given (largest first), green where the second run is better.
"""

from __future__ import annotations

import math
import textwrap
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from raytag.tracking.figures import (
    BETTER_COLOR,
    THRESHOLD_COLOR,
    DPI,
    SERIES_COLORS,
    WORSE_COLOR,
    as_float,
    is_finite,
    note,
    save_png,
    tick_font_size,
)

DIFFERENCES_WIDTH_IN = 10.0  # the per-tag change figure's width, inches
TITLE_CHARACTERS = 95  # a 12 pt title line across that width
DELTA_TICKS = 5  # most x tick labels of a Δ panel (signed, 8 pt: they never touch)


def per_tag_file(split: str) -> str:
    """File name of the per-tag ROC-AUC / PR-AUC bars of ``split``."""
    return f"per_tag_{split}.png"


def curve_files(split: str) -> tuple[str, str]:
    """File names of the per-tag ROC and PR small multiples of ``split``."""
    return f"roc_curves_{split}.png", f"pr_curves_{split}.png"


def plot_per_tag_scores(rows: Sequence[Mapping], path: str | Path, *, title: str = "") -> Path:
    """Horizontal bars of each tag's ROC-AUC and PR-AUC, best ROC-AUC on top.

    Args:
        rows: per-tag rows with ``tag``, ``roc_auc``, ``pr_auc`` and optionally ``positives``
            and ``negatives`` (a ``metrics/per_tag_<split>.csv`` table as records).
        path: PNG to write.
        title: figure title; the macro averages over defined tags are appended.
    """
    defined = [r for r in rows if is_finite(r.get("roc_auc"))]
    undefined = [r for r in rows if not is_finite(r.get("roc_auc"))]
    defined.sort(key=lambda r: float(r["roc_auc"]), reverse=True)
    ordered = defined + undefined
    height = max(3.0, 0.3 * len(ordered) + 1.4)
    figure = Figure(figsize=(9.0, height), dpi=DPI, layout="constrained")
    axes = figure.add_subplot()
    positions = np.arange(len(ordered))[::-1]
    roc = np.array([as_float(r.get("roc_auc")) for r in ordered])
    pr = np.array([as_float(r.get("pr_auc")) for r in ordered])
    axes.barh(positions + 0.2, np.nan_to_num(roc), height=0.4, color=SERIES_COLORS[0], label="ROC-AUC")
    axes.barh(positions - 0.2, np.nan_to_num(pr), height=0.4, color=SERIES_COLORS[4], label="PR-AUC")
    for position, row in zip(positions, ordered):
        if not is_finite(row.get("roc_auc")):
            axes.text(0.01, position, _undefined_reason(row), va="center", fontsize=8, color="0.35")
    labels = [f"{r['tag']} ({int(r['positives'])}+)" if "positives" in r else str(r["tag"]) for r in ordered]
    axes.set_yticks(positions, labels, fontsize=tick_font_size(len(ordered), 400))
    axes.set_xlim(0, 1)
    axes.set_ylim(-0.7, len(ordered) - 0.3)
    axes.axvline(0.5, color="0.5", linewidth=0.8, linestyle=":")
    axes.set_xlabel("score (tags labelled with their number of positive tracks)")
    axes.grid(axis="x", alpha=0.3)
    axes.legend(loc="lower right", fontsize=8)
    macro = (
        f"macro ROC-AUC {np.nanmean(roc):.3f}, PR-AUC {np.nanmean(pr):.3f} over {len(defined)} tag{'s' if len(defined) != 1 else ''}"
        if defined else "no tag with both positives and negatives"
    )
    axes.set_title(f"{title}\n{macro}" if title else macro)
    return save_png(figure, path)


def plot_roc_pr_curves(
    labels: np.ndarray,
    scores: np.ndarray,
    tags: Sequence[str],
    out_dir: str | Path,
    *,
    split: str = "test",
    title: str = "",
    thresholds: Mapping[str, float] | None = None,
    labels_name: str | None = None,
) -> list[Path]:
    """Per-tag ROC and PR curves as two small-multiple figures, each tag's chosen decision
    threshold marked on its curves (a dot where ``score ≥ threshold`` lands).

    Args:
        labels: (N, K) 0/1 labels of the evaluated split.
        scores: (N, K) track-level scores (probabilities).
        tags: K tag names.
        out_dir: folder for ``roc_curves_<split>.png`` and ``pr_curves_<split>.png``.
        split: split name used in titles and file names. Default ``"test"``.
        title: prefix of both figure titles.
        thresholds: ``{tag: threshold}`` chosen on the validation split (tags without one are
            not marked); None marks nothing.
        labels_name: the labels ``labels`` are, in words (``"clean labels"``), for the titles.

    Returns:
        The two PNG paths (ROC first).

    Raises:
        ValueError: shapes that do not match.
    """
    from sklearn.metrics import auc, average_precision_score, precision_recall_curve, roc_curve

    labels = np.asarray(labels) > 0.5
    scores = np.asarray(scores, dtype=np.float64)
    if labels.ndim != 2 or labels.shape != scores.shape or labels.shape[1] != len(tags):
        raise ValueError(f"labels {labels.shape} and scores {scores.shape} must be (tracks, {len(tags)} tags)")
    out_dir = Path(out_dir)
    roc_name, pr_name = curve_files(split)
    columns = min(8, max(1, math.ceil(math.sqrt(len(tags) * 1.2))))
    rows = max(1, math.ceil(len(tags) / columns))
    # A fixed grid, no shared axes and no layout engine: with 50 panels both cost seconds.
    width, height = 1.95 * columns + 0.7, 2.3 * rows + 1.3
    figures = {}
    for kind in ("roc", "pr"):
        figure = Figure(figsize=(width, height), dpi=DPI)
        figure.subplots_adjust(left=0.6 / width, right=1 - 0.15 / width, bottom=0.65 / height,
                               top=1 - 1.2 / height, wspace=0.12, hspace=0.45)
        axes_grid = figure.subplots(rows, columns, squeeze=False)
        for index, axes in enumerate(axes_grid.flat):
            if index >= len(tags):
                axes.set_axis_off()
                continue
            y, s = labels[:, index], scores[:, index]
            keep = np.isfinite(s)
            y, s = y[keep], s[keep]
            positives = int(y.sum())
            axes.set_xlim(0, 1)
            axes.set_ylim(0, 1.02)
            axes.set_box_aspect(1)
            axes.set_xticks((0, 0.5, 1))
            axes.set_yticks((0, 0.5, 1))
            axes.tick_params(labelsize=7, labelbottom=index + columns >= len(tags), labelleft=index % columns == 0)
            if positives == 0 or positives == len(y):
                axes.set_title(f"{tags[index]}", fontsize=8)
                note(axes, "no positive" if positives == 0 else "no negative", size=8)
                continue
            if kind == "roc":
                fpr, tpr, _ = roc_curve(y, s)
                axes.plot([0, 1], [0, 1], color="0.7", linewidth=0.8, linestyle=":")
                axes.plot(fpr, tpr, color=SERIES_COLORS[0], linewidth=1.2)
                value = auc(fpr, tpr)
            else:
                precision, recall, _ = precision_recall_curve(y, s)
                axes.axhline(positives / len(y), color="0.7", linewidth=0.8, linestyle=":")
                axes.plot(recall, precision, color=SERIES_COLORS[4], linewidth=1.2, drawstyle="steps-post")
                value = average_precision_score(y, s)
            point = _threshold_point(y, s, (thresholds or {}).get(tags[index]), kind)
            if point is not None:
                axes.plot(*point, "o", color=THRESHOLD_COLOR, markersize=5, zorder=3)
            axes.set_title(f"{tags[index]}\n{value:.3f} ({positives}+)", fontsize=8)
        axis_names = ("false positive rate", "true positive rate") if kind == "roc" else ("recall", "precision")
        figure.supxlabel(axis_names[0], fontsize=10, y=0.12 / height)
        figure.supylabel(axis_names[1], fontsize=10, x=0.08 / width)
        heading = "ROC curves (AUC)" if kind == "roc" else "Precision-recall curves (average precision)"
        source = f" ({labels_name})" if labels_name else ""
        marked = "; ● threshold chosen on the valid split" if thresholds else ""
        figure.suptitle(f"{title + ': ' if title else ''}{heading}\n{split} split{source}, {len(labels)} tracks{marked}",
                        fontsize=11)
        figures[kind] = save_png(figure, out_dir / (roc_name if kind == "roc" else pr_name))
    return [figures["roc"], figures["pr"]]


def plot_tag_differences(
    differences: Sequence[Mapping], path: str | Path, *, first: str, second: str, where: str = ""
) -> Path:
    """Writes :func:`tag_differences_figure` to the PNG ``path``; returns the path."""
    return save_png(tag_differences_figure(differences, first=first, second=second, where=where), path)


def tag_differences_figure(differences: Sequence[Mapping], *, first: str, second: str, where: str = "") -> Figure:
    """Diverging bars of per-tag ROC-AUC and PR-AUC changes from run ``first`` to ``second``.

    The title is wrapped to the figure's width (long run names and labels), the x axis gets at
    most :data:`DELTA_TICKS` signed tick labels, and a panel whose changes are all zero says
    "no change" (one with no finite change says "no values").

    Args:
        differences: rows with ``tag``, ``roc_auc_delta`` and ``pr_auc_delta`` (second − first),
            drawn top down in the given order (sort them first). NaN deltas are drawn as "n/a".
        first, second: the runs' names, for the title.
        where: the split and labels compared, for the title (``"test split, clean labels"``).
    """
    from matplotlib.ticker import MaxNLocator, StrMethodFormatter

    rows = list(differences)
    on = f" on the {where}" if where else ""
    title = textwrap.fill(f"Per-tag change{on}: {second} − {first} (green: {second} better)", TITLE_CHARACTERS)
    height = max(3.0, 0.24 * len(rows) + 1.4 + 0.25 * title.count("\n"))
    figure = Figure(figsize=(DIFFERENCES_WIDTH_IN, height), dpi=DPI, layout="constrained")
    positions = np.arange(len(rows))[::-1]
    tags = [str(r["tag"]) for r in rows]
    for index, (key, name) in enumerate((("roc_auc_delta", "Δ ROC-AUC"), ("pr_auc_delta", "Δ PR-AUC"))):
        axes = figure.add_subplot(1, 2, index + 1)
        values = np.array([as_float(r.get(key)) for r in rows])
        finite = values[np.isfinite(values)]
        colors = [BETTER_COLOR if v >= 0 else WORSE_COLOR for v in np.nan_to_num(values)]
        axes.barh(positions, np.nan_to_num(values), color=colors, height=0.7)
        for position, value in zip(positions, values):
            if not np.isfinite(value):
                axes.text(0, position, " n/a", va="center", fontsize=7, color="0.4")
        limit = max(0.01, float(np.abs(finite).max()) if len(finite) else 0.01) * 1.1
        axes.set_xlim(-limit, limit)
        axes.axvline(0, color="0.3", linewidth=0.8)
        axes.set_yticks(positions, tags if index == 0 else [], fontsize=tick_font_size(len(rows)))
        axes.set_ylim(-0.7, len(rows) - 0.3)
        axes.xaxis.set_major_locator(MaxNLocator(nbins=DELTA_TICKS, symmetric=True, prune="both"))
        axes.xaxis.set_major_formatter(StrMethodFormatter("{x:+.2f}" if limit >= 0.05 else "{x:+.3f}"))
        axes.tick_params(axis="x", labelsize=8)
        axes.set_title(name)
        axes.grid(axis="x", alpha=0.3)
        if not len(finite):
            note(axes, "no values")
        elif not finite.any():
            note(axes, "no change")
    figure.suptitle(title, fontsize=12)
    return figure


def _threshold_point(y: np.ndarray, s: np.ndarray, threshold, kind: str) -> tuple[float, float] | None:
    """Where predicting ``s ≥ threshold`` sits on a tag's curve: (FPR, TPR) for ROC, (recall,
    precision) for PR; None without a finite threshold, or (PR) when nothing is predicted."""
    if threshold is None or not is_finite(threshold):
        return None
    predicted = s >= float(threshold)
    recall = float(predicted[y].mean())
    if kind == "roc":
        return float(predicted[~y].mean()), recall
    if not predicted.any():
        return None
    return recall, float(y[predicted].mean())


def _undefined_reason(row: Mapping) -> str:
    if as_float(row.get("positives")) == 0:
        return "no positive in this split"
    if as_float(row.get("negatives")) == 0:
        return "no negative in this split"
    return "not defined"
