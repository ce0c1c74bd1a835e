"""He et al. 2020 §3.1 staged training, stage 2: verified and unverified clips together, an
unverified clip's loss ignored when it exceeds an updatable threshold.

Stages 1 and 3 (verified clips only, stage 3 fine-tuning from stage 2) are plain training on
``data.train_subset: verified``; a pipeline chains the three with ``init_from`` (see
``jobs/staged.yaml``). This method is stage 2: per clip C_i = BCE averaged over tags (plus the
sparsemax loss with the multi-activation head), η_t = α·η_{t−1} + (1 − α)·T_t with T_t the k-th
largest C_i of the global batch (gathered over the DDP ranks, so every rank keeps the same η),
and the loss is the mean of C_i over the clips kept: every verified clip, and unverified clips
with C_i ≤ η_t.

One reduction in all three stages: the mean of C_i over kept clips is ``bce``'s per-entry mean
(plus the sparsemax term averaged over clips), exactly the loss of stages 1 and 3 when every
clip is kept. Summing C_i over tags instead would make stage 2's loss K times larger, and the
sparsemax term's weight relative to the sigmoid term K times smaller, than in stages 1 and 3.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pydantic import Field

from raytag.methods.base import Batch, Epoch, Method, Needs, TrackColumns, kept_rows
from raytag.methods.settings import MethodSettings

if TYPE_CHECKING:
    import numpy as np
    import torch

    from raytag.diagnostics import IgnoreReport


class StagedTrainingSettings(MethodSettings):
    """He et al. 2020 stage 2: an unverified clip's loss is ignored above η_t = α·η_{t−1} + (1 − α)·T_t,
    T_t the k-th largest clip loss of the batch (gathered over all ranks)."""

    k: int = Field(10, gt=0, description="rank of the batch's clip loss that drives the threshold (paper: 10 for "
                   "a batch of 64; scale it with train.batch_size)")
    alpha: float = Field(0.9, ge=0, lt=1, description="smoothing α of the threshold (paper 0.9)")


class StagedTraining(Method):
    name = "staged_training"
    summary = ("He et al. 2020 stage 2: an unverified clip's loss is ignored above a running threshold "
               "η_t = α·η_{t−1} + (1 − α)·T_t, T_t the k-th largest clip loss of the global batch")
    Settings = StagedTrainingSettings
    renamed = {"staged.k": "k", "staged.alpha": "alpha"}
    reduction = "entry"  # C_i averaged over tags: the scale of stages 1 and 3 (plain bce)
    handles_multi_activation = True

    def __init__(self, *, k: int, alpha: float):
        self.k, self.alpha = k, alpha
        from raytag.diagnostics import IgnoreReport

        self.threshold: torch.Tensor | None = None
        self.report: IgnoreReport = IgnoreReport()

    @classmethod
    def from_job(cls, job: Any, *, tags: list[str]) -> StagedTraining:
        return cls(k=job.objective.k, alpha=job.objective.alpha)

    @property
    def needs(self) -> Needs:
        return Needs(columns=("verified", "noisy"))

    def track_columns(self, *, labels: np.ndarray, verified: np.ndarray, scores, clean) -> TrackColumns:
        """``verified`` from the manifest; ``noisy`` (1 where the labels differ from the clean
        ones, −1 where no clean labels are known) feeds the diagnostics only."""
        import numpy as np

        from raytag.diagnostics import noisy_clips

        noisy = np.full(len(labels), -1.0, dtype=np.float32)
        if clean is not None:
            noisy = noisy_clips(labels, clean).astype(np.float32)
        unverified = int((~verified).sum())
        return TrackColumns(
            columns={"verified": verified.astype(np.float32), "noisy": noisy},
            metrics={"staged/unverified_tracks": float(unverified), "staged/verified_tracks": float(verified.sum())},
            message=f"staged training: {int(verified.sum())} verified and {unverified} unverified training tracks",
        )

    def start_epoch(self, epoch: Epoch) -> None:
        from raytag.diagnostics import IgnoreReport

        super().start_epoch(epoch)
        self.report = IgnoreReport()

    def loss(self, output, batch: Batch) -> dict[str, torch.Tensor]:
        from raytag.models.heads import MultiActivationOutput
        from raytag.objectives.multi_activation import multi_activation_clip_losses
        from raytag.objectives.staged import clip_losses, staged_keep_mask, update_threshold

        labels, rows = batch["labels"], kept_rows(batch)
        sigmoid = sparse = None
        if isinstance(output, MultiActivationOutput):
            sigmoid, sparse = multi_activation_clip_losses(output, labels, reduction=self.reduction)
            per_clip = sigmoid + sparse
        else:
            per_clip = clip_losses(output, labels, reduction=self.reduction)
        losses, counted = _gathered(per_clip.detach(), rows)
        self.threshold = update_threshold(self.threshold, losses, k=self.k, alpha=self.alpha, rows=counted)
        verified = batch["verified"] > 0.5
        keep = staged_keep_mask(per_clip.detach(), verified=verified, threshold=self.threshold) & rows
        self._count(~keep & rows, verified, rows, batch["noisy"])
        kept = keep.to(per_clip.dtype)
        if sparse is None:
            return {"loss": (per_clip * kept).sum() / kept.sum().clamp(min=1.0)}
        # The two terms reduced as the multi-activation wrapper reduces them in stages 1 and 3:
        # the sigmoid term over kept clips, the sparsemax term over kept clips with a label.
        labelled = kept * (labels > 0.5).any(dim=1).to(kept.dtype)
        sparse_term = (sparse * labelled).sum() / labelled.sum().clamp(min=1.0)
        parts = {"loss": (sigmoid * kept).sum() / kept.sum().clamp(min=1.0) + sparse_term,
                 "sparsemax_loss": sparse_term.detach()}
        return parts

    def _count(self, ignored: torch.Tensor, verified: torch.Tensor, rows: torch.Tensor, noisy: torch.Tensor) -> None:
        """Adds this batch's decoded clips to the epoch's :class:`~raytag.diagnostics.IgnoreReport`."""
        from raytag.diagnostics import ignore_report

        rows = rows.cpu()
        self.report = self.report + ignore_report(
            ignored.cpu()[rows].numpy(), (noisy.cpu()[rows] > 0.5).numpy(), verified.cpu()[rows].numpy())
        self._noise_known = bool((noisy >= 0).all())

    def epoch_metrics(self) -> dict[str, float]:
        metrics = {
            "staged/threshold": float("nan") if self.threshold is None else float(self.threshold),
            "staged/ignored_share": self.report.ignored / max(self.report.considered, 1),
        }
        if getattr(self, "_noise_known", False):
            metrics.update(self.report.as_metrics("staged/"))
        else:
            metrics["staged/ignored"] = float(self.report.ignored)
        return metrics

    def state_dict(self) -> dict:
        return {} if self.threshold is None else {"threshold": self.threshold.detach().cpu()}

    def load_state_dict(self, state: dict) -> None:
        self.threshold = state.get("threshold")


def _gathered(losses: torch.Tensor, rows: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Every rank's per-clip losses and row flags (ranks take equal batches), or this rank's."""
    import torch
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return losses, rows
    losses_out = [torch.empty_like(losses) for _ in range(dist.get_world_size())]
    flags = rows.to(torch.uint8).contiguous()  # gloo gathers no bool tensors
    rows_out = [torch.empty_like(flags) for _ in range(dist.get_world_size())]
    dist.all_gather(losses_out, losses.contiguous())
    dist.all_gather(rows_out, flags)
    return torch.cat(losses_out), torch.cat(rows_out).bool()
