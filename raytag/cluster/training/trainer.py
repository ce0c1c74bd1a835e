"""Fitting on the cluster: Ray Train's TorchTrainer around the worker loop. The per-epoch
metrics go from the controller's callback through a queue to the driver, which logs them to
MLflow and prints a progress line per epoch."""

from __future__ import annotations

import contextlib
import logging
import os
import threading

import ray
import ray.train
from ray.train import CheckpointConfig, FailureConfig, RunConfig
from ray.train.torch import TorchTrainer
from ray.util.queue import Empty, Queue
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

from raytag.cluster.training.checkpoints import latest_checkpoint
from raytag.cluster.data.datasets import EpochData
from raytag.cluster.training.worker import train_loop_per_worker
from raytag.config import JobConfig
from raytag.errors import JobError
from raytag.locations import resolve_storage, run_location
from raytag.plan import JobPlan
from raytag.tracking.callback import EpochMetricsToMlflow, Record
from raytag.tracking.client import Tracker

WORKER_GROUP_START_TIMEOUT_ENV = "RAY_TRAIN_WORKER_GROUP_START_TIMEOUT_S"
HEALTH_CHECK_INTERVAL_ENV = "RAY_TRAIN_HEALTH_CHECK_INTERVAL_S"
# Ray Train's controller polls its workers every 2 s by default, and a run ends only at the poll
# after the last report: half a second cuts ~1.5 s off every run (a poll is one small remote
# call per worker). A value in the driver's environment wins.
HEALTH_CHECK_INTERVAL_S = 0.5
# Ray Train starts an actor per run that watches the nodes for preemption (~1.5 CPU s); on a
# single-node cluster the node that would be preempted is the driver's own, so it is left off.
PREEMPTION_WATCHER_ENV = "RAY_TRAIN_ENABLE_PREEMPTION_WATCHER"

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


def run_trainer(job: JobConfig, job_plan: JobPlan, tracker: Tracker, data: EpochData, callbacks: list) -> str:
    """Runs the TorchTrainer; returns the location of the final checkpoint."""
    # On the driver's node, so the queue is lost only with the driver (a worker node may die).
    here = NodeAffinitySchedulingStrategy(ray.get_runtime_context().get_node_id(), soft=False)
    records = Queue(actor_options={"num_cpus": 0, "scheduling_strategy": here})
    logger = EpochMetricsToMlflow(tracker.uri, tracker.handle()["run_id"], tracker.logged_steps("epoch"),
                                  epochs=job.train.epochs, records=records)
    trainer = TorchTrainer(
        train_loop_per_worker,
        train_loop_config={
            "job": job.resolved(),
            "tags": list(job_plan.recipe.tags),
            "data": data,
            "run_location": run_location(job.storage, job.name),
            "select_labels": job_plan.select_labels,
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
    writer = RecordWriter(records, tracker)
    try:
        with _train_environment(job):
            result = trainer.fit()
    except Exception:
        writer.stop()
        tracker.end("FAILED")
        raise
    writer.stop()
    if result.checkpoint is None:
        raise JobError(f"training of {job.name} ended without a checkpoint")
    latest = latest_checkpoint(run_location(job.storage, job.name))
    return latest[0] if latest else result.checkpoint.path


@contextlib.contextmanager
def _train_environment(job: JobConfig):
    """Ray Train reads its start timeout, poll interval and preemption watcher from the
    driver's environment when fit() starts (and hands them to its controller and workers);
    they are set for this run only, so a later stage or trial in the same process gets its own
    settings. Values the user set in the environment win."""
    settings = {}
    if HEALTH_CHECK_INTERVAL_ENV not in os.environ:
        settings[HEALTH_CHECK_INTERVAL_ENV] = str(HEALTH_CHECK_INTERVAL_S)
    if PREEMPTION_WATCHER_ENV not in os.environ and len([n for n in ray.nodes() if n["Alive"]]) == 1:
        settings[PREEMPTION_WATCHER_ENV] = "0"
    if job.scaling.start_timeout_s is not None:
        settings[WORKER_GROUP_START_TIMEOUT_ENV] = str(job.scaling.start_timeout_s)
    previous = {name: os.environ.get(name) for name in settings}
    os.environ.update(settings)
    try:
        yield
    finally:
        for name, value in previous.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


class RecordWriter:
    """Logs the records the Train controller's callback queues (and prints each epoch's line),
    in a thread of the driver while ``fit`` runs in the main thread (which keeps Ctrl-C working
    as Ray Train expects); :meth:`stop` writes what is still queued. If the queue's actor is
    gone, the writer stops reading (the callback then logs by itself)."""

    def __init__(self, queue: Queue, tracker: Tracker):
        self.queue, self.tracker = queue, tracker
        self.done = threading.Event()
        self.gone = False
        self.thread = threading.Thread(target=self._run, name="raytag-records", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while not self.done.is_set() and not self.gone:
            self._write_next(timeout=0.5)

    def _write_next(self, timeout: float) -> bool:
        if self.gone:
            return False
        try:
            record = Record(**self.queue.get(timeout=timeout))
        except Empty:
            return False
        except ray.exceptions.RayError:
            self.gone = True
            return False
        record.write(self.tracker, progress=True)
        return True

    def stop(self) -> None:
        self.done.set()
        self.thread.join()
        while self._write_next(timeout=0.1):
            pass
        if not self.gone:
            self.queue.shutdown()
