"""Checkpoint folders and training-state snapshots.

A :class:`Snapshot` is everything training needs to continue from one epoch: the trainable
module's weights, the optimizer's state (Adam's moments) and the method's state (e.g. the mean
teacher and its step count), plus the evaluated network's weights (what gets exported). A run
keeps two: the latest one and the one of the best epoch so far. Reloading "the best model"
(Lu et al.'s selection window) restores the whole best snapshot, not the student alone: a
student paired with a later epoch's mean teacher or Adam moments would continue a run that
never happened.

A checkpoint folder holds both snapshots and ``state.json`` (its format, the epochs done, best
metric, best epoch, per-epoch metrics, the resolved job config; epochs numbered from 1, see
:mod:`raytag.engine.state`). Only ``torch.save``/``json`` are used, so
the folders are readable without Ray; they are loaded with ``weights_only=True``. ``state.json``
is parsed by :mod:`raytag.engine.state`, which does not import torch (the Train
controller's callback reads it).
"""

from __future__ import annotations

import copy
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from raytag.engine.state import STATE_FILE, TrainingState, parse_state, state_text  # noqa: F401 - part of this format

LATEST_FILE = "latest.pt"
BEST_FILE = "best.pt"
BEST_MODEL_FILE = "best_model.pt"
REQUIRED_FILES = (LATEST_FILE, BEST_FILE, BEST_MODEL_FILE, STATE_FILE)
"""A checkpoint folder missing any of these was cut short and is passed over."""


@dataclass
class Snapshot:
    """The training state at the end of one epoch, on the CPU.

    Attributes:
        model: state dict of the trainable module (unwrapped from DDP).
        optimizer: the optimizer's state dict.
        method: the training method's state dict.
        weights: state dict of the evaluated network (the first of a co-teaching pair).
    """

    model: dict[str, torch.Tensor]
    optimizer: dict[str, Any]
    method: dict[str, Any]
    weights: dict[str, torch.Tensor]

    @classmethod
    def capture(cls, model: nn.Module, optimizer: torch.optim.Optimizer, method) -> Snapshot:
        """A CPU copy of the current state (``method`` is a :class:`raytag.methods.base.Method`)."""
        return cls(
            model=cpu_state(model),
            optimizer=_to_cpu(copy.deepcopy(optimizer.state_dict())),
            method=method.state_dict(),
            weights=cpu_state(method.evaluated(model)),
        )

    def restore(self, model: nn.Module, optimizer: torch.optim.Optimizer, method) -> None:
        """Puts this state back into ``model`` (DDP or not), ``optimizer`` and ``method``."""
        unwrap(model).load_state_dict(self.model)
        optimizer.load_state_dict(self.optimizer)
        method.load_state_dict(self.method)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def unwrap(model: nn.Module) -> nn.Module:
    """The plain module inside a DDP wrapper (or the module itself)."""
    return getattr(model, "module", model)


def cpu_state(model: nn.Module) -> dict[str, torch.Tensor]:
    """A CPU copy of the (unwrapped) model's weights."""
    return {k: v.detach().to("cpu", copy=True) for k, v in unwrap(model).state_dict().items()}


def save(folder: Path, *, latest: Snapshot, best: Snapshot, state: TrainingState, job: dict[str, Any]) -> None:
    """Writes a checkpoint folder (the state file last)."""
    folder.mkdir(parents=True, exist_ok=True)
    torch.save(latest.as_dict(), folder / LATEST_FILE)
    torch.save(best.as_dict(), folder / BEST_FILE)
    torch.save(best.weights, folder / BEST_MODEL_FILE)
    (folder / STATE_FILE).write_text(state_text(state, job))


def load_state(folder: Path) -> TrainingState:
    return parse_state((folder / STATE_FILE).read_text())


def load(folder: Path) -> tuple[TrainingState, Snapshot, Snapshot]:
    """``(state, latest snapshot, best snapshot)`` of a checkpoint folder."""
    folder = Path(folder)
    return load_state(folder), Snapshot(**_load(folder / LATEST_FILE)), Snapshot(**_load(folder / BEST_FILE))


def read_best_weights(folder: Path) -> dict[str, torch.Tensor]:
    """The best epoch's weights of the evaluated network (what is exported)."""
    return _load(Path(folder) / BEST_MODEL_FILE)


def _load(path: Path):
    # Checkpoints hold only tensors and plain containers: never unpickle arbitrary objects.
    return torch.load(path, map_location="cpu", weights_only=True)


def _to_cpu(tree: Any) -> Any:
    if isinstance(tree, torch.Tensor):
        return tree.detach().to("cpu", copy=True)
    if isinstance(tree, dict):
        return {k: _to_cpu(v) for k, v in tree.items()}
    if isinstance(tree, (list, tuple)):
        return type(tree)(_to_cpu(v) for v in tree)
    return tree
