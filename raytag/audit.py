"""Label-noise audit: how many of a corpus's tags are missing or wrong, and which to check.

Lu et al. 2022 (Table 1) re-annotated 100 labelled-positive and 100 labelled-negative tracks
of five tags and report, per tag,

* **Err+**, the error rate of the positive samples: the share of labelled positives whose
  tag is not really there, P(y = 0 | ỹ = 1) (so precision = 1 − Err+);
* **Err−**, the error rate of the negatives: the share of labelled negatives whose tag is
  really there (a missing label), P(y = 1 | ỹ = 0);

and a recall measured on their 1:1 sample, (1 − Err+) / ((1 − Err+) + Err−). Four of the five
rows satisfy that identity to two decimals; the drums row (Err+ 20, Err− 39, recall 0.57)
does not (it gives 0.67), so one of its numbers is a typo.

This module estimates Err+ and Err− without a re-annotation, from a trained teacher's
track-level scores s (N, K) and the noisy labels ỹ (N, K) of a labelled split.

**Model.** Class-conditional noise (CCN), per tag: a true tag is left out with probability
ρ₁ = P(ỹ = 0 | y = 1) and a tag that is not there is added with probability
ρ₀ = P(ỹ = 1 | y = 0), independently of the audio given the truth. A teacher trained on the
noisy labels learns g(x) = P(ỹ = 1 | x) = ρ₀ + (1 − ρ₀ − ρ₁)·η(x), with η(x) = P(y = 1 | x):
it is calibrated to the *noisy* labels, its outputs squeezed into [ρ₀, 1 − ρ₁]. So its raw
probabilities cannot be read as "this label is wrong" (a missing-label rate of 30 % just
looks like a tag the teacher is unsure of); the noise rates are in the ends of that range.

**Estimator** (the anchor-point idea of Elkan & Noto 2008 and Liu & Tao 2016, with both
noise directions):

1. Only the teacher's *ranking* is used, so a teacher trained with Balanced-Training (whose
   scores are shifted upwards) or any monotone rescaling gives the same estimates. g is re-fitted
   from the ranking as the isotonic regression of ỹ on s (pool-adjacent-violators,
   :func:`raytag.calibration.isotonic_fit`). (Only the order of tied suspects, step 4, uses the
   scores' scale: unchanged by a shift or scaling of their log-odds.)
2. Anchors: the top ``anchor_share`` of the tracks the estimate says are truly positive
   (``anchor_share``·π̂·N highest scores) are taken as surely positive, so their labelled rate
   estimates 1 − ρ₁; the bottom ``anchor_share``·(1 − π̂)·N are taken as surely negative, so
   their labelled rate estimates ρ₀. π̂ = (p̃ − ρ₀)/(1 − ρ₀ − ρ₁), p̃ the labelled rate, and
   the anchor sizes are iterated to a fixed point.
3. Err+ = ρ₀(1 − π̂)/p̃ and Err− = ρ₁π̂/(1 − p̃). Per entry, the probability that its label is
   wrong: ρ₁·η/(1 − g) for a labelled negative and ρ₀·(1 − η)/g for a labelled positive, with
   η = (g − ρ₀)/(1 − ρ₀ − ρ₁) clipped to [0, 1]. The suspicious rows are ranked by it. (Its mean
   over labelled positives is exactly the Err+ above, because the isotonic fit keeps block
   means; likewise for Err−.)
4. Ties. The isotonic g is piecewise constant, so a whole block shares one probability: often
   1.0 for every labelled negative in a tag's top block, hundreds of rows across tags. They are
   ordered by how strongly a *smooth* g contradicts the label (:func:`label_contradiction`):
   Platt's logistic fit of ỹ on the scores' log-odds, g for a labelled negative and 1 − g for a
   labelled positive. Within a tag that is the score's order; across tags it is one probability
   scale, and it leaves out the noise rates, which are biased upwards exactly for the poorly
   separated tags whose tied rows are mostly false alarms. Measured on the corpus and 6-epoch
   teacher of tests/test_audit_ray.py at six seeds (5, the test's, then 1, 2, 3, 4, 6), the
   share of real errors among the 50 most suspicious rows: 0.70, 0.70, 0.80, 0.88, 0.80, 0.82
   (mean 0.78) with this order; 0.48, 0.70, 0.70, 0.44, 0.90, 0.42 (0.61) with ties to the
   higher score percentile within the tag (the order before); the smooth p_wrong itself (noise
   rates included) 0.73 on average, down to 0.56; distances in units of the tag's own score
   spread (robust z of the label's class, distance to the midpoint between the classes) 0.67 to
   0.78 on average but down to 0.28-0.50, swinging with whichever tag's spread came out smallest.
   The teacher's raw probability did as well (0.80, down to 0.70) but is not comparable across
   tags once a Balanced-Training teacher shifts each tag's scores by its own amount.

**Assumptions and bias.**

* CCN: noise depends on the tag, not on the track. Tracks that are ambiguous to annotators
  *and* to the model break it; their errors are partly absorbed into η and under-counted.
* Anchors must be pure: a teacher that ranks some true negatives among its very top (or true
  positives among its bottom half) contaminates them, which makes **both rates too high**:
  the bias is upwards and grows as the teacher's separation of the tag (the ``separation``
  column, (1 − ρ₁) − ρ₀) shrinks. A smaller ``anchor_share`` lowers the bias and raises the
  variance. In simulation (tests/test_audit.py) a held-out teacher with clean ROC-AUC ≈ 0.98
  on 20,000 tracks gets every tag's Err+ and Err− within 0.05 (0.025 on average over tags,
  about +0.01 too high); one with ROC-AUC ≈ 0.86 overestimates both by about 0.08.
* Held-out scores. A teacher scoring the tracks it was trained on has memorised part of their
  noisy labels, so its score depends on ỹ beyond y; missing labels then look like true
  negatives and **Err− is underestimated** (and Err+ too). Use scores on a split the teacher
  did not train on (valid/test, whose labels are as noisy), or cross-fitted teachers.
* Estimates of rare tags rest on few anchors (``anchor_positive_tracks``); read them with that
  count in mind.

Core module: numpy and pandas only.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import pandas as pd

from raytag.calibration import isotonic_fit, logistic_fit

NOISE_ESTIMATED = "ok"
"""A :class:`TagNoise`'s status when the tag's noise could be estimated (any other status says why not)."""
TIE_BREAK = "_contradiction"  # a working column of the suspects: orders rows whose p_wrong ties


class LabelAudit(NamedTuple):
    """What :func:`audit_labels` returns: the per-tag table and the rows to check."""

    per_tag: pd.DataFrame
    suspicious: pd.DataFrame


@dataclass(frozen=True)
class TagNoise:
    """Estimated noise of one tag (rates are shares in [0, 1]; NaN when not estimable).

    Attributes:
        tracks: scored tracks used.
        labelled_positive, labelled_negative: counts of ỹ = 1 and ỹ = 0.
        label_rate: p̃, share of tracks labelled positive.
        true_rate: π̂, estimated share of tracks where the tag is really present.
        spurious_flip: ρ₀ = P(ỹ = 1 | y = 0), labels added to tracks without the tag.
        missing_flip: ρ₁ = P(ỹ = 0 | y = 1), true tags left out.
        err_plus: Lu's Err+, P(y = 0 | ỹ = 1).
        err_minus: Lu's Err−, P(y = 1 | ỹ = 0).
        anchor_positive_tracks, anchor_negative_tracks: sizes of the anchor sets.
        status: :data:`NOISE_ESTIMATED` (``"ok"``) or why the tag could not be estimated.
    """

    tracks: int
    labelled_positive: int
    labelled_negative: int
    label_rate: float
    true_rate: float
    spurious_flip: float
    missing_flip: float
    err_plus: float
    err_minus: float
    anchor_positive_tracks: int
    anchor_negative_tracks: int
    status: str = NOISE_ESTIMATED

    @property
    def separation(self) -> float:
        """(1 − ρ₁) − ρ₀: labelled rate at the top minus at the bottom of the teacher's ranking."""
        return 1.0 - self.missing_flip - self.spurious_flip


def estimate_tag_noise(
    scores: np.ndarray,
    labels: np.ndarray,
    *,
    anchor_share: float = 0.5,
    min_anchor_tracks: int = 10,
    min_separation_z: float = 3.0,
    max_iterations: int = 50,
) -> TagNoise:
    """Err+ and Err− of one tag from a teacher's scores (see the module docstring).

    Args:
        scores: (N,) finite teacher scores of the tracks (probabilities or logits).
        labels: (N,) noisy 0/1 labels of the same tracks.
        anchor_share: share of the estimated true positives (top of the ranking) and of the
            true negatives (bottom) taken as anchors. Default 0.5.
        min_anchor_tracks: smallest anchor set. Default 10.
        min_separation_z: the labelled rate of the top anchors must exceed that of the bottom
            anchors by this many standard errors, else the teacher is taken not to separate
            the tag (a random teacher would otherwise give arbitrary rates). Default 3.
        max_iterations: cap on the fixed-point iterations of the anchor sizes. Default 50.

    Returns:
        The tag's :class:`TagNoise`; rates are NaN with a ``status`` when the tag has no
        labelled positive or negative, too few tracks, or a teacher that does not rank its
        labelled positives above its labelled negatives.
    """
    n = len(labels)
    positives = int(labels.sum())
    negatives = n - positives
    nan = float("nan")

    def unusable(status: str, true_rate: float = nan) -> TagNoise:
        return TagNoise(n, positives, negatives, positives / n if n else nan, true_rate,
                        nan, nan, nan, nan, 0, 0, status)

    if positives == 0:
        return unusable("no labelled positive")
    if negatives == 0:
        return unusable("no labelled negative")
    if n < 2 * min_anchor_tracks:
        return unusable(f"fewer than {2 * min_anchor_tracks} scored tracks")
    order = np.argsort(scores, kind="stable")
    ranked = labels[order].astype(np.float64)
    label_rate = positives / n
    true_rate = label_rate
    top = bottom = min_anchor_tracks
    spurious = missing = nan
    for _ in range(max_iterations):
        top = int(np.clip(round(anchor_share * true_rate * n), min_anchor_tracks, n // 2))
        bottom = int(np.clip(round(anchor_share * (1 - true_rate) * n), min_anchor_tracks, n // 2))
        spurious = float(ranked[:bottom].mean())
        missing = 1.0 - float(ranked[-top:].mean())
        separation = 1.0 - spurious - missing
        error = math.sqrt(spurious * (1 - spurious) / bottom + missing * (1 - missing) / top)
        if separation <= 0 or separation < min_separation_z * error:
            return unusable("teacher does not separate the tag")
        new_rate = float(np.clip((label_rate - spurious) / separation, 1.0 / n, 1.0))
        if abs(new_rate - true_rate) < 0.5 / n:
            true_rate = new_rate
            break
        true_rate = new_rate
    return TagNoise(
        tracks=n,
        labelled_positive=positives,
        labelled_negative=negatives,
        label_rate=label_rate,
        true_rate=true_rate,
        spurious_flip=spurious,
        missing_flip=missing,
        err_plus=float(np.clip(spurious * (1 - true_rate) / label_rate, 0.0, 1.0)),
        err_minus=float(np.clip(missing * true_rate / (1 - label_rate), 0.0, 1.0)),
        anchor_positive_tracks=top,
        anchor_negative_tracks=bottom,
    )


def wrong_label_probability(scores: np.ndarray, labels: np.ndarray, noise: TagNoise) -> np.ndarray:
    """Per track, the estimated probability that its label of this tag is wrong.

    Args:
        scores: (N,) finite teacher scores.
        labels: (N,) noisy 0/1 labels.
        noise: the tag's estimate from :func:`estimate_tag_noise` on the same tracks.

    Returns:
        (N,) float64 in [0, 1]: ρ₁·η/(1 − g) for a labelled negative (a missing tag),
        ρ₀·(1 − η)/g for a labelled positive (a spurious tag); NaN when ``noise`` is not usable.
    """
    if noise.status != NOISE_ESTIMATED:
        return np.full(len(labels), np.nan)
    noisy_posterior = isotonic_fit(scores, labels)
    true_posterior = np.clip((noisy_posterior - noise.spurious_flip) / noise.separation, 0.0, 1.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        missing = noise.missing_flip * true_posterior / (1.0 - noisy_posterior)
        spurious = noise.spurious_flip * (1.0 - true_posterior) / noisy_posterior
    wrong = np.where(labels > 0, spurious, missing)
    return np.clip(np.nan_to_num(wrong, nan=0.0, posinf=1.0), 0.0, 1.0)


def label_contradiction(scores: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Per track, how strongly the teacher's scores contradict its label of this tag: the smooth
    g, Platt's fit of P(ỹ = 1 | score) (:func:`raytag.calibration.logistic_fit`), for a labelled
    negative, 1 − g for a labelled positive. Orders the suspects whose ``p_wrong`` ties (module
    docstring, step 4).

    Args:
        scores: (N,) finite teacher scores (probabilities or logits).
        labels: (N,) noisy 0/1 labels.

    Returns:
        (N,) float64 in (0, 1); within a tag it rises with the score for a labelled negative and
        falls for a labelled positive.
    """
    fitted = logistic_fit(scores, labels)
    return np.where(labels > 0, 1.0 - fitted, fitted)


def audit_labels(
    *,
    scores: np.ndarray,
    labels: np.ndarray,
    tags: Sequence[str],
    tracks: Sequence[str],
    anchor_share: float = 0.5,
    min_anchor_tracks: int = 10,
    max_rows: int | None = 200,
    max_rows_per_tag: int | None = None,
) -> LabelAudit:
    """Per-tag noise estimates and the most suspicious (track, tag) labels of a split.

    Args:
        scores: (N, K) track-level teacher scores, preferably on tracks the teacher did not
            train on. NaN marks a track the teacher could not score: it is left out of that
            tag's estimate and of the rows.
        labels: (N, K) noisy 0/1 labels.
        tags: K tag names, in column order.
        tracks: N track identifiers (paths), in row order.
        anchor_share: see :func:`estimate_tag_noise`. Default 0.5.
        min_anchor_tracks: see :func:`estimate_tag_noise`. Default 10.
        max_rows: length of the suspicious list (None: every entry). Default 200.
        max_rows_per_tag: at most this many rows per tag (None: no cap), so one very noisy tag
            does not fill the list.

    Returns:
        :class:`LabelAudit` with

        * ``per_tag`` (one row per tag): tag, tracks, unscored, labelled_positive,
          labelled_negative, label_rate, true_rate, err_plus, err_minus, precision (1 − Err+),
          recall (share of true positives labelled, 1 − ρ₁), recall_balanced (Table 1's recall
          on a 1:1 sample), spurious_flip (ρ₀), expected_spurious, expected_missing (label
          counts), separation, anchor_positive_tracks, anchor_negative_tracks, status;
        * ``suspicious``: rank, track, tag, label, score, p_wrong, suspected (``"missing"``
          for a labelled negative, ``"spurious"`` for a labelled positive), most suspicious
          first (ties: by :func:`label_contradiction`, see the module docstring).

    Raises:
        ValueError: shapes that do not match, labels other than 0/1, bad settings.
    """
    scores = np.asarray(scores, dtype=np.float64)
    labels = _check_inputs(scores, labels, tags, tracks, anchor_share, min_anchor_tracks)
    rows: list[dict] = []
    suspects: list[pd.DataFrame] = []
    for j, tag in enumerate(tags):
        scored = np.isfinite(scores[:, j])
        tag_scores, tag_labels = scores[scored, j], labels[scored, j]
        noise = estimate_tag_noise(
            tag_scores, tag_labels, anchor_share=anchor_share, min_anchor_tracks=min_anchor_tracks
        )
        rows.append(_table_row(tag, noise, unscored=int((~scored).sum())))
        if noise.status != NOISE_ESTIMATED:
            continue
        wrong = wrong_label_probability(tag_scores, tag_labels, noise)
        frame = pd.DataFrame({
            "track": np.asarray(tracks, dtype=object)[scored],
            "tag": tag,
            "label": tag_labels,
            "score": tag_scores,
            "p_wrong": wrong,
            "suspected": np.where(tag_labels > 0, "spurious", "missing"),
            TIE_BREAK: label_contradiction(tag_scores, tag_labels),
        })
        frame = frame[frame["p_wrong"] > 0].sort_values(["p_wrong", TIE_BREAK], ascending=False, kind="stable")
        if max_rows_per_tag is not None:
            frame = frame.head(max_rows_per_tag)
        suspects.append(frame)
    return LabelAudit(pd.DataFrame(rows), _rank_suspects(suspects, max_rows))


def _table_row(tag: str, noise: TagNoise, *, unscored: int) -> dict:
    err_plus, err_minus = noise.err_plus, noise.err_minus
    return {
        "tag": tag,
        "tracks": noise.tracks,
        "unscored": unscored,
        "labelled_positive": noise.labelled_positive,
        "labelled_negative": noise.labelled_negative,
        "label_rate": noise.label_rate,
        "true_rate": noise.true_rate,
        "err_plus": err_plus,
        "err_minus": err_minus,
        "precision": 1.0 - err_plus,
        "recall": 1.0 - noise.missing_flip,
        "recall_balanced": (1.0 - err_plus) / (1.0 - err_plus + err_minus)
        if not math.isnan(err_plus + err_minus) else float("nan"),
        "spurious_flip": noise.spurious_flip,
        "expected_spurious": err_plus * noise.labelled_positive,
        "expected_missing": err_minus * noise.labelled_negative,
        "separation": noise.separation,
        "anchor_positive_tracks": noise.anchor_positive_tracks,
        "anchor_negative_tracks": noise.anchor_negative_tracks,
        "status": noise.status,
    }


def _rank_suspects(frames: list[pd.DataFrame], max_rows: int | None) -> pd.DataFrame:
    columns = ["rank", "track", "tag", "label", "score", "p_wrong", "suspected"]
    if not frames:
        return pd.DataFrame(columns=columns)
    merged = pd.concat(frames, ignore_index=True).sort_values(
        ["p_wrong", TIE_BREAK], ascending=False, kind="stable"
    )
    if max_rows is not None:
        merged = merged.head(max_rows)
    merged = merged.drop(columns=TIE_BREAK).reset_index(drop=True)
    merged["label"] = merged["label"].astype(int)
    merged.insert(0, "rank", np.arange(1, len(merged) + 1))
    return merged[columns]


def _check_inputs(
    scores: np.ndarray,
    labels: np.ndarray,
    tags: Sequence[str],
    tracks: Sequence[str],
    anchor_share: float,
    min_anchor_tracks: int,
) -> np.ndarray:
    labels = np.asarray(labels)
    if scores.ndim != 2 or labels.shape != scores.shape:
        raise ValueError(f"scores and labels must both be (tracks, tags); got {scores.shape} and {labels.shape}")
    if len(tags) != scores.shape[1]:
        raise ValueError(f"{len(tags)} tag names for {scores.shape[1]} score columns")
    if len(tracks) != scores.shape[0]:
        raise ValueError(f"{len(tracks)} track names for {scores.shape[0]} score rows")
    finite = labels[np.isfinite(labels)] if labels.dtype.kind == "f" else labels
    if finite.size != labels.size or not np.isin(finite, (0, 1)).all():
        bad = np.argwhere(~np.isin(labels, (0, 1)))[0]
        raise ValueError(f"labels must be 0 or 1; track {tracks[bad[0]]}, tag {tags[bad[1]]} has {labels[tuple(bad)]!r}")
    if not 0.0 < anchor_share <= 1.0:
        raise ValueError(f"anchor_share must be in (0, 1]; got {anchor_share}")
    if min_anchor_tracks < 1:
        raise ValueError(f"min_anchor_tracks must be at least 1; got {min_anchor_tracks}")
    return labels.astype(np.int64)
