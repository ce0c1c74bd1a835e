"""Balanced-Training (Lu et al. 2022, Algorithm 1): masked BCE with a per-batch class-balancing mask."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from raytag.methods.base import Batch, Epoch, Method

if TYPE_CHECKING:
    import torch


class BalancedTraining(Method):
    """Masked BCE (eq. 2) where, per batch and tag, entries of the majority class are dropped at
    random so positives and negatives count equally in expectation (Algorithm 1).

    Entries a batch's ``keep`` column excludes (Balanced-Masking's suspected missing tags) are
    left out before balancing. Per-tag counts of masked-out entries are kept per epoch.
    """

    name = "balanced_training"
    summary = ("masked BCE (Lu et al. eq. 2) with Algorithm 1's per-batch, per-tag mask: when negatives outnumber "
               "positives each negative is dropped with probability (n−p)/n, else each positive with (p−n)/p")
    reduction = "clip"  # eq. 2: (1/N) Σ_i Σ_j m_ij · BCE
    uses_keep = False

    def __init__(self, *, tags: list[str]):
        import torch

        self.tags = list(tags)
        self.masked = torch.zeros(len(tags), dtype=torch.float64)
        self.entries = 0

    @classmethod
    def from_job(cls, job: Any, *, tags: list[str]) -> BalancedTraining:
        return cls(tags=tags)

    def start_epoch(self, epoch: Epoch) -> None:
        super().start_epoch(epoch)
        self.masked.zero_()
        self.entries = 0

    def mask(self, batch: Batch) -> torch.Tensor:
        """(B, K) 0/1: which entries count in this step's loss; rows that failed to decode are 0."""
        import torch

        from raytag.objectives import balanced_training_mask

        rows = batch["decoded"].to(torch.float32)[:, None]
        keep = rows.expand_as(batch["labels"])
        if self.uses_keep:
            keep = keep * batch["keep"].to(torch.float32)
        mask = balanced_training_mask(batch["labels"], generator=self.generator, keep=keep)
        self.masked += ((1 - mask) * rows).sum(0).double().cpu()
        self.entries += int(batch["decoded"].sum())
        return mask

    def loss(self, output: torch.Tensor, batch: Batch) -> dict[str, torch.Tensor]:
        from raytag.objectives import masked_bce

        mask = self.mask(batch)
        return {"loss": masked_bce(output, batch["labels"], mask), "mask_kept": mask.mean().detach()}

    def epoch_metrics(self) -> dict[str, float]:
        if not self.entries:
            return {}
        metrics = {"mask/masked_fraction": float(self.masked.sum()) / (self.entries * len(self.tags))}
        metrics.update({f"mask/masked/{tag}": float(n) for tag, n in zip(self.tags, self.masked)})
        return metrics
