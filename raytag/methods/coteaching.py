"""Han et al. 2018 co-teaching (a Lu et al. 2022 Table 2 baseline): two networks, each trained
on the small-loss entries its peer selects."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from raytag.methods.base import Epoch, Batch, Method, kept_rows, unwrap
from raytag.objectives import coteaching_losses, forget_rate


class PeerPair(nn.Module):
    """Two networks trained together. In training mode ``forward`` returns both networks' logits,
    so one DDP wrapper syncs both; in eval mode the first network's, which is what is evaluated
    and exported."""

    def __init__(self, first: nn.Module, second: nn.Module):
        super().__init__()
        self.first, self.second = first, second
        self.sample_rate = first.sample_rate
        self.crop_samples = first.crop_samples
        self.num_tags = first.num_tags

    def forward(self, audio: torch.Tensor):
        if self.training:
            return self.first(audio), self.second(audio)
        return self.first(audio)


class CoTeaching(Method):
    """Each network learns from the entries its peer finds easy; the forget rate
    R(T) = τ·min((T/T_k)^c, 1) ramps up over epochs."""

    name = "coteaching"

    def __init__(self, *, tau: float, num_gradual: int, exponent: float):
        self.tau, self.num_gradual, self.exponent = tau, num_gradual, exponent
        self.rate = 0.0

    @classmethod
    def from_job(cls, job: Any, *, tags: list[str]) -> CoTeaching:
        objective = job.objective
        return cls(tau=objective.forget_rate, num_gradual=objective.num_gradual, exponent=objective.forget_exponent)

    def build_network(self, make: Callable[[], nn.Module]) -> nn.Module:
        return PeerPair(make(), make())

    def evaluated(self, model: nn.Module) -> nn.Module:
        return unwrap(model).first

    def start_epoch(self, epoch: Epoch) -> None:
        super().start_epoch(epoch)
        self.rate = forget_rate(epoch.index, tau=self.tau, num_gradual=self.num_gradual, exponent=self.exponent)

    def loss(self, output: tuple[torch.Tensor, torch.Tensor], batch: Batch) -> dict[str, torch.Tensor]:
        logits_a, logits_b = output
        rows = kept_rows(batch)
        if not rows.any():
            return {"loss": (logits_a.sum() + logits_b.sum()) * 0.0}
        loss_a, loss_b = coteaching_losses(logits_a[rows], logits_b[rows], batch["labels"][rows], forget_rate=self.rate)
        # The networks share no parameters, so the sum gives each its own gradient.
        return {"loss": loss_a + loss_b, "loss_a": loss_a.detach(), "loss_b": loss_b.detach()}

    def epoch_metrics(self) -> dict[str, float]:
        return {"coteaching/forget_rate": self.rate}
