"""Binary cross-entropy on logits, plain and masked."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def bce(logits: torch.Tensor, targets: torch.Tensor, rows: torch.Tensor | None = None) -> torch.Tensor:
    """Mean binary cross-entropy over the entries of the kept rows.

    Args:
        logits: (N, K) model outputs.
        targets: (N, K) labels or soft labels in [0, 1].
        rows: optional (N,) bool, which rows count (e.g. clips that decoded). With no row kept
            the loss is 0 but still connected to the graph, so DDP sees every parameter.
    """
    losses = F.binary_cross_entropy_with_logits(logits.float(), targets.float(), reduction="none")
    if rows is None:
        return losses.mean()
    kept = rows.to(losses.dtype).unsqueeze(1)
    return (losses * kept).sum() / (kept.sum() * losses.shape[1]).clamp(min=1.0)


def masked_bce(logits: torch.Tensor, targets: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Masked BCE (Lu et al. eq. 2): (1/N) Σ_i Σ_j m_ij · BCE(ŷ_ij, ỹ_ij).

    Args:
        logits: (N, K).
        targets: (N, K) noisy labels.
        mask: (N, K) 0/1, which entries count.
    """
    losses = F.binary_cross_entropy_with_logits(logits.float(), targets.float(), reduction="none")
    return (losses * mask.to(losses.dtype)).sum() / logits.shape[0]
