"""Losses of the sigmoid-sparsemax multi-activation head (He et al. 2020 §3.2, eqs. 5-9).

The head (:mod:`raytag.models.heads`) gives, in training mode, two (B, K) tensors: sigmoid
logits s, trained with BCE against the labels, and sparsemax scores z, trained with the
sparsemax loss (eq. 9, Martins & Astudillo 2016) against the clip's label set as a uniform
distribution q (He et al.: "we regard multiple labels as uniformly distributed").

Sparsemax itself (eq. 5, the Euclidean projection onto the simplex) comes from the maintained
``entmax`` package. Its ``sparsemax_loss`` takes one class index per row, not a distribution, so
eq. 9 is written here from the projection p* = sparsemax(z), in its Fenchel-Young form

    L(z; q) = p*·z − ½‖p*‖² − q·z + ½‖q‖²,

which equals eq. 9 (on the support S, p*_j = z_j − τ, so p*·z − ½‖p*‖² = ½ Σ_{j∈S}(z_j² − τ²)).
Its gradient is p* − q; it is ≥ 0 and 0 exactly when sparsemax(z) = q. For a one-hot q it is
entmax's ``sparsemax_loss``.

Clips with no label have no target distribution (a uniform distribution over an empty set):
the sparsemax term leaves them out (they give it no loss and no gradient); the sigmoid
term still trains on them (all K entries negative).
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F
from entmax import sparsemax

from raytag.objectives.bce import Reduction, per_clip, reduce_losses

__all__ = [
    "MultiActivationLosses",
    "label_distribution",
    "multi_activation_clip_losses",
    "multi_activation_losses",
    "sparsemax_loss",
]


class MultiActivationLosses(NamedTuple):
    """The two terms of the multi-activation loss; the total is their sum (He et al.)."""

    sigmoid: torch.Tensor
    sparsemax: torch.Tensor


def label_distribution(labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Each clip's label set as a uniform distribution over its positive tags.

    Args:
        labels: (B, K) labels; an entry > 0.5 counts as a positive tag.

    Returns:
        ``(q, labelled)``: (B, K) float32 rows that sum to 1 (all zeros for a clip with no
        positive tag) and (B,) bool, True where the clip has at least one positive.
    """
    positive = (labels.float() > 0.5).float()
    counts = positive.sum(dim=1, keepdim=True)
    return positive / counts.clamp(min=1.0), counts.squeeze(1) > 0


def sparsemax_loss(scores: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Sparsemax loss of eq. 9 against a target distribution, per clip.

    Args:
        scores: (B, K) sparsemax scores z.
        target: (B, K) distributions q (rows on the simplex).

    Returns:
        (B,) float32 losses L(z; q) ≥ 0, with gradient sparsemax(z) − q w.r.t. ``scores``.

    Raises:
        ValueError: if the shapes differ or are not 2-D.
    """
    if scores.dim() != 2 or scores.shape != target.shape:
        raise ValueError(f"scores {tuple(scores.shape)} and target {tuple(target.shape)} must both be (B, K)")
    z = scores.float()
    q = target.to(z)
    p = sparsemax(z, dim=-1)
    return (p * z).sum(dim=1) - 0.5 * p.square().sum(dim=1) - (q * z).sum(dim=1) + 0.5 * q.square().sum(dim=1)


def _unpack(output) -> tuple[torch.Tensor, torch.Tensor]:
    """(sigmoid logits, sparsemax scores) of a training-mode multi-activation output."""
    if not isinstance(output, tuple) or len(output) != 2:
        raise ValueError(
            "expected the (sigmoid_logits, sparsemax_scores) pair a sigmoid_sparsemax head returns "
            f"in training mode, got {type(output).__name__} (is the model in eval mode, or without "
            "the head?)"
        )
    sigmoid_logits, sparsemax_scores = output
    if sigmoid_logits.shape != sparsemax_scores.shape or sigmoid_logits.dim() != 2:
        raise ValueError(
            f"sigmoid logits {tuple(sigmoid_logits.shape)} and sparsemax scores "
            f"{tuple(sparsemax_scores.shape)} must both be (B, K)"
        )
    return sigmoid_logits, sparsemax_scores


def multi_activation_losses(
    output,
    labels: torch.Tensor,
    *,
    weights: torch.Tensor | None = None,
    reduction: Reduction = "entry",
) -> MultiActivationLosses:
    """The two terms of He et al.'s multi-activation loss, over the kept clips.

    * ``sigmoid``: BCE of the sigmoid logits against the labels, reduced as ``bce`` with
      ``reduction`` (``"entry"``: mean over entries, as Keras's ``binary_crossentropy``, which
      the paper's system adds to the per-clip sparsemax loss; ``"clip"``: summed over tags).
    * ``sparsemax``: the sparsemax loss (eq. 9) against the uniform label distribution,
      averaged over kept clips that have at least one label (a per-clip quantity, so it has no
      per-entry form).

    Args:
        output: the head's training-mode output, a (sigmoid_logits, sparsemax_scores) pair of
            (B, K) tensors (:class:`raytag.models.heads.MultiActivationOutput`).
        labels: (B, K) labels, 0/1.
        weights: optional (B,) bool or 0/1 keep flags per clip (clips that decoded, or that
            staged training keeps); default all. A term with no clip to average over is 0
            and still connected to the graph.
        reduction: of the sigmoid term, ``"entry"`` (default) or ``"clip"``.

    Returns:
        :class:`MultiActivationLosses` of two scalar float32 tensors.

    Raises:
        ValueError: on an output that is not such a pair, or shapes that do not agree.
    """
    sigmoid_logits, sparsemax_scores = _unpack(output)
    if labels.shape != sigmoid_logits.shape:
        raise ValueError(f"labels {tuple(labels.shape)} and outputs {tuple(sigmoid_logits.shape)} differ")
    rows = None if weights is None else weights.to(device=labels.device, dtype=torch.float32)
    if rows is not None and rows.shape != (labels.shape[0],):
        raise ValueError(f"weights must be ({labels.shape[0]},), got shape {tuple(rows.shape)}")
    entries = F.binary_cross_entropy_with_logits(sigmoid_logits.float(), labels.float(), reduction="none")
    sigmoid_term = reduce_losses(entries, reduction=reduction, rows=rows)
    target, labelled = label_distribution(labels)
    counted = labelled.float() if rows is None else labelled.float() * rows
    per_clip = sparsemax_loss(sparsemax_scores, target)
    sparsemax_term = (per_clip * counted).sum() / counted.sum().clamp(min=1.0)
    return MultiActivationLosses(sigmoid_term, sparsemax_term)


def multi_activation_clip_losses(output, labels: torch.Tensor, *, reduction: Reduction = "entry") -> MultiActivationLosses:
    """Per-clip terms of a multi-activation model, e.g. C_i = sigmoid + sparsemax for staged
    training.

    The sigmoid head's BCE over tags (mean for ``"entry"``, sum for ``"clip"``) and the
    sparsemax loss (0 for a clip with no label). With ``"entry"`` (the default) the mean over
    clips of the two terms is what :func:`multi_activation_losses` gives with its default, so
    a method scoring clips with both heads weighs the sparsemax term as every other method does.

    Args:
        output: the head's training-mode (sigmoid_logits, sparsemax_scores) pair, (B, K) each.
        labels: (B, K) labels, 0/1.
        reduction: of the sigmoid term over tags, ``"entry"`` (default) or ``"clip"``.

    Returns:
        :class:`MultiActivationLosses` of two (B,) float32 tensors, connected to the outputs'
        graph; their sum is the clip's loss.
    """
    sigmoid_logits, sparsemax_scores = _unpack(output)
    if labels.shape != sigmoid_logits.shape:
        raise ValueError(f"labels {tuple(labels.shape)} and outputs {tuple(sigmoid_logits.shape)} differ")
    entries = F.binary_cross_entropy_with_logits(sigmoid_logits.float(), labels.float(), reduction="none")
    target, labelled = label_distribution(labels)
    return MultiActivationLosses(per_clip(entries, reduction=reduction),
                                 sparsemax_loss(sparsemax_scores, target) * labelled.float())
