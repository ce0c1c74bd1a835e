"""Tagging metrics: macro and per-tag ROC-AUC and PR-AUC, and lwlrap.

All functions take track-level arrays: ``y_true`` (N tracks, K tags) of 0/1 and ``y_score``
(N, K) of scores (probabilities or logits: only their order matters). A tag with no positive
(or no negative) track has no defined ROC-AUC; it is listed in ``undefined_tags`` and left out
of the macro averages instead of being averaged in as 0 or 1.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
from sklearn.metrics import (
    average_precision_score,
    label_ranking_average_precision_score,
    roc_auc_score,
)


@dataclass(frozen=True)
class TagScore:
    """Metrics of one tag over an evaluation set."""

    tag: str
    positives: int
    negatives: int
    roc_auc: float
    pr_auc: float


@dataclass(frozen=True)
class TaggingReport:
    """Macro, per-tag and label-ranking metrics of one evaluation."""

    roc_auc_macro: float
    pr_auc_macro: float
    lwlrap: float
    tracks: int
    per_tag: list[TagScore] = field(default_factory=list)

    @property
    def undefined_tags(self) -> list[str]:
        """Tags left out of the macro averages (no positive or no negative track)."""
        return [row.tag for row in self.per_tag if math.isnan(row.roc_auc)]

    def as_metrics(self, prefix: str = "") -> dict[str, float]:
        """Flat scalar metrics, e.g. ``{"valid/roc_auc": 0.91, ...}``."""
        return {
            f"{prefix}roc_auc": self.roc_auc_macro,
            f"{prefix}pr_auc": self.pr_auc_macro,
            f"{prefix}lwlrap": self.lwlrap,
            f"{prefix}tags_evaluated": len(self.per_tag) - len(self.undefined_tags),
            f"{prefix}tracks": self.tracks,
        }

    def table_rows(self) -> list[dict]:
        """Per-tag rows (tag, positives, negatives, roc_auc, pr_auc) for a table artifact."""
        return [row.__dict__.copy() for row in self.per_tag]

    def format_table(self) -> str:
        """A fixed-width text table: one line per tag, then the macro line."""
        width = max([len(row.tag) for row in self.per_tag] + [5])
        lines = [f"{'tag':<{width}}  {'pos':>5}  {'ROC-AUC':>7}  {'PR-AUC':>7}"]
        for row in self.per_tag:
            lines.append(
                f"{row.tag:<{width}}  {row.positives:>5}  "
                f"{_fmt(row.roc_auc):>7}  {_fmt(row.pr_auc):>7}"
            )
        lines.append(
            f"{'macro':<{width}}  {self.tracks:>5}  "
            f"{_fmt(self.roc_auc_macro):>7}  {_fmt(self.pr_auc_macro):>7}"
            f"   lwlrap {_fmt(self.lwlrap)}"
        )
        if self.undefined_tags:
            lines.append(f"not averaged (no positive or no negative): {', '.join(self.undefined_tags)}")
        return "\n".join(lines)


def _fmt(value: float) -> str:
    return "n/a" if math.isnan(value) else f"{value:.4f}"


def _check(y_true: np.ndarray, y_score: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    y_true = np.asarray(y_true)
    y_score = np.asarray(y_score, dtype=np.float64)
    if y_true.ndim != 2 or y_true.shape != y_score.shape:
        raise ValueError(
            f"y_true and y_score must both have shape (tracks, tags); got {y_true.shape} and {y_score.shape}"
        )
    return (y_true > 0.5).astype(np.int64), y_score


def lwlrap(y_true: np.ndarray, y_score: np.ndarray) -> float:
    """Label-weighted label-ranking average precision (He et al. eq. 10).

    Each true label of each clip counts once: it is label-ranking average precision with every
    clip weighted by its number of true labels. Clips without a true label are ignored.
    """
    y_true, y_score = _check(y_true, y_score)
    weights = y_true.sum(axis=1)
    keep = weights > 0
    if not keep.any():
        return float("nan")
    return float(
        label_ranking_average_precision_score(y_true[keep], y_score[keep], sample_weight=weights[keep])
    )


def tagging_report(y_true: np.ndarray, y_score: np.ndarray, tags: list[str]) -> TaggingReport:
    """Computes per-tag and macro ROC-AUC and PR-AUC (average precision), and lwlrap.

    Args:
        y_true: (N, K) 0/1 labels.
        y_score: (N, K) scores.
        tags: K tag names, in column order.
    """
    y_true, y_score = _check(y_true, y_score)
    if len(tags) != y_true.shape[1]:
        raise ValueError(f"{len(tags)} tag names for {y_true.shape[1]} score columns")
    rows = []
    for j, tag in enumerate(tags):
        positives = int(y_true[:, j].sum())
        negatives = len(y_true) - positives
        if positives == 0 or negatives == 0:
            roc, pr = float("nan"), float("nan")
        else:
            roc = float(roc_auc_score(y_true[:, j], y_score[:, j]))
            pr = float(average_precision_score(y_true[:, j], y_score[:, j]))
        rows.append(TagScore(tag, positives, negatives, roc, pr))
    defined = [row for row in rows if not math.isnan(row.roc_auc)]
    return TaggingReport(
        roc_auc_macro=float(np.mean([r.roc_auc for r in defined])) if defined else float("nan"),
        pr_auc_macro=float(np.mean([r.pr_auc for r in defined])) if defined else float("nan"),
        lwlrap=lwlrap(y_true, y_score),
        tracks=len(y_true),
        per_tag=rows,
    )
