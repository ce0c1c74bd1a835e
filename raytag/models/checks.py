"""Argument checks the model classes share; each raises a ValueError naming the argument."""

from __future__ import annotations

from collections.abc import Sequence

__all__ = ["check_channels", "check_dropout", "check_positive"]


def check_positive(**values: int | float) -> None:
    """Raise a ValueError naming the first argument that is not a positive number."""
    for name, value in values.items():
        if not value > 0:
            raise ValueError(f"{name} must be positive, got {value}")


def check_dropout(dropout: float) -> None:
    """Raise a ValueError unless ``0 <= dropout < 1``."""
    if not 0.0 <= dropout < 1.0:
        raise ValueError(f"dropout must be in [0, 1), got {dropout}")


def check_channels(name: str, channels: Sequence[int]) -> None:
    """Raise a ValueError unless ``channels`` is a non-empty sequence of positive ints."""
    if not channels or any(count <= 0 for count in channels):
        raise ValueError(f"{name} must be a non-empty sequence of positive ints, got {tuple(channels)}")
