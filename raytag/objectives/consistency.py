"""Mean-teacher consistency (Lu et al. 2022, eqs. 4, 5 and 7).

A mean teacher f(x; θ_t) is an exponential moving average of the student f(x; θ_s) (eq. 4); its
probabilities are soft targets for the student (eq. 5), weighted by a ramp β(T) (eq. 7) in the
total loss L = L_mask + β(T)·L_con (eq. 6).
"""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import nn

from raytag.objectives.bce import Reduction, reduce_losses


def consistency_loss(
    student_logits: torch.Tensor,
    teacher_logits: torch.Tensor,
    *,
    reduction: Reduction = "clip",
) -> torch.Tensor:
    """Consistency loss of Lu et al. eq. 5, with logits.

    Per entry, BCE(σ(s_ij), σ(t_ij)): the mean teacher's probabilities σ(t) are the targets
    (detached: no gradient ever reaches the teacher) and the student's logits s are scored with
    ``binary_cross_entropy_with_logits``.

    Reduction: eq. 5 is written for one sample as a sum over the C tags, and eq. 6 adds it to
    L_mask (eq. 2, also summed over tags per clip): the two terms of eq. 6 are of the same kind.
    So L_con must take the reduction of the base loss it is added to, or β is in effect
    multiplied (or divided) by the number of tags K:

    * ``"clip"`` (default, the paper's form): (1/N) Σ_i Σ_j, next to ``masked_bce`` (eq. 2);
    * ``"entry"``: (1/(N·K)) Σ_i Σ_j, next to ``bce`` or ``bootstrap_loss`` (means over
      entries).

    The value is not zero for identical logits (BCE against a soft target has the target's
    entropy as its floor), but its gradient w.r.t. the student logits, σ(s) − σ(t) per entry
    (divided by N, or N·K), is.

    Args:
        student_logits: (N, K) student outputs.
        teacher_logits: (N, K) mean-teacher outputs on the same batch.
        reduction: ``"clip"`` or ``"entry"``, that of the base loss (see above).

    Returns:
        Scalar float32 loss.

    Raises:
        ValueError: if the shapes differ or the reduction is unknown.
    """
    if student_logits.shape != teacher_logits.shape:
        raise ValueError(
            f"student logits {tuple(student_logits.shape)} and teacher logits "
            f"{tuple(teacher_logits.shape)} differ in shape"
        )
    targets = torch.sigmoid(teacher_logits.detach().float())
    losses = F.binary_cross_entropy_with_logits(student_logits.float(), targets, reduction="none")
    return reduce_losses(losses, reduction=reduction)


def consistency_weight(step: int, *, beta_max: float, t0: int, gamma: float) -> float:
    """Ramp-up weight of Lu et al. eq. 7: β(T) = β_max · min(1, (T/T0)^γ).

    Args:
        step: T, the number of student iterations so far (≥ 0). The paper counts iterations
            from when the teacher joins (after the warm-up epochs); the caller chooses.
        beta_max: upper bound β_max (paper: 0.8).
        t0: ramp-up length T0 in iterations (paper: 40000). 0 means no ramp: β_max at once.
        gamma: slope γ ≥ 0 of the ramp (paper: 0.5).

    Returns:
        β(T) as a Python float.

    Raises:
        ValueError: on a negative step, t0, gamma or beta_max.
    """
    if step < 0 or t0 < 0 or gamma < 0 or beta_max < 0:
        raise ValueError(
            f"need step, t0, gamma, beta_max >= 0; got {step=}, {t0=}, {gamma=}, {beta_max=}"
        )
    if t0 == 0 or step >= t0:
        return float(beta_max)
    return float(beta_max) * min(1.0, (step / t0) ** gamma)


def make_mean_teacher(student: nn.Module) -> nn.Module:
    """A mean teacher initialised from the student (Lu et al. §2.2: θ_t starts at θ_s).

    A deep copy with ``requires_grad`` False on every parameter, put in **eval mode**. Choice:
    the teacher is a target provider, so dropout stays off and BatchNorm uses its running
    statistics (which ``ema_update`` averages from the student's), giving deterministic,
    less noisy targets; the student's own stochasticity (dropout, augmentation) supplies the
    perturbation, as in the style guide's "teachers are frozen" rule. The paper does not say
    which mode its teacher uses. Whoever owns the teacher must not call ``.train()`` on it.

    Args:
        student: the (unwrapped, i.e. not DDP) student model.

    Returns:
        The teacher module, on the student's device.
    """
    teacher = copy.deepcopy(student)
    for parameter in teacher.parameters():
        parameter.requires_grad_(False)
    return teacher.eval()


@torch.no_grad()
def ema_update(teacher: nn.Module, student: nn.Module, eta: float) -> None:
    """Mean-teacher update of Lu et al. eq. 4: θ_t ← η·θ_t + (1 − η)·θ_s, in place.

    Parameters and floating-point buffers (e.g. BatchNorm running mean/var) are averaged;
    other buffers (e.g. ``num_batches_tracked``) are copied from the student.

    Args:
        teacher: mean teacher, updated in place.
        student: student with the same parameter and buffer names and shapes.
        eta: smoothing η in [0, 1] (paper: 0.999); 1 leaves the teacher unchanged, 0 copies
            the student.

    Raises:
        ValueError: if η is outside [0, 1], or the modules' parameter or buffer names or
            shapes differ.
    """
    if not 0.0 <= eta <= 1.0:
        raise ValueError(f"eta must be in [0, 1], got {eta}")
    teacher_params = dict(teacher.named_parameters())
    student_params = dict(student.named_parameters())
    _check_same_names("parameter", teacher_params, student_params)
    teacher_buffers = dict(teacher.named_buffers())
    student_buffers = dict(student.named_buffers())
    _check_same_names("buffer", teacher_buffers, student_buffers)

    for name, target in teacher_params.items():
        _ema_(target, student_params[name], eta)
    for name, target in teacher_buffers.items():
        source = student_buffers[name]
        if target.is_floating_point():
            _ema_(target, source, eta)
        else:
            target.copy_(source)


def _ema_(target: torch.Tensor, source: torch.Tensor, eta: float) -> None:
    """target ← η·target + (1 − η)·source, in place."""
    target.mul_(eta).add_(source.to(device=target.device, dtype=target.dtype), alpha=1.0 - eta)


def _check_same_names(
    kind: str, teacher: dict[str, torch.Tensor], student: dict[str, torch.Tensor]
) -> None:
    """Raise ValueError naming the first differences between two modules' tensors."""
    if teacher.keys() != student.keys():
        only_teacher = sorted(teacher.keys() - student.keys())[:5]
        only_student = sorted(student.keys() - teacher.keys())[:5]
        raise ValueError(
            f"teacher and student {kind} names differ: only in teacher {only_teacher}, "
            f"only in student {only_student} (is one of them wrapped, e.g. in DDP?)"
        )
    for name, tensor in teacher.items():
        if tensor.shape != student[name].shape:
            raise ValueError(
                f"{kind} {name!r} has shape {tuple(tensor.shape)} in the teacher and "
                f"{tuple(student[name].shape)} in the student"
            )
