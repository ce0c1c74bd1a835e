"""Training strategies: objects that turn a model and a batch into named loss parts.

Each strategy wraps the pure functions of :mod:`raytag.objectives`; strategies that need state
(a mean teacher, a random generator, an epoch-dependent schedule) own it and expose it through
``state_dict`` so it is checkpointed with the model. The engine calls, per epoch and step::

    strategy.start_epoch(epoch)
    parts = strategy(model, batch)      # {"loss": ..., other parts to log}
    loss.backward(); optimizer.step()
    strategy.after_step(model)

Batches carry ``audio``, ``labels``, ``valid`` and, for Balanced-Masking, ``keep`` (the eq. 3
mask of suspected missing tags, per track and tag).
"""

from __future__ import annotations

import torch
from torch import nn

from raytag.objectives import (
    balanced_training_mask,
    bce,
    bootstrap_loss,
    consistency_loss,
    consistency_weight,
    coteaching_losses,
    ema_update,
    forget_rate,
    make_mean_teacher,
    masked_bce,
)
from raytag.engine.checkpoint import unwrap

Batch = dict[str, torch.Tensor]


class Strategy:
    """Plain BCE on the (noisy) labels; the base of every strategy."""

    def start_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __call__(self, model: nn.Module, batch: Batch) -> dict[str, torch.Tensor]:
        return {"loss": bce(model(batch["audio"]), batch["labels"], batch["valid"])}

    def after_step(self, model: nn.Module) -> None:
        """Called after every optimizer step."""

    def epoch_metrics(self) -> dict[str, float]:
        """Scalars accumulated over the epoch (reset by the caller's next ``start_epoch``)."""
        return {}

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state: dict) -> None:
        """Restores what ``state_dict`` returned."""


class Balanced(Strategy):
    """Masked BCE (eq. 2) with the Balanced-Training mask (Algorithm 1).

    With ``use_keep`` the batch's ``keep`` mask (eq. 3, from a stage-1 teacher) is applied
    first: Balanced-Masking. Per-tag counts of masked-out entries are accumulated per epoch.
    """

    def __init__(self, *, tags: list[str], seed: int, use_keep: bool = False):
        self.tags = tags
        self.use_keep = use_keep
        self.generator = torch.Generator().manual_seed(seed)
        self.masked = torch.zeros(len(tags), dtype=torch.float64)
        self.entries = 0

    def start_epoch(self, epoch: int) -> None:
        super().start_epoch(epoch)
        self.masked.zero_()
        self.entries = 0

    def mask(self, batch: Batch) -> torch.Tensor:
        keep = batch["valid"].to(torch.float32)[:, None].expand_as(batch["labels"])
        if self.use_keep:
            keep = keep * batch["keep"].to(torch.float32)
        mask = balanced_training_mask(batch["labels"], generator=self.generator, keep=keep)
        valid_rows = batch["valid"].to(torch.float32)[:, None]
        self.masked += ((1 - mask) * valid_rows).sum(0).double().cpu()
        self.entries += int(batch["valid"].sum())
        return mask

    def __call__(self, model: nn.Module, batch: Batch) -> dict[str, torch.Tensor]:
        mask = self.mask(batch)
        loss = masked_bce(model(batch["audio"]), batch["labels"], mask)
        return {"loss": loss, "mask_kept": mask.mean().detach()}

    def epoch_metrics(self) -> dict[str, float]:
        if not self.entries:
            return {}
        metrics = {"mask/masked_fraction": float(self.masked.sum()) / (self.entries * len(self.tags))}
        metrics.update({f"mask/masked/{tag}": float(n) for tag, n in zip(self.tags, self.masked)})
        return metrics

    def state_dict(self) -> dict:
        return {"generator": self.generator.get_state()}

    def load_state_dict(self, state: dict) -> None:
        if "generator" in state:
            self.generator.set_state(state["generator"])


class Bootstrap(Strategy):
    """Reed et al. bootstrapping: targets mixed with the model's own predictions."""

    def __init__(self, *, mode: str, beta: float):
        self.mode, self.beta = mode, beta

    def __call__(self, model: nn.Module, batch: Batch) -> dict[str, torch.Tensor]:
        logits = model(batch["audio"])
        rows = batch["valid"].bool()
        if not rows.any():
            return {"loss": logits.sum() * 0.0}
        return {"loss": bootstrap_loss(logits[rows], batch["labels"][rows], beta=self.beta, mode=self.mode)}


class PeerPair(nn.Module):
    """Two networks trained together by co-teaching.

    In training mode ``forward`` returns both networks' logits so that one DDP wrapper syncs
    both; in eval mode it returns the first network's logits, which are what gets evaluated
    and exported.
    """

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


class CoTeaching(Strategy):
    """Han et al. co-teaching: each network learns from the small-loss entries of its peer."""

    def __init__(self, *, tau: float, num_gradual: int, exponent: float):
        self.tau, self.num_gradual, self.exponent = tau, num_gradual, exponent
        self.rate = 0.0

    def start_epoch(self, epoch: int) -> None:
        super().start_epoch(epoch)
        self.rate = forget_rate(epoch, tau=self.tau, num_gradual=self.num_gradual, exponent=self.exponent)

    def __call__(self, model: nn.Module, batch: Batch) -> dict[str, torch.Tensor]:
        logits_a, logits_b = model(batch["audio"])
        rows = batch["valid"].bool()
        if not rows.any():
            return {"loss": (logits_a.sum() + logits_b.sum()) * 0.0}
        loss_a, loss_b = coteaching_losses(
            logits_a[rows], logits_b[rows], batch["labels"][rows], forget_rate=self.rate
        )
        # The networks share no parameters, so the sum gives each its own gradient.
        return {"loss": loss_a + loss_b, "loss_a": loss_a.detach(), "loss_b": loss_b.detach()}

    def epoch_metrics(self) -> dict[str, float]:
        return {"coteaching/forget_rate": self.rate}


class MeanTeacher(Strategy):
    """Lu et al. stage 2: a base strategy plus β(T)·consistency with an EMA teacher (eq. 4–7).

    The student trains alone for ``warmup_epochs``; then the teacher joins as a copy of the
    student, is updated after every optimizer step with smoothing ``eta`` and gives
    consistency targets weighted by β(T), T counting optimizer steps since it joined. The
    teacher is a plain module on every rank (never DDP), has no gradients, and is identical
    across ranks because every rank applies the same update to the same synced weights.
    """

    def __init__(
        self, base: Strategy, *, eta: float, beta_max: float, t0: int, gamma: float, warmup_epochs: int
    ):
        self.base = base
        self.eta, self.beta_max, self.t0, self.gamma = eta, beta_max, t0, gamma
        self.warmup_epochs = warmup_epochs
        self.teacher: nn.Module | None = None
        self.steps = 0
        self._pending_state: dict | None = None

    def start_epoch(self, epoch: int) -> None:
        super().start_epoch(epoch)
        self.base.start_epoch(epoch)

    def _teacher_for(self, model: nn.Module) -> nn.Module | None:
        if self.teacher is None and self.epoch >= self.warmup_epochs:
            self.teacher = make_mean_teacher(unwrap(model))
            if self._pending_state is not None:
                self.teacher.load_state_dict(self._pending_state)
                self._pending_state = None
        return self.teacher

    def __call__(self, model: nn.Module, batch: Batch) -> dict[str, torch.Tensor]:
        teacher = self._teacher_for(model)
        if teacher is None:
            return self.base(model, batch)
        student_logits: list[torch.Tensor] = []

        def capture(module, inputs, output):
            student_logits.append(output)

        # One student forward serves both the base loss and the consistency term.
        handle = model.register_forward_hook(capture)
        try:
            parts = self.base(model, batch)
        finally:
            handle.remove()
        with torch.no_grad():
            teacher_logits = teacher(batch["audio"])
        rows = batch["valid"].bool()
        con = consistency_loss(student_logits[0][rows], teacher_logits[rows]) if rows.any() else parts["loss"] * 0.0
        beta = consistency_weight(self.steps, beta_max=self.beta_max, t0=self.t0, gamma=self.gamma)
        parts.update(
            {
                "loss": parts["loss"] + beta * con,
                "consistency": con.detach(),
                "beta": torch.tensor(beta),
            }
        )
        return parts

    def after_step(self, model: nn.Module) -> None:
        self.base.after_step(model)
        if self.teacher is not None:
            ema_update(self.teacher, unwrap(model), self.eta)
            self.steps += 1

    def epoch_metrics(self) -> dict[str, float]:
        metrics = self.base.epoch_metrics()
        metrics["mean_teacher/steps"] = float(self.steps)
        metrics["mean_teacher/beta"] = consistency_weight(
            self.steps, beta_max=self.beta_max, t0=self.t0, gamma=self.gamma
        )
        return metrics

    def state_dict(self) -> dict:
        state = {"base": self.base.state_dict(), "steps": self.steps}
        if self.teacher is not None:
            state["teacher"] = {k: v.detach().cpu().clone() for k, v in self.teacher.state_dict().items()}
        return state

    def load_state_dict(self, state: dict) -> None:
        self.base.load_state_dict(state.get("base", {}))
        self.steps = int(state.get("steps", 0))
        self._pending_state = state.get("teacher")


class _FixedLogits:
    """Stands in for the model inside a base strategy when the logits are already computed."""

    def __init__(self, logits: torch.Tensor):
        self.logits = logits

    def __call__(self, audio: torch.Tensor) -> torch.Tensor:
        return self.logits


class NoisyStudent(Strategy):
    """Won et al. §3.3: base loss on labelled data + BCE on unlabeled data against a teacher.

    The batch carries the labelled part (``audio``, ``labels``, ``valid``, ...) and the
    unlabeled part (``u_audio``, the augmented crop; ``u_soft``, the teacher's probabilities on
    the clean crop; ``u_valid``). Both parts go through the student in one forward pass (one
    DDP forward per step); the base strategy (plain BCE, Balanced-Masking, ...) scores the
    labelled part. The teacher never runs here: its labels come with the data.
    """

    def __init__(self, base: Strategy, *, weight: float, hard_labels: bool):
        self.base, self.weight, self.hard_labels = base, weight, hard_labels

    def start_epoch(self, epoch: int) -> None:
        super().start_epoch(epoch)
        self.base.start_epoch(epoch)

    def __call__(self, model: nn.Module, batch: Batch) -> dict[str, torch.Tensor]:
        labelled = batch["audio"].shape[0]
        logits = model(torch.cat([batch["audio"], batch["u_audio"]]))
        parts = self.base(_FixedLogits(logits[:labelled]), batch)
        targets = batch["u_soft"].float()
        if self.hard_labels:
            targets = (targets > 0.5).float()
        unlabeled = bce(logits[labelled:], targets, batch["u_valid"])
        parts.update({"loss": parts["loss"] + self.weight * unlabeled, "unlabeled_loss": unlabeled.detach()})
        return parts

    def after_step(self, model: nn.Module) -> None:
        self.base.after_step(model)

    def epoch_metrics(self) -> dict[str, float]:
        return self.base.epoch_metrics()

    def state_dict(self) -> dict:
        return {"base": self.base.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        self.base.load_state_dict(state.get("base", {}))


def build_strategy(objective, *, tags: list[str], seed: int, semi=None) -> Strategy:
    """Turns an :class:`~raytag.config.ObjectiveConfig` (and optionally a
    :class:`~raytag.config.SemiConfig`) into a strategy object."""
    name = objective.name
    if name == "bce":
        strategy: Strategy = Strategy()
    elif name in ("balanced_training", "balanced_masking"):
        strategy = Balanced(tags=tags, seed=seed, use_keep=name == "balanced_masking")
    elif name in ("bootstrap_soft", "bootstrap_hard"):
        mode = name.removeprefix("bootstrap_")
        beta = objective.bootstrap_beta or (0.95 if mode == "soft" else 0.8)
        strategy = Bootstrap(mode=mode, beta=beta)
    elif name == "coteaching":
        strategy = CoTeaching(tau=objective.forget_rate, num_gradual=objective.num_gradual,
                              exponent=objective.forget_exponent)
    else:  # the config's Literal keeps this unreachable
        raise ValueError(f"unknown objective {name!r}")
    mt = objective.mean_teacher
    if mt.enabled:
        strategy = MeanTeacher(strategy, eta=mt.eta, beta_max=mt.beta_max, t0=mt.t0, gamma=mt.gamma,
                               warmup_epochs=mt.warmup_epochs)
    if semi is not None and semi.enabled:
        strategy = NoisyStudent(strategy, weight=semi.weight, hard_labels=semi.hard_labels)
    return strategy


def build_model(recipe_build, objective) -> nn.Module:
    """The trainable module: one network, or a co-teaching pair of two."""
    if objective.name == "coteaching":
        return PeerPair(recipe_build(), recipe_build())
    return recipe_build()


def exported(model: nn.Module) -> nn.Module:
    """The network whose weights are evaluated and exported (the first of a co-teaching pair)."""
    plain = unwrap(model)
    return plain.first if isinstance(plain, PeerPair) else plain
