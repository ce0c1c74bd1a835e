"""Lu et al. 2022 stage 2: a mean teacher (eq. 4) gives consistency targets (eq. 5) weighted by
β(T) (eq. 7), added to the loss of the method it wraps (eq. 6)."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from raytag.methods.base import Batch, Method, Wrapper, kept_rows, unwrap
from raytag.objectives import consistency_loss, consistency_weight, ema_update, make_mean_teacher


class MeanTeacher(Wrapper):
    """The student trains alone for ``warmup_epochs``; then the teacher joins as a copy of the
    student, is updated after every optimizer step with smoothing ``eta``, and gives consistency
    targets weighted by β(T), T counting optimizer steps since it joined.

    The teacher is a plain module owned by this object on every rank (never DDP), has no
    gradients, and is identical across ranks: every rank applies the same update to the same
    synchronised student weights.
    """

    name = "mean_teacher"

    def __init__(self, base: Method, *, eta: float, beta_max: float, t0: int, gamma: float, warmup_epochs: int):
        super().__init__(base)
        self.eta, self.beta_max, self.t0, self.gamma = eta, beta_max, t0, gamma
        self.warmup_epochs = warmup_epochs
        self.teacher: nn.Module | None = None
        self.steps = 0
        self._pending_state: dict | None = None

    @classmethod
    def wrap(cls, base: Method, job: Any) -> MeanTeacher:
        mt = job.objective.mean_teacher
        return cls(base, eta=mt.eta, beta_max=mt.beta_max, t0=mt.t0, gamma=mt.gamma, warmup_epochs=mt.warmup_epochs)

    def start_epoch(self, epoch: int, *, generator: torch.Generator, model: nn.Module) -> None:
        """After the warm-up the teacher joins as a copy of the student (or of its checkpoint)."""
        super().start_epoch(epoch, generator=generator, model=model)
        if self.teacher is None and epoch >= self.warmup_epochs:
            self.teacher = make_mean_teacher(unwrap(model))
            if self._pending_state is not None:
                self.teacher.load_state_dict(self._pending_state)
                self._pending_state = None

    def loss(self, output: torch.Tensor, batch: Batch) -> dict[str, torch.Tensor]:
        parts = self.base.loss(output, batch)
        if self.teacher is None:
            return parts
        with torch.no_grad():
            teacher_logits = self.teacher(batch["audio"])
        rows = kept_rows(batch)
        con = (consistency_loss(output[rows], teacher_logits[rows], reduction=self.reduction) if rows.any()
               else parts["loss"] * 0.0)
        beta = self.beta()
        parts.update({"loss": parts["loss"] + beta * con, "consistency": con.detach(), "beta": torch.tensor(beta)})
        return parts

    def beta(self) -> float:
        return consistency_weight(self.steps, beta_max=self.beta_max, t0=self.t0, gamma=self.gamma)

    def after_step(self, model: nn.Module) -> None:
        self.base.after_step(model)
        if self.teacher is not None:
            ema_update(self.teacher, unwrap(model), self.eta)
            self.steps += 1

    def epoch_metrics(self) -> dict[str, float]:
        return {**self.base.epoch_metrics(), "mean_teacher/steps": float(self.steps), "mean_teacher/beta": self.beta()}

    def state_dict(self) -> dict:
        state = {"base": self.base.state_dict(), "steps": self.steps}
        if self.teacher is not None:
            state["teacher"] = {k: v.detach().cpu().clone() for k, v in self.teacher.state_dict().items()}
        return state

    def load_state_dict(self, state: dict) -> None:
        self.base.load_state_dict(state.get("base", {}))
        self.steps = int(state.get("steps", 0))
        self._pending_state = state.get("teacher")
