"""Noise-robust baselines of Lu et al. 2022 Table 2: bootstrapping and Co-teaching.

* Bootstrapping (Reed et al. 2015): the target is a convex mix of the noisy label and the
  model's own (detached) prediction, soft (β = 0.95) or thresholded at 0.5 (hard, β = 0.8).
* Co-teaching (Han et al. 2018): two networks each pick the small-loss fraction (1 − R(T)) of
  the batch and the *peer* network learns from that selection; R(T) ramps up over epochs. For
  multi-label tagging we select (track, tag) *entries* by their per-entry BCE, not whole tracks.
"""

from __future__ import annotations

import math
from typing import Literal

import torch
import torch.nn.functional as F


def bootstrap_loss(
    logits: torch.Tensor,
    labels: torch.Tensor,
    *,
    beta: float,
    mode: Literal["soft", "hard"],
) -> torch.Tensor:
    """Bootstrapping loss of Reed et al. 2015, for independent sigmoid outputs.

    With p = σ(logits) treated as a constant (detached):

    * soft: target = β·y + (1 − β)·p (Reed et al. use β = 0.95);
    * hard: target = β·y + (1 − β)·1[p > 0.5] (Reed et al. use β = 0.8).

    Detaching p means the gradient is that of a BCE against a fixed, partly self-predicted
    target; it keeps the soft variant from rewarding confident predictions for their own sake.

    Args:
        logits: (N, K) model outputs.
        labels: (N, K) noisy labels in [0, 1].
        beta: weight β in [0, 1] of the given labels.
        mode: "soft" or "hard".

    Returns:
        Scalar: mean BCE over all N·K entries against the bootstrapped targets.

    Raises:
        ValueError: on an unknown mode, β outside [0, 1] or mismatched shapes.
    """
    if not 0.0 <= beta <= 1.0:
        raise ValueError(f"beta must be in [0, 1], got {beta}")
    if logits.shape != labels.shape:
        raise ValueError(f"logits {tuple(logits.shape)} and labels {tuple(labels.shape)} differ")
    logits = logits.float()
    predictions = torch.sigmoid(logits.detach())
    if mode == "soft":
        own = predictions
    elif mode == "hard":
        own = (predictions > 0.5).to(logits.dtype)
    else:
        raise ValueError(f"mode must be 'soft' or 'hard', got {mode!r}")
    targets = beta * labels.to(logits.dtype) + (1.0 - beta) * own
    return F.binary_cross_entropy_with_logits(logits, targets)


def forget_rate(epoch: int, *, tau: float, num_gradual: int, exponent: float = 1.0) -> float:
    """Co-teaching forget-rate schedule of Han et al. 2018: R(T) = τ · min((T/T_k)^c, 1).

    Args:
        epoch: T, 0-based epoch index (R(0) = 0: the first epoch keeps everything).
        tau: final forget rate τ in [0, 1] (Han et al. set it to the estimated noise rate).
        num_gradual: T_k, epochs over which R ramps up to τ (Han et al.: 10 or 5). 0 means
            τ from the start.
        exponent: c > 0, the ramp's shape (1 = linear).

    Returns:
        R(T) in [0, τ].

    Raises:
        ValueError: on a negative epoch or num_gradual, τ outside [0, 1] or c ≤ 0.
    """
    if epoch < 0 or num_gradual < 0:
        raise ValueError(f"epoch and num_gradual must be >= 0, got {epoch=}, {num_gradual=}")
    if not 0.0 <= tau <= 1.0:
        raise ValueError(f"tau must be in [0, 1], got {tau}")
    if exponent <= 0:
        raise ValueError(f"exponent must be > 0, got {exponent}")
    if num_gradual == 0 or epoch >= num_gradual:
        return float(tau)
    return float(tau) * min((epoch / num_gradual) ** exponent, 1.0)


def coteaching_losses(
    logits_a: torch.Tensor,
    logits_b: torch.Tensor,
    labels: torch.Tensor,
    *,
    forget_rate: float,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Co-teaching losses of Han et al. 2018, selecting (track, tag) entries.

    Each network ranks the N·K entries of the batch by its own per-entry BCE (detached) and
    selects the ``num_keep = max(1, ⌊(1 − forget_rate)·N·K⌋)`` smallest; ties are broken by
    the lower row-major index (stable sort), so the selection is deterministic. Network a is
    trained on the entries selected by b and vice versa.

    Note that negatives usually dominate the small-loss set in imbalanced tagging data; that is
    the method as published (Lu et al. report it does not beat the baseline).

    Args:
        logits_a: (N, K) outputs of network a.
        logits_b: (N, K) outputs of network b, on the same batch.
        labels: (N, K) noisy labels in [0, 1].
        forget_rate: R(T) in [0, 1], the fraction of entries each network discards
            (see ``forget_rate``).

    Returns:
        ``(loss_a, loss_b)``: the mean BCE of network a over b's selection, and of b over a's.
        Each carries gradient only to its own network's logits.

    Raises:
        ValueError: on mismatched shapes, an empty batch or a rate outside [0, 1].
    """
    if not 0.0 <= forget_rate <= 1.0:
        raise ValueError(f"forget_rate must be in [0, 1], got {forget_rate}")
    if logits_a.shape != labels.shape or logits_b.shape != labels.shape:
        raise ValueError(
            f"logits_a {tuple(logits_a.shape)}, logits_b {tuple(logits_b.shape)} and labels "
            f"{tuple(labels.shape)} must have the same shape"
        )
    targets = labels.float()
    losses_a = F.binary_cross_entropy_with_logits(logits_a.float(), targets, reduction="none")
    losses_b = F.binary_cross_entropy_with_logits(logits_b.float(), targets, reduction="none")
    total = losses_a.numel()
    if total == 0:
        raise ValueError("co-teaching needs a non-empty batch")
    # Small epsilon: (1 - 0.9) * 10 is 0.999..., which should keep 1 entry, not 0.
    num_keep = min(total, max(1, math.floor((1.0 - forget_rate) * total + 1e-9)))
    selected_by_a = _smallest(losses_a.detach().flatten(), num_keep)
    selected_by_b = _smallest(losses_b.detach().flatten(), num_keep)
    loss_a = losses_a.flatten()[selected_by_b].mean()
    loss_b = losses_b.flatten()[selected_by_a].mean()
    return loss_a, loss_b


def _smallest(values: torch.Tensor, count: int) -> torch.Tensor:
    """Indices of the ``count`` smallest of a 1-D tensor; ties go to the lower index."""
    return torch.argsort(values, stable=True)[:count]
