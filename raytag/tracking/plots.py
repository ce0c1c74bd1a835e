"""Plots of a run's per-epoch history for people to read: pure functions that write PNGs
(no MLflow here). Per-tag plots of an evaluated split are in :mod:`raytag.tracking.tag_plots`;
:func:`plot_run` makes the standard set of a run from both.

Layouts:

* curves: one row of panels (losses; validation ROC-AUC, PR-AUC, lwlrap; throughput, with the
  seconds per epoch on a second axis), epoch on x, the best epoch marked;
* per-tag method statistics over epochs (e.g. masked entries per tag): a tags × epochs
  heatmap, one row per tag (50 tags fit, in vocabulary order);
* scalar method statistics (masked fraction, β, forget rate, a loss threshold, an ignored
  share, ...): small multiples of lines, three across, for the series that change; a series
  with one value (constant, or logged once) is no line to look at and is listed in the review's
  table of constants instead (:func:`constant_series`).

NaN and infinite values are left out of lines (and shown grey in heatmaps); a single epoch is
drawn as a marker.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from raytag.tracking.client import metric_key
from raytag.tracking.figures import DPI, SERIES_COLORS, is_finite, note, save_png, tick_font_size
from raytag.tracking.tag_plots import per_tag_file, plot_per_tag_scores

History = Mapping[str, Sequence[tuple[int, float]]]
"""Per-epoch metric history: ``{metric: [(epoch, value), ...]}``."""

ARTIFACT_DIR = "plots"  # where a run's plots are logged, and where ``raytag review`` looks
CURVES_FILE = "curves.png"
METHOD_FILE = "method_statistics.png"
RANKING_METRICS = ("roc_auc", "pr_auc", "lwlrap")
BOOKKEEPING = ("epoch", "best_epoch")
NOT_METHOD_PREFIXES = ("test/", "time/", "data/", "thresholds/", "audit/")
"""Records of a run that are not per-epoch method statistics: final metrics, seconds per
phase, file counts, the thresholds' track count, a label audit's numbers."""
GROUP_LABELS = {"mask/masked": "masked entries per epoch"}  # colour-bar labels of known groups


def heatmap_file(group: str) -> str:
    """File name of the tags × epochs heatmap of a per-tag metric group (``mask/masked``)."""
    return "tags_" + group.replace("/", "_") + ".png"


def split_history(
    history: History, tags: Sequence[str] = ()
) -> tuple[dict[str, list], dict[str, dict[str, list]], dict[str, list]]:
    """Sorts a run's per-epoch metrics into what each plot draws.

    Args:
        history: ``{metric: [(epoch, value), ...]}``.
        tags: the run's tag vocabulary; a metric ``<group>/<tag>`` for one of them is per-tag.

    Returns:
        ``(curves, per_tag_groups, scalars)``: what :func:`plot_training_curves` draws (see
        :func:`curve_panels`); ``{group: {tag: points}}`` for per-tag families
        such as ``mask/masked/<tag>``; every other scalar (method statistics). ``epoch``,
        ``best_epoch`` and the records of :data:`NOT_METHOD_PREFIXES` (final ``test/*``
        metrics, ``time/*`` seconds, ``data/*`` counts, ...) are left out.
    """
    # Tags may contain "/" (MTG-Jamendo's "mood/theme---sad") and are logged under their
    # MLflow-safe key, so match whole suffixes, longest first.
    suffixes = sorted(((metric_key(tag), tag) for tag in tags), key=lambda pair: -len(pair[0]))
    drawn = {k for keys in curve_panels(history).values() for k in keys} | {"epoch_seconds"}
    curves: dict[str, list] = {}
    groups: dict[str, dict[str, list]] = {}
    scalars: dict[str, list] = {}
    for key, points in history.items():
        if key in BOOKKEEPING or key.startswith(NOT_METHOD_PREFIXES):
            continue
        match = next(((k, tag) for k, tag in suffixes if key.endswith("/" + k) and len(key) > len(k) + 1), None)
        if match:
            groups.setdefault(key[: -len(match[0]) - 1], {})[match[1]] = list(points)
        elif key in drawn:
            curves[key] = list(points)
        else:
            scalars[key] = list(points)
    return curves, groups, scalars


def curve_panels(history: History) -> dict[str, list[str]]:
    """Which ``train/*`` and ``valid/*`` series the curves figure draws, by panel: losses
    (last part contains ``loss``), ranking metrics (``roc_auc``, ``pr_auc``, ``lwlrap``) and
    throughput (``train/examples_per_s``; ``epoch_seconds`` rides on its second axis)."""
    keys = sorted(k for k in history if k.startswith(("train/", "valid/")))
    return {
        "Loss": [k for k in keys if "loss" in k.rpartition("/")[2]],
        "Ranking metrics": [k for k in keys if k.rpartition("/")[2] in RANKING_METRICS],
        "Throughput": [k for k in keys if k == "train/examples_per_s"],
    }


def plot_training_curves(
    history: History, path: str | Path, *, title: str = "", best_epoch: int | None = None
) -> Path:
    """Writes :func:`training_curves_figure` to the PNG ``path``; returns the path."""
    return save_png(training_curves_figure(history, title=title, best_epoch=best_epoch), path)


def training_curves_figure(history: History, *, title: str = "", best_epoch: int | None = None) -> Figure:
    """Training and validation curves over epochs.

    Panels: losses (every ``*/loss*`` series), validation ranking metrics (``roc_auc``,
    ``pr_auc``, ``lwlrap``), and throughput (``train/examples_per_s``, ``epoch_seconds``)
    when logged. Other series go to :func:`plot_scalar_series`.

    Args:
        history: ``{metric: [(epoch, value), ...]}``.
        title: figure title (e.g. the run's name).
        best_epoch: drawn as a dashed vertical line; default: the last ``best_epoch`` value
            in ``history`` if there is one.
    """
    if best_epoch is None:
        best_epoch = _last_finite(history.get("best_epoch", ()))
    panels = [(name, keys) for name, keys in curve_panels(history).items() if keys]
    if "epoch_seconds" in history and not any(name == "Throughput" for name, _ in panels):
        panels.append(("Throughput", []))
    panels = panels or [("no per-epoch metrics", [])]
    figure = Figure(figsize=(5.2 * len(panels), 4.2), dpi=DPI, layout="constrained")
    for index, (name, keys) in enumerate(panels):
        axes = figure.add_subplot(1, len(panels), index + 1)
        drawn = [_line(axes, history[key], key, SERIES_COLORS[n % len(SERIES_COLORS)]) for n, key in enumerate(keys)]
        if best_epoch is not None:
            axes.axvline(best_epoch, color="0.4", linestyle="--", linewidth=1, label=f"best epoch {best_epoch:g}")
        if name == "Ranking metrics":
            axes.set_ylim(*_unit_range(history, keys))
        if name == "Throughput":
            axes.set_ylabel("examples / s")
            _seconds_axis(axes, history)
        axes.set_title(name)
        axes.set_xlabel("epoch")
        axes.xaxis.set_major_locator(MaxNLocator(integer=True))
        axes.grid(alpha=0.3)
        if keys and not any(drawn):
            note(axes, "no finite values")
            axes.set_xticks([])
            axes.set_yticks([])
        if keys and name != "Throughput":
            axes.legend(fontsize=8)
        elif not keys and name != "Throughput":
            note(axes, "nothing logged per epoch")
    if title:
        figure.suptitle(title)
    return figure


def plot_scalar_series(history: History, path: str | Path, *, title: str = "Method statistics") -> Path | None:
    """Small multiples of scalar series over epochs (masked fraction, β, forget rate, ...).

    Args:
        history: ``{metric: [(epoch, value), ...]}``, one panel per metric, sorted by name.
        path: PNG to write.
        title: figure title.

    Returns:
        The PNG's path, or None (nothing written) when ``history`` is empty.
    """
    keys = sorted(history)
    if not keys:
        return None
    columns = min(3, len(keys))
    rows = math.ceil(len(keys) / columns)
    figure = Figure(figsize=(4.6 * columns, 3.0 * rows + 0.6), dpi=DPI, layout="constrained")
    for index, key in enumerate(keys):
        axes = figure.add_subplot(rows, columns, index + 1)
        if not _line(axes, history[key], None, SERIES_COLORS[0]):
            note(axes, "no finite values")
        axes.set_title(key, fontsize=10)
        axes.set_xlabel("epoch")
        axes.xaxis.set_major_locator(MaxNLocator(integer=True))
        axes.grid(alpha=0.3)
    figure.suptitle(title)
    return save_png(figure, path)


def constant_series(history: History) -> tuple[dict[str, list], list[tuple[str, float, int]]]:
    """Splits scalar series into those that change and those that do not.

    Returns:
        ``(changing {metric: points}, constants [(metric, value, points logged)])``: a series
        is constant when all its finite values are equal (one point included); a series with
        no finite value counts as changing, so its panel says "no finite values". Sorted by name.
    """
    changing: dict[str, list] = {}
    constants: list[tuple[str, float, int]] = []
    for key in sorted(history):
        points = list(history[key])
        finite = [float(v) for _, v in points if is_finite(v)]
        if finite and max(finite) == min(finite):
            constants.append((key, finite[0], len(points)))
        else:
            changing[key] = points
    return changing, constants


def plot_tag_heatmap(
    series: Mapping[str, Sequence[tuple[int, float]]],
    path: str | Path,
    *,
    title: str,
    value_label: str,
) -> Path:
    """A tags × epochs heatmap of one per-tag statistic (e.g. masked entries of each tag).

    Args:
        series: ``{tag: [(epoch, value), ...]}``; tags are drawn in this order, top down.
        path: PNG to write.
        title: figure title.
        value_label: colour bar label, with units (``"masked entries"``, ``"share masked"``).
    """
    tags = list(series)
    epochs = sorted({int(epoch) for points in series.values() for epoch, _ in points})
    grid = np.full((len(tags), max(len(epochs), 1)), np.nan)
    column = {epoch: i for i, epoch in enumerate(epochs)}
    for row, tag in enumerate(tags):
        for epoch, value in series[tag]:
            grid[row, column[int(epoch)]] = value
    grid[~np.isfinite(grid)] = np.nan
    height = max(3.0, 0.2 * len(tags) + 1.6)
    width = min(16.0, max(6.0, 0.12 * len(epochs) + 4.0))
    figure = Figure(figsize=(width, height), dpi=DPI, layout="constrained")
    axes = figure.add_subplot()
    masked = np.ma.masked_invalid(grid)
    cmap = _colormap("viridis", bad="0.85")
    image = axes.imshow(masked, aspect="auto", interpolation="nearest", cmap=cmap)
    axes.set_yticks(range(len(tags)), tags, fontsize=tick_font_size(len(tags)))
    tick_columns = _tick_positions(len(epochs))
    axes.set_xticks(tick_columns, [str(epochs[i]) for i in tick_columns] if epochs else [])
    axes.set_xlabel("epoch")
    axes.set_title(title)
    colorbar = figure.colorbar(image, ax=axes, shrink=min(1.0, 6.0 / height + 0.3))
    colorbar.set_label(value_label)
    if masked.mask.all():
        note(axes, "no finite values")
    return save_png(figure, path)


def plot_run(
    history: History,
    out_dir: str | Path,
    *,
    tags: Sequence[str] = (),
    per_tag: Sequence[Mapping] | None = None,
    split: str = "test",
    title: str = "",
    labels: str | None = None,
    valid_labels: str | None = None,
) -> list[Path]:
    """The standard plots of one run from what MLflow holds: curves (only for a run that
    logged per-epoch training or validation series: an evaluation-only run gets none), method
    statistics (the series that change, :func:`constant_series`), one heatmap per per-tag
    metric group, and the per-tag bars.

    Args:
        history: the run's per-epoch metrics.
        out_dir: folder for the PNGs (created).
        tags: tag vocabulary, to recognise per-tag metrics (``mask/masked/<tag>``).
        per_tag: rows of ``metrics/per_tag_<split>.csv``, if any.
        split: the evaluated split's name.
        title: prefix of the figure titles (e.g. the run name).
        labels: the labels ``split`` was evaluated against, in words (``"clean labels"``), for
            the per-tag bars' title; None leaves it out.
        valid_labels: the same for the validation split, for the curves' title.

    Returns:
        Paths of the PNGs written.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    curves, groups, scalars = split_history(history, tags)
    heading = f"{title} training".strip() + (f" (validation on {valid_labels})" if valid_labels else "")
    trained = any(curve_panels(history).values()) or "epoch_seconds" in history
    written = [plot_training_curves(history, out_dir / CURVES_FILE, title=heading)] if trained else []
    changing, _ = constant_series(scalars)
    method = plot_scalar_series(changing, out_dir / METHOD_FILE, title=f"{title} method statistics".strip())
    if method is not None:
        written.append(method)
    for group, series in sorted(groups.items()):
        ordered = {tag: series[tag] for tag in tags if tag in series}
        label = GROUP_LABELS.get(group, group)
        written.append(
            plot_tag_heatmap(ordered, out_dir / heatmap_file(group), title=f"{title} {group} per tag".strip(), value_label=label)
        )
    if per_tag:
        heading = f"{title} {split} split".strip() + (f", {labels}" if labels else "")
        written.append(plot_per_tag_scores(per_tag, out_dir / per_tag_file(split), title=heading))
    return written


def _line(axes, points: Sequence[tuple[int, float]], label: str | None, color: str) -> bool:
    """Draws the finite points of a series (markers when few); False when none is finite."""
    data = np.array([(float(e), float(v)) for e, v in points], dtype=np.float64).reshape(-1, 2)
    data = data[np.isfinite(data).all(axis=1)]
    data = data[np.argsort(data[:, 0], kind="stable")]
    if len(data) == 0:
        if label:
            axes.plot([], [], color=color, label=f"{label} (no finite values)")
        return False
    marker = "o" if len(data) <= 30 else None
    axes.plot(data[:, 0], data[:, 1], color=color, marker=marker, markersize=4, linewidth=1.5, label=label)
    if len(np.unique(data[:, 0])) == 1:
        axes.set_xlim(data[0, 0] - 1, data[0, 0] + 1)
    return True


def _seconds_axis(axes, history: History) -> None:
    """Epoch wall time on a second y axis of the throughput panel, when logged."""
    if "epoch_seconds" not in history:
        return
    twin = axes.twinx()
    _line(twin, history["epoch_seconds"], "epoch_seconds (right)", SERIES_COLORS[5])
    twin.set_ylabel("seconds per epoch")
    handles, labels = axes.get_legend_handles_labels()
    twin_handles, twin_labels = twin.get_legend_handles_labels()
    below_the_axes(axes, handles + twin_handles, labels + twin_labels)


def below_the_axes(axes, handles, labels) -> None:
    """A legend under the panel, outside the plotting area, so it never covers a line (two
    lines on two y axes leave no corner free); constrained layout makes room for it."""
    axes.legend(handles, labels, fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.16), ncol=2, frameon=False)


def _unit_range(history: History, keys: Sequence[str]) -> tuple[float, float]:
    values = [v for k in keys for _, v in history[k] if is_finite(v)]
    if not values:
        return 0.0, 1.0
    low = min(values)
    return max(0.0, math.floor((low - 0.05) * 10) / 10), 1.0


def _tick_positions(count: int, most: int = 20) -> list[int]:
    if count <= most:
        return list(range(count))
    step = math.ceil(count / most)
    return list(range(0, count, step))


def _colormap(name: str, *, bad: str):
    from matplotlib import colormaps

    return colormaps[name].with_extremes(bad=bad)


def _last_finite(points: Sequence[tuple[int, float]]) -> float | None:
    finite = [v for _, v in sorted(points) if is_finite(v)]
    return finite[-1] if finite else None


