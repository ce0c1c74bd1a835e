"""Reed et al. 2015 bootstrapping (a Lu et al. 2022 Table 2 baseline): targets mixed with the
model's own predictions, soft or hard."""

from __future__ import annotations

from typing import Any

import torch

from raytag.methods.base import Batch, Method, kept_rows
from raytag.objectives import bootstrap_loss

DEFAULT_BETA = {"soft": 0.95, "hard": 0.8}  # Reed et al.


class Bootstrap(Method):
    """target = β·label + (1 − β)·prediction (soft) or ·1[prediction > 0.5] (hard)."""

    mode = "soft"

    def __init__(self, *, beta: float):
        self.beta = beta

    @classmethod
    def from_job(cls, job: Any, *, tags: list[str]) -> Bootstrap:
        return cls(beta=job.objective.bootstrap_beta or DEFAULT_BETA[cls.mode])

    def loss(self, output: torch.Tensor, batch: Batch) -> dict[str, torch.Tensor]:
        rows = kept_rows(batch)
        if not rows.any():
            return {"loss": output.sum() * 0.0}
        return {"loss": bootstrap_loss(output[rows], batch["labels"][rows], beta=self.beta, mode=self.mode)}


class SoftBootstrap(Bootstrap):
    name = "bootstrap_soft"
    mode = "soft"


class HardBootstrap(Bootstrap):
    name = "bootstrap_hard"
    mode = "hard"
