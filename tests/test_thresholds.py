"""Per-tag thresholds chosen on a validation split: F1-optimal, halfway between scores, no
invented thresholds for tags without positives."""

import math

import numpy as np
import pytest

from raytag.models.export import (
    ExportError, ModelRecipe, read_exported, read_thresholds, thresholds_labels, write_exported, write_thresholds,
)
from raytag.thresholds import (
    check_thresholds, choose_thresholds, f1_threshold, tags_above, threshold_labels, threshold_map, top_tags,
)


def brute_force_f1(scores: np.ndarray, labels: np.ndarray, threshold: float) -> float:
    predicted = scores >= threshold
    tp = int((predicted & (labels > 0)).sum())
    return 2 * tp / (predicted.sum() + labels.sum())


def test_the_threshold_maximises_f1_and_sits_halfway_between_two_scores():
    scores = np.array([0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.2])
    labels = np.array([1, 1, 0, 1, 0, 0, 1, 0])
    threshold, f1, precision, recall = f1_threshold(scores, labels)
    # Cuts: top 2 -> F1 2*2/(2+4)=0.667; top 4 -> 2*3/(4+4)=0.75; top 7 -> 2*4/(7+4)=0.727.
    assert threshold == pytest.approx(0.55)
    assert (f1, precision, recall) == pytest.approx((0.75, 0.75, 0.75))
    candidates = np.r_[scores, scores - 1e-9, 1.0]
    assert f1 == pytest.approx(max(brute_force_f1(scores, labels, t) for t in candidates))
    assert brute_force_f1(scores, labels, threshold) == pytest.approx(f1)


def test_random_validation_sets_agree_with_a_brute_force_search():
    rng = np.random.default_rng(0)
    for _ in range(50):
        n = int(rng.integers(2, 40))
        labels = (rng.random(n) < 0.3).astype(int)
        labels[int(rng.integers(n))] = 1
        scores = np.round(rng.random(n), 1)  # many ties
        threshold, f1, _, _ = f1_threshold(scores, labels)
        best = max(brute_force_f1(scores, labels, t) for t in np.r_[scores, 2.0])
        assert f1 == pytest.approx(best)
        assert brute_force_f1(scores, labels, threshold) == pytest.approx(f1)


def test_ties_go_to_the_higher_threshold_and_all_positive_uses_the_lowest_score():
    # Top 1 (F1 2/3) and top 3 (F1 2*2/(3+2) = 0.8)... make two cuts tie: top 1 and top 4.
    scores = np.array([0.9, 0.5, 0.4, 0.3, 0.1])
    labels = np.array([1, 0, 0, 1, 0])
    threshold, f1, _, _ = f1_threshold(scores, labels)
    assert f1 == pytest.approx(2 / 3) and threshold == pytest.approx(0.7)  # not the top-4 cut at 0.2
    threshold, f1, _, _ = f1_threshold(np.array([0.2, 0.6, 0.4]), np.array([1, 1, 1]))
    assert (threshold, f1) == (0.2, 1.0)


def test_tags_without_positives_get_no_threshold_and_unscored_tracks_are_left_out():
    scores = np.array([[0.9, 0.2, 0.5], [0.1, 0.3, np.nan], [0.8, 0.1, 0.4], [0.2, 0.4, 0.6]])
    labels = np.array([[1, 0, 1], [0, 0, 1], [1, 0, 0], [0, 0, 1]])
    rows = choose_thresholds(scores=scores, labels=labels, tags=["a", "b", "c"])
    by_tag = {row.tag: row for row in rows}
    assert by_tag["a"].threshold == pytest.approx(0.5) and by_tag["a"].f1 == 1.0
    assert by_tag["b"].status == "no positive validation track" and math.isnan(by_tag["b"].threshold)
    assert by_tag["c"].tracks == 3 and by_tag["c"].positives == 2  # the NaN row is not counted
    assert set(threshold_map(rows)) == {"a", "c"}
    strict = choose_thresholds(scores=scores, labels=labels, tags=["a", "b", "c"], min_positives=3)
    assert threshold_map(strict) == {} and strict[0].status == "fewer than 3 positives"
    with pytest.raises(ValueError, match="tag names"):
        choose_thresholds(scores=scores, labels=labels, tags=["a"])
    with pytest.raises(ValueError, match="no positive"):
        f1_threshold(np.array([0.1, 0.2]), np.array([0, 0]))


def test_applying_thresholds_and_top_k():
    tags = ["a", "b", "c", "d"]
    p = np.array([0.2, 0.9, 0.5, 0.5])
    assert tags_above(p, tags, {"a": 0.1, "b": 0.95, "c": 0.5}) == ["c", "a"]  # d has no threshold
    assert top_tags(p, tags, 3) == [("b", 0.9), ("c", 0.5), ("d", 0.5)]
    assert top_tags(p, tags, 10) == top_tags(p, tags, 4) and top_tags(p, tags, 0) == []


def test_thresholds_in_an_exported_model_are_checked(tmp_path):
    recipe = ModelRecipe("mtt-tiny", {}, ("a", "b"))
    write_exported(tmp_path / "none", recipe, {}, sample_rate=16000, crop_samples=48000)
    assert read_thresholds(read_exported(tmp_path / "none")) is None
    write_exported(tmp_path / "ok", recipe, {}, sample_rate=16000, crop_samples=48000, thresholds={"a": 0.25})
    assert read_thresholds(read_exported(tmp_path / "ok")) == {"a": 0.25}
    for bad, message in (({"z": 0.5}, "not one of the model's tags"), ({"a": "x"}, "finite number"), ([0.5], "mapping")):
        write_exported(tmp_path / "bad", recipe, {}, sample_rate=16000, crop_samples=48000, thresholds=bad)
        with pytest.raises(ExportError, match=message):
            read_thresholds(read_exported(tmp_path / "bad"))
    assert check_thresholds({"a": 1}, ["a"]) == {"a": 1.0}


# --- which labels the thresholds are chosen on: what a user has ------------------------------


def test_thresholds_are_chosen_on_the_labels_a_user_has_by_default():
    noisy = np.array([[1, 0], [0, 1], [0, 0], [1, 1]])
    clean = np.array([[1, 1], [0, 1], [1, 0], [1, 1]])
    verified = np.array([True, False, True, False])
    # auto with too few verified rows: every row, the manifest's (noisy) labels, never the clean.
    chosen = threshold_labels("auto", noisy=noisy, verified=verified, clean=clean, min_verified=3)
    assert chosen.source == "noisy" and chosen.tracks == 4
    np.testing.assert_array_equal(chosen.labels, noisy)
    # auto with enough verified rows: those rows only.
    chosen = threshold_labels("auto", noisy=noisy, verified=verified, clean=clean, min_verified=2)
    assert chosen.source == "verified" and chosen.rows.tolist() == verified.tolist()
    np.testing.assert_array_equal(chosen.labels, noisy[verified])
    # Forced choices; clean is allowed (experiments) but named.
    assert threshold_labels("noisy", noisy=noisy, verified=verified, min_verified=1).source == "noisy"
    chosen = threshold_labels("clean", noisy=noisy, verified=verified, clean=clean)
    assert chosen.source == "clean"
    np.testing.assert_array_equal(chosen.labels, clean)
    with pytest.raises(ValueError, match="clean labels"):
        threshold_labels("clean", noisy=noisy, verified=verified, clean=None)
    with pytest.raises(ValueError, match="no scored validation track is verified"):
        threshold_labels("verified", noisy=noisy, verified=np.zeros(4, bool))
    with pytest.raises(ValueError, match="one of auto"):
        threshold_labels("best", noisy=noisy, verified=verified)


def test_noisy_and_clean_labels_give_different_thresholds_and_model_json_says_which(tmp_path):
    # A missing tag on the validation split (clean 1, noisy 0) moves the F1 threshold: the
    # choice matters, so the model records it.
    scores = np.array([[0.9], [0.8], [0.7], [0.2]])
    noisy, clean = np.array([[1], [0], [0], [0]]), np.array([[1], [1], [1], [0]])
    verified = np.zeros(4, bool)
    by_source = {}
    for choice in ("auto", "clean"):
        chosen = threshold_labels(choice, noisy=noisy, verified=verified, clean=clean)
        rows = choose_thresholds(scores=scores[chosen.rows], labels=chosen.labels, tags=["a"])
        by_source[chosen.source] = threshold_map(rows)["a"]
    assert by_source["noisy"] == pytest.approx(0.85) and by_source["clean"] == pytest.approx(0.45)
    import torch

    recipe = ModelRecipe("mtt-tiny", {"crop_seconds": 0.5}, ("a", "b"))
    folder = write_exported(tmp_path / "m", recipe, recipe.build().state_dict(), sample_rate=16000, crop_samples=8000)
    assert thresholds_labels(read_exported(folder)) is None
    write_thresholds(folder, {"a": by_source["noisy"]}, labels="noisy", tracks=4)
    exported = read_exported(folder)
    assert read_thresholds(exported) == {"a": pytest.approx(0.85)}
    assert thresholds_labels(exported) == {"labels": "noisy", "tracks": 4}
    assert torch.load(folder / "model.pt", weights_only=True).keys() == recipe.build().state_dict().keys()
    with pytest.raises(ExportError, match="not one of the model's tags"):
        write_thresholds(folder, {"z": 0.5}, labels="noisy", tracks=4)


def test_clean_threshold_labels_need_a_clean_label_file():
    from raytag.config import ConfigError, validate_job

    base = {"name": "t", "data": {"manifest": "m.csv"}, "model": {"name": "mtt-tiny"}}
    assert validate_job(base).eval.threshold_labels == "auto"
    with pytest.raises(ConfigError, match="clean_labels"):
        validate_job({**base, "eval": {"threshold_labels": "clean"}})
    with pytest.raises(ConfigError, match="threshold_labels"):
        validate_job({**base, "eval": {"threshold_labels": "test"}})
