"""Diagnostics of noise-robust training against clean labels: does a method find the noise?

Both take the clean labels of the training clips, which only a benchmark has (the synthetic
corpus's ``clean.csv``, or a re-annotated subset as in Lu et al. §3.1):

* :func:`masking_report`: per tag, how many of the entries Balanced-Masking (Lu et al. eq. 3)
  masked out are truly missing tags (precision) and how many of the truly missing tags it
  masked (recall), next to the precision masking at random would have (the base rate).
* :func:`ignored_noise_report`: the share of truly noisy clips among the unverified clips that
  staged training (He et al. §3.1) ignored, and the share of noisy clips it ignored. Its counts
  add up (``+``), so per-batch reports can be summed over an epoch or across workers.

Pure NumPy; arrays are (N clips, K tags), an entry > 0.5 counting as a positive label.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

__all__ = ["IgnoreReport", "MaskingScore", "ignore_report", "ignored_noise_report", "masking_report", "noisy_clips"]


def _ratio(numerator: int, denominator: int) -> float:
    return numerator / denominator if denominator else math.nan


@dataclass(frozen=True)
class MaskingScore:
    """How well a keep mask's masked-out labelled negatives match the truly missing tags.

    Attributes:
        tag: the tag, or ``"(all)"`` for every entry together.
        negatives: labelled negatives.
        missing: truly missing tags: labelled negative, clean positive.
        masked: labelled negatives the mask removed (keep = 0).
        caught: masked entries that are truly missing.
    """

    tag: str
    negatives: int
    missing: int
    masked: int
    caught: int

    @property
    def precision(self) -> float:
        """caught / masked: the share of masked entries that are truly missing (NaN if none)."""
        return _ratio(self.caught, self.masked)

    @property
    def recall(self) -> float:
        """caught / missing: the share of missing tags that were masked (NaN if none)."""
        return _ratio(self.caught, self.missing)

    @property
    def base_rate(self) -> float:
        """missing / negatives: the precision of masking labelled negatives at random."""
        return _ratio(self.missing, self.negatives)


def _as_bool(name: str, array: np.ndarray, shape: tuple[int, ...] | None = None) -> np.ndarray:
    array = np.asarray(array)
    if shape is not None and array.shape != shape:
        raise ValueError(f"{name} has shape {array.shape}, expected {shape}")
    return array.astype(np.float64) > 0.5


def masking_report(
    noisy_labels: np.ndarray, clean_labels: np.ndarray, keep: np.ndarray, tags: Sequence[str]
) -> list[MaskingScore]:
    """Per-tag precision and recall of Balanced-Masking's masked entries against the truly
    missing tags.

    Eq. 3 masks only labelled negatives, so only they are scored; an entry of a labelled
    positive that ``keep`` removes (e.g. by the random Balanced-Training step) is not a
    suspected missing tag and is left out.

    Args:
        noisy_labels: (N, K) the labels training saw.
        clean_labels: (N, K) the true labels.
        keep: (N, K) the mask, 1 = the entry counts, 0 = masked out (e.g.
            :func:`raytag.objectives.suspected_missing_mask`).
        tags: K tag names.

    Returns:
        One :class:`MaskingScore` per tag in column order, then ``"(all)"`` over every entry.

    Raises:
        ValueError: if the shapes do not agree.
    """
    noisy = _as_bool("noisy_labels", noisy_labels)
    if noisy.ndim != 2 or noisy.shape[1] != len(tags):
        raise ValueError(f"noisy_labels must be (N, {len(tags)}), got {noisy.shape}")
    clean = _as_bool("clean_labels", clean_labels, noisy.shape)
    masked = ~_as_bool("keep", keep, noisy.shape) & ~noisy
    missing = ~noisy & clean
    counts = {
        "negatives": (~noisy).sum(axis=0),
        "missing": missing.sum(axis=0),
        "masked": masked.sum(axis=0),
        "caught": (masked & missing).sum(axis=0),
    }
    scores = [MaskingScore(tag, **{k: int(v[j]) for k, v in counts.items()}) for j, tag in enumerate(tags)]
    scores.append(MaskingScore("(all)", **{k: int(v.sum()) for k, v in counts.items()}))
    return scores


def noisy_clips(noisy_labels: np.ndarray, clean_labels: np.ndarray) -> np.ndarray:
    """(N,) bool: True for clips whose labels differ from the clean ones in any tag."""
    noisy = _as_bool("noisy_labels", noisy_labels)
    clean = _as_bool("clean_labels", clean_labels, noisy.shape)
    if noisy.ndim != 2:
        raise ValueError(f"labels must be (N, K), got {noisy.shape}")
    return (noisy != clean).any(axis=1)


@dataclass(frozen=True)
class IgnoreReport:
    """Which unverified clips staged training ignored, against which were truly noisy.

    Attributes:
        considered: unverified clips judged (a clip judged in several steps counts each time).
        noisy: considered clips whose labels differ from the clean ones.
        ignored: considered clips that were ignored.
        ignored_noisy: ignored clips that are truly noisy.
    """

    considered: int = 0
    noisy: int = 0
    ignored: int = 0
    ignored_noisy: int = 0

    @property
    def precision(self) -> float:
        """ignored_noisy / ignored: the share of truly noisy clips among the ignored ones."""
        return _ratio(self.ignored_noisy, self.ignored)

    @property
    def recall(self) -> float:
        """ignored_noisy / noisy: the share of the noisy clips that were ignored."""
        return _ratio(self.ignored_noisy, self.noisy)

    @property
    def base_rate(self) -> float:
        """noisy / considered: the precision of ignoring unverified clips at random."""
        return _ratio(self.noisy, self.considered)

    def __add__(self, other: IgnoreReport) -> IgnoreReport:
        return IgnoreReport(
            self.considered + other.considered, self.noisy + other.noisy,
            self.ignored + other.ignored, self.ignored_noisy + other.ignored_noisy,
        )

    def as_metrics(self, prefix: str = "staged/") -> dict[str, float]:
        """Flat scalars for logging, e.g. ``{"staged/ignored_precision": 0.6, ...}``."""
        return {
            f"{prefix}ignored": float(self.ignored),
            f"{prefix}ignored_precision": self.precision,
            f"{prefix}ignored_recall": self.recall,
            f"{prefix}noisy_base_rate": self.base_rate,
        }


def ignored_noise_report(
    ignored: np.ndarray,
    noisy_labels: np.ndarray,
    clean_labels: np.ndarray,
    verified: np.ndarray | None = None,
) -> IgnoreReport:
    """Counts of the clips staged training ignored that are truly noisy.

    Args:
        ignored: (N,) bool, True for clips whose loss was ignored (the complement of
            :func:`raytag.objectives.staged_keep_mask` among counted clips).
        noisy_labels: (N, K) the labels training saw.
        clean_labels: (N, K) the true labels.
        verified: optional (N,) bool; verified clips are never ignored and are left out.

    Returns:
        An :class:`IgnoreReport`; ``precision`` is the share asked for.

    Raises:
        ValueError: if the shapes do not agree, or a verified clip is marked ignored.
    """
    return ignore_report(ignored, noisy_clips(noisy_labels, clean_labels), verified)


def ignore_report(ignored: np.ndarray, noisy: np.ndarray, verified: np.ndarray | None = None) -> IgnoreReport:
    """:func:`ignored_noise_report` from per-clip noise flags, as staged training has them in a
    batch (its ``noisy`` column, made with :func:`noisy_clips` on the driver).

    Args:
        ignored: (N,) bool, True for clips whose loss was ignored.
        noisy: (N,) bool, True for clips whose labels differ from the clean ones.
        verified: optional (N,) bool; verified clips are never ignored and are left out.

    Raises:
        ValueError: if the shapes do not agree, or a verified clip is marked ignored.
    """
    noisy = _as_bool("noisy", noisy)
    if noisy.ndim != 1:
        raise ValueError(f"noisy must be (N,), got {noisy.shape}")
    ignored = _as_bool("ignored", ignored, noisy.shape)
    considered = np.ones_like(noisy) if verified is None else ~_as_bool("verified", verified, noisy.shape)
    if (ignored & ~considered).any():
        raise ValueError("a verified clip is marked ignored; staged training never ignores verified clips")
    return IgnoreReport(
        considered=int(considered.sum()),
        noisy=int((noisy & considered).sum()),
        ignored=int(ignored.sum()),
        ignored_noisy=int((ignored & noisy).sum()),
    )
