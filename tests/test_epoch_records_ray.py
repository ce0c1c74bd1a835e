"""The per-epoch records of a training run: decided in Ray Train's controller (the callback),
written to MLflow by the driver's thread; straight from the callback when the queue is gone."""

from __future__ import annotations

import logging

import pytest
from mlflow.tracking import MlflowClient

from raytag.cluster.training.trainer import RecordWriter
from raytag.tracking.callback import EpochMetricsToMlflow
from raytag.tracking.client import Tracker
from raytag.tracking.run_tags import TRAIN_NODES

pytestmark = pytest.mark.ray


def _report(callback, epoch: int, node: str = "node-a") -> None:
    """Epoch ``epoch`` (numbered from 1) reported by two ranks; epoch 1 stays the best."""
    callback.after_report(None, [{"epoch": epoch, "train/loss": 1.0 / epoch, "valid/roc_auc": 0.4 + epoch / 10,
                                  "best_epoch": 1, "epoch_seconds": 2.0, "node": node},
                                 {"epoch": epoch, "node": "node-b"}], None)


def _history(uri: str, run_id: str, key: str) -> dict[int, float]:
    return {m.step: m.value for m in MlflowClient(uri).get_metric_history(run_id, key)}


def test_records_reach_mlflow_through_the_driver_and_without_the_queue(ray_session, tmp_path, caplog):
    from ray.util.queue import Queue

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    tracker = Tracker.start(uri, "records", "run")
    queue = Queue(actor_options={"num_cpus": 0})
    callback = EpochMetricsToMlflow(uri, tracker.run_id, {5}, epochs=3, records=queue)
    writer = RecordWriter(queue, tracker)
    with caplog.at_level(logging.INFO, logger="raytag"):
        _report(callback, 1)
        _report(callback, 1)  # a re-run epoch (after a restart) is logged once
        _report(callback, 5)  # already in the run when it was resumed
        writer.stop()
    assert _history(uri, tracker.run_id, "train/loss") == {1: 1.0}  # step = the epoch's number
    assert MlflowClient(uri).get_run(tracker.run_id).data.tags[TRAIN_NODES] == "node-a,node-b"
    assert [r.getMessage() for r in caplog.records if r.getMessage().startswith("epoch ")] == [
        "epoch 1/3  train loss 1.0000  ROC-AUC 0.5000  (2 s, best so far)"]

    # The queue's actor is gone (the driver stopped reading): the callback logs by itself.
    _report(callback, 2)
    assert _history(uri, tracker.run_id, "train/loss") == {1: 1.0, 2: 0.5}
    assert _history(uri, tracker.run_id, "valid/roc_auc") == pytest.approx({1: 0.5, 2: 0.6})


def test_the_writer_stops_reading_a_queue_whose_actor_is_gone(ray_session, tmp_path):
    import time

    import ray
    from ray.util.queue import Queue

    tracker = Tracker.start(f"sqlite:///{tmp_path / 'mlflow.db'}", "records", "run")
    queue = Queue(actor_options={"num_cpus": 0})
    writer = RecordWriter(queue, tracker)
    ray.kill(queue.actor)
    deadline = time.monotonic() + 30
    while not writer.gone and time.monotonic() < deadline:
        time.sleep(0.1)
    assert writer.gone  # no busy loop of failing gets for the rest of the run
    writer.thread.join(timeout=5)
    assert not writer.thread.is_alive()
    writer.stop()  # nothing left to write, nothing to shut down
