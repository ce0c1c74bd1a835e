"""The Ray Train worker loop: unpack the config, stream this rank's data, call the Ray-free engine.

The run itself (seeding, epochs, Lu et al.'s selection window, the best snapshot, the mean of
the last epochs) is :func:`raytag.engine.run.fit`; this module gives it Ray's hooks. Every rank
trains on its share of each epoch under DDP, with draws seeded by (seed, epoch, rank); every
rank scores its shard of the validation set; rank 0 decides the best epoch and attaches the
checkpoint to its report; the metrics reach MLflow through the controller's
callback on the driver's side (:mod:`raytag.tracking.callback`). This module never opens the
tracking store.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import ray.train
import ray.train.torch
import torch

from raytag import storage
from raytag.cluster.training.checkpoints import load_latest, report
from raytag.cluster.training.stop import stop_requested
from raytag.cluster.data.datasets import EpochData
from raytag.config import JobConfig
from raytag.data.rows import rank_batch_size
from raytag.engine.loop import track_loss, validation_probabilities
from raytag.scoring.tracks import TrackAverager
from raytag.engine.run import build_training, fit
from raytag.metrics import tagging_report
from raytag.models.export import read_weights
from raytag.selection import PREFIXES, VERIFIED

log = logging.getLogger("raytag.train")


def evaluate_shards(data: EpochData, split: str, model, *, tags: list[str], device, amp: str, batch_size: int,
             rank: int, world_size: int, prefix: str) -> dict[str, float]:
    """Track-level metrics of ``model`` on a split, sharded: every rank scores the chunks of its
    tracks, the per-track sums are all-reduced, and every rank gets the same metrics (so no
    worker idles at the report barrier while another validates everything). On the validation
    split, the verified rows' metrics too (``valid_verified/``), from the same scores."""
    batches, num_tracks = data.chunks(split, batch_size=batch_size, rank=rank, world_size=world_size)
    averager = TrackAverager(num_tracks, len(tags))
    for track, probs, labels in validation_probabilities(model, batches, device=device, amp=amp):
        averager.add(track, probs, labels)
    averager.all_reduce(device)
    scores, kept = averager.result()
    labels = averager.labels[kept]
    metrics = _split_metrics(labels, scores, tags, prefix)
    if split == "valid" and data.valid_verified is not None:
        verified = np.asarray(data.valid_verified, dtype=bool)[kept]
        if verified.any():
            metrics.update(_split_metrics(labels[verified], scores[verified], tags, PREFIXES[VERIFIED]))
    return metrics


def _split_metrics(labels, scores, tags: list[str], prefix: str) -> dict[str, float]:
    metrics = tagging_report(labels, scores, tags).as_metrics(prefix=prefix)
    metrics[f"{prefix}loss"] = track_loss(scores, labels)
    return metrics


def train_loop_per_worker(config: dict[str, Any]) -> None:
    """Ray Train entry point. ``config``: job (resolved dict), tags, data (EpochData),
    run_location (the run folder in storage), select_labels (``noisy`` or ``verified``: the
    validation labels that choose the best epoch, resolved by the plan)."""
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    job = JobConfig.model_validate(config["job"])
    tags: list[str] = config["tags"]
    data: EpochData = config["data"]
    context = ray.train.get_context()
    rank, world_size = context.get_world_rank(), context.get_world_size()
    device = ray.train.torch.get_device()
    training = build_training(job, tags, init_weights=_init_weights(job.model.init), wrap=ray.train.torch.prepare_model)
    batch_size = rank_batch_size(job.train.batch_size, world_size)
    fit(job, training, WorkerHooks(job, data, tags, config, device=device, rank=rank, world_size=world_size,
                                   batch_size=batch_size),
        steps=data.steps_per_epoch(world_size=world_size, batch_size=batch_size), device=device, rank=rank,
        world_size=world_size, resume=load_latest(config["run_location"]), agree=_agree,
        context={"node": ray.get_runtime_context().get_node_id()},
        stop_requested=lambda: stop_requested(config["run_location"]), select_labels=config["select_labels"])


class WorkerHooks:
    """:class:`raytag.engine.run.Hooks` of a Ray Train worker: this rank's Ray Data batches,
    sharded evaluation, ``ray.train.report`` with a checkpoint."""

    def __init__(self, job: JobConfig, data: EpochData, tags: list[str], config: dict[str, Any], *, device,
                 rank: int, world_size: int, batch_size: int):
        self.job, self.data, self.tags, self.config = job, data, tags, config
        self.device, self.rank, self.world_size, self.batch_size = device, rank, world_size, batch_size

    def batches(self, index: int):
        return self.data.train_batches(epoch=index, rank=self.rank, world_size=self.world_size,
                                       batch_size=self.batch_size)

    def evaluate(self, model, split: str, *, prefix: str) -> dict[str, float]:
        return evaluate_shards(self.data, split, model, tags=self.tags, device=self.device, amp=self.job.train.amp,
                        batch_size=self.job.eval.batch_size, rank=self.rank, world_size=self.world_size,
                        prefix=prefix)

    def report(self, metrics: dict[str, Any], *, state, best, latest) -> None:
        report(metrics, rank=self.rank, state=state, job=self.config["job"], best=best, latest=latest,
               run_folder=self.config["run_location"])


def _init_weights(init: str | None) -> dict | None:
    """The weights of ``model.init`` (an exported model in storage, e.g. He et al.'s stage 2
    continuing stage 1), or None."""
    if init is None:
        return None
    with storage.local_folder(init) as folder:
        return read_weights(folder)


def _agree(flag: bool) -> bool:
    """Rank 0's decision, on every rank."""
    if not (torch.distributed.is_available() and torch.distributed.is_initialized()):
        return flag
    decision = [flag]
    torch.distributed.broadcast_object_list(decision, src=0)
    return bool(decision[0])
