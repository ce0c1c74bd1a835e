"""Losses and masks: pure functions on tensors, used by the training engine."""

from raytag.objectives.bce import REDUCTIONS, Reduction, bce, masked_bce, reduce_losses
from raytag.objectives.consistency import (
    consistency_loss,
    consistency_weight,
    ema_update,
    make_mean_teacher,
)
from raytag.objectives.masks import (
    balanced_training_mask,
    negative_thresholds,
    suspected_missing_mask,
)
from raytag.objectives.multi_activation import (
    MultiActivationLosses,
    label_distribution,
    multi_activation_clip_losses,
    multi_activation_losses,
    sparsemax_loss,
)
from raytag.objectives.robust import bootstrap_loss, coteaching_losses, coteaching_selection, forget_rate
from raytag.objectives.staged import clip_losses, staged_keep_mask, update_threshold

__all__ = [
    "MultiActivationLosses",
    "REDUCTIONS",
    "Reduction",
    "balanced_training_mask",
    "bce",
    "bootstrap_loss",
    "clip_losses",
    "consistency_loss",
    "consistency_weight",
    "coteaching_losses",
    "coteaching_selection",
    "ema_update",
    "forget_rate",
    "label_distribution",
    "make_mean_teacher",
    "masked_bce",
    "multi_activation_clip_losses",
    "multi_activation_losses",
    "negative_thresholds",
    "reduce_losses",
    "sparsemax_loss",
    "staged_keep_mask",
    "suspected_missing_mask",
    "update_threshold",
]
