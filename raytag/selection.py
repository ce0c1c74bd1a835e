"""Which validation labels choose the model (``train.select_labels``): the choices, the
resolution of ``auto`` and the metric keys the two signals are logged under.

A user has noisy labels on every validation row and, at best, a few hundred rows a person
verified (``verified=true`` in the manifest). Every epoch logs both signals when verified
validation rows exist: ``valid/<metric>`` on every validation row with its noisy labels and
``valid_verified/<metric>`` on the verified rows. ``train.select_labels`` says which of them
picks the best epoch, bounds Lu et al.'s selection window (``train.select_until_epoch``) and
ranks a sweep's trials:

* ``auto`` (default): the verified rows when there are enough of them by the same rule as
  the decision thresholds' ``eval.threshold_labels: auto``
  (:func:`raytag.threshold_choice.enough_verified`, with ``eval.threshold_min_verified``),
  else the noisy rows;
* ``noisy``, ``verified``: that signal; ``verified`` with fewer verified validation rows than
  that minimum is an error (:class:`SelectionError`).

Core module: no Ray, no MLflow, no numpy (the job config imports it).
"""

from __future__ import annotations

from raytag.errors import InputError
from raytag.threshold_choice import enough_verified

SELECT_LABELS = ("auto", "noisy", "verified")
"""The values of ``train.select_labels``."""
NOISY = "noisy"
VERIFIED = "verified"
PREFIXES = {NOISY: "valid/", VERIFIED: "valid_verified/"}
"""The per-epoch metric prefix of each selection signal."""


class SelectionError(InputError):
    """``train.select_labels: verified`` with too few verified validation rows (exit 2)."""


def resolve_select_labels(choice: str, *, verified_rows: int, min_verified: int) -> str:
    """The signal that chooses the model: ``"noisy"`` or ``"verified"``.

    Args:
        choice: ``train.select_labels`` (``auto``, ``noisy`` or ``verified``).
        verified_rows: how many validation rows are verified.
        min_verified: ``eval.threshold_min_verified``, the fewest verified rows ``auto`` uses
            (and ``verified`` accepts).

    Raises:
        SelectionError: ``verified`` with fewer than ``min_verified`` verified rows.
        ValueError: an unknown choice.
    """
    if choice not in SELECT_LABELS:
        raise ValueError(f"train.select_labels must be one of {', '.join(SELECT_LABELS)}; got {choice!r}")
    enough = enough_verified(verified_rows, min_verified)
    if choice == VERIFIED and not enough:
        raise SelectionError(
            f"train.select_labels is verified but the valid split has {verified_rows} verified row(s), fewer than "
            f"eval.threshold_min_verified ({min_verified}); verify more rows (raytag verify), lower "
            "eval.threshold_min_verified, or use train.select_labels=noisy")
    if choice == NOISY or not enough:
        return NOISY
    return VERIFIED


def selection_key(signal: str, metric: str) -> str:
    """The per-epoch metric that chooses the model, e.g. ``valid_verified/roc_auc``.

    Args:
        signal: ``"noisy"`` or ``"verified"`` (a resolved :func:`resolve_select_labels`).
        metric: ``train.select_metric`` (``roc_auc``, ``pr_auc``, ``lwlrap`` or ``loss``).
    """
    if signal not in PREFIXES:
        raise ValueError(f"selection signal must be one of {', '.join(PREFIXES)}; got {signal!r}")
    return f"{PREFIXES[signal]}{metric}"
