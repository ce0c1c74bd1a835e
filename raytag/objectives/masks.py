"""Loss masks for noisy multi-label tagging (Lu et al. 2022, Algorithm 1 and eq. 3).

Two masks, both 0/1 over the (track, tag) entries of a batch or a data set:

* ``balanced_training_mask`` (Algorithm 1, "Balanced-Training"): per batch and per tag, randomly
  drop entries of the majority class so that positives and negatives count equally in
  expectation.
* ``negative_thresholds`` + ``suspected_missing_mask`` (eq. 3, "Balanced-Masking"): a stage-1
  teacher scores every training track; a labelled negative that scores at or above the chosen
  percentile of its tag's negatives is a suspected missing tag and is masked out. The result is
  passed per batch as ``keep`` to ``balanced_training_mask``, which then balances what remains.

The masks feed ``masked_bce`` (eq. 2).
"""

from __future__ import annotations

import numpy as np
import torch


def balanced_training_mask(
    labels: torch.Tensor,
    *,
    generator: torch.Generator | None = None,
    keep: torch.Tensor | None = None,
) -> torch.Tensor:
    """Random class-balancing mask of Lu et al. Algorithm 1.

    For every tag j, over the entries still kept (``keep``), count p_j labelled positives and
    n_j labelled negatives. If n_j > p_j, each kept negative is dropped independently with
    probability (n_j − p_j)/n_j; otherwise each kept positive is dropped with probability
    (p_j − n_j)/p_j. The expected number of surviving majority entries is then the minority
    count, so positives and negatives are balanced in expectation. Minority entries are never
    dropped.

    Degenerate tags, following Algorithm 1 literally (no special case in the paper):

    * p_j = 0, n_j > 0 (no positive in the batch): n_j > p_j and the drop probability is
      (n_j − 0)/n_j = 1, so **every negative of that tag is dropped** and the tag contributes
      nothing to the loss for this batch.
    * n_j = 0, p_j > 0 (every kept entry positive): the else-branch applies with probability
      (p_j − 0)/p_j = 1, so **every positive of that tag is dropped** as well.
    * p_j = n_j (including p_j = n_j = 0, where there is nothing to keep): the else-branch with
      probability 0; nothing is dropped. No division by zero happens in any case.

    Args:
        labels: (N, K) noisy labels, 0/1 (bool, integer or float; an entry > 0.5 counts as
            positive).
        generator: source of every random draw. Its device may differ from ``labels``'s; the
            uniform draws are made on the generator's device and moved. ``None`` uses torch's
            global generator (not reproducible; pass one in training code).
        keep: optional (N, K) 0/1 mask of entries already kept (e.g. the eq. 3 mask of
            ``suspected_missing_mask``). Entries outside ``keep`` are 0 in the output and are
            not counted in p_j or n_j. Defaults to all ones.

    Returns:
        (N, K) float32 0/1 mask on ``labels``'s device; 1 = the entry counts in eq. 2.

    Raises:
        ValueError: if ``labels`` is not 2-D or ``keep`` has a different shape.
    """
    if labels.dim() != 2:
        raise ValueError(f"labels must be (N, K), got shape {tuple(labels.shape)}")
    device = labels.device
    positive = labels.to(torch.float32) > 0.5
    if keep is None:
        kept = torch.ones_like(positive)
    else:
        if keep.shape != labels.shape:
            raise ValueError(f"keep has shape {tuple(keep.shape)}, labels {tuple(labels.shape)}")
        kept = keep.to(device=device, dtype=torch.float32) > 0.5

    kept_pos = kept & positive
    kept_neg = kept & ~positive
    p = kept_pos.sum(dim=0).to(torch.float32)  # (K,)
    n = kept_neg.sum(dim=0).to(torch.float32)  # (K,)
    drop_negatives = n > p  # (K,) which class is the majority, per tag
    # Drop probability of the majority class; max(·, 1) only guards 0/0 when p = n = 0.
    drop_prob = torch.where(
        drop_negatives, (n - p) / n.clamp(min=1.0), (p - n) / p.clamp(min=1.0)
    )  # (K,)

    draw_device = generator.device if generator is not None else device
    rnd = torch.rand(labels.shape, generator=generator, device=draw_device).to(device)
    majority = torch.where(drop_negatives.unsqueeze(0), kept_neg, kept_pos)  # (N, K)
    dropped = majority & (rnd < drop_prob.unsqueeze(0))
    return (kept & ~dropped).to(torch.float32)


def negative_thresholds(scores: np.ndarray, labels: np.ndarray, percentile: float) -> np.ndarray:
    """Per-tag thresholds ξ_j of Lu et al. eq. 3.

    ξ_j is the ``percentile``-th percentile of the teacher's scores over the tracks labelled
    negative for tag j (numpy's default linear interpolation). The paper uses 80.

    Args:
        scores: (N, K) stage-1 teacher scores (probabilities or logits; any monotone scale
            works as long as ``suspected_missing_mask`` gets the same scale).
        labels: (N, K) noisy labels, 0/1; an entry < 0.5 counts as a labelled negative.
        percentile: in [0, 100].

    Returns:
        (K,) float64 thresholds; +inf for a tag with no labelled negative (nothing masked).

    Raises:
        ValueError: if the percentile is outside [0, 100] or not finite, or the shapes differ
            or are not 2-D.
    """
    percentile = float(percentile)
    if not np.isfinite(percentile) or not 0.0 <= percentile <= 100.0:
        raise ValueError(f"percentile must be in [0, 100], got {percentile}")
    scores = np.asarray(scores, dtype=np.float64)
    labels = np.asarray(labels)
    if scores.ndim != 2 or scores.shape != labels.shape:
        raise ValueError(
            f"scores and labels must both be (N, K); got {scores.shape} and {labels.shape}"
        )
    negative = labels < 0.5
    thresholds = np.full(scores.shape[1], np.inf, dtype=np.float64)
    for j in range(scores.shape[1]):
        negative_scores = scores[negative[:, j], j]
        if negative_scores.size:
            thresholds[j] = np.percentile(negative_scores, percentile)
    return thresholds


def suspected_missing_mask(
    scores: np.ndarray, labels: np.ndarray, thresholds: np.ndarray
) -> np.ndarray:
    """Balanced-Masking mask of Lu et al. eq. 3.

    m_ij = 0 if the label is negative and the teacher's score is ≥ ξ_j (a suspected missing
    tag); 1 otherwise. Labelled positives are never masked.

    Args:
        scores: (N, K) stage-1 teacher scores, on the scale used for ``thresholds``.
        labels: (N, K) noisy labels, 0/1 (< 0.5 counts as negative).
        thresholds: (K,) ξ_j from ``negative_thresholds``.

    Returns:
        (N, K) float32 0/1 mask.

    Raises:
        ValueError: if the shapes do not agree.
    """
    scores = np.asarray(scores)
    labels = np.asarray(labels)
    thresholds = np.asarray(thresholds)
    if scores.ndim != 2 or scores.shape != labels.shape:
        raise ValueError(
            f"scores and labels must both be (N, K); got {scores.shape} and {labels.shape}"
        )
    if thresholds.shape != (scores.shape[1],):
        raise ValueError(f"thresholds must be ({scores.shape[1]},), got {thresholds.shape}")
    suspected = (labels < 0.5) & (scores >= thresholds[None, :])
    return (~suspected).astype(np.float32)
