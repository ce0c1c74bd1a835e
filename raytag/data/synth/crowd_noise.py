"""Crowd-like label noise for the synthetic corpus, and its per-tag report (Lu et al. Table 1).

Two noise models turn a clip's clean sources into the labels a crowd would give:

* ``"audio"`` (the default): the noise depends on the audio, as crowd tags do. A source is
  left out of the labels more often the quieter it is in the mix: with s its share of the
  mix's power in dB (≤ 0; 0 for a solo source), the chance it is missing is
  logit⁻¹(logit(m_tag) + slope·(−s)), m_tag the tag's rate for a solo source. Spurious tags come
  from confusable timbres: a tag absent from the clip is added, with the tag's spurious rate,
  only when its confusable partner (:data:`CONFUSABLE`) sounds in the clip.
* ``"independent"``: each label flips independently of the audio (missing with the tag's
  missing rate, spurious with its spurious rate), so ranking metrics at the BCE optimum
  already equal the clean ranking; kept to compare with.

Every random choice takes a :class:`numpy.random.Generator`.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from types import MappingProxyType

import numpy as np

__all__ = [
    "CONFUSABLE",
    "DEFAULT_RATES",
    "NOISE_MODELS",
    "NoiseRow",
    "crowd_labels",
    "missing_probability",
    "mix_shares_db",
    "noise_report",
    "write_noise_csv",
]

NOISE_MODELS: tuple[str, ...] = ("audio", "independent")
"""Names of the noise models :func:`crowd_labels` draws."""

CONFUSABLE: Mapping[str, str] = MappingProxyType(
    {
        # struck and plucked strings: harmonic partials that decay from a sharp attack
        "piano": "guitar",
        "guitar": "piano",
        # sustained harmonic tones that hold without decay while the key or bow is held
        "strings": "organ",
        "organ": "strings",
        # breathy, vibrato-carrying melodic lines in the same register
        "voice": "flute",
        "flute": "voice",
        # low-frequency energy on the beat: a pitched sine thump and a bass note
        "bass": "kick",
        "kick": "bass",
        # noise-based percussion: band-limited noise bursts
        "snare": "hihat",
        "hihat": "snare",
    }
)
"""Each instrument's confusable partner: the tag a listener adds by mistake when the instrument
sounds. Symmetric; pairs of instruments with similar timbre in :mod:`raytag.data.synth.instruments`."""

DEFAULT_RATES: Mapping[str, Mapping[str, tuple[float, float]]] = MappingProxyType(
    {
        # per tag: missing chance of a solo source; spurious chance when the partner sounds
        "audio": MappingProxyType({"missing_rate": (0.05, 0.15), "spurious_rate": (0.1, 0.3)}),
        # per tag: flat missing and spurious chances (raytag's earlier synthetic noise)
        "independent": MappingProxyType({"missing_rate": (0.2, 0.5), "spurious_rate": (0.01, 0.05)}),
    }
)
"""Default ranges the per-tag rates are drawn from, per noise model."""


def mix_shares_db(levels_db: np.ndarray) -> np.ndarray:
    """Each source's share of the mix's power, in dB.

    Sources are rendered at unit RMS times their level and are uncorrelated, so the mix's
    power is the sum of the sources' powers: share_i = 10·log10(10^(l_i/10) / Σ_k 10^(l_k/10)).
    Peak normalisation of the mix scales every source alike and leaves the shares unchanged.

    Args:
        levels_db: (S,) source levels, dB.

    Returns:
        (S,) float64 shares, dB, ≤ 0 (0 for a single source).
    """
    levels = np.asarray(levels_db, dtype=np.float64)
    if levels.size == 0:
        return levels
    powers = 10.0 ** (levels / 10.0)
    return 10.0 * np.log10(powers / powers.sum())


def missing_probability(base: np.ndarray | float, share_db: np.ndarray | float, *, slope: float) -> np.ndarray:
    """Chance that a sounding source is left out of the labels, in the ``"audio"`` model.

    logit(p) = logit(base) + slope·(−share_db): ``base`` for a solo source (share 0 dB),
    rising as the source gets quieter in the mix; each dB quieter multiplies the odds of
    missing it by e^slope. base 0 gives 0 and base 1 gives 1 at any share.

    Args:
        base: per-source missing chance of a solo source, in [0, 1].
        share_db: the source's share of the mix power, dB (≤ 0).
        slope: log-odds per dB of quietness, ≥ 0 (0: independent of the audio).

    Returns:
        float64 probabilities in [0, 1], broadcast over the inputs.
    """
    base = np.asarray(base, dtype=np.float64)
    quietness = -np.asarray(share_db, dtype=np.float64)
    with np.errstate(divide="ignore"):
        log_odds = np.log(base) - np.log1p(-base) + slope * quietness
    return 1.0 / (1.0 + np.exp(-log_odds))


def crowd_labels(
    truth: np.ndarray,
    share_db: np.ndarray,
    *,
    model: str,
    missing: np.ndarray,
    spurious: np.ndarray,
    slope: float,
    partners: np.ndarray,
    rng: np.random.Generator,
) -> np.ndarray:
    """One clip's noisy labels from its clean sources.

    Draws ``rng.random(K)`` once (``"independent"``) or twice (``"audio"``: missing, then
    spurious), whatever the clip holds, so a clip's draws do not depend on its neighbours.

    Args:
        truth: (K,) bool, the tags sounding in the clip.
        share_db: (K,) each sounding tag's share of the mix power, dB (read only where
            ``truth``; see :func:`mix_shares_db`).
        model: one of :data:`NOISE_MODELS`.
        missing: (K,) per-tag missing rates (solo-source rates for ``"audio"``).
        spurious: (K,) per-tag spurious rates (given the partner sounds, for ``"audio"``).
        slope: log-odds of missing per dB of quietness (``"audio"`` only).
        partners: (K,) int, the index of each tag's confusable partner.
        rng: the clip's generator.

    Returns:
        (K,) bool noisy labels.

    Raises:
        ValueError: on an unknown model.
    """
    truth = np.asarray(truth, dtype=bool)
    if model == "independent":
        draw = rng.random(truth.size)
        return np.where(truth, draw >= missing, draw < spurious)
    if model != "audio":
        raise ValueError(f"unknown noise model {model!r}; available: {', '.join(NOISE_MODELS)}")
    miss_draw, spurious_draw = rng.random(truth.size), rng.random(truth.size)
    miss_chance = missing_probability(missing, np.where(truth, share_db, 0.0), slope=slope)
    partner_sounds = truth[np.asarray(partners)]
    return np.where(truth, miss_draw >= miss_chance, partner_sounds & (spurious_draw < spurious))


@dataclass(frozen=True)
class NoiseRow:
    """Label noise of one tag over one split, as in Lu et al. Table 1.

    Attributes:
        split: ``train``, ``valid``, ``test`` or ``all`` (every labelled clip).
        tag: the tag.
        clips: labelled clips in the split.
        clean_pos: clips where the tag truly sounds.
        labelled_pos, labelled_neg: clips whose labels show / do not show the tag.
        false_pos: labelled positive, truly absent (spurious).
        false_neg: labelled negative, truly present (missing).
        err_pos: Err+ = false_pos / labelled_pos, the error rate of the labelled positives.
        err_neg: Err− = false_neg / labelled_neg, the error rate of the labelled negatives.
        precision: 1 − Err+.
        recall: (labelled_pos − false_pos) / clean_pos, over the whole split. Lu et al.
            re-annotated 100 positives and 100 negatives per tag, so their recall column is
            (1 − Err+)/((1 − Err+) + Err−), not this population recall.

    A rate whose denominator is 0 is NaN.
    """

    split: str
    tag: str
    clips: int
    clean_pos: int
    labelled_pos: int
    labelled_neg: int
    false_pos: int
    false_neg: int
    err_pos: float
    err_neg: float
    precision: float
    recall: float


def _ratio(numerator: int, denominator: int) -> float:
    return numerator / denominator if denominator else math.nan


def noise_report(
    splits: Sequence[str],
    clean: np.ndarray,
    labelled: np.ndarray,
    tags: Sequence[str],
    *,
    split_order: Sequence[str] | None = None,
) -> list[NoiseRow]:
    """Per-tag label noise of each split and of all clips together.

    Args:
        splits: (N,) split of each labelled clip.
        clean: (N, K) bool, the true tags.
        labelled: (N, K) bool, the labels as written (noisy, or clean on verified clips).
        tags: K tag names.
        split_order: the splits to report, in order; default every split in first-seen order.
            ``all`` always covers every clip.

    Returns:
        Rows for each split, then ``all``; each split's rows in tag order.

    Raises:
        ValueError: if the shapes do not agree.
    """
    clean, labelled = np.asarray(clean, dtype=bool), np.asarray(labelled, dtype=bool)
    splits = np.asarray(splits, dtype=object)
    if clean.shape != labelled.shape or clean.shape != (len(splits), len(tags)):
        raise ValueError(
            f"clean {clean.shape} and labelled {labelled.shape} must be (clips={len(splits)}, tags={len(tags)})"
        )
    order = dict.fromkeys(splits.tolist()) if split_order is None else split_order
    groups = [(name, splits == name) for name in order]
    groups.append(("all", np.ones(len(splits), dtype=bool)))
    rows = []
    for name, chosen in groups:
        truth, shown = clean[chosen], labelled[chosen]
        for j, tag in enumerate(tags):
            pos, neg = int(shown[:, j].sum()), int((~shown[:, j]).sum())
            false_pos = int((shown[:, j] & ~truth[:, j]).sum())
            false_neg = int((~shown[:, j] & truth[:, j]).sum())
            err_pos = _ratio(false_pos, pos)
            rows.append(
                NoiseRow(
                    split=name, tag=tag, clips=int(chosen.sum()), clean_pos=int(truth[:, j].sum()),
                    labelled_pos=pos, labelled_neg=neg, false_pos=false_pos, false_neg=false_neg,
                    err_pos=err_pos, err_neg=_ratio(false_neg, neg), precision=1.0 - err_pos,
                    recall=_ratio(pos - false_pos, int(truth[:, j].sum())),
                )
            )
    return rows


def write_noise_csv(path: str | Path, rows: Sequence[NoiseRow]) -> None:
    """Writes a noise report as CSV: one line per row, rates with 6 decimals, empty when NaN."""
    fields = list(NoiseRow.__dataclass_fields__)
    with Path(path).open("w", encoding="utf-8", newline="") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(fields)
        for row in rows:
            values = asdict(row)
            writer.writerow(
                "" if isinstance(v, float) and math.isnan(v) else f"{v:.6f}" if isinstance(v, float) else v
                for v in (values[name] for name in fields)
            )
