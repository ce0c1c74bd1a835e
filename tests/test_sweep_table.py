"""The trial table a sweep prints as its trials finish (formatting only; the sweep itself is in
tests/test_tune_ray.py, which checks the lines appear)."""

from __future__ import annotations

from raytag.cluster.training.sweep import trial_header, trial_line


def test_a_trial_line_holds_its_status_epochs_metric_best_and_sampled_values_in_header_order():
    params = ["train.lr", "model.args.width"]
    header = trial_header(params, "valid/roc_auc")
    assert header.split("  ") == ["trial", "status", "epochs", "valid/roc_auc", "best so far", *params]
    line = trial_line(trial_id="a1b2_00001", status="stopped early", epochs=1, value=0.612345, best=0.70001,
                      config={"model.args.width": 32, "train.lr": 0.00123456}, params=params)
    assert line.split("  ") == ["a1b2_00001", "stopped early", "1", "0.6123", "0.7", "0.001235", "32"]


def test_a_trial_that_failed_before_reporting_shows_dashes():
    line = trial_line(trial_id="t3", status="error", epochs=None, value=None, best=None, config={}, params=["train.lr"])
    assert line.split("  ") == ["t3", "error", "—", "—", "—", "—"]
