"""What every raytag plot shares: resolution, colours, notes on empty panels, PNG writing.

Figures are built with matplotlib's object API and written through an Agg canvas: no pyplot,
so no global backend, figure registry or state between calls.
"""

from __future__ import annotations

import math
from pathlib import Path

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

DPI = 100
SERIES_COLORS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#17becf")
BETTER_COLOR, WORSE_COLOR = "#2ca02c", "#d62728"
THRESHOLD_COLOR = "#111111"  # the chosen decision threshold on ROC / PR curves


def note(axes, text: str, size: int = 10) -> None:
    """Grey text in the middle of a panel that has nothing to draw, saying why."""
    axes.text(0.5, 0.5, text, transform=axes.transAxes, ha="center", va="center", fontsize=size, color="0.4")


def as_float(value) -> float:
    """``float(value)``, NaN for None or text that is not a number (CSV cells)."""
    try:
        return float(value)
    except (TypeError, ValueError):
        return float("nan")


def is_finite(value) -> bool:
    """Whether ``value`` is a finite number (None, NaN, inf and non-numbers are not)."""
    return math.isfinite(as_float(value))


def tick_font_size(labels: int, budget: int = 360) -> int:
    """Font size (6-10 pt) for ``labels`` tick labels stacked along one axis."""
    return max(6, min(10, budget // max(labels, 1)))


def save_png(figure: Figure, path: str | Path) -> Path:
    """Writes ``figure`` as a PNG at :data:`DPI` (parent folders created); returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    FigureCanvasAgg(figure)
    figure.savefig(path, format="png", dpi=DPI)
    return path
