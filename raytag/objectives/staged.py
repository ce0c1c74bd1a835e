"""Staged training with an updatable loss threshold (He et al. 2020, §3.1, eqs. 1-3).

Stage 1 trains on verified clips only; stage 2 on verified and unverified clips, where the loss
C_i of an *unverified* clip is ignored when it exceeds a threshold η that follows the batches'
k-th largest loss; stage 3 fine-tunes on verified clips only. The stages are the caller's
schedule; this module holds the stage-2 arithmetic, one step at a time::

    losses = clip_losses(logits, labels)                       # (N,) C_i, with gradient
    eta = update_threshold(eta, losses.detach(), k=10, alpha=0.9, rows=valid)
    keep = staged_keep_mask(losses.detach(), verified=verified, threshold=eta) & valid
    loss = bce(logits, labels, keep)                           # or any reduction over kept rows

Eq. 1 as printed, L = Σ_i (1 − M_i·V_i)·C_i with V_i = 1 for verified clips, would ignore
large-loss *verified* clips and keep every unverified one, the opposite of the text ("ignore
the noisy samples ... from unverified data"). We implement the text: a clip is ignored when
M_i = 1 and it is unverified, i.e. L = Σ_i (1 − M_i·(1 − V_i))·C_i; verified clips always count.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from raytag.objectives.bce import Reduction, per_clip

PAPER_K = 10
"""He et al.'s k: the threshold follows the 10th largest clip loss of a 64-clip batch."""
PAPER_ALPHA = 0.9
"""He et al.'s smoothing coefficient α of eq. 3."""


def clip_losses(logits: torch.Tensor, labels: torch.Tensor, *, reduction: Reduction = "clip") -> torch.Tensor:
    """Per-clip loss C_i of eq. 1: binary cross-entropy over the K tags, summed or averaged.

    Summing or averaging over tags does not change which clips are ignored (the threshold
    follows the same losses and scales with them); it sets the loss's scale. The sum
    (``"clip"``) is the per-clip loss of Lu et al. eq. 1 and of ``masked_bce``; the mean
    (``"entry"``) gives the mean of the C_i the scale of ``bce``'s default, which is what
    staged training uses so that its stages 1 and 3 (plain ``bce``) and 2 share one scale.

    Args:
        logits: (N, K) model outputs.
        labels: (N, K) labels in [0, 1].
        reduction: ``"clip"`` (default: sum over tags) or ``"entry"`` (mean over tags).

    Returns:
        (N,) float32 losses, connected to ``logits``'s graph (detach them for the threshold).

    Raises:
        ValueError: if the shapes differ or are not 2-D, or on an unknown reduction.
    """
    if logits.dim() != 2 or logits.shape != labels.shape:
        raise ValueError(f"logits {tuple(logits.shape)} and labels {tuple(labels.shape)} must both be (N, K)")
    return per_clip(F.binary_cross_entropy_with_logits(logits.float(), labels.float(), reduction="none"),
                    reduction=reduction)


def update_threshold(
    previous: torch.Tensor | None,
    losses: torch.Tensor,
    *,
    k: int = PAPER_K,
    alpha: float = PAPER_ALPHA,
    rows: torch.Tensor | None = None,
) -> torch.Tensor | None:
    """One step of eq. 3: η_t = α·η_{t−1} + (1 − α)·T_t, T_t the k-th largest loss of the batch.

    T_t is taken over every counted clip of the batch, verified or not (the paper: "the value
    of ranked k loss in current batch").

    Start (η_0; the paper does not give one): the first batch with at least k counted clips
    sets η_1 = T_1. A fixed η_0 would either ignore nearly every unverified clip at first
    (η_0 = 0: η stays far below the losses for about 1/(1 − α) steps) or need a scale that
    depends on the loss (an arbitrary large value); T_1 is the paper's own statistic and stage 2
    starts from a model already trained in stage 1, so its first batch's losses are meaningful.

    Batches with fewer than k counted clips (a short last batch, a small per-worker batch)
    have no k-th largest loss: η is left unchanged (``previous`` is returned, which is ``None``
    if no batch has set it yet). The batch's clips are still judged against that η.

    Scale k with the batch: the paper's k = 10 is for 64 clips (half verified) per batch, about
    the largest 16 %. Under data-parallel training compute T_t on the global batch (gather
    the per-clip losses) or scale k to the per-worker batch, so that every worker keeps the
    same η.

    Args:
        previous: η_{t−1} as a 0-d tensor, or ``None`` before the first update.
        losses: (N,) per-clip losses C_i of this batch (detached).
        k: which largest loss sets T_t, ≥ 1 (paper: 10).
        alpha: smoothing α in [0, 1] (paper: 0.9); 0 follows T_t alone (the "top k" rule of
            He et al.'s earlier system, for the k-th loss of every batch), 1 freezes η.
        rows: optional (N,) bool, which clips count (e.g. clips that decoded). Default: all.

    Returns:
        η_t as a 0-d float32 tensor on ``losses``'s device, or ``None`` if still undefined.

    Raises:
        ValueError: on k < 1, α outside [0, 1], or losses / rows of the wrong shape.
    """
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must be in [0, 1], got {alpha}")
    if losses.dim() != 1:
        raise ValueError(f"losses must be (N,), got shape {tuple(losses.shape)}")
    counted = losses.detach().float()
    if rows is not None:
        if rows.shape != losses.shape:
            raise ValueError(f"rows has shape {tuple(rows.shape)}, losses {tuple(losses.shape)}")
        counted = counted[rows.to(device=losses.device, dtype=torch.bool)]
    if counted.numel() < k:
        return previous
    kth_largest = torch.topk(counted, k).values[-1]
    if previous is None:
        return kth_largest
    return alpha * previous.to(kth_largest) + (1.0 - alpha) * kth_largest


def staged_keep_mask(
    losses: torch.Tensor, *, verified: torch.Tensor, threshold: torch.Tensor | None
) -> torch.Tensor:
    """Which clips count in stage 2 (eqs. 1-2): every verified clip, and each unverified clip
    whose loss is at most η (M_i = 1 iff C_i > η).

    Args:
        losses: (N,) per-clip losses C_i.
        verified: (N,) bool (or 0/1), True for clips with verified labels (V_i = 1).
        threshold: η_t from :func:`update_threshold`; ``None`` (not yet set) keeps every clip.

    Returns:
        (N,) bool keep mask on ``losses``'s device; its complement among unverified clips is
        what stage 2 ignores.

    Raises:
        ValueError: if ``losses`` is not 1-D or ``verified`` has another shape.
    """
    if losses.dim() != 1 or verified.shape != losses.shape:
        raise ValueError(f"losses {tuple(losses.shape)} and verified {tuple(verified.shape)} must both be (N,)")
    verified = verified.to(device=losses.device) > 0
    if threshold is None:
        return torch.ones_like(verified)
    return verified | (losses.detach().float() <= threshold.to(losses.device))
