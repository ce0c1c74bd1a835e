"""Per-epoch metrics reach MLflow through Ray Train, on the driver's side.

:class:`EpochMetricsToMlflow` is a ``ray.train.UserCallback``: Ray Train runs it in its
controller, which is pinned to the driver's node, after every round of ``ray.train.report``.
Train workers therefore never open the tracking store, and with the default SQLite store a
multi-node run lands complete in the driver's ``mlflow.db``.

Each epoch is logged once (step = epoch). Rank 0's checkpoint carries the metrics of every
epoch so far, so an epoch whose report was lost (a worker killed right after persisting its
checkpoint) is logged from the next checkpoint, and an epoch re-run after a restart is not
logged twice.
"""

from __future__ import annotations

import math

import ray.train

from raytag.engine import checkpoint as ckpt
from raytag.tracking.client import Tracker


class EpochMetricsToMlflow(ray.train.UserCallback):
    """Logs rank 0's reported metrics into one MLflow run.

    Args:
        uri, run_id: the run (a disabled tracker's ``run_id`` is None: then nothing is logged).
        logged_epochs: epochs already in the run (when a job is resumed).
    """

    def __init__(self, uri: str | None, run_id: str | None, logged_epochs: set[int] | None = None):
        self.tracker = Tracker(uri, run_id)
        self.logged = set(logged_epochs or ())

    def after_report(self, run_context, metrics: list[dict], checkpoint) -> None:
        if checkpoint is not None:
            self._backfill(checkpoint)
        if metrics:
            self.log_epoch(metrics[0])

    def log_epoch(self, metrics: dict) -> None:
        """Logs one epoch's metrics unless that epoch is already in the run."""
        epoch = metrics.get("epoch")
        if epoch is None or int(epoch) in self.logged:
            return
        scalars = {
            k: float(v) for k, v in metrics.items()
            if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
        }
        self.tracker.log_metrics(scalars, step=int(epoch))
        self.logged.add(int(epoch))

    def _backfill(self, checkpoint) -> None:
        # Only the small state file is read, through the checkpoint's own file system.
        try:
            with checkpoint.filesystem.open_input_stream(f"{checkpoint.path}/{ckpt.STATE_FILE}") as stream:
                history = ckpt.parse_state(stream.read().decode()).history
        except (OSError, ValueError):
            return
        for entry in history:
            self.log_epoch(entry)
