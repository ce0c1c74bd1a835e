"""Noise diagnostics: Balanced-Masking precision/recall per tag and the share of truly noisy
clips among those staged training ignored, against counts worked out by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest

from raytag.diagnostics import IgnoreReport, ignored_noise_report, masking_report, noisy_clips
from raytag.objectives import negative_thresholds, suspected_missing_mask


def test_masking_report_by_hand():
    # 6 clips, 2 tags. Tag a: clips 1 and 2 are missing (clean 1, noisy 0). Tag b: nothing missing.
    clean = np.array([[1, 0], [1, 0], [1, 1], [0, 0], [0, 1], [0, 0]])
    noisy = np.array([[1, 0], [0, 0], [0, 1], [0, 0], [0, 1], [0, 0]])
    # masks: tag a masks clips 1 (missing) and 3 (not); tag b masks clip 0; clip 0 tag a is a
    # masked positive, which is not scored.
    keep = np.array([[0, 0], [0, 1], [1, 1], [0, 1], [1, 1], [1, 1]])
    scores = masking_report(noisy, clean, keep, ["a", "b"])
    a, b, overall = scores
    assert (a.tag, a.negatives, a.missing, a.masked, a.caught) == ("a", 5, 2, 2, 1)
    assert (a.precision, a.recall, a.base_rate) == (0.5, 0.5, 0.4)
    assert (b.negatives, b.missing, b.masked, b.caught) == (4, 0, 1, 0)
    assert b.precision == 0.0 and math.isnan(b.recall)
    assert (overall.tag, overall.masked, overall.caught, overall.missing) == ("(all)", 3, 1, 2)
    with pytest.raises(ValueError, match="keep"):
        masking_report(noisy, clean, keep[:, :1], ["a", "b"])
    with pytest.raises(ValueError, match="noisy_labels"):
        masking_report(noisy, clean, keep, ["a"])


def test_masking_a_teacher_that_knows_the_truth_catches_the_missing_tags():
    # A teacher scoring the clean labels: with eq. 3 at a percentile above the share of
    # true negatives, every masked entry is a missing tag.
    generator = np.random.default_rng(0)
    clean = generator.random((400, 3)) < 0.3
    noisy = clean & (generator.random((400, 3)) > 0.4)  # 40 % of the positives go missing
    scores = clean + 0.01 * generator.random((400, 3))
    keep = suspected_missing_mask(scores, noisy, negative_thresholds(scores, noisy, 90.0))
    for score in masking_report(noisy, clean, keep, ["x", "y", "z"]):
        assert score.precision == 1.0 and score.masked > 0 and score.recall < 1.0
        assert score.base_rate < score.precision


def test_ignored_noise_report_by_hand_and_counts_add_up():
    clean = np.array([[1, 0], [0, 1], [1, 1], [0, 0], [1, 0]])
    noisy = np.array([[1, 0], [0, 0], [1, 1], [1, 0], [0, 0]])  # clips 1, 3 and 4 are noisy
    assert noisy_clips(noisy, clean).tolist() == [False, True, False, True, True]
    verified = np.array([True, False, False, False, False])
    ignored = np.array([False, True, True, False, False])
    report = ignored_noise_report(ignored, noisy, clean, verified)
    assert report == IgnoreReport(considered=4, noisy=3, ignored=2, ignored_noisy=1)
    assert (report.precision, report.recall, report.base_rate) == (0.5, 1 / 3, 0.75)
    total = report + ignored_noise_report(np.array([False, False, False, True, True]), noisy, clean, verified)
    assert total == IgnoreReport(considered=8, noisy=6, ignored=4, ignored_noisy=3)
    assert total.as_metrics()["staged/ignored_precision"] == 0.75
    assert math.isnan(IgnoreReport().precision)
    with pytest.raises(ValueError, match="verified clip"):
        ignored_noise_report(np.array([True, False, False, False, False]), noisy, clean, verified)
