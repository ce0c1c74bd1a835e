"""The Ray Train worker loop: unpack the config, get the shards, call the Ray-free engine.

Every rank trains on its shard of the training data under DDP. Rank 0 alone validates (on the
whole validation set), keeps the best weights, saves checkpoints and logs to MLflow; it then
reports the metrics that Ray Train keeps with each checkpoint.
"""

from __future__ import annotations

import logging
import tempfile
import time
from pathlib import Path
from typing import Any

import ray.train
import ray.train.torch
import torch
from ray.train import Checkpoint

from raytag.config import JobConfig
from raytag.metrics import tagging_report
from raytag.models import create_model
from raytag.methods.strategies import build_model, build_strategy, exported
from raytag.tracking.client import Tracker
from raytag.engine import checkpoint as ckpt
from raytag.engine.loop import (
    TrackAverager,
    chunk_probabilities,
    track_loss,
    train_epoch,
    with_unlabeled,
)

log = logging.getLogger("raytag.train")


def validate(model, batches, *, num_tracks: int, tags: list[str], device, amp: str) -> dict[str, float]:
    """Track-level validation metrics against the manifest's (noisy) validation labels."""
    averager = TrackAverager(num_tracks, len(tags))
    for track, probs, labels in chunk_probabilities(model, batches, device=device, amp=amp):
        averager.add(track, probs, labels)
    scores, kept = averager.result()
    labels = averager.labels[kept]
    metrics = tagging_report(labels, scores, tags).as_metrics(prefix="valid/")
    metrics["valid/loss"] = track_loss(scores, labels)
    return metrics


def train_loop_per_worker(config: dict[str, Any]) -> None:
    """Ray Train entry point. ``config``: job (resolved dict), tags, num_tracks, tracking, run_dir."""
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    job = JobConfig.model_validate(config["job"])
    tags: list[str] = config["tags"]
    context = ray.train.get_context()
    rank = context.get_world_rank()
    device = ray.train.torch.get_device()

    torch.manual_seed(job.seed)
    model = build_model(lambda: create_model(job.model.name, num_tags=len(tags), **job.model.args), job.objective)
    model = ray.train.torch.prepare_model(model)
    # Every rank draws the same masks: the seed does not depend on the rank.
    strategy = build_strategy(job.objective, tags=tags, seed=job.seed, semi=job.semi)
    optimizer = torch.optim.Adam(model.parameters(), lr=job.train.lr, weight_decay=job.train.weight_decay)

    state = ckpt.TrainingState(select_metric=job.train.select_metric)
    best_weights = ckpt.cpu_state(exported(model))
    resumed = _restore(Path(config["run_dir"]), model, optimizer)
    if resumed:
        state, best_weights, strategy_state = resumed
        strategy.load_state_dict(strategy_state)
        state.resumed_from_epoch = state.next_epoch
        if rank == 0:
            log.info("resuming from the checkpoint of epoch %d", state.next_epoch - 1)

    tracker = Tracker(**config["tracking"]) if rank == 0 else Tracker.disabled()
    train_shard = ray.train.get_dataset_shard("train")
    unlabeled_batch = max(1, round(job.semi.ratio * job.train.batch_size))

    def batches():
        labelled = train_shard.iter_torch_batches(batch_size=job.train.batch_size, local_shuffle_buffer_size=None)
        if not job.semi.enabled:
            return labelled
        shard = ray.train.get_dataset_shard("unlabeled")
        return with_unlabeled(labelled, lambda: shard.iter_torch_batches(batch_size=unlabeled_batch))

    for epoch in range(state.next_epoch, job.train.epochs):
        started = time.perf_counter()
        if epoch == job.train.select_until_epoch:
            _reload_best(model, best_weights, rank)
        strategy.start_epoch(epoch)
        stats = train_epoch(
            model,
            batches(),
            optimizer,
            objective=strategy,
            device=device,
            amp=job.train.amp,
            log_every=job.train.log_every,
            describe=f"[rank {rank}] epoch {epoch}",
        )
        metrics: dict[str, float] = {}
        if rank == 0:
            metrics = {**stats.as_metrics(), **strategy.epoch_metrics()}
            metrics.update(_evaluate_epoch(job, config, model, state, epoch, tags, device))
            if job.train.select_until_epoch is None or epoch < job.train.select_until_epoch:
                value = metrics[f"valid/{job.train.select_metric}"]
                if state.improves(value):
                    state.best_value, state.best_epoch = value, epoch
                    best_weights = ckpt.cpu_state(exported(model))
            metrics.update(
                {
                    "epoch": epoch,
                    "best_epoch": state.best_epoch,
                    f"best/valid/{job.train.select_metric}": state.best_value,
                    "epoch_seconds": time.perf_counter() - started,
                    "resumed_from_epoch": -1 if state.resumed_from_epoch is None else state.resumed_from_epoch,
                }
            )
            tracker.log_metrics(metrics, step=epoch)
            log.info(
                "epoch %d/%d  train loss %.4f  valid roc_auc %.4f  pr_auc %.4f  (%.0f s)",
                epoch + 1, job.train.epochs, stats.loss, metrics["valid/roc_auc"],
                metrics["valid/pr_auc"], metrics["epoch_seconds"],
            )
        state.next_epoch = epoch + 1
        _report(rank, metrics, model, optimizer, best_weights, state, config["job"], strategy.state_dict())


def _evaluate_epoch(job, config, model, state, epoch: int, tags: list[str], device) -> dict[str, float]:
    """Rank 0's per-epoch evaluation: validation, and the test split in the last
    ``eval.average_last`` epochs, with their running mean (Lu et al. protocol)."""
    num_tracks = config["num_tracks"]
    batches = ray.train.get_dataset_shard("valid").iter_torch_batches(batch_size=job.eval.batch_size)
    metrics = validate(exported(model), batches, num_tracks=num_tracks["valid"], tags=tags, device=device, amp=job.train.amp)
    state.history.append({k: v for k, v in metrics.items() if k.startswith("valid/")})
    if job.eval.average_last and epoch >= job.train.epochs - job.eval.average_last:
        batches = ray.train.get_dataset_shard("test").iter_torch_batches(batch_size=job.eval.batch_size)
        test = validate(exported(model), batches, num_tracks=num_tracks["test"], tags=tags, device=device, amp=job.train.amp)
        split = job.eval.split
        epoch_metrics = {f"{split}_epoch/{k.removeprefix('valid/')}": v for k, v in test.items()}
        state.history[-1].update(epoch_metrics)
        metrics.update(epoch_metrics)
        recent = [h for h in state.history if f"{split}_epoch/roc_auc" in h]
        for key in ("roc_auc", "pr_auc", "lwlrap"):
            values = [h[f"{split}_epoch/{key}"] for h in recent]
            metrics[f"{split}/avg_last/{key}"] = sum(values) / len(values)
        metrics[f"{split}/avg_last/epochs"] = len(recent)
    return metrics


def _reload_best(model, best_weights, rank: int) -> None:
    """Continues training from the best epoch's weights: rank 0 has them, DDP ranks get a copy."""
    target = exported(model)
    if rank == 0:
        target.load_state_dict(best_weights)
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        for tensor in ckpt.unwrap(model).state_dict().values():
            torch.distributed.broadcast(tensor, src=0)
    if rank == 0:
        log.info("selection window over: continuing from the best epoch's weights")


def _restore(run_dir: Path, model, optimizer):
    """Loads the newest checkpoint: the newest complete one in the run's storage folder, else
    the one Ray Train hands back.

    Ray Train registers a reported checkpoint only when its controller next polls the
    workers, so a worker killed right after reporting restarts with an older checkpoint (or
    none); the folder in storage is already complete by then, so it is preferred.
    """
    on_disk = ckpt.latest(run_dir)
    if on_disk:
        return ckpt.restore(on_disk[0], model=model, optimizer=optimizer)
    registered = ray.train.get_checkpoint()
    if registered:
        with registered.as_directory() as folder:
            return ckpt.restore(Path(folder), model=model, optimizer=optimizer)
    return None


def _report(rank, metrics, model, optimizer, best_weights, state, job, strategy_state) -> None:
    """Every rank reports (Ray Train keeps rank 0's metrics); rank 0 attaches the checkpoint."""
    if rank != 0:
        ray.train.report({"epoch": state.next_epoch - 1}, checkpoint=None)
        return
    with tempfile.TemporaryDirectory() as folder:
        ckpt.save(
            Path(folder), model=model, optimizer=optimizer, best_weights=best_weights, state=state,
            job=job, strategy_state=strategy_state,
        )
        ray.train.report(metrics, checkpoint=Checkpoint.from_directory(folder))
