"""Zhang & Sabuncu 2018 generalized cross-entropy: a noise-robust loss between BCE and MAE."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pydantic import Field

from raytag.methods.base import Batch, Method, kept_rows
from raytag.methods.settings import MethodSettings

if TYPE_CHECKING:
    import torch


class GeneralizedCrossEntropySettings(MethodSettings):
    q: float = Field(0.7, gt=0, le=1, description="q in (0, 1]: towards 0 BCE, 1 MAE (Zhang & Sabuncu's "
                     "experiments: 0.7)")


class GeneralizedCrossEntropy(Method):
    """Per tag L_q = (1 − p^q)/q, p the probability given to the label (σ for a positive,
    1 − σ for a negative), averaged over the (track, tag) entries of the rows that decoded."""

    name = "gce"
    summary = ("Zhang & Sabuncu 2018 generalized cross-entropy per tag: (1 − p^q)/q, p the probability of the "
               "given label; q → 0 is BCE, q = 1 MAE, in between wrong labels weigh less")
    Settings = GeneralizedCrossEntropySettings
    reduction = "entry"

    def __init__(self, *, q: float):
        self.q = q

    @classmethod
    def from_job(cls, job: Any, *, tags: list[str]) -> GeneralizedCrossEntropy:
        return cls(q=job.objective.q)

    def loss(self, output: torch.Tensor, batch: Batch) -> dict[str, torch.Tensor]:
        from raytag.objectives.bce import reduce_losses
        from raytag.objectives.robust import generalized_cross_entropy

        losses = generalized_cross_entropy(output, batch["labels"], q=self.q)
        return {"loss": reduce_losses(losses, reduction=self.reduction, rows=kept_rows(batch))}
