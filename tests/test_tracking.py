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


def test_a_backend_that_fails_mid_run_warns_once_and_training_goes_on(tmp_path, caplog):
    db = tmp_path / "mlflow.db"
    uri = f"sqlite:///{db}"
    tracker = Tracker.start(uri, "exp", "run")
    tracker.log_metrics({"loss": 1.0}, step=0)
    db.write_bytes(b"this is no longer a database" * 100)  # the store breaks under the run
    with caplog.at_level(logging.WARNING, logger="raytag.tracking"):
        for step in range(1, 4):
            tracker.log_metrics({"loss": 1.0 / step}, step=step)  # must not raise
        tracker.log_text("x", "a.txt")
        tracker.end()
    assert tracker.failed
    warnings = [r for r in caplog.records if "training continues" in r.getMessage()]
    assert len(warnings) == 1


def test_an_unreachable_store_gives_a_disabled_tracker(tmp_path, caplog):
    (tmp_path / "blocker").write_text("a file where a folder should be")
    uri = f"sqlite:///{tmp_path / 'blocker' / 'mlflow.db'}"
    with caplog.at_level(logging.WARNING, logger="raytag.tracking"):
        tracker = Tracker.start(uri, "exp", "run")
    assert tracker.failed and tracker.handle()["run_id"] is None
    tracker.log_metrics({"loss": 1.0})  # a no-op, not an error
    assert any("unavailable" in r.getMessage() for r in caplog.records)
