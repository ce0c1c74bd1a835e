"""Statistics and tables of the training benchmarks.

- :func:`paired_difference`: a method against the baseline of the same seed, per seed, with the
  mean and its 95 % t-interval over seeds (``scipy.stats.t``): the seeds share the corpus, the
  test clips and the initial weights, so the paired differences remove what the two runs share.
- :func:`bootstrap_macro_roc_se`: the standard error of one run's test macro ROC-AUC from
  resampling the test clips, the yardstick for effect sizes: a difference smaller than it cannot
  be told from the choice of test clips.
- :func:`markdown_table`: rows of strings as a GitHub markdown table.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats


@dataclass(frozen=True)
class PairedDifference:
    """Per-seed differences of a metric (method − baseline) and their mean's t-interval.

    Attributes:
        seeds: the seeds both have, sorted.
        differences: per seed, in ``seeds`` order.
        mean: their mean.
        low, high: the two-sided confidence interval of the mean, ``mean ± t·sd/√n`` with the
            t quantile of n − 1 degrees of freedom (NaN for fewer than two seeds).
    """

    seeds: tuple[int, ...]
    differences: tuple[float, ...]
    mean: float
    low: float
    high: float

    def format(self, digits: int = 4) -> str:
        """``+0.0123 [−0.0010, +0.0256]``: the mean and its interval."""
        if math.isnan(self.low):
            return f"{self.mean:+.{digits}f}"
        return f"{self.mean:+.{digits}f} [{self.low:+.{digits}f}, {self.high:+.{digits}f}]"


def t_interval(values: Sequence[float], *, confidence: float = 0.95) -> tuple[float, float, float]:
    """``(mean, low, high)`` of ``values`` with the two-sided t-interval of the mean.

    Raises:
        ValueError: no values, or a confidence outside (0, 1).
    """
    if not values:
        raise ValueError("t_interval needs at least one value")
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    array = np.asarray(values, dtype=np.float64)
    mean = float(array.mean())
    if len(array) < 2:
        return mean, math.nan, math.nan
    half = float(stats.t.ppf(0.5 + confidence / 2, len(array) - 1)) * float(array.std(ddof=1)) / math.sqrt(len(array))
    return mean, mean - half, mean + half


def paired_difference(method: Mapping[int, float], baseline: Mapping[int, float], *,
                      confidence: float = 0.95) -> PairedDifference:
    """The per-seed differences ``method[s] − baseline[s]`` over the seeds both have.

    Raises:
        ValueError: the two share no seed.
    """
    seeds = tuple(sorted(set(method) & set(baseline)))
    if not seeds:
        raise ValueError("the method and the baseline share no seed")
    differences = tuple(float(method[s]) - float(baseline[s]) for s in seeds)
    mean, low, high = t_interval(differences, confidence=confidence)
    return PairedDifference(seeds, differences, mean, low, high)


def macro_roc_auc(labels: np.ndarray, scores: np.ndarray) -> float:
    """Macro ROC-AUC over the tags with both classes present (as ``raytag.metrics``), from
    ranks: per tag, (Σ ranks of the positives − P(P + 1)/2) / (P·N), ties at their mean rank,
    which is scikit-learn's ``roc_auc_score`` (vectorised over tags: bootstrap-fast).

    Args:
        labels: (N, K) 0/1.
        scores: (N, K).
    """
    labels = np.asarray(labels) > 0.5
    positives = labels.sum(axis=0)
    negatives = len(labels) - positives
    defined = (positives > 0) & (negatives > 0)
    if not defined.any():
        return math.nan
    ranks = stats.rankdata(np.asarray(scores, dtype=np.float64), axis=0)
    rank_sums = (ranks * labels).sum(axis=0)
    auc = (rank_sums[defined] - positives[defined] * (positives[defined] + 1) / 2) / (
        positives[defined] * negatives[defined])
    return float(auc.mean())


def bootstrap_macro_roc_se(labels: np.ndarray, scores: np.ndarray, *, resamples: int = 1000,
                           seed: int = 0) -> float:
    """Standard error of a run's test macro ROC-AUC: the standard deviation of the macro
    ROC-AUC over ``resamples`` resamplings of the test clips with replacement.

    Args:
        labels: (N, K) 0/1 clean test labels.
        scores: (N, K) the run's test scores.
        resamples: bootstrap resamples (default 1000).
        seed: the resampling draws' seed.
    """
    labels = np.asarray(labels) > 0.5
    if labels.shape != np.shape(scores):
        raise ValueError(f"labels {labels.shape} and scores {np.shape(scores)} differ in shape")
    rng = np.random.default_rng(seed)
    values = [macro_roc_auc(labels[index], np.asarray(scores)[index])
              for index in (rng.integers(0, len(labels), len(labels)) for _ in range(resamples))]
    return float(np.std(values, ddof=1))


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[str]], *, align: str | None = None) -> str:
    """A GitHub markdown table; ``align`` one ``l``/``r`` per column (default: first left)."""
    align = align or "l" + "r" * (len(header) - 1)
    rule = ["---:" if a == "r" else ":---" for a in align]
    lines = ["| " + " | ".join(header) + " |", "| " + " | ".join(rule) + " |"]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def mean_sd(values: Sequence[float], digits: int = 4) -> str:
    """``0.9123 ± 0.0040`` (sample standard deviation over seeds)."""
    array = np.asarray([v for v in values if v is not None], dtype=np.float64)
    if not len(array):
        return "n/a"
    spread = float(array.std(ddof=1)) if len(array) > 1 else 0.0
    return f"{array.mean():.{digits}f} ± {spread:.{digits}f}"
