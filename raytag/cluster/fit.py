"""Fitting on the cluster: Ray Train's TorchTrainer around the worker loop, with the per-epoch
metrics going to MLflow through the controller's callback and a progress line per epoch."""

from __future__ import annotations

import logging
import os
import threading

import ray
import ray.train
from ray.train import CheckpointConfig, FailureConfig, RunConfig
from ray.train.torch import TorchTrainer
from ray.util.queue import Empty, Queue

from raytag.cluster.checkpoints import latest_checkpoint
from raytag.cluster.datasets import EpochData
from raytag.cluster.worker import train_loop_per_worker
from raytag.config import JobConfig
from raytag.errors import JobError
from raytag.locations import resolve_storage, run_location
from raytag.plan import Prepared
from raytag.tracking.callback import EpochMetricsToMlflow
from raytag.tracking.client import Tracker

WORKER_GROUP_START_TIMEOUT_ENV = "RAY_TRAIN_WORKER_GROUP_START_TIMEOUT_S"

log = logging.getLogger("raytag")


def scaling_config(job: JobConfig) -> ray.train.ScalingConfig:
    """Ray Train's scaling: a fixed group, or an elastic ``(min, max)`` range."""
    low, high = job.scaling.worker_range
    resources = {"CPU": job.scaling.cpus_per_worker, **job.scaling.resources}
    if job.scaling.use_gpu:
        resources["GPU"] = job.scaling.gpus_per_worker
    return ray.train.ScalingConfig(
        num_workers=low if low == high else (low, high),
        use_gpu=job.scaling.use_gpu,
        resources_per_worker=resources,
        elastic_resize_monitor_interval_s=job.scaling.resize_check_s,
    )


def fit(job: JobConfig, prepared: Prepared, tracker: Tracker, data: EpochData, callbacks: list) -> str:
    """Runs the TorchTrainer; returns the location of the final checkpoint."""
    progress = Queue(actor_options={"num_cpus": 0})
    logger = EpochMetricsToMlflow(tracker.uri, tracker.handle()["run_id"], tracker.logged_steps("epoch"),
                                  epochs=job.train.epochs, progress=progress)
    trainer = TorchTrainer(
        train_loop_per_worker,
        train_loop_config={
            "job": job.resolved(),
            "tags": list(prepared.recipe.tags),
            "data": data,
            "run_location": run_location(job.storage, job.name),
        },
        scaling_config=scaling_config(job),
        run_config=RunConfig(
            name=job.name,
            storage_path=resolve_storage(job.storage),
            failure_config=FailureConfig(max_failures=job.scaling.max_failures),
            checkpoint_config=CheckpointConfig(num_to_keep=2),
            callbacks=[logger, *callbacks],
        ),
    )
    # Ray Train reads its start timeout from the driver's environment when fit() starts; set it
    # for this run only, so a later stage or trial in the same process gets its own setting.
    previous = os.environ.get(WORKER_GROUP_START_TIMEOUT_ENV)
    if job.scaling.start_timeout_s is not None:
        os.environ[WORKER_GROUP_START_TIMEOUT_ENV] = str(job.scaling.start_timeout_s)
    printer = _ProgressPrinter(progress)
    try:
        result = trainer.fit()
    except Exception:
        tracker.end("FAILED")
        raise
    finally:
        printer.stop()
        if previous is None:
            os.environ.pop(WORKER_GROUP_START_TIMEOUT_ENV, None)
        else:
            os.environ[WORKER_GROUP_START_TIMEOUT_ENV] = previous
    if result.checkpoint is None:
        raise JobError(f"training of {job.name} ended without a checkpoint")
    latest = latest_checkpoint(run_location(job.storage, job.name))
    return latest[0] if latest else result.checkpoint.path


class _ProgressPrinter:
    """Prints the per-epoch lines the Train controller's callback queues, while ``fit`` runs in
    the main thread (which keeps Ctrl-C working as Ray Train expects)."""

    def __init__(self, queue: Queue):
        self.queue = queue
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._run, name="raytag-progress", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while not self.done.is_set():
            self._print_next(timeout=0.5)

    def _print_next(self, timeout: float) -> bool:
        try:
            log.info(self.queue.get(timeout=timeout))
            return True
        except (Empty, ray.exceptions.RayError):
            return False

    def stop(self) -> None:
        self.done.set()
        self.thread.join()
        while self._print_next(timeout=0.1):
            pass
        self.queue.shutdown()
