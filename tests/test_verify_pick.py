"""The verification sample: suspects first, every tag's positives and negatives, seeded, stable
across batches (raytag.verify.pick)."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from raytag.verify.pick import draw_keys, pick_order, stratum_counts


def catalogue(tracks: int, rates: list[float], seed: int = 0) -> tuple[np.ndarray, list[str], list[str]]:
    """Labels with one tag per rate (share of positives), paths, vocabulary."""
    rng = np.random.default_rng(seed)
    labels = (rng.random((tracks, len(rates))) < np.asarray(rates)).astype(np.float32)
    return labels, [f"/music/{i:05d}.mp3" for i in range(tracks)], [f"tag{j}" for j in range(len(rates))]


def first(order, n: int) -> list:
    return list(itertools.islice(order, n))


def test_every_tag_gets_its_share_of_positives_and_negatives_rare_tags_included():
    # 2,000 tracks, 10 tags: three rare ones (about 30, 20 and 9 positives), the rest common.
    labels, paths, tags = catalogue(2000, [0.5, 0.4, 0.3, 0.3, 0.2, 0.2, 0.1, 0.02, 0.01, 0.004])
    available = labels.sum(axis=0)
    assert available[-1] == 9
    picks = first(pick_order(labels, tags, paths=paths, seed=3), 100)
    assert len({p.index for p in picks}) == 100
    positives, negatives = stratum_counts(labels, [p.index for p in picks])
    # 100 tracks over 20 strata: every stratum holds at least 20 (the water level, raised by the
    # common tags riding along) or all it has: all 9 positives of the rarest tag, where a random
    # sample of 100 holds about 0.45 of them.
    assert (positives >= np.minimum(available, 20)).all(), positives
    assert (negatives >= 20).all(), negatives
    assert positives[-1] == 9 and positives[-2] >= 20


def test_a_tag_with_no_positive_is_skipped_and_the_order_covers_every_track_once():
    labels, paths, tags = catalogue(50, [0.5, 0.0, 0.2])
    order = list(pick_order(labels, tags, paths=paths, seed=0))
    assert sorted(p.index for p in order) == list(range(50))
    assert not any(p.tag == "tag1" and p.positive for p in order)


def test_the_order_is_seeded_and_a_second_batch_continues_the_first():
    labels, paths, tags = catalogue(400, [0.5, 0.2, 0.05])
    one = [p.index for p in first(pick_order(labels, tags, paths=paths, seed=1), 30)]
    assert one == [p.index for p in first(pick_order(labels, tags, paths=paths, seed=1), 30)]
    assert one != [p.index for p in first(pick_order(labels, tags, paths=paths, seed=2), 30)]
    # Batch 2 from a manifest where batch 1 is verified (no longer candidates): none of batch 1
    # again, and the draws of the remaining tracks are unchanged (the same per-path hashes).
    rest = [i for i in range(400) if i not in set(one)]
    two = [rest[p.index] for p in first(pick_order(labels[rest], tags, paths=[paths[i] for i in rest], seed=1), 30)]
    assert not set(two) & set(one)
    assert list(draw_keys([paths[i] for i in rest], 1)) == list(draw_keys(paths, 1)[rest])


def test_within_a_stratum_tracks_come_in_draw_order():
    # One tag, every track positive: the strata are "tag0 positives" (all) and an empty one.
    labels, paths, tags = np.ones((20, 1)), [f"t{i}" for i in range(20)], ["tag0"]
    order = [p.index for p in pick_order(labels, tags, paths=paths, seed=5)]
    assert order == list(np.argsort(draw_keys(paths, 5), kind="stable"))


def test_suspects_come_first_in_their_order_and_count_towards_their_strata():
    labels, paths, tags = catalogue(300, [0.5, 0.1, 0.05])
    rare = list(np.flatnonzero(labels[:, 2])[:3])
    picks = first(pick_order(labels, tags, paths=paths, seed=0, suspects=[7, *rare]), 12)
    assert [p.index for p in picks[:4]] == [7, *rare] and all(p.suspect for p in picks[:4])
    assert picks[0].reason == "audit suspect"
    assert not any(p.suspect for p in picks[4:])
    # The three rare positives already picked: the fill does not start with more of them.
    assert not (picks[4].tag == "tag2" and picks[4].positive)
    assert {picks[4].reason, picks[5].reason} <= {"labelled tag1", "labelled tag0", "labelled without tag2",
                                                   "labelled without tag1", "labelled without tag0"}


@pytest.mark.parametrize("kwargs", [
    {"labels": np.zeros((3, 2)), "paths": ["a", "b"]},
    {"labels": np.zeros((2, 3)), "paths": ["a", "b"]},
    {"labels": np.zeros((2, 2)), "paths": ["a", "b"], "suspects": [1, 1]},
    {"labels": np.zeros((2, 2)), "paths": ["a", "b"], "suspects": [2]},
])
def test_mismatched_inputs_are_refused(kwargs):
    labels = kwargs.pop("labels")
    with pytest.raises(ValueError):
        list(pick_order(labels, ["x", "y"], seed=0, **kwargs))
