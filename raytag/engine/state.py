"""The torch-free half of the checkpoint format (:mod:`raytag.engine.checkpoint`): a
checkpoint folder's ``state.json`` and the :class:`TrainingState` it holds. The Train
controller's callback reads it on every report, in a process that never imports torch.

**Epoch numbers.** Epochs are numbered from 1 wherever they are recorded or shown: the
progress lines, ``state.json``, every epoch's metrics (``epoch``, ``best_epoch``,
``resumed_from_epoch``), the MLflow step of an epoch's metrics, ``model.json``'s
``best_epoch``, review and plots. "Epoch N" is the N-th epoch trained, so a run of
``train.epochs: 12`` trains epochs 1…12, ``train.select_until_epoch: 8`` chooses the best of
epochs 1…8 (and epoch 9 starts from it) and ``eval.average_last: 3`` averages epochs 10…12.
Only the random draws and the methods' schedules (:class:`raytag.methods.base.Epoch`'s
``index``, the seeds of :mod:`raytag.engine.seeding`) use the 0-based index, number − 1: epoch
1 draws what the first epoch always drew, and ``warmup_epochs: 40`` lets the teacher join at
epoch 41.

``state.json`` files without a ``format`` key (format 1) were written when the records
numbered epochs from 0; :func:`parse_state` renumbers them, so such a checkpoint resumes as
if it had been written today.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any

STATE_FILE = "state.json"
STATE_FORMAT = 2
"""``state.json``'s format: 2 numbers epochs from 1; 1 (no ``format`` key) numbered them from 0."""
EPOCH_NUMBER_KEYS = ("epoch", "best_epoch")
"""Per-epoch metrics whose values are epoch numbers (records numbered from 0 hold them one lower).
``resumed_from_epoch`` is not one: it held the number of epochs done at the restart, which is
the number, from 1, of the epoch resumed from."""


@dataclass
class TrainingState:
    """Progress of a run, saved with every checkpoint.

    Attributes:
        epochs_done: epochs finished (the number of the last one; 0 before the first).
        best_epoch: the number of the best epoch so far (None before the first).
        best_value: its value of the selection metric.
        select_metric: the selection metric (``train.select_metric``).
        select_labels: the validation labels that chose the best epoch: ``noisy`` (every
            validation row) or ``verified`` (the verified rows; ``train.select_labels``
            resolved, see :mod:`raytag.selection`).
        resumed_from_epoch: the epoch whose checkpoint training last resumed from (None: never).
        history: rank 0's metrics of every epoch, in order (``epoch`` = its number).
    """

    epochs_done: int = 0
    best_epoch: int | None = None
    best_value: float | None = None
    select_metric: str = "roc_auc"
    select_labels: str = "noisy"
    resumed_from_epoch: int | None = None
    history: list[dict[str, float]] = field(default_factory=list)

    def improves(self, value: float) -> bool:
        """Whether ``value`` of the selection metric beats the best so far (loss: lower)."""
        if self.best_value is None:
            return True
        return value < self.best_value if self.select_metric == "loss" else value > self.best_value


def state_text(state: TrainingState, job: dict[str, Any]) -> str:
    """The text of a ``state.json``: the format, the state and the resolved job config."""
    return json.dumps({"format": STATE_FORMAT, "state": asdict(state), "job": job}, indent=1)


def parse_state(text: str) -> TrainingState:
    """The :class:`TrainingState` in a ``state.json``'s text, epochs numbered from 1 whatever
    the file's format.

    Raises:
        ValueError: the text is not a complete state file, or one of a later format.
    """
    try:
        data = json.loads(text)
        version = data.get("format", 1)
        if version == 1:
            return _from_format_1(data["state"])
        if version != STATE_FORMAT:
            raise ValueError(f"state.json format {version!r}: written by another raytag version (this one reads 1 and 2)")
        return TrainingState(**data["state"])
    except (KeyError, TypeError, AttributeError, json.JSONDecodeError) as exc:
        raise ValueError(f"not a raytag checkpoint state ({exc!r})") from None


def renumbered_epoch_metrics(metrics: dict[str, Any]) -> dict[str, Any]:
    """One epoch's metrics recorded with epochs numbered from 0, renumbered from 1."""
    return {k: v + 1 if k in EPOCH_NUMBER_KEYS and isinstance(v, (int, float)) else v for k, v in metrics.items()}


def _from_format_1(state: dict[str, Any]) -> TrainingState:
    """A format-1 state: ``next_epoch`` (the 0-based index of the next epoch, i.e. the epochs
    done), ``best_epoch`` and the history's epoch numbers counted from 0."""
    fields = dict(state)
    epochs_done = int(fields.pop("next_epoch"))
    best = fields.pop("best_epoch", None)
    history = [renumbered_epoch_metrics(entry) for entry in fields.pop("history", [])]
    return TrainingState(epochs_done=epochs_done, best_epoch=None if best is None else int(best) + 1,
                         history=history, **fields)
