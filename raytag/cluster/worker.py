"""The Ray Train worker loop: unpack the config, stream this rank's data, call the Ray-free engine.

Every rank trains on its share of each epoch under DDP, with draws seeded by (seed, epoch,
rank). Rank 0 alone validates (on the whole validation set), keeps the best weights and
attaches the checkpoint to its report; the metrics reach MLflow through the controller's
callback on the driver's side (:mod:`raytag.tracking.callback`). This module never opens the
tracking store.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import ray.train
import ray.train.torch
import torch

from raytag.cluster import storage
from raytag.cluster.checkpoints import load_latest, report
from raytag.cluster.datasets import EpochData
from raytag.config import JobConfig
from raytag.engine import checkpoint as ckpt
from raytag.data.rows import rank_batch_size
from raytag.engine.loop import TrackAverager, chunk_probabilities, track_loss, train_epoch
from raytag.engine.seeding import init_seed, rank_generator_seed
from raytag.methods import build_method
from raytag.methods.base import Epoch
from raytag.metrics import tagging_report
from raytag.models.export import ModelRecipe, read_weights

log = logging.getLogger("raytag.train")


def validate(data: EpochData, split: str, model, *, tags: list[str], device, amp: str, batch_size: int,
             rank: int, world_size: int, prefix: str) -> dict[str, float]:
    """Track-level metrics of ``model`` on a split, sharded: every rank scores the chunks of its
    tracks, the per-track sums are all-reduced, and every rank gets the same metrics (so no
    worker idles at the report barrier while another validates everything)."""
    chunks, num_tracks = data.chunks(split, rank=rank, world_size=world_size)
    averager = TrackAverager(num_tracks, len(tags))
    batches = chunks.iter_torch_batches(batch_size=batch_size)
    for track, probs, labels in chunk_probabilities(model, batches, device=device, amp=amp):
        averager.add(track, probs, labels)
    averager.all_reduce(device)
    scores, kept = averager.result()
    labels = averager.labels[kept]
    metrics = tagging_report(labels, scores, tags).as_metrics(prefix=prefix)
    metrics[f"{prefix}loss"] = track_loss(scores, labels)
    return metrics


def train_loop_per_worker(config: dict[str, Any]) -> None:
    """Ray Train entry point. ``config``: job (resolved dict), tags, data (EpochData),
    run_location (the run folder in storage)."""
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    job = JobConfig.model_validate(config["job"])
    tags: list[str] = config["tags"]
    data: EpochData = config["data"]
    context = ray.train.get_context()
    rank, world_size = context.get_world_rank(), context.get_world_size()
    node = ray.get_runtime_context().get_node_id()
    device = ray.train.torch.get_device()

    method = build_method(job, tags=tags)
    recipe = ModelRecipe(job.model.name, dict(job.model.args), tuple(tags), job.model.head)
    torch.manual_seed(init_seed(job.seed))  # the same initial weights on every rank
    model = ray.train.torch.prepare_model(method.build_network(_network_factory(recipe, job.model.init)))
    optimizer = torch.optim.Adam(model.parameters(), lr=job.train.lr, weight_decay=job.train.weight_decay)

    state = ckpt.TrainingState(select_metric=job.train.select_metric)
    best = ckpt.Snapshot.capture(model, optimizer, method)
    resumed = load_latest(config["run_location"])
    if resumed:
        state, latest, best = resumed
        latest.restore(model, optimizer, method)
        state.resumed_from_epoch = state.next_epoch
        if rank == 0:
            log.info("resuming from the checkpoint of epoch %d", state.next_epoch - 1)

    batch_size = rank_batch_size(job.train.batch_size, world_size)
    steps = data.steps_per_epoch(world_size=world_size, batch_size=batch_size)
    for epoch in range(state.next_epoch, job.train.epochs):
        started = time.perf_counter()
        if epoch == job.train.select_until_epoch:
            # Lu et al.: "load the best model and train another N epochs" -- the whole training
            # state of the best epoch (student, mean teacher and its step count, Adam moments).
            best.restore(model, optimizer, method)
            if rank == 0:
                log.info("selection window over: continuing from the best epoch (%s)", state.best_epoch)
        step_seed = rank_generator_seed(job.seed, epoch, rank)
        torch.manual_seed(step_seed)  # dropout
        method.start_epoch(Epoch(epoch, torch.Generator().manual_seed(step_seed), model, steps))
        batches = data.train_batches(epoch=epoch, rank=rank, world_size=world_size, batch_size=batch_size)
        stats = train_epoch(
            model, batches, optimizer, method=method, device=device, amp=job.train.amp,
            log_every=job.train.log_every, describe=f"[rank {rank}] epoch {epoch}",
        )
        metrics: dict[str, Any] = {"epoch": epoch, "node": node}
        improved = False
        evaluated = _evaluate_epoch(job, data, method.evaluated(model), state, epoch, tags, device, rank, world_size)
        if rank == 0:
            metrics.update({**stats.as_metrics(), **method.epoch_metrics(), **evaluated, "workers": world_size})
            if job.train.select_until_epoch is None or epoch < job.train.select_until_epoch:
                value = metrics[f"valid/{job.train.select_metric}"]
                improved = state.improves(value)
                if improved:
                    state.best_value, state.best_epoch = value, epoch
            metrics.update({
                "best_epoch": state.best_epoch,
                f"best/valid/{job.train.select_metric}": state.best_value,
                "epoch_seconds": time.perf_counter() - started,
                "resumed_from_epoch": -1 if state.resumed_from_epoch is None else state.resumed_from_epoch,
            })
            state.history.append(dict(metrics))
        if _agree(improved):  # every rank keeps the same best snapshot
            best = ckpt.Snapshot.capture(model, optimizer, method)
        state.next_epoch = epoch + 1
        report(metrics, rank=rank, state=state, job=config["job"], best=best,
               latest=lambda: ckpt.Snapshot.capture(model, optimizer, method))


def _network_factory(recipe: ModelRecipe, init: str | None):
    """Builds fresh networks, or networks that start from an exported model (``model.init``:
    e.g. He et al.'s stage 2 continuing stage 1), read from storage."""
    if init is None:
        return recipe.build
    with storage.local_folder(init) as folder:
        weights = read_weights(folder)

    def make():
        network = recipe.build()
        network.load_state_dict(weights)
        return network

    return make


def _agree(flag: bool) -> bool:
    """Rank 0's decision, on every rank."""
    if not (torch.distributed.is_available() and torch.distributed.is_initialized()):
        return flag
    decision = [flag]
    torch.distributed.broadcast_object_list(decision, src=0)
    return bool(decision[0])


def _evaluate_epoch(job, data: EpochData, model, state, epoch: int, tags: list[str], device, rank: int,
                    world_size: int) -> dict[str, float]:
    """Per-epoch evaluation on every rank: validation, and the test split in the last
    ``eval.average_last`` epochs, with their running mean (Lu et al. protocol)."""
    common = {"tags": tags, "device": device, "amp": job.train.amp, "batch_size": job.eval.batch_size,
              "rank": rank, "world_size": world_size}
    metrics = validate(data, "valid", model, prefix="valid/", **common)
    if job.eval.average_last and epoch >= job.train.epochs - job.eval.average_last:
        split = job.eval.split
        metrics.update(validate(data, "test", model, prefix=f"{split}_epoch/", **common))
        recent = [h for h in state.history if f"{split}_epoch/roc_auc" in h] + [metrics]
        for key in ("roc_auc", "pr_auc", "lwlrap"):
            metrics[f"{split}/avg_last/{key}"] = sum(h[f"{split}_epoch/{key}"] for h in recent) / len(recent)
        metrics[f"{split}/avg_last/epochs"] = len(recent)
    return metrics
