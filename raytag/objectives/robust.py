"""Noise-robust baselines of Lu et al. 2022 Table 2: bootstrapping and Co-teaching.

* Bootstrapping (Reed et al. 2015): the target is a convex mix of the noisy label and the
  model's own prediction, soft (β = 0.95, the prediction stays in the gradient) or thresholded
  at 0.5 (hard, β = 0.8).
* Co-teaching (Han et al. 2018): two networks each pick the small-loss fraction (1 − R(T)) of
  the batch and the *peer* network learns from that selection; R(T) ramps up over epochs. For
  multi-label tagging we select (track, tag) *entries* by their per-entry BCE, per tag and per
  label class (see ``coteaching_selection``), so that the rare positives are not forgotten
  first.
* Generalized cross-entropy (Zhang & Sabuncu 2018): L_q = (1 − p^q)/q of the probability p
  given to the label, between cross-entropy (q → 0) and MAE (q = 1); applied per tag.
"""

from __future__ import annotations

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

    With p = σ(logits), per entry BCE(logits, target):

    * soft: target = β·y + (1 − β)·p (Reed et al. use β = 0.95). As in Reed et al.'s soft
      bootstrapping, p stays in the gradient: the loss is β·BCE(logits, y) + (1 − β)·H(p),
      with H the binary entropy, so it also rewards confident predictions (entropy
      minimisation). Detaching p would make its gradient β·(p − y), a rescaled BCE.
    * hard: target = β·y + (1 − β)·1[p > 0.5] (Reed et al. use β = 0.8); the indicator has no
      gradient, so the target is a constant.

    Args:
        logits: (N, K) model outputs.
        labels: (N, K) noisy labels in [0, 1].
        beta: weight β in [0, 1] of the given labels.
        mode: "soft" or "hard".

    Returns:
        Scalar: mean over all N·K entries of the per-entry loss.

    Raises:
        ValueError: on an unknown mode, β outside [0, 1] or mismatched shapes.
    """
    if not 0.0 <= beta <= 1.0:
        raise ValueError(f"beta must be in [0, 1], got {beta}")
    if logits.shape != labels.shape:
        raise ValueError(f"logits {tuple(logits.shape)} and labels {tuple(labels.shape)} differ")
    logits = logits.float()
    labels = labels.to(logits.dtype)
    if mode == "soft":
        # BCE(x, β·y + (1 − β)·σ(x)) = β·BCE(x, y) + (1 − β)·BCE(x, σ(x)), and
        # BCE(x, σ(x)) = softplus(x) − x·σ(x) is the entropy of σ(x), written stably.
        entropy = F.softplus(logits) - logits * torch.sigmoid(logits)
        per_entry = beta * F.binary_cross_entropy_with_logits(logits, labels, reduction="none")
        return (per_entry + (1.0 - beta) * entropy).mean()
    if mode == "hard":
        own = (torch.sigmoid(logits.detach()) > 0.5).to(logits.dtype)
        return F.binary_cross_entropy_with_logits(logits, beta * labels + (1.0 - beta) * own)
    raise ValueError(f"mode must be 'soft' or 'hard', got {mode!r}")


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



def coteaching_selection(losses: torch.Tensor, labels: torch.Tensor, *, forget_rate: float) -> torch.Tensor:
    """Small-loss selection of Co-teaching, made per tag and per label class.

    For every tag j, the batch's entries labelled positive for j and those labelled negative
    for j are two separate pools; from each pool of size c the ``⌊forget_rate · c⌋`` entries
    with the largest loss are forgotten and the rest are selected. Ties are broken by the lower
    row index (stable sort), so the selection is deterministic.

    Why per tag and class: ranking all (track, tag) entries of a batch together (or one tag's
    column as a whole) ranks mostly by class, not by label correctness. Positives are the rare
    class of nearly every tag, and a tagger's loss on them is systematically higher, so a pooled
    small-loss rule forgets most positives and few negatives, the opposite of what missing-tag
    noise (true positives labelled negative) needs. Within one tag and class, a high loss does
    mean "disagrees with the label": a labelled negative the network is confident about (a
    suspected missing tag) or a labelled positive it rejects (a suspected spurious tag). Each
    pool then loses the same share, so the class balance of every tag is what it was.
    Per sample (rows) was not chosen: clips differ in how many tags they have, and a clip's loss
    summed over tags says little about which of its labels is wrong.

    Args:
        losses: (N, K) per-entry losses (no gradient needed; they are only ranked).
        labels: (N, K) noisy labels in [0, 1]; an entry > 0.5 counts as positive.
        forget_rate: R in [0, 1], the share of each pool to forget (see ``forget_rate``).
            R = 0 selects everything, R = 1 nothing.

    Returns:
        (N, K) bool, True where the entry is selected. Per tag, the selected share of
        positives and of negatives are each 1 − R rounded up to a whole entry.

    Raises:
        ValueError: on a rate outside [0, 1], or shapes that differ or are not 2-D.
    """
    if not 0.0 <= forget_rate <= 1.0:
        raise ValueError(f"forget_rate must be in [0, 1], got {forget_rate}")
    if losses.dim() != 2 or losses.shape != labels.shape:
        raise ValueError(f"losses {tuple(losses.shape)} and labels {tuple(labels.shape)} must both be (N, K)")
    positive = labels.float() > 0.5
    rows = losses.shape[0]
    # Order every column by loss (stable: ties keep row order), then stably move the negatives
    # ahead of the positives: each column lists its negatives, then its positives, by loss.
    by_loss = torch.argsort(losses.detach(), dim=0, stable=True)
    by_class = torch.argsort(positive.gather(0, by_loss).to(torch.int8), dim=0, stable=True)
    order = by_loss.gather(0, by_class)  # (N, K): row at each position of each column
    position = torch.empty_like(order)
    position.scatter_(0, order, torch.arange(rows, device=losses.device).unsqueeze(1).expand_as(order))
    negatives = (~positive).sum(dim=0, keepdim=True)  # (1, K)
    positives = rows - negatives
    rank = position - torch.where(positive, negatives, 0)  # rank within the entry's own pool
    # A small epsilon: (1 - 0.9) * 10 is 0.999..., which should forget 1 entry, not 0.
    forget_negatives = torch.floor(forget_rate * negatives.double() + 1e-9).long()
    forget_positives = torch.floor(forget_rate * positives.double() + 1e-9).long()
    keep = torch.where(positive, positives - forget_positives, negatives - forget_negatives)
    return rank < keep


def coteaching_losses(
    logits_a: torch.Tensor,
    logits_b: torch.Tensor,
    labels: torch.Tensor,
    *,
    forget_rate: float,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Co-teaching losses of Han et al. 2018, selecting entries per tag and label class.

    Each network selects the small-loss entries of the batch by its own per-entry BCE
    (detached), with :func:`coteaching_selection`: per tag, the same share 1 − R of the
    labelled positives and of the labelled negatives. Network a is trained on the entries
    selected by b and vice versa.

    Args:
        logits_a: (N, K) outputs of network a.
        logits_b: (N, K) outputs of network b, on the same batch.
        labels: (N, K) noisy labels in [0, 1].
        forget_rate: R(T) in [0, 1], the share of each tag's positives and of its negatives
            that each network discards (see ``forget_rate``).

    Returns:
        ``(loss_a, loss_b)``: the mean BCE of network a over b's selection, and of b over a's.
        Each carries gradient only to its own network's logits. A selection with no entry
        (R = 1) gives a zero loss that is still connected to the graph.

    Raises:
        ValueError: on mismatched shapes, an empty batch or a rate outside [0, 1].
    """
    if logits_a.shape != labels.shape or logits_b.shape != labels.shape:
        raise ValueError(
            f"logits_a {tuple(logits_a.shape)}, logits_b {tuple(logits_b.shape)} and labels "
            f"{tuple(labels.shape)} must have the same shape"
        )
    if labels.numel() == 0:
        raise ValueError("co-teaching needs a non-empty batch")
    targets = labels.float()
    losses_a = F.binary_cross_entropy_with_logits(logits_a.float(), targets, reduction="none")
    losses_b = F.binary_cross_entropy_with_logits(logits_b.float(), targets, reduction="none")
    selected_by_a = coteaching_selection(losses_a, labels, forget_rate=forget_rate)
    selected_by_b = coteaching_selection(losses_b, labels, forget_rate=forget_rate)
    return _mean_over(losses_a, selected_by_b), _mean_over(losses_b, selected_by_a)


def _mean_over(losses: torch.Tensor, selected: torch.Tensor) -> torch.Tensor:
    """Mean of ``losses`` over the ``selected`` entries; 0 (with a graph) if there is none."""
    weights = selected.to(losses.dtype)
    return (losses * weights).sum() / weights.sum().clamp(min=1.0)


def generalized_cross_entropy(logits: torch.Tensor, targets: torch.Tensor, *, q: float) -> torch.Tensor:
    """Per-entry generalized cross-entropy of Zhang & Sabuncu 2018, for independent sigmoid tags.

    For one tag, L_q(p) = (1 − p^q)/q with p the probability the model gives the label: σ(x) for
    a positive, 1 − σ(x) for a negative; a soft target y weighs the two, y·L_q(σ(x)) +
    (1 − y)·L_q(1 − σ(x)). q → 0 recovers BCE (−log p), q = 1 is the mean absolute error
    1 − p. Its gradient is p^q times BCE's, so entries the model confidently disagrees with (a
    wrong or missing label, small p) weigh less. Written as −expm1(q·log p)/q with log p from
    ``logsigmoid``: exact for small q and finite for any logit.

    Args:
        logits: (N, K) model outputs.
        targets: (N, K) labels or soft labels in [0, 1].
        q: in (0, 1]; Zhang & Sabuncu's experiments use 0.7.

    Returns:
        (N, K) float32 per-entry losses, in [0, 1/q].

    Raises:
        ValueError: on q outside (0, 1] or shapes that differ.
    """
    if not 0.0 < q <= 1.0:
        raise ValueError(f"q must be in (0, 1], got {q}")
    if logits.shape != targets.shape:
        raise ValueError(f"logits {tuple(logits.shape)} and targets {tuple(targets.shape)} differ")
    logits = logits.float()
    targets = targets.to(logits.dtype)
    positive = -torch.expm1(q * F.logsigmoid(logits)) / q
    negative = -torch.expm1(q * F.logsigmoid(-logits)) / q
    return targets * positive + (1.0 - targets) * negative
