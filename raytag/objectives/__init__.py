"""Losses and masks: pure functions on tensors, used by the training engine."""

from raytag.objectives.bce import bce, masked_bce
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
from raytag.objectives.robust import bootstrap_loss, coteaching_losses, forget_rate

__all__ = [
    "balanced_training_mask",
    "bce",
    "bootstrap_loss",
    "consistency_loss",
    "consistency_weight",
    "coteaching_losses",
    "ema_update",
    "forget_rate",
    "make_mean_teacher",
    "masked_bce",
    "negative_thresholds",
    "suspected_missing_mask",
]
