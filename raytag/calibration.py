"""P(label = 1 | score) of one tag, fitted from a teacher's scores and the tag's labels.

Two fits, both used by the label-noise audit (:mod:`raytag.audit`):

* :func:`isotonic_fit`, the non-decreasing least-squares fit (pool adjacent violators): it
  uses only the ranking, so any monotone rescaling of the scores gives the same fit, and it
  keeps block means (the audit's rates rest on that). It is piecewise constant: every track in
  a block gets the same value.
* :func:`logistic_fit`, Platt's σ(a·x + b) on the scores' log-odds x: smooth and strictly
  monotone, so it still tells apart the tracks an isotonic block pools (the audit breaks ties
  with it). Refitted per tag, it is unchanged by a shift or scaling of the log-odds, such as
  the upward shift of a teacher trained with Balanced-Training.

Core module: numpy only.
"""

from __future__ import annotations

import numpy as np

PROBABILITY_CLIP = 1e-7
"""Probabilities are clipped to [1e-7, 1 − 1e-7] before their log-odds are taken."""


def isotonic_fit(scores: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Non-decreasing least-squares fit of ``labels`` on ``scores`` (pool adjacent violators).

    Args:
        scores: (N,) finite scores; only their order matters. Equal scores share one value.
        labels: (N,) 0/1 labels.

    Returns:
        (N,) float64 fitted values in the input order: P(label = 1 | score), monotone in score.
    """
    order = np.argsort(scores, kind="stable")
    sorted_scores = scores[order]
    sorted_labels = labels[order].astype(np.float64)
    # Pool ties first: equal scores cannot be told apart, so they get one value.
    starts = np.flatnonzero(np.r_[True, sorted_scores[1:] != sorted_scores[:-1]])
    sums = list(np.add.reduceat(sorted_labels, starts))
    counts = list(np.diff(np.r_[starts, len(sorted_scores)]))
    block_sums: list[float] = []
    block_counts: list[int] = []
    for total, count in zip(sums, counts):
        block_sums.append(float(total))
        block_counts.append(int(count))
        while len(block_sums) > 1 and block_sums[-2] * block_counts[-1] > block_sums[-1] * block_counts[-2]:
            total = block_sums.pop()
            count = block_counts.pop()
            block_sums[-1] += total
            block_counts[-1] += count
    fitted_sorted = np.repeat(np.array(block_sums) / np.array(block_counts), block_counts)
    fitted = np.empty_like(fitted_sorted)
    fitted[order] = fitted_sorted
    return fitted


def log_odds(scores: np.ndarray) -> np.ndarray:
    """The scores' log-odds: probabilities (every score in [0, 1]) through the logit, clipped
    to :data:`PROBABILITY_CLIP`; any other scores are taken to be logits already."""
    scores = np.asarray(scores, dtype=np.float64)
    if scores.size and (scores.min() < 0.0 or scores.max() > 1.0):
        return scores
    clipped = np.clip(scores, PROBABILITY_CLIP, 1.0 - PROBABILITY_CLIP)
    return np.log(clipped / (1.0 - clipped))


def logistic_fit(scores: np.ndarray, labels: np.ndarray, *, ridge: float = 1e-3, iterations: int = 100) -> np.ndarray:
    """Platt's fit of ``labels`` on ``scores``: σ(a·x + b), x the scores' :func:`log_odds`,
    by Newton's method on the log-likelihood.

    Args:
        scores: (N,) finite scores (probabilities or logits).
        labels: (N,) 0/1 labels.
        ridge: L2 penalty on the slope of the standardised log-odds, so labels that the scores
            separate perfectly still get a finite fit. Default 1e-3 (negligible for hundreds
            of tracks).
        iterations: most Newton steps. Default 100 (a few suffice).

    Returns:
        (N,) float64 fitted P(label = 1 | score) in (0, 1), in the input order; the labels'
        mean everywhere when all scores are equal.
    """
    x = log_odds(scores)
    y = np.asarray(labels, dtype=np.float64)
    spread = x.std()
    if not spread > 0:
        return np.full(len(y), y.mean())
    design = np.column_stack([np.ones_like(x), (x - x.mean()) / spread])
    penalty = np.diag([0.0, ridge * len(y)])
    weights = np.zeros(2)
    for _ in range(iterations):
        fitted = _sigmoid(design @ weights)
        gradient = design.T @ (fitted - y) + penalty @ weights
        hessian = design.T @ (design * (fitted * (1.0 - fitted))[:, None]) + penalty
        step = np.linalg.solve(hessian + 1e-12 * np.eye(2), gradient)
        weights -= step
        if np.abs(step).max() < 1e-10:
            break
    return _sigmoid(design @ weights)


def _sigmoid(values: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * values))  # no overflow for large |values|
