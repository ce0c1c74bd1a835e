"""Binary cross-entropy on logits, plain and masked, and the two reductions raytag uses.

Two reductions of an (N, K) table of per-entry losses, named once here so that every term added
to a loss (consistency, the unlabelled part of noisy student training, the multi-activation
head) can use the same one as the term it is added to:

* ``"entry"``: the mean over the N·K entries (of kept rows), as ``bce`` and Keras's
  ``binary_crossentropy``; a value per (track, tag).
* ``"clip"``: the sum over the K tags, averaged over the N clips (of kept rows), as Lu et al.
  eqs. 1, 2 and 5 write it; K times the ``"entry"`` value for the same per-entry losses.
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F

Reduction = Literal["entry", "clip"]
REDUCTIONS: tuple[str, ...] = ("entry", "clip")


def reduce_losses(
    losses: torch.Tensor, *, reduction: Reduction, rows: torch.Tensor | None = None
) -> torch.Tensor:
    """Reduces (N, K) per-entry losses to a scalar, over the kept rows.

    Args:
        losses: (N, K) per-entry losses.
        reduction: ``"entry"`` (mean over the entries of kept rows) or ``"clip"`` (sum over
            tags, mean over kept rows).
        rows: optional (N,) bool or 0/1 weights, which rows count (default: all). With no row
            kept the result is 0 but still connected to the graph, so DDP sees every parameter.

    Returns:
        Scalar float32 loss.

    Raises:
        ValueError: on an unknown reduction, losses that are not 2-D or rows of another length.
    """
    if reduction not in REDUCTIONS:
        raise ValueError(f"reduction must be one of {REDUCTIONS}, got {reduction!r}")
    if losses.dim() != 2:
        raise ValueError(f"losses must be (N, K), got shape {tuple(losses.shape)}")
    per_entry = 1.0 if reduction == "clip" else float(losses.shape[1])
    if rows is None:
        return losses.sum() / (max(losses.shape[0], 1) * per_entry)
    if rows.shape != (losses.shape[0],):
        raise ValueError(f"rows must be ({losses.shape[0]},), got shape {tuple(rows.shape)}")
    kept = rows.to(device=losses.device, dtype=losses.dtype).unsqueeze(1)
    return (losses * kept).sum() / (kept.sum() * per_entry).clamp(min=1.0)


def per_clip(losses: torch.Tensor, *, reduction: Reduction) -> torch.Tensor:
    """Each row's share of a reduction: (N, K) per-entry losses to (N,) per-clip losses whose
    mean over clips is ``reduce_losses`` of the same table (sum over tags for ``"clip"``, mean
    for ``"entry"``).

    Raises:
        ValueError: on an unknown reduction or losses that are not 2-D.
    """
    if reduction not in REDUCTIONS:
        raise ValueError(f"reduction must be one of {REDUCTIONS}, got {reduction!r}")
    if losses.dim() != 2:
        raise ValueError(f"losses must be (N, K), got shape {tuple(losses.shape)}")
    return losses.sum(dim=1) if reduction == "clip" else losses.mean(dim=1)


def bce(
    logits: torch.Tensor,
    targets: torch.Tensor,
    rows: torch.Tensor | None = None,
    *,
    reduction: Reduction = "entry",
) -> torch.Tensor:
    """Binary cross-entropy of logits against (soft) labels, over the kept rows.

    Args:
        logits: (N, K) model outputs.
        targets: (N, K) labels or soft labels in [0, 1].
        rows: optional (N,) bool, which rows count (e.g. clips that decoded). With no row kept
            the loss is 0 but still connected to the graph, so DDP sees every parameter.
        reduction: ``"entry"`` (default: the mean over the N·K entries) or ``"clip"`` (summed
            over tags, averaged over clips: Lu et al. eq. 1, the scale of ``masked_bce``). Use
            the base loss's reduction for a term added to it, e.g. the unlabelled part of noisy
            student training next to a Balanced-Masking (eq. 2, per clip) labelled part.
    """
    losses = F.binary_cross_entropy_with_logits(logits.float(), targets.float(), reduction="none")
    return reduce_losses(losses, reduction=reduction, rows=rows)


def masked_bce(logits: torch.Tensor, targets: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Masked BCE (Lu et al. eq. 2): (1/N) Σ_i Σ_j m_ij · BCE(ŷ_ij, ỹ_ij), a ``"clip"`` reduction.

    Args:
        logits: (N, K).
        targets: (N, K) noisy labels.
        mask: (N, K) 0/1, which entries count.
    """
    losses = F.binary_cross_entropy_with_logits(logits.float(), targets.float(), reduction="none")
    return (losses * mask.to(losses.dtype)).sum() / logits.shape[0]
