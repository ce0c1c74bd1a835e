"""MLflow tracking against a real SQLite store, including a store that breaks mid-run."""

import logging

from mlflow.tracking import MlflowClient

from raytag.tracking.client import Tracker


def test_tracker_records_params_metrics_tables_and_nesting(tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    parent = Tracker.start(uri, "exp", "parent")
    child = Tracker.start(uri, "exp", "child", tags={"k": "v"}, parent_run_id=parent.run_id)
    child.log_params({"train.lr": 0.001, "long": "x" * 7000})
    child.log_metrics({"valid/roc_auc": 0.75, "bad": float("nan")}, step=3)
    child.log_table([{"tag": "a", "roc_auc": 0.5}], "metrics/per_tag.csv")
    child.end()
    run = MlflowClient(uri).get_run(child.run_id)
    assert run.data.tags["mlflow.parentRunId"] == parent.run_id and run.data.tags["k"] == "v"
    assert run.data.params["train.lr"] == "0.001" and run.data.params["long"].endswith("...")
    assert run.data.metrics == {"valid/roc_auc": 0.75}  # non-finite values are not sent
    assert run.info.status == "FINISHED"
    paths = [a.path for a in MlflowClient(uri).list_artifacts(child.run_id, "metrics")]
    assert "metrics/per_tag.csv" in paths


def test_a_backend_that_fails_for_good_warns_once_and_counts_what_was_lost(tmp_path, caplog):
    db = tmp_path / "mlflow.db"
    uri = f"sqlite:///{db}"
    tracker = Tracker.start(uri, "exp", "run")
    tracker.flush_timeout_s, tracker.retry_interval_s = 0.5, 0.1
    tracker.log_metrics({"loss": 1.0}, step=0)
    db.write_bytes(b"this is no longer a database" * 100)  # the store breaks under the run
    with caplog.at_level(logging.WARNING, logger="raytag.tracking"):
        for step in range(1, 4):
            tracker.log_metrics({"loss": 1.0 / step}, step=step)  # must not raise
        tracker.log_text("x", "a.txt")
        tracker.end()
    assert tracker.failed and tracker.lost == 5 and not tracker.pending  # 3 batches, the text, the end
    warnings = [r.getMessage() for r in caplog.records]
    assert len([w for w in warnings if "training continues" in w]) == 1
    assert any("5 records of run" in w and "could not be logged" in w for w in warnings)


def test_records_logged_while_the_store_is_down_arrive_once_and_in_order(tmp_path, caplog):
    """The store fails for a while (its file is unreadable), then comes back: every epoch
    logged meanwhile reaches the run exactly once, at its step, before the run ends."""
    db = tmp_path / "mlflow.db"
    uri = f"sqlite:///{db}"
    tracker = Tracker.start(uri, "exp", "run")
    tracker.retry_interval_s = 0.0
    tracker.log_metrics({"loss": 1.0}, step=1)
    healthy = db.read_bytes()
    db.write_bytes(b"this is no longer a database" * 100)
    with caplog.at_level(logging.INFO, logger="raytag.tracking"):
        tracker.log_metrics({"loss": 0.5}, step=2)
        tracker.set_tags({"phase": "outage"})
        tracker.log_metrics({"loss": 0.25}, step=3)
        assert len(tracker.pending) == 3 and tracker.failed
        db.write_bytes(healthy)  # the store answers again
        tracker.log_metrics({"loss": 0.125}, step=4)  # sends the kept records first, then this
        tracker.end()
    assert not tracker.failed and tracker.delayed == 3
    client = MlflowClient(uri)
    history = sorted((m.step, m.value) for m in client.get_metric_history(tracker.run_id, "loss"))
    assert history == [(1, 1.0), (2, 0.5), (3, 0.25), (4, 0.125)]
    run = client.get_run(tracker.run_id)
    assert run.data.tags["phase"] == "outage" and run.info.status == "FINISHED"
    assert any("got the 3 records kept during an outage" in r.getMessage() for r in caplog.records)
    # A resend of a batch that had arrived (its answer lost) adds nothing: same timestamp.
    metric = client.get_metric_history(tracker.run_id, "loss")[0]
    client.log_batch(tracker.run_id, metrics=[metric])
    assert len(client.get_metric_history(tracker.run_id, "loss")) == 4


def test_an_unreachable_store_gives_a_disabled_tracker(tmp_path, caplog):
    (tmp_path / "blocker").write_text("a file where a folder should be")
    uri = f"sqlite:///{tmp_path / 'blocker' / 'mlflow.db'}"
    with caplog.at_level(logging.WARNING, logger="raytag.tracking"):
        tracker = Tracker.start(uri, "exp", "run")
    assert tracker.failed and tracker.handle()["run_id"] is None
    tracker.log_metrics({"loss": 1.0})  # a no-op, not an error
    assert any("unavailable" in r.getMessage() for r in caplog.records)


def test_a_tracker_pickles_for_ray_trains_controller(tmp_path):
    """The epoch callback (and its tracker) is pickled to Ray Train's controller."""
    import pickle

    tracker = Tracker.start(f"sqlite:///{tmp_path / 'mlflow.db'}", "exp", "run")
    tracker.log_metrics({"loss": 1.0}, step=1)
    copy = pickle.loads(pickle.dumps(tracker))
    copy.log_metrics({"loss": 0.5}, step=2)
    history = MlflowClient(tracker.uri).get_metric_history(tracker.run_id, "loss")
    assert sorted(m.step for m in history) == [1, 2]
