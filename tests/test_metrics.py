"""Metrics against values worked out by hand on small cases."""

import numpy as np
import pytest

from raytag.metrics import lwlrap, tagging_report

TAGS = ["a", "b", "c"]


def test_perfect_ranking_scores_one():
    y = np.array([[1, 0, 1], [0, 1, 0], [1, 1, 0], [0, 0, 1]])
    report = tagging_report(y, y * 0.9 + 0.05, TAGS)
    assert report.roc_auc_macro == pytest.approx(1.0)
    assert report.pr_auc_macro == pytest.approx(1.0)
    assert report.lwlrap == pytest.approx(1.0)


def test_roc_and_pr_auc_by_hand():
    # tag a: positives score 0.9, 0.4; negatives 0.5, 0.1.
    # ROC-AUC = pairs ranked right / all pairs = (2 + 1) / 4 = 0.75.
    # AP: ranking 0.9(+) 0.5(-) 0.4(+) 0.1(-): precision at the hits 1/1 and 2/3 -> (1 + 2/3) / 2.
    y = np.array([[1], [0], [1], [0]])
    s = np.array([[0.9], [0.5], [0.4], [0.1]])
    report = tagging_report(y, s, ["a"])
    assert report.roc_auc_macro == pytest.approx(0.75)
    assert report.pr_auc_macro == pytest.approx((1 + 2 / 3) / 2)
    row = report.per_tag[0]
    assert (row.tag, row.positives, row.negatives) == ("a", 2, 2)


def test_tag_without_positives_is_reported_not_averaged():
    y = np.array([[1, 0], [0, 0], [1, 0], [0, 0]])
    s = np.array([[0.8, 0.3], [0.2, 0.9], [0.7, 0.1], [0.1, 0.5]])
    report = tagging_report(y, s, ["a", "b"])
    assert report.roc_auc_macro == pytest.approx(1.0)  # only tag a counts
    assert report.undefined_tags == ["b"]
    assert np.isnan(report.per_tag[1].roc_auc)
    assert report.as_metrics(prefix="test/")["test/tags_evaluated"] == 1


def test_lwlrap_by_hand():
    # clip 1: true {a}; scores rank a 2nd -> precision 1/2.
    # clip 2: true {b, c}; ranking c(1st) a(2nd) b(3rd): c -> 1/1, b -> 2/3.
    # lwlrap weights each true label equally: (1/2 + 1 + 2/3) / 3.
    y = np.array([[1, 0, 0], [0, 1, 1]])
    s = np.array([[0.5, 0.9, 0.1], [0.6, 0.2, 0.8]])
    assert lwlrap(y, s) == pytest.approx((0.5 + 1 + 2 / 3) / 3)


def test_lwlrap_ignores_clips_without_labels():
    y = np.array([[1, 0], [0, 0]])
    s = np.array([[0.9, 0.1], [0.1, 0.9]])
    assert lwlrap(y, s) == pytest.approx(1.0)


def test_shape_mismatch_is_a_clear_error():
    with pytest.raises(ValueError, match="shape"):
        tagging_report(np.zeros((3, 2)), np.zeros((3, 3)), ["a", "b"])


def test_table_lists_every_tag():
    y = np.array([[1, 0], [0, 1], [1, 1]])
    s = np.array([[0.9, 0.1], [0.2, 0.8], [0.7, 0.6]])
    table = tagging_report(y, s, ["piano", "drums"]).format_table()
    assert "piano" in table and "drums" in table and "macro" in table
