"""Won et al. 2021 §3.3 noisy student training: the wrapped method's loss on labelled data plus
BCE of the student on augmented unlabeled audio against a frozen teacher's soft labels."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from raytag.methods.base import Batch, Method, Needs, TeacherNeed, Wrapper

if TYPE_CHECKING:
    import torch


class NoisyStudent(Wrapper):
    """Batches carry the labelled part (``audio``, ``labels``, ``decoded``, ...) and the unlabeled
    part (``u_audio``: the augmented crop; ``u_soft``: the teacher's probabilities on the clean
    crop; ``u_decoded``). Both parts go through the student in one forward (one DDP forward per
    step); the wrapped method scores the labelled part. The teacher never runs here: its labels
    come with the data (the cluster layer serves the ``unlabeled_teacher`` need)."""

    name = "noisy_student"
    summary = ("Won et al. §3.3: plus semi.weight × BCE of the student on augmented unlabeled audio against a "
               "frozen teacher's soft labels (settings: the semi section)")
    switch = "semi.enabled"
    teacher_key = "semi.teacher"
    order = 3
    accepts = frozenset()  # neither the multi-activation head nor the mean teacher

    def __init__(self, base: Method, *, teacher: str | None, weight: float, hard_labels: bool):
        super().__init__(base)
        self.teacher, self.weight, self.hard_labels = teacher, weight, hard_labels

    @classmethod
    def enabled(cls, job: Any) -> bool:
        return job.semi.enabled

    @classmethod
    def wrap(cls, base: Method, job: Any) -> NoisyStudent:
        semi = job.semi
        teacher = None if semi.teacher is None else str(semi.teacher)
        return cls(base, teacher=teacher, weight=semi.weight, hard_labels=semi.hard_labels)

    @property
    def needs(self) -> Needs:
        base = self.base.needs
        return Needs(
            scores_teacher=base.scores_teacher,
            unlabeled_teacher=TeacherNeed(self.teacher_key, self.teacher),
            columns=base.columns,
        )

    def inputs(self, batch: Batch) -> torch.Tensor:
        import torch

        return torch.cat([self.base.inputs(batch), batch["u_audio"]])

    def loss(self, output: torch.Tensor, batch: Batch) -> dict[str, torch.Tensor]:
        from raytag.objectives import bce

        labelled = batch["audio"].shape[0]
        parts = self.base.loss(output[:labelled], batch)
        targets = batch["u_soft"].float()
        if self.hard_labels:
            targets = (targets > 0.5).float()
        unlabeled = bce(output[labelled:], targets, batch["u_decoded"], reduction=self.reduction)
        parts.update({"loss": parts["loss"] + self.weight * unlabeled, "unlabeled_loss": unlabeled.detach()})
        return parts
