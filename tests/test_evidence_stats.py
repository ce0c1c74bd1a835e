"""bench/evidence_stats.py: paired t, Holm, TOST, verdicts, the two-level bootstrap and the power
note, on hand examples and against scipy's own tests."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from bench_modules import load_bench

es = load_bench("evidence_stats")


def test_paired_test_matches_scipy_on_a_hand_example():
    arm, bce = {0: 0.81, 1: 0.82, 2: 0.83, 5: 0.9}, {0: 0.80, 1: 0.80, 2: 0.80}
    t = es.paired_test(arm, bce)
    assert t.seeds == (0, 1, 2) and t.differences == pytest.approx((0.01, 0.02, 0.03))
    assert t.mean == pytest.approx(0.02) and t.sd == pytest.approx(0.01)
    assert t.p == pytest.approx(stats.ttest_1samp([0.01, 0.02, 0.03], 0.0).pvalue)
    half = stats.t.ppf(0.975, 2) * 0.01 / math.sqrt(3)
    assert (t.low, t.high) == pytest.approx((0.02 - half, 0.02 + half))
    one = es.paired_test({0: 0.9}, {0: 0.8})
    assert one.mean == pytest.approx(0.1) and math.isnan(one.p) and math.isnan(one.low)
    with pytest.raises(ValueError, match="share no seed"):
        es.paired_test({1: 0.5}, {0: 0.5})


def test_holm_adjusts_step_down_and_gives_each_hypothesis_its_level():
    out = es.holm({"a": 0.01, "b": 0.04, "c": 0.03, "untested": math.nan})
    assert out["a"] == pytest.approx((0.03, 1 - 0.05 / 3))
    assert out["c"] == pytest.approx((0.06, 1 - 0.05 / 2))
    assert out["b"] == pytest.approx((0.06, 0.95))  # monotone: never below the one before it
    assert all(math.isnan(v) for v in out["untested"])
    assert es.holm({"x": 0.4, "y": 0.5})["x"][0] == pytest.approx(0.8)


def test_tost_is_the_90_percent_interval_inside_the_margin():
    rng = np.random.default_rng(0)
    for _ in range(200):
        d = rng.normal(rng.uniform(-0.02, 0.02), rng.uniform(0.002, 0.02), int(rng.integers(3, 15)))
        mean, se = d.mean(), d.std(ddof=1) / math.sqrt(len(d))
        half = stats.t.ppf(0.95, len(d) - 1) * se
        inside = -0.01 < mean - half and mean + half < 0.01
        assert (es.tost(d) < 0.05) == inside
    assert math.isnan(es.tost([0.001]))


def test_verdicts_helps_hurts_equivalent_not_settled():
    seeds = range(12)
    rng = np.random.default_rng(1)
    bce = {s: 0.8 + 0.01 * rng.standard_normal() for s in seeds}
    noise = {name: rng.standard_normal(12) for name in ("helps", "hurts", "same", "wild")}
    arms = {
        "helps": {s: bce[s] + 0.03 + 0.005 * noise["helps"][s] for s in seeds},
        "hurts": {s: bce[s] - 0.03 + 0.005 * noise["hurts"][s] for s in seeds},
        "same": {s: bce[s] + 0.001 * noise["same"][s] for s in seeds},
        "wild": {s: bce[s] + 0.05 * noise["wild"][s] for s in seeds[:4]},
    }
    out = es.verdicts(arms, bce)
    assert {name: v.verdict for name, v in out.items()} == {
        "helps": es.HELPS, "hurts": es.HURTS, "same": es.EQUIVALENT, "wild": es.UNSETTLED}
    helps = out["helps"]
    assert helps.low_holm > 0 and helps.level == pytest.approx(1 - 0.05 / 4)  # tested first or second of 4
    assert helps.low_holm < helps.test.low  # a Holm interval is wider than the plain 95 % one
    assert out["wild"].seeds_to_settle > 12 and out["same"].seeds_to_settle == 2
    assert out["helps"].as_json()["verdict"] == "helps"


def test_seeds_to_settle_and_power():
    assert es.seeds_to_settle(0.01) == 5  # t(3)·0.01/2 = 0.0159 > 0.015; t(4)·0.01/√5 = 0.0124
    assert es.seeds_to_settle(math.nan) is None
    rng = np.random.default_rng(2)
    samples = rng.normal(0.01, 0.012, (20000, 12))
    p = stats.ttest_1samp(samples, 0.0, axis=1).pvalue
    assert es.power(0.012, 12) == pytest.approx(float((p < 0.05).mean()), abs=0.015)
    assert es.power(0.012, 3) < es.power(0.012, 12)


def test_track_bootstrap_pairs_the_tracks_and_two_level_bootstrap_resamples_both():
    rng = np.random.default_rng(3)
    labels = rng.random((300, 4)) < 0.4
    base = labels + rng.normal(0, 1.0, labels.shape)
    arm = labels + rng.normal(0, 0.8, labels.shape)
    same = es.track_bootstrap_differences(labels, base, base, metric="roc_auc", resamples=50)
    assert np.all(same == 0)
    forward = es.track_bootstrap_differences(labels, arm, base, metric="pr_auc", resamples=50, seed=7)
    backward = es.track_bootstrap_differences(labels, base, arm, metric="pr_auc", resamples=50, seed=7)
    np.testing.assert_allclose(forward, -backward)
    assert forward.mean() > 0
    # Epoch stacks: the statistic is the mean over the epochs (two identical epochs: the same).
    stacked = es.track_bootstrap_differences(labels, np.stack([arm, arm]), np.stack([base, base]), metric="pr_auc",
                                             resamples=50, seed=7)
    np.testing.assert_allclose(stacked, forward)
    # Each run's own values, computed apart (in different sessions), subtract into the same pairs.
    alone = [es.track_bootstrap_values(labels, run, metric="pr_auc", resamples=50, seed=7) for run in (arm, base)]
    np.testing.assert_allclose(alone[0] - alone[1], forward)
    assert not np.allclose(es.track_bootstrap_values(labels, arm, metric="pr_auc", resamples=50, seed=8), alone[0])
    # One seed: the interval is that seed's track replicates' percentiles.
    pool = np.linspace(0.0, 1.0, 101)
    centre, low, high = es.two_level_bootstrap({0: pool}, resamples=20000)
    assert centre == pytest.approx(0.5) and low == pytest.approx(0.025, abs=0.01) and high == pytest.approx(
        0.975, abs=0.01)
    # No track noise: only the seeds vary, and the interval is the seed bootstrap's.
    seeds = {s: [0.01 * s] for s in range(10)}
    centre, low, high = es.two_level_bootstrap(seeds, resamples=4000)
    assert centre == pytest.approx(0.045) and 0.02 < low < 0.045 < high < 0.07
    with pytest.raises(ValueError):
        es.two_level_bootstrap({0: []})
