"""Balanced-Masking (Lu et al. 2022 §2.2, eq. 3): a stage-1 teacher's suspected missing tags are
left out of the loss, then Balanced-Training balances what remains."""

from __future__ import annotations

from dataclasses import asdict
from typing import TYPE_CHECKING, Any

from pydantic import Field

from raytag.methods.balanced_training import BalancedTraining
from raytag.methods.base import Needs, TeacherNeed, TrackColumns
from raytag.methods.settings import MethodSettings

if TYPE_CHECKING:
    import numpy as np


class BalancedMaskingSettings(MethodSettings):
    percentile: float = Field(80.0, ge=0, le=100, description="ξ_j: this percentile of the teacher's scores on a "
                              "tag's labelled negatives; negatives at or above it are masked (eq. 3)")
    teacher: str | None = Field(None, description="exported stage-1 teacher folder or URI (a pipeline's teacher fills it)")


class BalancedMasking(BalancedTraining):
    """Needs a stage-1 teacher's scores over the training set; turns them into the ``keep``
    column: per tag j, ξ_j is the ``percentile`` of the scores of labelled negatives, and a
    labelled negative scoring at or above ξ_j is masked out (a suspected missing tag)."""

    name = "balanced_masking"
    summary = ("a stage-1 teacher scores the training tracks; per tag, labelled negatives scoring at or above "
               "the percentile of the negatives' scores are masked as missing tags (eq. 3), then Balanced-Training")
    Settings = BalancedMaskingSettings
    teacher_key = "objective.teacher"
    renamed = {"masking.percentile": "percentile", "masking.teacher": "teacher"}
    uses_keep = True

    def __init__(self, *, tags: list[str], teacher: str | None, percentile: float):
        super().__init__(tags=tags)
        self.teacher = teacher
        self.percentile = percentile

    @classmethod
    def from_job(cls, job: Any, *, tags: list[str]) -> BalancedMasking:
        objective = job.objective
        teacher = None if objective.teacher is None else str(objective.teacher)
        return cls(tags=tags, teacher=teacher, percentile=objective.percentile)

    @property
    def needs(self) -> Needs:
        return Needs(scores_teacher=TeacherNeed(self.teacher_key, self.teacher), columns=("keep",))

    def track_columns(self, *, labels: np.ndarray, verified: np.ndarray, scores: np.ndarray | None,
                      clean: np.ndarray | None) -> TrackColumns:
        """The eq. 3 keep mask over the training tracks. Tracks the teacher could not score
        (a NaN row) are never masked. With clean labels, how well the masked entries match the
        truly missing tags (precision and recall per tag) is reported too."""
        import numpy as np

        from raytag.diagnostics import masking_report
        from raytag.objectives import negative_thresholds, suspected_missing_mask

        if scores is None:
            raise ValueError("balanced masking needs the teacher's scores")
        scored = ~np.isnan(scores).any(axis=1)
        thresholds = negative_thresholds(scores[scored], labels[scored], self.percentile)
        keep = np.ones_like(labels, dtype=np.float32)
        keep[scored] = suspected_missing_mask(scores[scored], labels[scored], thresholds)
        masked = (1 - keep).sum(axis=0)
        negatives = (labels[scored] < 0.5).sum(axis=0)
        table = [
            {"tag": t, "threshold": float(x), "negatives": int(n), "masked": int(m)}
            for t, x, n, m in zip(self.tags, thresholds, negatives, masked)
        ]
        metrics = {"masking/masked_entries": float(masked.sum()), "masking/unscored_tracks": float((~scored).sum())}
        tables = {"masking/thresholds.csv": table}
        if clean is not None:
            report = masking_report(labels, clean, keep, self.tags)
            tables["masking/diagnostics.csv"] = [asdict(row) | {"precision": row.precision, "recall": row.recall,
                                                                "base_rate": row.base_rate} for row in report]
            overall = report[-1]
            metrics.update({"masking/precision": overall.precision, "masking/recall": overall.recall,
                            "masking/base_rate": overall.base_rate})
        return TrackColumns(
            columns={"keep": keep},
            metrics=metrics,
            tables=tables,
            message=(
                f"balanced masking: {int(masked.sum())} of {int(negatives.sum())} labelled-negative entries "
                f"suspected missing at the {self.percentile:g}th percentile"
            ),
        )
