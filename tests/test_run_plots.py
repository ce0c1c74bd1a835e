"""The driver's one call for a finished run's plots, against a real SQLite store."""

import logging

import numpy as np
from mlflow.tracking import MlflowClient

from raytag.tracking import run_tags as tag_names
from raytag.tracking.client import Tracker
from raytag.tracking.review import review_runs
from raytag.tracking.run_plots import log_run_plots

TAGS = ["rock", "mood/theme---sad", "piano"]


def test_a_runs_plots_are_logged_and_review_embeds_them_instead_of_redrawing(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the tracker's experiment keeps its artifacts under ./mlruns
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    tracker = Tracker.start(uri, "plots", "student")
    for epoch in range(3):
        tracker.log_metrics({"train/loss": 1.0 / (epoch + 1), "valid/roc_auc": 0.6 + 0.1 * epoch, "best_epoch": epoch,
                             "mask/masked_fraction": 0.3 + 0.01 * epoch, **{f"mask/masked/{t}": 10.0 + epoch for t in TAGS}}, step=epoch)
    rng = np.random.default_rng(0)
    labels = rng.random((60, 3)) < 0.3
    scores = np.clip(labels * 0.4 + rng.random((60, 3)) * 0.6, 0, 1)
    per_tag = [{"tag": t, "positives": int(labels[:, j].sum()), "negatives": 60 - int(labels[:, j].sum()),
                "roc_auc": 0.8, "pr_auc": 0.5} for j, t in enumerate(TAGS)]
    tracker.log_table(per_tag, "metrics/per_tag_test.csv")
    # What the driver records before the plots: the labels evaluated on, thresholds chosen on valid.
    tracker.set_tags({tag_names.labels_source("test"): "clean", tag_names.labels_source("valid"): "clean"})
    tracker.log_table([{"tag": "rock", "threshold": 0.5, "f1": 0.7, "precision": 0.7, "recall": 0.7, "positives": 9,
                        "tracks": 60, "status": "ok"},
                       {"tag": "piano", "threshold": float("nan"), "f1": float("nan"), "precision": float("nan"),
                        "recall": float("nan"), "positives": 0, "tracks": 60, "status": "no positive validation track"}],
                      "metrics/thresholds_valid.csv")
    logged = log_run_plots(tracker, tags=TAGS, split="test", title="student", per_tag=per_tag, labels=labels, scores=scores)
    assert logged == ["plots/curves.png", "plots/method_statistics.png", "plots/tags_mask_masked.png",
                      "plots/per_tag_test.png", "plots/roc_curves_test.png", "plots/pr_curves_test.png"]
    stored = {a.path for a in MlflowClient(uri).list_artifacts(tracker.run_id, "plots")}
    assert stored == set(logged)

    review = review_runs(tracking_uri=uri, run_ids=[tracker.run_id], html_path=tmp_path / "r.html").review
    captions = [image.caption for image in review.images]
    assert len(captions) == 6 and all(caption.endswith("(logged with the run)") for caption in captions)
    assert captions[0] == "student: training and validation curves (logged with the run)"
    assert captions[-1] == ("student: per-tag precision-recall curves on the test split (clean labels) "
                            "(logged with the run)")
    assert review.thresholds[tracker.run_id]["rock"]["threshold"] == 0.5


def test_plot_failures_are_warnings_and_a_disabled_tracker_logs_nothing(tmp_path, monkeypatch, caplog):
    monkeypatch.chdir(tmp_path)
    assert log_run_plots(Tracker.disabled(), tags=TAGS, split="test") == []
    tracker = Tracker.start(f"sqlite:///{tmp_path / 'mlflow.db'}", "plots", "broken")
    with caplog.at_level(logging.WARNING, logger="raytag.tracking.run_plots"):
        result = log_run_plots(tracker, tags=TAGS, split="test", labels=np.zeros((4, 2)), scores=np.zeros((4, 2)))
    assert result == [] and "could not draw or log the run's plots" in caplog.text
