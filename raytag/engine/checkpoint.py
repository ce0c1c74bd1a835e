"""Checkpoint folders: what a training run needs to resume.

A checkpoint folder holds ``model.pt`` (latest weights), ``optimizer.pt``, ``best_model.pt``
(weights of the best epoch so far) and ``state.json`` (next epoch, best metric, best epoch,
the resolved job config). The latest checkpoint is therefore enough both to resume and to
evaluate the best model. Only plain ``torch.save``/``json`` is used, so the folders are
readable without Ray.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

MODEL_FILE = "model.pt"
BEST_MODEL_FILE = "best_model.pt"
OPTIMIZER_FILE = "optimizer.pt"
METHOD_FILE = "method.pt"
STATE_FILE = "state.json"
REQUIRED_FILES = (MODEL_FILE, OPTIMIZER_FILE, BEST_MODEL_FILE, METHOD_FILE, STATE_FILE)
"""A checkpoint folder missing any of these was cut short and is passed over."""


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


def unwrap(model: nn.Module) -> nn.Module:
    """The plain module inside a DDP wrapper (or the module itself)."""
    return getattr(model, "module", model)


def cpu_state(model: nn.Module) -> dict[str, torch.Tensor]:
    """A CPU copy of the (unwrapped) model's weights."""
    return {k: v.detach().to("cpu", copy=True) for k, v in unwrap(model).state_dict().items()}


def save(
    folder: Path,
    *,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    best_weights: dict[str, torch.Tensor],
    state: TrainingState,
    job: dict[str, Any],
    method_state: dict[str, Any] | None = None,
) -> None:
    """Writes a checkpoint folder (the state file last)."""
    folder.mkdir(parents=True, exist_ok=True)
    torch.save(cpu_state(model), folder / MODEL_FILE)
    torch.save(method_state or {}, folder / METHOD_FILE)
    torch.save(optimizer.state_dict(), folder / OPTIMIZER_FILE)
    torch.save(best_weights, folder / BEST_MODEL_FILE)
    (folder / STATE_FILE).write_text(json.dumps({"state": asdict(state), "job": job}, indent=1))


def load_state(folder: Path) -> TrainingState:
    return parse_state((folder / STATE_FILE).read_text())


def parse_state(text: str) -> TrainingState:
    """The :class:`TrainingState` in a ``state.json``'s text.

    Raises:
        ValueError: the text is not a complete state file.
    """
    try:
        return TrainingState(**json.loads(text)["state"])
    except (KeyError, TypeError, json.JSONDecodeError) as exc:
        raise ValueError(f"not a raytag checkpoint state ({exc!r})") from None


def restore(
    folder: Path, *, model: nn.Module, optimizer: torch.optim.Optimizer
) -> tuple[TrainingState, dict[str, torch.Tensor], dict[str, Any]]:
    """Loads weights and optimizer into ``model``/``optimizer``.

    Returns:
        ``(state, best weights, method state)``.
    """
    unwrap(model).load_state_dict(_load(folder / MODEL_FILE))
    optimizer.load_state_dict(_load(folder / OPTIMIZER_FILE))
    return load_state(folder), read_best_weights(folder), _load(folder / METHOD_FILE)


def read_best_weights(folder: Path) -> dict[str, torch.Tensor]:
    """The best epoch's weights held by a checkpoint folder."""
    return _load(Path(folder) / BEST_MODEL_FILE)


def _load(path: Path):
    # Checkpoints hold only tensors and plain containers: never unpickle arbitrary objects.
    return torch.load(path, map_location="cpu", weights_only=True)
