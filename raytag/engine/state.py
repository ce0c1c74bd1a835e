"""The torch-free half of the checkpoint format (:mod:`raytag.engine.checkpoint`): a
checkpoint folder's ``state.json`` and the :class:`TrainingState` it holds. The Train
controller's callback reads it on every report, in a process that never imports torch."""

from __future__ import annotations

import json
from dataclasses import dataclass, field

STATE_FILE = "state.json"


@dataclass
class TrainingState:
    """Progress of a run, saved with every checkpoint."""

    next_epoch: int = 0
    best_epoch: int | None = None
    best_value: float | None = None
    select_metric: str = "roc_auc"
    resumed_from_epoch: int | None = None
    history: list[dict[str, float]] = field(default_factory=list)

    def improves(self, value: float) -> bool:
        """Whether ``value`` of the selection metric beats the best so far (loss: lower)."""
        if self.best_value is None:
            return True
        return value < self.best_value if self.select_metric == "loss" else value > self.best_value


def parse_state(text: str) -> TrainingState:
    """The :class:`TrainingState` in a ``state.json``'s text.

    Raises:
        ValueError: the text is not a complete state file.
    """
    try:
        return TrainingState(**json.loads(text)["state"])
    except (KeyError, TypeError, json.JSONDecodeError) as exc:
        raise ValueError(f"not a raytag checkpoint state ({exc!r})") from None
