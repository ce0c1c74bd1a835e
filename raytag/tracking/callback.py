"""Per-epoch metrics reach MLflow through Ray Train, on the driver's side.

:class:`EpochMetricsToMlflow` is a ``ray.train.UserCallback``: Ray Train runs it in its
controller, which is pinned to the driver's node, after every round of ``ray.train.report``.
Train workers therefore never open the tracking store, and with the default SQLite store a
multi-node run lands complete in the driver's ``mlflow.db``.

The callback decides what to log and hands each record to the driver through a queue
(``ray.util.queue.Queue``); the driver, which has MLflow open already, logs it and prints the
epoch's line (:class:`RecordWriter`). The controller therefore never imports MLflow (~2 CPU
seconds on every run) unless the queue is gone: then it logs the record itself.

Each epoch is logged once, at step = its number (epochs are numbered from 1, see
:mod:`raytag.engine.state`). Rank 0's checkpoint carries the metrics of every epoch so far, so
an epoch whose report was lost (a worker killed right after persisting its checkpoint) is
logged from the next checkpoint, and an epoch re-run after a restart is not logged twice.
"""

from __future__ import annotations

import logging
import math
from dataclasses import asdict, dataclass, field

import ray.train

from raytag.engine.state import STATE_FILE, parse_state
from raytag.tracking.client import Tracker
from raytag.tracking.run_tags import TRAIN_NODES

log = logging.getLogger("raytag")


@dataclass
class Record:
    """One thing to log: an epoch's metrics (``step`` = the epoch's number) or run tags."""

    metrics: dict[str, float] = field(default_factory=dict)
    step: int | None = None
    tags: dict[str, str] = field(default_factory=dict)
    epochs: int | None = None  # the run's epochs, for the progress line

    def write(self, tracker: Tracker, *, progress: bool) -> None:
        """Logs the record; an epoch's record also prints its progress line."""
        if self.metrics:
            tracker.log_metrics(self.metrics, step=self.step)
            if progress:
                log.info(epoch_line(self.metrics, self.epochs))
        if self.tags:
            tracker.set_tags(self.tags)


class EpochMetricsToMlflow(ray.train.UserCallback):
    """Logs rank 0's reported metrics into one MLflow run.

    Args:
        uri, run_id: the run (a disabled tracker's ``run_id`` is None: then nothing is logged).
        logged_epochs: epochs already in the run (when a job is resumed).
        epochs: the run's epochs, for the progress line.
        records: a ``ray.util.queue.Queue`` the driver writes :class:`Record` s from; None:
            the callback logs itself (and prints no progress line).
    """

    def __init__(
        self,
        uri: str | None,
        run_id: str | None,
        logged_epochs: set[int] | None = None,
        *,
        epochs: int | None = None,
        records=None,
    ):
        self.tracker = Tracker(uri, run_id)
        self.logged = set(logged_epochs or ())
        self.epochs = epochs
        self.records = records
        self.nodes: set[str] = set()

    def after_report(self, run_context, metrics: list[dict], checkpoint) -> None:
        if checkpoint is not None:
            self._backfill(checkpoint)
        if metrics:
            self.log_epoch(metrics[0])
            nodes = self.nodes | {str(m["node"]) for m in metrics if m.get("node")}
            if nodes != self.nodes:
                self.nodes = nodes
                self._send(Record(tags={TRAIN_NODES: ",".join(sorted(nodes))}))

    def log_epoch(self, metrics: dict) -> None:
        """Logs one epoch's metrics unless that epoch is already in the run."""
        epoch = metrics.get("epoch")
        if epoch is None or int(epoch) in self.logged:
            return
        self._send(epoch_record(metrics, epochs=self.epochs))
        self.logged.add(int(epoch))

    def _send(self, record: Record) -> None:
        """To the driver's queue; if that is gone, straight to the store (nothing is dropped)."""
        if self.records is not None:
            try:
                self.records.put_nowait(asdict(record))  # plain data: the queue's actor imports nothing
                return
            except Exception:  # noqa: BLE001 - a lost queue must never stop training or lose metrics
                self.records = None
        record.write(self.tracker, progress=False)

    def _backfill(self, checkpoint) -> None:
        # Only the small state file is read, through the checkpoint's own file system.
        try:
            with checkpoint.filesystem.open_input_stream(f"{checkpoint.path}/{STATE_FILE}") as stream:
                history = parse_state(stream.read().decode()).history
        except (OSError, ValueError):
            return
        for entry in history:
            self.log_epoch(entry)


def epoch_record(metrics: dict, *, epochs: int | None = None) -> Record:
    """The :class:`Record` of one epoch's metrics (as a worker reports them, ``epoch`` its
    number): its finite scalars, at step = the epoch's number."""
    scalars = {
        k: float(v) for k, v in metrics.items()
        if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
    }
    return Record(metrics=scalars, step=int(metrics["epoch"]), epochs=epochs)


def log_missing_epochs(tracker: Tracker, history: list[dict]) -> int:
    """Logs the epochs of a checkpoint's ``history`` that the tracker's run lacks (a job whose
    training finished before this run started: a finished or older run is not continued, see
    :func:`raytag.tracking.runs.start_run`); returns how many were logged."""
    logged = tracker.logged_steps("epoch")
    missing = [entry for entry in history if "epoch" in entry and int(entry["epoch"]) not in logged]
    for entry in missing:
        epoch_record(entry).write(tracker, progress=False)
    return len(missing)


def epoch_line(metrics: dict[str, float], epochs: int | None) -> str:
    """One readable line per epoch: loss, validation ranking metrics, time, workers."""
    epoch = int(metrics["epoch"])
    parts = [f"epoch {epoch}/{epochs}" if epochs else f"epoch {epoch}"]
    for key, label in (("train/loss", "train loss"), ("valid/loss", "valid loss"), ("valid/roc_auc", "ROC-AUC"),
                       ("valid/pr_auc", "PR-AUC")):
        if key in metrics:
            parts.append(f"{label} {metrics[key]:.4f}")
    tail = [f"{metrics['epoch_seconds']:.0f} s"] if "epoch_seconds" in metrics else []
    if metrics.get("workers", 1) > 1:
        tail.append(f"{int(metrics['workers'])} workers")
    if metrics.get("best_epoch") == metrics["epoch"]:
        tail.append("best so far")
    return "  ".join(parts) + (f"  ({', '.join(tail)})" if tail else "")
