"""The statistics of the evidence benchmark (bench/evidence.py): pure functions, no I/O.

Each arm is compared with the BCE run of the same seed (the same corpus draw, test tracks and
initial weights), so the unit of evidence is the per-seed paired difference d_s = arm_s − bce_s:

- :func:`paired_test`: mean of d over seeds, its t-interval and two-sided one-sample t p-value;
- :func:`holm`: Holm's step-down adjustment of the arms' p-values (family: the arms of one
  metric), and the confidence level each arm is tested at in Holm's order;
- :func:`tost`: the two one-sided t-tests of equivalence within ±margin (default 0.01);
- :func:`verdicts`: per arm *helps* / *hurts* (Holm-adjusted p < α, by sign), *equivalent*
  (Holm-adjusted TOST p < α), else *not settled*;
- :func:`track_bootstrap_differences` and :func:`two_level_bootstrap`: the check that resamples
  seeds, then test tracks within each drawn seed (paired: the arm and BCE see the same tracks);
- :func:`seeds_to_settle` and :func:`power`: how many seeds the observed spread needs.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats
from sklearn.metrics import average_precision_score

from bench_stats import macro_roc_auc  # bench/bench_stats.py, beside this file

ALPHA = 0.05
MARGIN = 0.01
"""Equivalence margin of :func:`tost`, in the metric's units (ROC-AUC / PR-AUC)."""
SETTLE = 0.015
"""An arm is settled when its 95 % interval's half-width is at most this (issue 28's goal)."""
HELPS, HURTS, EQUIVALENT, UNSETTLED = "helps", "hurts", "equivalent within ±0.01", "not settled"


@dataclass(frozen=True)
class PairedTest:
    """One arm against BCE over the seeds both have.

    Attributes:
        seeds: the shared seeds, sorted.
        differences: d_s = arm − BCE per seed, in ``seeds`` order.
        mean, sd: their mean and sample standard deviation (sd NaN below 2 seeds).
        low, high: the two-sided t-interval at ``confidence`` (NaN below 2 seeds).
        p: two-sided one-sample t-test p-value of mean 0 (NaN below 2 seeds; 0 or 1 when sd is 0).
    """

    seeds: tuple[int, ...]
    differences: tuple[float, ...]
    mean: float
    sd: float
    low: float
    high: float
    p: float

    @property
    def n(self) -> int:
        return len(self.seeds)


def _half_width(sd: float, n: int, confidence: float) -> float:
    if n < 2 or math.isnan(sd):
        return math.nan
    return float(stats.t.ppf(0.5 + confidence / 2, n - 1)) * sd / math.sqrt(n)


def paired_test(arm: Mapping[int, float], baseline: Mapping[int, float], *, confidence: float = 0.95) -> PairedTest:
    """The paired differences ``arm[s] − baseline[s]`` over shared seeds, with a t-interval and p.

    Raises:
        ValueError: no shared seed, or a confidence outside (0, 1).
    """
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    seeds = tuple(sorted(set(arm) & set(baseline)))
    if not seeds:
        raise ValueError("the arm and the baseline share no seed")
    d = np.array([float(arm[s]) - float(baseline[s]) for s in seeds])
    mean = float(d.mean())
    if len(d) < 2:
        return PairedTest(seeds, tuple(d.tolist()), mean, math.nan, math.nan, math.nan, math.nan)
    sd = float(d.std(ddof=1))
    half = _half_width(sd, len(d), confidence)
    if sd == 0.0:
        p = 1.0 if mean == 0.0 else 0.0
    else:
        p = float(2 * stats.t.sf(abs(mean) / (sd / math.sqrt(len(d))), len(d) - 1))
    return PairedTest(seeds, tuple(d.tolist()), mean, sd, mean - half, mean + half, p)


def holm(p_values: Mapping[str, float], *, alpha: float = ALPHA) -> dict[str, tuple[float, float]]:
    """Holm's step-down adjustment over a family of hypotheses.

    Args:
        p_values: name -> raw p-value (NaN: not tested; it gets NaN and does not count in m).
        alpha: the family-wise error rate.

    Returns:
        name -> ``(adjusted p, level)``: adjusted p = max over the names before it in ascending
        order of min(1, (m − i)·p_(i)) (i from 0); ``level`` = 1 − α/(m − i), the confidence the
        i-th hypothesis is tested at (its interval at that level excludes 0 iff it is rejected,
        as long as every hypothesis before it was).
    """
    tested = sorted(((p, name) for name, p in p_values.items() if not math.isnan(p)), key=lambda t: (t[0], t[1]))
    m = len(tested)
    out = {name: (math.nan, math.nan) for name, p in p_values.items() if math.isnan(p)}
    running = 0.0
    for i, (p, name) in enumerate(tested):
        running = max(running, min(1.0, (m - i) * p))
        out[name] = (running, 1.0 - alpha / (m - i))
    return out


def tost(differences: Sequence[float], *, margin: float = MARGIN) -> float:
    """p-value of the two one-sided t-tests that the mean difference lies within ±``margin``
    (the larger of the two one-sided p-values; NaN below 2 values). p < α means equivalent."""
    d = np.asarray(differences, dtype=np.float64)
    if len(d) < 2:
        return math.nan
    mean, se = float(d.mean()), float(d.std(ddof=1)) / math.sqrt(len(d))
    if se == 0.0:
        return 0.0 if abs(mean) < margin else 1.0
    lower = stats.t.sf((mean + margin) / se, len(d) - 1)  # H0: mean <= -margin
    upper = stats.t.cdf((mean - margin) / se, len(d) - 1)  # H0: mean >= +margin
    return float(max(lower, upper))


@dataclass(frozen=True)
class Verdict:
    """One arm's result on one metric: the paired test, the Holm-adjusted p and its interval at
    Holm's level, the TOST p (Holm-adjusted), the verdict and the seeds needed to settle."""

    test: PairedTest
    p_holm: float
    level: float
    low_holm: float
    high_holm: float
    p_tost_holm: float
    verdict: str
    seeds_to_settle: int | None

    def as_json(self) -> dict:
        def num(value):
            return None if value is None or (isinstance(value, float) and math.isnan(value)) else value

        t = self.test
        return {"seeds": list(t.seeds), "n": t.n, "mean": num(t.mean), "sd": num(t.sd), "low": num(t.low),
                "high": num(t.high), "p": num(t.p), "p_holm": num(self.p_holm), "level_holm": num(self.level),
                "low_holm": num(self.low_holm), "high_holm": num(self.high_holm),
                "p_tost_holm": num(self.p_tost_holm), "verdict": self.verdict,
                "seeds_to_settle": self.seeds_to_settle}


def verdicts(arms: Mapping[str, Mapping[int, float]], baseline: Mapping[int, float], *, alpha: float = ALPHA,
             margin: float = MARGIN) -> dict[str, Verdict]:
    """Every arm against the baseline: paired t, Holm across the arms, TOST (Holm across the arms).

    An arm with a Holm-adjusted p below α *helps* or *hurts* by the sign of its mean; otherwise
    it is *equivalent within ±margin* when its Holm-adjusted TOST p is below α; otherwise *not
    settled*. Arms that share no seed with the baseline are left out.
    """
    tests = {name: paired_test(values, baseline) for name, values in arms.items() if set(values) & set(baseline)}
    adjusted = holm({name: t.p for name, t in tests.items()}, alpha=alpha)
    equivalence = holm({name: tost(t.differences, margin=margin) for name, t in tests.items()}, alpha=alpha)
    out = {}
    for name, t in tests.items():
        p_holm, level = adjusted[name]
        half = _half_width(t.sd, t.n, level) if not math.isnan(level) else math.nan
        p_tost = equivalence[name][0]
        if p_holm < alpha:
            verdict = HELPS if t.mean > 0 else HURTS
        elif p_tost < alpha:
            verdict = EQUIVALENT.replace("0.01", f"{margin:g}")
        else:
            verdict = UNSETTLED
        out[name] = Verdict(t, p_holm, level, t.mean - half, t.mean + half, p_tost, verdict,
                            seeds_to_settle(t.sd) if t.n >= 2 else None)
    return out


def seeds_to_settle(sd: float, *, half_width: float = SETTLE, confidence: float = 0.95, limit: int = 1000) -> int | None:
    """The fewest seeds n ≥ 2 whose t-interval half-width t_(n−1)·sd/√n is at most ``half_width``
    at the observed paired spread ``sd`` (None above ``limit`` or for a NaN sd)."""
    if math.isnan(sd):
        return None
    for n in range(2, limit + 1):
        if _half_width(sd, n, confidence) <= half_width:
            return n
    return None


def power(sd: float, n: int, *, effect: float = MARGIN, alpha: float = ALPHA) -> float:
    """Power of the two-sided one-sample t-test with n seeds to detect a true mean difference
    ``effect`` at paired spread ``sd`` (noncentral t)."""
    if n < 2 or sd <= 0 or math.isnan(sd):
        return math.nan
    df, critical = n - 1, float(stats.t.ppf(1 - alpha / 2, n - 1))
    shift = effect / (sd / math.sqrt(n))
    return float(stats.nct.sf(critical, df, shift) + stats.nct.cdf(-critical, df, shift))


def macro_pr_auc(labels: np.ndarray, scores: np.ndarray) -> float:
    """Macro average precision over the tags with a positive (as ``raytag.metrics``)."""
    labels = np.asarray(labels) > 0.5
    tags = [j for j in range(labels.shape[1]) if labels[:, j].any()]
    if not tags:
        return math.nan
    return float(np.mean([average_precision_score(labels[:, j], scores[:, j]) for j in tags]))


METRICS = {"roc_auc": macro_roc_auc, "pr_auc": macro_pr_auc}


def track_bootstrap_values(labels: np.ndarray, scores: np.ndarray, *, metric: str, resamples: int = 200,
                           seed: int = 0) -> np.ndarray:
    """(resamples,) values of ``metric`` over resamplings of the test tracks with replacement;
    resample r draws the same tracks for every run of the same ``seed`` (the draws depend on
    ``seed`` and r only), so two runs' values subtract into paired differences
    (:func:`track_bootstrap_differences`) whenever they were computed.

    Args:
        labels: (N, K) clean test labels.
        scores: (N, K) scores of a run, or (E, N, K): the scores of E epochs, whose metric is the
            mean over the E epochs (Lu et al.'s mean of the last epochs).
        metric: ``roc_auc`` or ``pr_auc`` (macro).
    """
    labels = np.asarray(labels)
    scores = np.asarray(scores)[None] if np.ndim(scores) == 2 else np.asarray(scores)
    if labels.shape != scores.shape[1:]:
        raise ValueError(f"labels {labels.shape} and scores {scores.shape} differ in shape")
    score = METRICS[metric]
    rng = np.random.default_rng([seed, 28])
    out = np.empty(resamples)
    for r in range(resamples):
        index = rng.integers(0, len(labels), len(labels))
        out[r] = np.mean([score(labels[index], epoch[index]) for epoch in scores])
    return out


def track_bootstrap_differences(labels: np.ndarray, arm: np.ndarray, baseline: np.ndarray, *, metric: str,
                                resamples: int = 200, seed: int = 0) -> np.ndarray:
    """(resamples,) differences metric(arm) − metric(baseline) over the same resamplings of the
    test tracks (:func:`track_bootstrap_values` of each)."""
    if np.shape(arm)[-2:] != np.shape(baseline)[-2:]:
        raise ValueError(f"arm {np.shape(arm)} and baseline {np.shape(baseline)} differ in shape")
    return (track_bootstrap_values(labels, arm, metric=metric, resamples=resamples, seed=seed)
            - track_bootstrap_values(labels, baseline, metric=metric, resamples=resamples, seed=seed))


def two_level_bootstrap(replicates: Mapping[int, Sequence[float]], *, resamples: int = 4000, seed: int = 0,
                        confidence: float = 0.95) -> tuple[float, float, float]:
    """``(mean, low, high)``: the percentile interval of the mean paired difference when seeds are
    resampled with replacement and, within each drawn seed, the test tracks (one of that seed's
    :func:`track_bootstrap_differences` replicates, drawn at random).

    Args:
        replicates: seed -> that seed's track-resampled differences (at least one each).
    """
    seeds = sorted(replicates)
    if not seeds or any(len(replicates[s]) == 0 for s in seeds):
        raise ValueError("two_level_bootstrap needs at least one replicate for every seed")
    pools = [np.asarray(replicates[s], dtype=np.float64) for s in seeds]
    rng = np.random.default_rng(seed)
    means = np.empty(resamples)
    for b in range(resamples):
        drawn = rng.integers(0, len(seeds), len(seeds))
        means[b] = np.mean([pools[i][rng.integers(0, len(pools[i]))] for i in drawn])
    tail = (1 - confidence) / 2
    centre = float(np.mean([pool.mean() for pool in pools]))
    return centre, float(np.quantile(means, tail)), float(np.quantile(means, 1 - tail))
