"""Which labels per-tag decision thresholds are chosen on (``eval.threshold_labels``): the
choices and the verified-row minimum, defined once for the job config (which must not import
numpy) and :mod:`raytag.thresholds` (which applies them). The same minimum decides whether
``train.select_labels: auto`` chooses the model on the verified rows (:mod:`raytag.selection`):
:func:`enough_verified` is the one rule."""

from __future__ import annotations

from enum import StrEnum


class ThresholdLabelChoice(StrEnum):
    """A choice of ``eval.threshold_labels``. ``NOISY``, ``VERIFIED`` and ``CLEAN`` also name
    the labels thresholds were chosen on (``model.json``'s ``thresholds_labels``)."""

    AUTO = "auto"
    """``VERIFIED`` when there are at least ``eval.threshold_min_verified`` verified validation
    rows, else ``NOISY``."""
    NOISY = "noisy"
    """The manifest's labels of every validation row."""
    VERIFIED = "verified"
    """The manifest's labels of the validation rows a person verified."""
    CLEAN = "clean"
    """A clean label file (``data.clean_labels``): experiments only, a user has none."""


MIN_VERIFIED = 100
"""Default fewest verified validation tracks for ``auto`` to choose on them alone
(``eval.threshold_min_verified``)."""


def enough_verified(verified_rows: int, min_verified: int) -> bool:
    """Whether ``verified_rows`` verified validation rows are enough for ``auto`` to use them
    alone (thresholds and model selection alike): at least ``min_verified`` (≥ 1).

    Raises:
        ValueError: ``min_verified`` below 1.
    """
    if min_verified < 1:
        raise ValueError(f"min_verified must be at least 1; got {min_verified}")
    return verified_rows >= min_verified
