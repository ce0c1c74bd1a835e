"""Reed et al. 2015 bootstrapping (a Lu et al. 2022 Table 2 baseline): targets mixed with the
model's own predictions, soft or hard."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pydantic import Field

from raytag.methods.base import Batch, Method, kept_rows
from raytag.methods.settings import MethodSettings

if TYPE_CHECKING:
    import torch


class SoftBootstrapSettings(MethodSettings):
    beta: float = Field(0.95, gt=0, le=1, description="weight β of the given labels (Reed et al.: 0.95 soft)")


class HardBootstrapSettings(MethodSettings):
    beta: float = Field(0.8, gt=0, le=1, description="weight β of the given labels (Reed et al.: 0.8 hard)")


class Bootstrap(Method):
    """target = β·label + (1 − β)·prediction (soft) or ·1[prediction > 0.5] (hard)."""

    mode = "soft"
    renamed = {"bootstrap_beta": "beta"}

    def __init__(self, *, beta: float):
        self.beta = beta

    @classmethod
    def from_job(cls, job: Any, *, tags: list[str]) -> Bootstrap:
        return cls(beta=job.objective.beta)

    def loss(self, output: torch.Tensor, batch: Batch) -> dict[str, torch.Tensor]:
        from raytag.objectives import bootstrap_loss

        rows = kept_rows(batch)
        if not rows.any():
            return {"loss": output.sum() * 0.0}
        return {"loss": bootstrap_loss(output[rows], batch["labels"][rows], beta=self.beta, mode=self.mode)}


class SoftBootstrap(Bootstrap):
    name = "bootstrap_soft"
    summary = "Reed et al. soft bootstrapping: BCE against β·label + (1 − β)·prediction"
    mode = "soft"
    Settings = SoftBootstrapSettings


class HardBootstrap(Bootstrap):
    name = "bootstrap_hard"
    summary = "Reed et al. hard bootstrapping: BCE against β·label + (1 − β)·1[prediction > 0.5]"
    mode = "hard"
    Settings = HardBootstrapSettings
