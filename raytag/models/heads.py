"""Output heads on a model's clip embedding: the sigmoid-sparsemax multi-activation head.

Every tagging model exposes ``embed(waveform) -> (B, D)``, ``num_features = D`` and
``classifier`` (an ``nn.Linear(D, K)``), with ``forward = classifier(embed(waveform))``.
:func:`attach_head` replaces ``classifier`` by another head:

* ``"sigmoid"``: the model as built (one linear layer, one logit per tag; a no-op).
* ``"sigmoid_sparsemax"`` (He et al. 2020 §3.2, Fig. 3): two dense layers on the embedding,
  one read through a sigmoid (trained with BCE), one through sparsemax (trained with the
  sparsemax loss against the label set as a uniform distribution,
  :mod:`raytag.objectives.multi_activation`); predictions ensemble both.

Output convention of the two-head model, so that every caller that applies ``sigmoid`` to model
outputs (evaluation, teachers' scores, export) keeps working unchanged:

* eval mode: (B, K) logits of the ensemble probability, ``sigmoid(output) == ensemble``;
* training mode: a :class:`MultiActivationOutput` (sigmoid logits, sparsemax scores), both
  (B, K), which the multi-activation loss takes.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch
from entmax import sparsemax
from torch import nn

__all__ = [
    "HEAD_KINDS",
    "MultiActivationOutput",
    "SigmoidSparsemaxHead",
    "attach_head",
    "ensemble_logits",
    "ensemble_probabilities",
    "head_kind",
]

HEAD_KINDS: tuple[str, ...] = ("sigmoid", "sigmoid_sparsemax")
"""Heads :func:`attach_head` knows."""


class MultiActivationOutput(NamedTuple):
    """Training-mode output of a sigmoid-sparsemax model.

    Attributes:
        sigmoid_logits: (B, K) logits of the sigmoid head.
        sparsemax_scores: (B, K) scores z of the sparsemax head (sparsemax(z) is a
            distribution over the K tags).
    """

    sigmoid_logits: torch.Tensor
    sparsemax_scores: torch.Tensor


def ensemble_probabilities(sigmoid_logits: torch.Tensor, sparsemax_scores: torch.Tensor) -> torch.Tensor:
    """The prediction of He et al.'s two heads: the mean of σ(s) and sparsemax(z).

    He et al. say the outputs "are ensembled" without the rule; the arithmetic mean keeps the
    sigmoid head's ranking where sparsemax gives exact zeros (a geometric mean would make all
    of them tie at 0) and stays in [0, 1].

    Args:
        sigmoid_logits: (B, K).
        sparsemax_scores: (B, K).

    Returns:
        (B, K) float32 probabilities in [0, 1].
    """
    sigmoid_part = torch.sigmoid(sigmoid_logits.float())
    sparsemax_part = sparsemax(sparsemax_scores.float(), dim=-1)
    return 0.5 * (sigmoid_part + sparsemax_part)


def ensemble_logits(sigmoid_logits: torch.Tensor, sparsemax_scores: torch.Tensor) -> torch.Tensor:
    """Logits of :func:`ensemble_probabilities`, finite for any finite input.

    log e − log(1 − e) with e = (σ(s) + p)/2 and 1 − e = (σ(−s) + (1 − p))/2, each a
    ``logaddexp`` of logs, so neither a saturated sigmoid nor a sparsemax of exactly 0 or 1
    gives an infinite logit.

    Args:
        sigmoid_logits: (B, K).
        sparsemax_scores: (B, K).

    Returns:
        (B, K) float32 logits; ``sigmoid`` of them is the ensemble probability. Meant for
        evaluation: where sparsemax is exactly 0 or 1 their gradient is not defined (training
        uses the two heads' own losses).
    """
    s = sigmoid_logits.float()
    p = sparsemax(sparsemax_scores.float(), dim=-1)
    log_present = torch.logaddexp(nn.functional.logsigmoid(s), torch.log(p))
    log_absent = torch.logaddexp(nn.functional.logsigmoid(-s), torch.log1p(-p))
    return log_present - log_absent


class SigmoidSparsemaxHead(nn.Module):
    """He et al.'s multi-activation head: a sigmoid layer and a sparsemax layer side by side.

    Args:
        sigmoid: the dense layer read through a sigmoid, ``nn.Linear(D, K)``.
        sparsemax: the dense layer read through sparsemax, ``nn.Linear(D, K)``.

    Shapes:
        input: (B, D) clip embeddings.
        output: training mode, :class:`MultiActivationOutput` of two (B, K); eval mode, (B, K)
            ensemble logits (:func:`ensemble_logits`).
    """

    def __init__(self, *, sigmoid: nn.Linear, sparsemax: nn.Linear) -> None:
        super().__init__()
        if (sigmoid.in_features, sigmoid.out_features) != (sparsemax.in_features, sparsemax.out_features):
            raise ValueError(
                f"the two layers must have the same shape, got sigmoid {sigmoid.in_features}->"
                f"{sigmoid.out_features} and sparsemax {sparsemax.in_features}->{sparsemax.out_features}"
            )
        self.sigmoid = sigmoid
        self.sparsemax = sparsemax

    def forward(self, embedding: torch.Tensor) -> MultiActivationOutput | torch.Tensor:
        """Both heads' outputs (training) or the ensemble's logits (eval); see the class."""
        output = MultiActivationOutput(self.sigmoid(embedding), self.sparsemax(embedding))
        if self.training:
            return output
        return ensemble_logits(*output)


def head_kind(model: nn.Module) -> str:
    """Which of :data:`HEAD_KINDS` ``model`` carries (what an exported model must record)."""
    return "sigmoid_sparsemax" if isinstance(getattr(model, "classifier", None), SigmoidSparsemaxHead) else "sigmoid"


def attach_head(model: nn.Module, kind: str, *, generator: torch.Generator | None = None) -> nn.Module:
    """Gives ``model`` the head ``kind``, in place, and returns it.

    ``"sigmoid"`` leaves the model as it is. ``"sigmoid_sparsemax"`` replaces
    ``model.classifier`` by a :class:`SigmoidSparsemaxHead` whose sigmoid layer *is* the old
    classifier (a trained model keeps its sigmoid predictions) and whose sparsemax layer is a
    new ``nn.Linear`` with PyTorch's default initialisation, on the classifier's device and
    dtype. It adds ``(D + 1)·K`` parameters. Attach before wrapping the model (DDP) and before
    building the optimizer; a model saved with the head is rebuilt by attaching the same head
    before loading its weights.

    Args:
        model: a tagging model with ``num_features`` and a ``classifier`` ``nn.Linear``.
        kind: one of :data:`HEAD_KINDS`.
        generator: draws the new layer's initial weights (on the generator's device, then
            moved); ``None`` uses torch's global generator (as building a model does).

    Returns:
        ``model``.

    Raises:
        ValueError: unknown kind, or a model without the embedding contract or that already
            has a two-head classifier.
    """
    if kind not in HEAD_KINDS:
        raise ValueError(f"unknown head {kind!r}; available heads: {', '.join(HEAD_KINDS)}")
    if kind == "sigmoid":
        return model
    classifier = getattr(model, "classifier", None)
    if isinstance(classifier, SigmoidSparsemaxHead):
        raise ValueError(f"{type(model).__name__} already has a sigmoid_sparsemax head")
    if not isinstance(classifier, nn.Linear) or getattr(model, "num_features", None) != classifier.in_features:
        raise ValueError(
            f"{type(model).__name__} does not expose the head contract: it needs num_features = D "
            "and classifier = nn.Linear(D, num_tags), with forward = classifier(embed(waveform))"
        )
    weight = classifier.weight
    layer = nn.Linear(classifier.in_features, classifier.out_features, dtype=weight.dtype)
    if generator is not None:
        _default_linear_init_(layer.to(generator.device), generator)
    layer = layer.to(weight.device)
    model.classifier = SigmoidSparsemaxHead(sigmoid=classifier, sparsemax=layer)
    return model


@torch.no_grad()
def _default_linear_init_(layer: nn.Linear, generator: torch.Generator) -> None:
    """``nn.Linear``'s own initialisation (Kaiming-uniform weights with a = √5, uniform bias
    in ±1/√fan_in), drawn from ``generator``."""
    nn.init.kaiming_uniform_(layer.weight, a=math.sqrt(5), generator=generator)
    bound = 1.0 / math.sqrt(layer.in_features) if layer.in_features > 0 else 0.0
    nn.init.uniform_(layer.bias, -bound, bound, generator=generator)
