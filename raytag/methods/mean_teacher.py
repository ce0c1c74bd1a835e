"""Lu et al. 2022 stage 2: a mean teacher (eq. 4) gives consistency targets (eq. 5) weighted by
β(T) (eq. 7), added to the loss of the method it wraps (eq. 6)."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from raytag.methods.base import Batch, Epoch, Method, Wrapper, kept_rows, unwrap
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

    PAPER_ETA = 0.999
    PAPER_T0 = 40000

    def __init__(
        self,
        base: Method,
        *,
        beta_max: float,
        gamma: float,
        warmup_epochs: int,
        eta: float | None = None,
        window_epochs: float | None = None,
        t0: int | None = None,
        ramp_epochs: float | None = None,
    ):
        super().__init__(base)
        self.beta_max, self.gamma, self.warmup_epochs = beta_max, gamma, warmup_epochs
        self.window_epochs, self.ramp_epochs = window_epochs, ramp_epochs
        self.eta = self.PAPER_ETA if eta is None else eta
        self.t0 = self.PAPER_T0 if t0 is None else t0
        self.teacher: nn.Module | None = None
        self.steps = 0
        self._pending_state: dict | None = None

    @classmethod
    def wrap(cls, base: Method, job: Any) -> MeanTeacher:
        mt = job.objective.mean_teacher
        return cls(base, beta_max=mt.beta_max, gamma=mt.gamma, warmup_epochs=mt.warmup_epochs, eta=mt.eta,
                   window_epochs=mt.window_epochs, t0=mt.t0, ramp_epochs=mt.ramp_epochs)

    def start_epoch(self, epoch: Epoch) -> None:
        """Converts epoch-based settings with this run's steps per epoch; after the warm-up the
        teacher joins as a copy of the student (or of its checkpoint)."""
        super().start_epoch(epoch)
        if self.window_epochs is not None:
            self.eta = 1.0 - 1.0 / max(1.0, self.window_epochs * epoch.steps)
        if self.ramp_epochs is not None:
            self.t0 = round(self.ramp_epochs * epoch.steps)
        if self.teacher is None and epoch.index >= self.warmup_epochs:
            self.teacher = make_mean_teacher(unwrap(epoch.model))
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
        return {**self.base.epoch_metrics(), "mean_teacher/steps": float(self.steps), "mean_teacher/beta": self.beta(),
                "mean_teacher/eta": self.eta, "mean_teacher/t0": float(self.t0)}

    def state_dict(self) -> dict:
        state = {"base": self.base.state_dict(), "steps": self.steps}
        if self.teacher is not None:
            state["teacher"] = {k: v.detach().cpu().clone() for k, v in self.teacher.state_dict().items()}
        return state

    def load_state_dict(self, state: dict) -> None:
        """Restores the teacher and its step count. A state from the warm-up has no teacher:
        the teacher then rejoins as a copy of the student at the next epoch's start."""
        self.base.load_state_dict(state.get("base", {}))
        self.steps = int(state.get("steps", 0))
        teacher = state.get("teacher")
        if teacher is None:
            self.teacher, self._pending_state = None, None
        elif self.teacher is not None:
            self.teacher.load_state_dict(teacher)
        else:
            self._pending_state = teacher
