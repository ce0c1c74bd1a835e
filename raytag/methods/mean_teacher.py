"""Lu et al. 2022 stage 2: a mean teacher (eq. 4) gives consistency targets (eq. 5) weighted by
β(T) (eq. 7), added to the loss of the method it wraps (eq. 6)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pydantic import Field

from raytag.methods.base import Batch, Epoch, Method, Wrapper, kept_rows
from raytag.methods.settings import MethodSettings

if TYPE_CHECKING:
    import torch
    from torch import nn


class MeanTeacherSettings(MethodSettings):
    """Lu et al. stage 2 consistency with an EMA teacher (eqs. 4-7); paper values as defaults.

    The EMA smoothing and the ramp are counted in optimizer steps in the paper (η 0.999, T0
    40000). ``window_epochs`` and ``ramp_epochs`` give them in epochs instead, converted with
    the run's real steps per epoch per rank: η = 1 − 1/(window_epochs · steps per epoch),
    T0 = ramp_epochs · steps per epoch. When given, they take precedence over ``eta`` and
    ``t0`` (so a sweep can vary them on a job written in the paper's steps).
    """

    enabled: bool = Field(False, description="add the mean teacher's consistency term")
    eta: float | None = Field(None, ge=0, le=1, description="EMA smoothing η; none: 0.999 (paper)")
    window_epochs: float | None = Field(None, gt=0, description="EMA averaging window in epochs (instead of eta)")
    beta_max: float = Field(0.8, ge=0, description="upper bound β_max of the consistency weight")
    t0: int | None = Field(None, ge=0, description="ramp-up length T0 in optimizer steps; none: 40000 (paper)")
    ramp_epochs: float | None = Field(None, ge=0, description="ramp-up length in epochs (instead of t0)")
    gamma: float = Field(0.5, gt=0, description="ramp-up exponent γ")
    warmup_epochs: int = Field(40, ge=0, description="epochs of the student alone before the teacher joins")


class MeanTeacher(Wrapper):
    """The student trains alone for ``warmup_epochs``; then the teacher joins as a copy of the
    student, is updated after every optimizer step with smoothing ``eta``, and gives consistency
    targets weighted by β(T), T counting optimizer steps since it joined.

    The teacher is a plain module owned by this object on every rank (never DDP), has no
    gradients, and is identical across ranks: every rank applies the same update to the same
    synchronised student weights.
    """

    name = "mean_teacher"
    summary = ("Lu et al.: an EMA copy of the student (eq. 4) gives BCE consistency targets (eq. 5) weighted "
               "by β(T) = β_max·min(1, (T/T0)^γ) (eq. 7), added to the method's loss after a warm-up")
    Settings = MeanTeacherSettings
    section = "mean_teacher"
    switch = "objective.mean_teacher.enabled"
    order = 2
    accepts = frozenset()  # neither the multi-activation head nor a noisy student's teacher

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
    def enabled(cls, job: Any) -> bool:
        return job.objective.mean_teacher.enabled

    @classmethod
    def wrap(cls, base: Method, job: Any) -> MeanTeacher:
        mt = job.objective.mean_teacher
        return cls(base, beta_max=mt.beta_max, gamma=mt.gamma, warmup_epochs=mt.warmup_epochs, eta=mt.eta,
                   window_epochs=mt.window_epochs, t0=mt.t0, ramp_epochs=mt.ramp_epochs)

    def start_epoch(self, epoch: Epoch) -> None:
        """Converts epoch-based settings with this run's steps per epoch; after the warm-up the
        teacher joins as a copy of the student (or of its checkpoint)."""
        from raytag.engine.checkpoint import unwrap
        from raytag.objectives import make_mean_teacher

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
        import torch

        from raytag.objectives import consistency_loss

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
        from raytag.objectives import consistency_weight

        return consistency_weight(self.steps, beta_max=self.beta_max, t0=self.t0, gamma=self.gamma)

    def after_step(self, model: nn.Module) -> None:
        from raytag.engine.checkpoint import unwrap
        from raytag.objectives import ema_update

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
