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
STRATEGY_FILE = "strategy.pt"
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
    strategy_state: dict[str, Any] | None = None,
) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    torch.save(cpu_state(model), folder / MODEL_FILE)
    torch.save(strategy_state or {}, folder / STRATEGY_FILE)
    torch.save(optimizer.state_dict(), folder / OPTIMIZER_FILE)
    torch.save(best_weights, folder / BEST_MODEL_FILE)
    (folder / STATE_FILE).write_text(json.dumps({"state": asdict(state), "job": job}, indent=1))


def load_state(folder: Path) -> TrainingState:
    return TrainingState(**json.loads((folder / STATE_FILE).read_text())["state"])


def restore(
    folder: Path, *, model: nn.Module, optimizer: torch.optim.Optimizer
) -> tuple[TrainingState, dict[str, torch.Tensor], dict[str, Any]]:
    """Loads weights and optimizer into ``model``/``optimizer``.

    Returns:
        ``(state, best weights, strategy state)``.
    """
    unwrap(model).load_state_dict(_load(folder / MODEL_FILE))
    optimizer.load_state_dict(_load(folder / OPTIMIZER_FILE))
    strategy_file = folder / STRATEGY_FILE
    strategy = _load(strategy_file) if strategy_file.is_file() else {}
    return load_state(folder), read_best_weights(folder), strategy


def read_best_weights(folder: Path) -> dict[str, torch.Tensor]:
    """The best epoch's weights held by a checkpoint folder."""
    return _load(Path(folder) / BEST_MODEL_FILE)


def _load(path: Path):
    # Checkpoints hold only tensors and plain containers: never unpickle arbitrary objects.
    return torch.load(path, map_location="cpu", weights_only=True)


def latest(folder: Path) -> tuple[Path, TrainingState] | None:
    """The most advanced complete checkpoint under a run folder (``checkpoint_*``), if any.

    A folder counts only if all of its files are there and ``state.json`` parses, so a
    checkpoint cut short by a crash is passed over.
    """
    best: tuple[Path, TrainingState] | None = None
    for candidate in sorted(Path(folder).glob("checkpoint_*")):
        files = (MODEL_FILE, OPTIMIZER_FILE, BEST_MODEL_FILE, STATE_FILE)
        if not all((candidate / name).is_file() for name in files):
            continue
        try:
            state = load_state(candidate)
        except (ValueError, TypeError, KeyError):
            continue
        if best is None or state.next_epoch >= best[1].next_epoch:
            best = (candidate, state)
    return best
