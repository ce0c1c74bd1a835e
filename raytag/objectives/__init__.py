"""Losses and masks: pure functions on tensors, used by the training engine."""

from raytag.objectives.bce import bce, masked_bce

__all__ = ["bce", "masked_bce"]
