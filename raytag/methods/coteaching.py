"""Han et al. 2018 co-teaching (a Lu et al. 2022 Table 2 baseline): two networks, each trained
on the small-loss entries its peer selects."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from pydantic import Field

from raytag.methods.base import Batch, Epoch, Method, kept_rows
from raytag.methods.settings import MethodSettings

if TYPE_CHECKING:
    import torch
    from torch import nn


class CoTeachingSettings(MethodSettings):
    forget_rate: float = Field(0.2, ge=0, lt=1, description="τ: the share of each tag's positives and negatives "
                               "forgotten once ramped up (Han et al.: the estimated noise rate)")
    num_gradual: int = Field(10, ge=0, description="T_k: epochs to reach τ (0: τ from the start)")
    forget_exponent: float = Field(1.0, gt=0, description="c: shape of the ramp τ·min((T/T_k)^c, 1)")


class CoTeaching(Method):
    """Each network learns from the entries its peer finds easy; the forget rate
    R(T) = τ·min((T/T_k)^c, 1) ramps up over epochs."""

    name = "coteaching"
    summary = ("Han et al.: two networks, each trained on the small-loss (track, tag) entries its peer selects, "
               "per tag and label class; forget rate τ·min((T/T_k)^c, 1)")
    Settings = CoTeachingSettings
    accepts = frozenset()  # two networks: no head, teacher or student of its own kind on top

    def __init__(self, *, tau: float, num_gradual: int, exponent: float):
        self.tau, self.num_gradual, self.exponent = tau, num_gradual, exponent
        self.rate = 0.0

    @classmethod
    def from_job(cls, job: Any, *, tags: list[str]) -> CoTeaching:
        objective = job.objective
        return cls(tau=objective.forget_rate, num_gradual=objective.num_gradual, exponent=objective.forget_exponent)

    def build_network(self, make: Callable[[], nn.Module]) -> nn.Module:
        from raytag.models.peers import PeerPair

        return PeerPair(make(), make())

    def evaluated(self, model: nn.Module) -> nn.Module:
        return super().evaluated(model).first

    def start_epoch(self, epoch: Epoch) -> None:
        from raytag.objectives import forget_rate

        super().start_epoch(epoch)
        self.rate = forget_rate(epoch.index, tau=self.tau, num_gradual=self.num_gradual, exponent=self.exponent)

    def loss(self, output: tuple[torch.Tensor, torch.Tensor], batch: Batch) -> dict[str, torch.Tensor]:
        from raytag.objectives import coteaching_losses

        logits_a, logits_b = output
        rows = kept_rows(batch)
        if not rows.any():
            return {"loss": (logits_a.sum() + logits_b.sum()) * 0.0}
        loss_a, loss_b = coteaching_losses(logits_a[rows], logits_b[rows], batch["labels"][rows], forget_rate=self.rate)
        # The networks share no parameters, so the sum gives each its own gradient.
        return {"loss": loss_a + loss_b, "loss_a": loss_a.detach(), "loss_b": loss_b.detach()}

    def epoch_metrics(self) -> dict[str, float]:
        return {"coteaching/forget_rate": self.rate}
