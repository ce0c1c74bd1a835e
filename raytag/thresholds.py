"""Per-tag decision thresholds, chosen on a validation split, and applying them.

A tagger outputs a probability per tag; turning it into "this track has the tag" needs a
threshold per tag, because tags differ in how common they are and in how well the model
separates them (0.5 everywhere under-tags rare tags). The criterion here:

* **F1 on the validation split.** For each tag, over that tag's validation tracks, the
  threshold that maximises F1 = 2·TP / (2·TP + FP + FN) of the rule ``probability ≥
  threshold`` against the labels given. Only the order of the scores matters. F1 is constant
  between two adjacent distinct scores, so the threshold is put halfway between the lowest
  score predicted positive and the highest predicted negative (the middle of the interval
  every threshold of which gives the same validation F1); when the best rule tags every
  track, it is the lowest score. Ties in F1 go to the higher threshold (fewer tags
  predicted).
* **Tags with no positive** validation track (or fewer than ``min_positives``) have no
  threshold: F1 is undefined and any number would be invented. They are left out of the
  ``{tag: threshold}`` map, so ``raytag predict`` never lists them among the tags above
  threshold (it still reports their probabilities and top-k ranks) and says which they are.
* **Which labels.** The threshold maximises F1 against the labels it is given. A user of the
  model has the manifest's (noisy) labels, and perhaps a subset of rows a person verified; clean
  labels exist only for a benchmark corpus. :func:`threshold_labels` picks the rows and labels
  (``eval.threshold_labels``): by default the verified validation rows when there are enough,
  else every validation row with its noisy labels. Choosing on clean labels is allowed, for
  experiments, and named so. With crowd labels that miss tags (Lu et al. 2022), F1 against them
  rewards under-tagging: the recorded source says which kind of threshold a model carries.

Core module: numpy only.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from raytag.threshold_choice import MIN_VERIFIED, ThresholdLabelChoice, enough_verified

THRESHOLD_CHOSEN = "ok"
"""A :class:`TagThreshold`'s status when a threshold was chosen (any other status says why not)."""


@dataclass(frozen=True)
class ThresholdLabels:
    """The validation rows and labels thresholds are chosen on, and what they are.

    Attributes:
        source: ``"noisy"`` (the manifest's labels, every row), ``"verified"`` (the manifest's
            labels of the rows a person verified) or ``"clean"`` (a clean label file).
        rows: (N,) bool, which of the scored validation tracks are used.
        labels: (rows.sum(), K) 0/1 labels of those tracks.
    """

    source: str
    rows: np.ndarray
    labels: np.ndarray

    @property
    def tracks(self) -> int:
        return int(self.rows.sum())


def threshold_labels(
    choice: str,
    *,
    noisy: np.ndarray,
    verified: np.ndarray,
    clean: np.ndarray | None = None,
    min_verified: int = MIN_VERIFIED,
) -> ThresholdLabels:
    """What the decision thresholds are chosen on: the labels a user of the model has.

    Args:
        choice: a :class:`~raytag.threshold_choice.ThresholdLabelChoice`. ``auto``: the verified rows when at least
            ``min_verified`` are verified, else every row with its noisy labels; ``noisy``,
            ``verified`` and ``clean`` force one (``clean`` needs ``clean``).
        noisy: (N, K) the manifest's labels of the scored validation tracks.
        verified: (N,) bool, which of them a person verified.
        clean: (N, K) clean labels of the same tracks, or None when there are none.
        min_verified: fewest verified rows ``auto`` takes on their own (≥ 1).

    Returns:
        :class:`ThresholdLabels`.

    Raises:
        ValueError: an unknown choice, mismatched shapes, ``verified`` with no verified row or
            ``clean`` without clean labels.
    """
    if choice not in tuple(ThresholdLabelChoice):
        raise ValueError(f"threshold labels must be one of {', '.join(ThresholdLabelChoice)}; got {choice!r}")
    choice = ThresholdLabelChoice(choice)
    noisy = np.asarray(noisy)
    verified = np.asarray(verified, dtype=bool)
    if noisy.ndim != 2 or verified.shape != (noisy.shape[0],):
        raise ValueError(f"noisy labels {noisy.shape} and verified flags {verified.shape} do not match")
    if choice == ThresholdLabelChoice.AUTO:
        use = enough_verified(int(verified.sum()), min_verified)
        choice = ThresholdLabelChoice.VERIFIED if use else ThresholdLabelChoice.NOISY
    elif min_verified < 1:
        raise ValueError(f"min_verified must be at least 1; got {min_verified}")
    if choice == ThresholdLabelChoice.CLEAN:
        if clean is None or np.shape(clean) != noisy.shape:
            raise ValueError("thresholds on clean labels need clean labels for every scored validation track")
        return ThresholdLabels(choice, np.ones(len(noisy), dtype=bool), np.asarray(clean))
    if choice == ThresholdLabelChoice.VERIFIED:
        if not verified.any():
            raise ValueError("thresholds on verified labels, but no scored validation track is verified")
        return ThresholdLabels(choice, verified, noisy[verified])
    return ThresholdLabels(ThresholdLabelChoice.NOISY, np.ones(len(noisy), dtype=bool), noisy)


@dataclass(frozen=True)
class TagThreshold:
    """The threshold chosen for one tag and what it scores on the validation split.

    Attributes:
        tag: the tag.
        threshold: predict the tag when its probability is ≥ this; NaN when none was chosen.
        f1, precision, recall: of that rule on the validation tracks (NaN without threshold).
        positives: labelled positive validation tracks of the tag.
        tracks: validation tracks with a finite score for the tag.
        status: :data:`THRESHOLD_CHOSEN` (``"ok"``) or why no threshold was chosen.
    """

    tag: str
    threshold: float
    f1: float
    precision: float
    recall: float
    positives: int
    tracks: int
    status: str = THRESHOLD_CHOSEN


def f1_threshold(scores: np.ndarray, labels: np.ndarray) -> tuple[float, float, float, float]:
    """The F1-maximising threshold of one tag (see the module docstring).

    Args:
        scores: (N,) finite scores (probabilities or logits).
        labels: (N,) 0/1 labels with at least one positive.

    Returns:
        ``(threshold, f1, precision, recall)`` of the rule ``score ≥ threshold``.

    Raises:
        ValueError: no positive label, non-finite scores or mismatched lengths.
    """
    scores = np.asarray(scores, dtype=np.float64)
    labels = np.asarray(labels) > 0.5
    if scores.ndim != 1 or scores.shape != labels.shape:
        raise ValueError(f"scores and labels must both be (tracks,); got {scores.shape} and {labels.shape}")
    if not np.isfinite(scores).all():
        raise ValueError("scores must be finite")
    positives = int(labels.sum())
    if positives == 0:
        raise ValueError("no positive label: F1 is undefined")
    order = np.argsort(-scores, kind="stable")
    ranked, hits = scores[order], labels[order]
    # Cut after position k-1 (the top k predicted positive) only where the score changes.
    cuts = np.flatnonzero(np.r_[ranked[1:] < ranked[:-1], True]) + 1
    true_positives = np.cumsum(hits)[cuts - 1]
    f1 = 2.0 * true_positives / (cuts + positives)
    best = int(np.argmax(f1))  # the first maximum: the highest threshold
    k = int(cuts[best])
    if k == len(ranked):
        threshold = float(ranked[-1])
    else:
        above, below = float(ranked[k - 1]), float(ranked[k])
        threshold = below + (above - below) / 2.0
        if not below < threshold <= above:  # adjacent floats: the midpoint rounds onto one of them
            threshold = above
    tp = float(true_positives[best])
    return threshold, float(f1[best]), tp / k, tp / positives


def choose_thresholds(
    *, scores: np.ndarray, labels: np.ndarray, tags: Sequence[str], min_positives: int = 1
) -> list[TagThreshold]:
    """Per-tag F1-maximising thresholds on a validation split.

    Args:
        scores: (N, K) track-level probabilities of the validation tracks; NaN marks a track
            the model could not score (left out of that tag).
        labels: (N, K) 0/1 validation labels (see :func:`threshold_labels`).
        tags: K tag names, in column order.
        min_positives: fewest labelled positives a tag needs to get a threshold. Default 1.

    Returns:
        One :class:`TagThreshold` per tag, in ``tags`` order.

    Raises:
        ValueError: shapes that do not match, or ``min_positives`` < 1.
    """
    scores = np.asarray(scores, dtype=np.float64)
    labels = np.asarray(labels)
    if scores.ndim != 2 or labels.shape != scores.shape:
        raise ValueError(f"scores and labels must both be (tracks, tags); got {scores.shape} and {labels.shape}")
    if len(tags) != scores.shape[1]:
        raise ValueError(f"{len(tags)} tag names for {scores.shape[1]} score columns")
    if min_positives < 1:
        raise ValueError(f"min_positives must be at least 1; got {min_positives}")
    nan = float("nan")
    rows = []
    for j, tag in enumerate(tags):
        scored = np.isfinite(scores[:, j])
        tag_labels = labels[scored, j] > 0.5
        positives = int(tag_labels.sum())
        if positives < min_positives:
            status = "no positive validation track" if positives == 0 else f"fewer than {min_positives} positives"
            rows.append(TagThreshold(tag, nan, nan, nan, nan, positives, int(scored.sum()), status))
            continue
        threshold, f1, precision, recall = f1_threshold(scores[scored, j], tag_labels)
        rows.append(TagThreshold(tag, threshold, f1, precision, recall, positives, int(scored.sum())))
    return rows


def threshold_map(rows: Sequence[TagThreshold]) -> dict[str, float]:
    """``{tag: threshold}`` of the tags that got one: what an exported model's ``model.json``
    keeps as ``thresholds``."""
    return {row.tag: row.threshold for row in rows if row.status == THRESHOLD_CHOSEN}


def _float_range(value: int | float) -> bool:
    """Whether a number is finite as a float (an integer past the float range is not)."""
    try:
        return math.isfinite(value)
    except OverflowError:
        return False


def check_thresholds(thresholds: object, tags: Sequence[str]) -> dict[str, float]:
    """Validates a ``{tag: threshold}`` map against a model's tags.

    Args:
        thresholds: the map as read (e.g. from JSON).
        tags: the model's tags.

    Returns:
        The map with float values (a subset of ``tags``; tags without threshold are absent).

    Raises:
        ValueError: not a mapping, a tag the model does not have, or a value that is not a
            finite number.
    """
    if not isinstance(thresholds, Mapping):
        raise ValueError(f"thresholds must be a mapping of tag to threshold; got {type(thresholds).__name__}")
    known = set(tags)
    checked = {}
    for tag, value in thresholds.items():
        if tag not in known:
            raise ValueError(f"threshold for {tag!r}, which is not one of the model's tags")
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not _float_range(value):
            raise ValueError(f"threshold of {tag!r} must be a finite number; got {value!r}")
        checked[str(tag)] = float(value)
    return checked


def tags_above(probabilities: np.ndarray, tags: Sequence[str], thresholds: Mapping[str, float]) -> list[str]:
    """The tags whose probability is at or above their threshold, most probable first.

    Args:
        probabilities: (K,) one track's probabilities.
        tags: K tag names, in column order.
        thresholds: ``{tag: threshold}``; tags absent from it are never returned.
    """
    chosen = [(float(p), tag) for tag, p in zip(tags, probabilities) if tag in thresholds and p >= thresholds[tag]]
    return [tag for _, tag in sorted(chosen, key=lambda item: -item[0])]


def top_tags(probabilities: np.ndarray, tags: Sequence[str], k: int) -> list[tuple[str, float]]:
    """The ``k`` most probable tags of one track as ``(tag, probability)``, most probable first
    (ties in tag order).

    Args:
        probabilities: (K,) one track's probabilities.
        tags: K tag names, in column order.
        k: how many (all when ``k`` ≥ K); must be ≥ 0.
    """
    if k < 0:
        raise ValueError(f"k must be non-negative; got {k}")
    order = np.argsort(-np.asarray(probabilities, dtype=np.float64), kind="stable")[:k]
    return [(tags[int(j)], float(probabilities[int(j)])) for j in order]
