"""The synthetic corpus's label noise: quieter sources go missing more often, spurious tags
come from the confusable partner, and only this audio-dependent noise keeps the BCE optimum
from ranking the clean labels perfectly. Measured on planned corpora (no audio needed)."""

from __future__ import annotations

import numpy as np
import pytest

from raytag.data.synth.crowd_noise import CONFUSABLE, missing_probability, mix_shares_db
from raytag.data.synth.corpus import TAGS, ClipRow, SynthSpec, plan_corpus
from raytag.metrics import tagging_report


def test_independent_noise_flips_at_the_drawn_rates() -> None:
    # The earlier default, now noise_model="independent": flat per-tag rates, blind to the audio.
    spec = SynthSpec(clips=400, seconds=0.5, seed=3, noise_model="independent")
    assert (spec.missing_rate, spec.spurious_rate) == ((0.2, 0.5), (0.01, 0.05))
    rows, rates = plan_corpus(spec)
    missed = present = added = absent = 0
    expected_missed = expected_added = 0.0
    for row in rows:
        if row.split == "unlabeled":
            continue
        for tag in TAGS:
            if tag in row.clean:
                present += 1
                missed += tag not in row.noisy
                expected_missed += rates["missing"][tag]
            else:
                absent += 1
                added += tag in row.noisy
                expected_added += rates["spurious"][tag]
    missing_rate, spurious_rate = missed / present, added / absent
    assert all(0.2 <= p <= 0.5 for p in rates["missing"].values())
    assert all(0.01 <= p <= 0.05 for p in rates["spurious"].values())
    assert abs(missing_rate - expected_missed / present) < 0.06
    assert abs(spurious_rate - expected_added / absent) < 0.015
    assert missing_rate > 4 * spurious_rate


def _missing_by_share(rows: list[ClipRow], edges: list[float]) -> list[float]:
    """Share of sounding sources left out of the noisy labels, per bin of mix share (dB)."""
    missed = np.zeros(len(edges) + 1)
    total = np.zeros(len(edges) + 1)
    for row in rows:
        if row.split == "unlabeled":
            continue
        for tag, share in zip(row.clean, row.shares_db):
            bin_ = int(np.searchsorted(-np.asarray(edges), -share, side="right"))
            total[bin_] += 1
            missed[bin_] += tag not in row.noisy
    assert total.min() > 150, total  # enough sources in every bin to measure a rate
    return (missed / total).tolist()


def test_quieter_sources_are_missing_more_often() -> None:
    edges = [-0.5, -3.0, -6.0, -9.0]  # bins: solo-ish, then ever quieter shares of the mix
    rows, rates = plan_corpus(SynthSpec(clips=3000, seconds=0.5, seed=11))
    audio = _missing_by_share(rows, edges)
    assert all(a < b for a, b in zip(audio, audio[1:])), audio
    assert audio[-1] > 3 * audio[0]
    # The rate follows missing_probability: check the solo bin and the quietest sources.
    mean_base = float(np.mean(list(rates["missing"].values())))
    assert audio[0] == pytest.approx(mean_base, abs=0.04)
    # The independent model shows no such relation.
    rows, _ = plan_corpus(SynthSpec(clips=3000, seconds=0.5, seed=11, noise_model="independent"))
    flat = _missing_by_share(rows, edges)
    assert max(flat) - min(flat) < 0.08, flat


def test_spurious_tags_come_from_the_confusable_partner() -> None:
    assert all(CONFUSABLE[CONFUSABLE[tag]] == tag != CONFUSABLE[tag] for tag in TAGS)
    rows, rates = plan_corpus(SynthSpec(clips=2000, seconds=0.5, seed=5))
    added = given_partner = 0
    expected = 0.0
    for row in rows:
        if row.split == "unlabeled":
            continue
        for tag in set(row.noisy) - set(row.clean):
            assert CONFUSABLE[tag] in row.clean, (row.index, tag)
        for tag in TAGS:
            if tag not in row.clean and CONFUSABLE[tag] in row.clean:
                given_partner += 1
                added += tag in row.noisy
                expected += rates["spurious"][tag]
    assert added / given_partner == pytest.approx(expected / given_partner, abs=0.03)
    assert added > 100


def _noisy_label_posterior_clean_auc(spec: SynthSpec) -> float:
    """Clean-label macro ROC-AUC of P(noisy label | the clip's sources and their shares): the
    scores a BCE-trained model converges to with unlimited data and capacity."""
    rows, rates = plan_corpus(spec)
    clean = np.zeros((len(rows), len(TAGS)))
    score = np.zeros_like(clean)
    for i, row in enumerate(rows):
        share = dict(zip(row.clean, row.shares_db))
        for j, tag in enumerate(TAGS):
            clean[i, j] = tag in row.clean
            if spec.noise_model == "independent":
                score[i, j] = 1 - rates["missing"][tag] if tag in row.clean else rates["spurious"][tag]
            elif tag in row.clean:
                score[i, j] = 1 - missing_probability(rates["missing"][tag], share[tag], slope=spec.missing_slope)
            else:
                score[i, j] = rates["spurious"][tag] if CONFUSABLE[tag] in row.clean else 0.0
    return tagging_report(clean, score, list(TAGS)).roc_auc_macro


def test_only_audio_dependent_noise_leaves_room_to_beat_bce() -> None:
    # Independent flips: the BCE optimum ranks the clean labels perfectly, so no method can
    # beat plain BCE on clean-label ranking metrics. Audio-dependent noise puts quiet sources
    # below spurious look-alikes: the BCE optimum loses clean-label ROC-AUC.
    independent = _noisy_label_posterior_clean_auc(SynthSpec(clips=3000, seed=2, noise_model="independent"))
    audio = _noisy_label_posterior_clean_auc(SynthSpec(clips=3000, seed=2))
    assert independent == 1.0
    assert audio < 0.98


def test_missing_probability_rises_with_quietness() -> None:
    shares = np.array([0.0, -3.0, -10.0, -30.0])
    chance = missing_probability(0.1, shares, slope=0.3)
    assert chance[0] == pytest.approx(0.1) and np.all(np.diff(chance) > 0)
    # each dB quieter multiplies the odds by e^slope
    odds = chance / (1 - chance)
    assert odds[2] / odds[0] == pytest.approx(np.exp(3.0))
    assert np.all(missing_probability(0.0, shares, slope=0.3) == 0.0)
    assert np.all(missing_probability(1.0, shares, slope=0.3) == 1.0)
    assert np.allclose(missing_probability(0.2, shares, slope=0.0), 0.2)
    np.testing.assert_allclose(mix_shares_db(np.array([0.0, 0.0])), [-10 * np.log10(2)] * 2)
    assert mix_shares_db(np.array([-7.0])).tolist() == [0.0]
