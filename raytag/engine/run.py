"""One training run, many epochs, Ray-free: what a Ray Train worker and the benchmark both call.

:func:`build_training` turns a job into its method, network and optimizer (seeded so that every
rank starts from the same weights); :func:`fit` runs the epochs:

* epochs are numbered from 1 in everything they report (see :mod:`raytag.engine.state`); the
  0-based index (number − 1) keys the draws: each epoch's step draws (dropout, masks) are
  seeded by (seed, index, rank), the method is started with them, one pass of
  :func:`raytag.engine.loop.train_epoch` over ``hooks.batches(index)``;
* validation every epoch (``hooks.evaluate(model, "valid", prefix="valid/")``) and, in the last
  ``eval.average_last`` epochs, the evaluation split too with the running mean of those epochs
  (Lu et al. §3.1 report the mean of the last ten);
* the best epoch by ``train.select_metric`` on the validation labels ``select_labels`` says
  (``noisy``: ``valid/<metric>``; ``verified``: ``valid_verified/<metric>``, see
  :mod:`raytag.selection`); with ``train.select_until_epoch: N`` only epochs
  1…N can be best, and before epoch N + 1 the whole best snapshot (model, optimizer, method
  state: the mean teacher too) is restored and training goes on from it (Lu et al.: "load the
  best model and train another N epochs"); with ``train.after_window: sgd`` it goes on with a
  new SGD optimizer instead of the restored Adam (Won et al.'s solver, :func:`handoff_optimizer`);
* ``hooks.report(metrics, state=..., best=..., latest=...)`` at the end of every epoch: a Ray
  worker reports to Ray Train and checkpoints there, the benchmark prints a line;
* after each report, rank 0 asks ``stop_requested()`` (a Ray worker: ``raytag stop``); when it
  says yes every rank ends the run there, its checkpoint the last.

Only rank 0 decides which epoch is best (``agree`` gives its decision to every rank, so each
keeps the same snapshot) and fills the epoch's metrics; other ranks report an epoch number only.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Protocol

import torch
from torch import nn

from raytag.engine.checkpoint import Snapshot, TrainingState
from raytag.engine.loop import train_epoch
from raytag.engine.seeding import init_seed, rank_generator_seed
from raytag.methods import build_method
from raytag.methods.base import Epoch, Method
from raytag.models.export import ModelRecipe
from raytag.selection import NOISY, selection_key

log = logging.getLogger("raytag.train")

AVERAGED = ("roc_auc", "pr_auc", "lwlrap")
"""The evaluation split's metrics averaged over the last ``eval.average_last`` epochs."""


class Hooks(Protocol):
    """What a caller of :func:`fit` supplies: where batches come from, how a split is scored,
    what happens with an epoch's results."""

    def batches(self, index: int) -> Iterable[dict]:
        """This rank's training batches of the epoch with 0-based ``index`` (the key of its
        order and crops; dicts as ``train_epoch`` takes them)."""

    def evaluate(self, model: nn.Module, split: str, *, prefix: str) -> dict[str, float]:
        """Track-level metrics of ``model`` on ``split`` ("valid", or "test": the job's
        evaluation split ``eval.split``), keys prefixed, with at least ``{prefix}loss``,
        ``{prefix}roc_auc``, ``{prefix}pr_auc``, ``{prefix}lwlrap`` and ``{prefix}{select_metric}``.
        For "valid", also the same metrics of the verified validation rows alone under
        ``valid_verified/`` (:data:`raytag.selection.PREFIXES`) when the run has verified
        validation rows (required when ``fit`` selects on them)."""

    def report(self, metrics: dict[str, Any], *, state: TrainingState, best: Snapshot,
               latest: Callable[[], Snapshot]) -> None:
        """The end of an epoch: ``metrics`` (full on rank 0), the run's state, the best snapshot
        and a function giving this epoch's snapshot (for a checkpoint)."""


@dataclass
class Training:
    """What a run trains: the method, its trainable module and the optimizer."""

    method: Method
    model: nn.Module
    optimizer: torch.optim.Optimizer


def build_training(job: Any, tags: list[str], *, init_weights: dict | None = None,
                   wrap: Callable[[nn.Module], nn.Module] = lambda module: module) -> Training:
    """The job's method, network (``init_weights``: start from an exported model's weights,
    e.g. He et al.'s stage 2 from stage 1) and Adam optimizer.

    Args:
        job: a validated :class:`raytag.config.JobConfig`.
        tags: the tag vocabulary, in column order.
        init_weights: a state dict of the job's model (``model.init``, read by the caller).
        wrap: applied to the trainable module before the optimizer sees it (Ray Train's
            ``prepare_model``: device and DDP).
    """
    method = build_method(job, tags=list(tags))
    recipe = ModelRecipe(job.model.name, dict(job.model.args), tuple(tags), job.model.head)

    def make() -> nn.Module:
        network = recipe.build()
        if init_weights is not None:
            network.load_state_dict(init_weights)
        return network

    torch.manual_seed(init_seed(job.seed))  # the same initial weights on every rank
    model = wrap(method.build_network(make))
    optimizer = torch.optim.Adam(model.parameters(), lr=job.train.lr, weight_decay=job.train.weight_decay)
    return Training(method, model, optimizer)


WON_SGD = {"lr": 1e-3, "momentum": 0.9, "nesterov": True, "weight_decay": 1e-4}
"""The SGD settings of Won et al.'s solver after its Adam phase (minzwon/sota-music-tagging-models,
``training/solver.py``; Lu et al. follow it): lr 1e-3, momentum 0.9, Nesterov, weight decay 1e-4."""


def handoff_optimizer(model: nn.Module) -> torch.optim.Optimizer:
    """A fresh SGD optimizer with :data:`WON_SGD` on ``model``'s parameters (no state)."""
    return torch.optim.SGD(model.parameters(), **WON_SGD)


def fit(
    job: Any,
    training: Training,
    hooks: Hooks,
    *,
    steps: int,
    device: torch.device,
    rank: int = 0,
    world_size: int = 1,
    resume: tuple[TrainingState, Snapshot, Snapshot] | None = None,
    agree: Callable[[bool], bool] = lambda flag: flag,
    context: dict[str, Any] | None = None,
    stop_requested: Callable[[], bool] = lambda: False,
    select_labels: str = NOISY,
) -> tuple[TrainingState, Snapshot]:
    """Runs the job's epochs (see the module docstring).

    Args:
        job: a validated :class:`raytag.config.JobConfig`.
        training: from :func:`build_training`.
        hooks: the caller's :class:`Hooks`.
        steps: optimizer steps per epoch on this rank (the method's schedules use it).
        device: where batches go.
        rank, world_size: this rank and how many train together.
        resume: ``(state, latest, best)`` of a checkpoint to continue from.
        agree: rank 0's boolean on every rank (identity for one rank).
        context: constant metrics added to every epoch's (e.g. the node id).
        stop_requested: asked on rank 0 after each epoch's report; True ends the run there,
            before ``job.train.epochs`` (on every rank, through ``agree``).
        select_labels: the validation labels that choose the best epoch, ``"noisy"`` or
            ``"verified"`` (``train.select_labels`` resolved by the caller: it knows how many
            validation rows are verified). A resumed run keeps the signal its state recorded.

    Returns:
        ``(state, best)``: the run's final :class:`TrainingState` (its ``history`` holds rank
        0's per-epoch metrics) and the best epoch's :class:`Snapshot`.
    """
    method, model, optimizer = training.method, training.model, training.optimizer
    state = TrainingState(select_metric=job.train.select_metric, select_labels=select_labels)
    best = Snapshot.capture(model, optimizer, method)
    window = job.train.select_until_epoch
    sgd_after_window = job.train.after_window == "sgd"
    if resume is not None:
        state, latest, best = resume
        if state.best_epoch is not None and state.select_labels != select_labels:
            raise ValueError(f"the checkpoint chose its best epoch on the {state.select_labels} validation labels, "
                             f"this run would choose on the {select_labels} ones; train it under another name")
        if sgd_after_window and state.epochs_done > window:  # the checkpoint holds the SGD's state
            optimizer = training.optimizer = handoff_optimizer(model)
        latest.restore(model, optimizer, method)
        state.resumed_from_epoch = state.epochs_done
        if rank == 0:
            log.info("resuming from the checkpoint of epoch %d", state.epochs_done)
    key = selection_key(state.select_labels, job.train.select_metric)
    for epoch in range(state.epochs_done + 1, job.train.epochs + 1):  # numbered from 1
        index = epoch - 1  # keys the draws and the methods' schedules
        started = time.perf_counter()
        if window is not None and epoch == window + 1:
            best.restore(model, optimizer, method)
            if sgd_after_window:
                optimizer = training.optimizer = handoff_optimizer(model)
            if rank == 0:
                log.info("selection window over: continuing from the best epoch (%s)%s", state.best_epoch,
                         " with SGD (Won et al.)" if sgd_after_window else "")
        step_seed = rank_generator_seed(job.seed, index, rank)
        torch.manual_seed(step_seed)  # dropout
        method.start_epoch(Epoch(index, torch.Generator().manual_seed(step_seed), model, steps))
        stats = train_epoch(model, hooks.batches(index), optimizer, method=method, device=device, amp=job.train.amp,
                            log_every=job.train.log_every, describe=f"[rank {rank}] epoch {epoch}")
        evaluated = _evaluate(job, hooks, method.evaluated(model), state, epoch)
        metrics: dict[str, Any] = {"epoch": epoch, **(context or {})}
        improved = False
        if rank == 0:
            metrics.update({**stats.as_metrics(), **method.epoch_metrics(), **evaluated, "workers": world_size})
            if window is None or epoch <= window:
                if key not in metrics:
                    raise ValueError(f"no {key} in the epoch's validation metrics: the run selects on "
                                     f"{state.select_labels} validation rows and has none")
                value = metrics[key]
                improved = state.improves(value)
                if improved:
                    state.best_value, state.best_epoch = value, epoch
            metrics.update({
                "best_epoch": state.best_epoch,
                f"best/{key}": state.best_value,
                "epoch_seconds": time.perf_counter() - started,
                "resumed_from_epoch": -1 if state.resumed_from_epoch is None else state.resumed_from_epoch,
            })
            state.history.append(dict(metrics))
        if agree(improved):  # every rank keeps the same best snapshot
            best = Snapshot.capture(model, optimizer, method)
        state.epochs_done = epoch
        hooks.report(metrics, state=state, best=best, latest=lambda: Snapshot.capture(model, optimizer, method))
        if epoch < job.train.epochs and agree(rank == 0 and stop_requested()):
            if rank == 0:
                log.info("stopping after epoch %d of %d, as requested", epoch, job.train.epochs)
            break
    return state, best


def _evaluate(job: Any, hooks: Hooks, model: nn.Module, state: TrainingState, epoch: int) -> dict[str, float]:
    """Validation, and the evaluation split in the last ``eval.average_last`` epochs (numbers
    ``epochs − average_last + 1`` … ``epochs``) with the running mean of those epochs (on every
    rank: sharded evaluation needs them all)."""
    metrics = hooks.evaluate(model, "valid", prefix="valid/")
    if job.eval.average_last and epoch > job.train.epochs - job.eval.average_last:
        split = job.eval.split
        metrics.update(hooks.evaluate(model, "test", prefix=f"{split}_epoch/"))
        recent = [h for h in state.history if f"{split}_epoch/roc_auc" in h] + [metrics]
        for key in AVERAGED:
            metrics[f"{split}/avg_last/{key}"] = sum(h[f"{split}_epoch/{key}"] for h in recent) / len(recent)
        metrics[f"{split}/avg_last/epochs"] = len(recent)
    return metrics
