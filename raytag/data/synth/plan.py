"""The plan of a synthetic corpus: its parameters, and every clip's split, artist, sources,
levels and crowd-like labels, drawn without rendering audio.

:class:`SynthSpec` holds every parameter; :func:`plan_corpus` turns it into :class:`ClipRow`
records; :func:`corpus_noise` reports the label noise of a plan (Lu et al. Table 1).
:mod:`raytag.data.synth.corpus` renders the audio and writes the files.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType

import numpy as np

from raytag.data.synth.crowd_noise import (
    CONFUSABLE,
    DEFAULT_RATES,
    NOISE_MODELS,
    NoiseRow,
    crowd_labels,
    mix_shares_db,
    noise_report,
)
from raytag.data.synth.instruments import TAGS
from raytag.errors import InputError


class SynthError(InputError):
    """A synthetic corpus that cannot be made as asked (a setting out of range, an output
    folder that is not the synth's to write)."""


__all__ = ["LEVEL_DB", "RNG_STREAMS", "ClipRow", "SynthError", "SynthSpec", "corpus_noise", "plan_corpus"]

LEVEL_DB = (-20.0, 0.0)
"""Default range of each source's level in a mix, dB relative to unit RMS."""
RNG_STREAMS: Mapping[str, int] = MappingProxyType({"corpus": 0, "labels": 1, "audio": 2})
"""Second key of every generator of a corpus: ``default_rng([seed, stream])`` draws the per-tag
rates, splits, artists and verified rows; ``default_rng([seed, stream, clip index])`` a clip's
sources, levels and labels, or its audio."""


def _is_int(value: object) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


def _is_real(value: object) -> bool:
    return (_is_int(value) or isinstance(value, (float, np.floating))) and math.isfinite(value)


@dataclass(frozen=True)
class SynthSpec:
    """Every parameter of a synthetic corpus; the corpus is a pure function of it.

    Attributes:
        clips: labelled clips (train + valid + test), >= 1. Default 400.
        unlabeled: extra clips in split ``unlabeled``, with empty tags. Default 0.
        seconds: clip length, seconds, in (0, 3600]. Default 4.0.
        sample_rate: Hz, 16000-192000. Default 22050.
        seed: non-negative integer. Default 0.
        valid_fraction, test_fraction: shares of ``clips`` (rounded); train gets the rest.
            Defaults 0.15 each.
        verified_fraction: share of train rows (rounded) marked verified; their manifest
            tags are the clean ones. Default 0.1.
        min_sources, max_sources: distinct tags (sources) per clip, uniform. Defaults 1, 4.
        noise_model: ``"audio"`` (default) or ``"independent"``, see
            :mod:`raytag.data.synth.crowd_noise`.
        missing_rate: (low, high): each tag's missing rate is drawn uniformly in it, once per
            tag: ``"audio"``, the chance that a *solo* source (share 0 dB of the mix) is left
            out of the noisy labels, rising as the source gets quieter; ``"independent"``, the
            chance for any true tag. ``None`` (default): the model's default, (0.05, 0.15)
            and (0.2, 0.5).
        spurious_rate: (low, high), likewise each tag's spurious rate: ``"audio"``, the chance
            that the tag is added to a clip where its confusable partner sounds (and it does
            not); ``"independent"``, the chance for any absent tag. ``None`` (default): the
            model's default, (0.1, 0.3) and (0.01, 0.05).
        missing_slope: ``"audio"`` only: log-odds of missing a source per dB it is quieter in
            the mix (each dB multiplies the odds by e^slope), in [0, 10]. Default 0.3.
        level_db: (low, high) range of each source's level in a mix, dB relative to unit RMS,
            within [-60, 0]. Default :data:`LEVEL_DB`, (-20, 0): wide enough that a source can
            sit well below the others, the sources crowd taggers miss.
        clips_per_artist: (low, high) clips per artist, inclusive. Default (2, 6).
        peak: absolute peak of every clip, (0, 1]. Default 0.9.

    Raises:
        ValueError: a bad value; the message names the field.
    """

    clips: int = 400
    unlabeled: int = 0
    seconds: float = 4.0
    sample_rate: int = 22050
    seed: int = 0
    valid_fraction: float = 0.15
    test_fraction: float = 0.15
    verified_fraction: float = 0.1
    min_sources: int = 1
    max_sources: int = 4
    missing_rate: tuple[float, float] | None = None
    spurious_rate: tuple[float, float] | None = None
    clips_per_artist: tuple[int, int] = (2, 6)
    peak: float = 0.9
    noise_model: str = "audio"
    missing_slope: float = 0.3
    level_db: tuple[float, float] = LEVEL_DB

    def __post_init__(self) -> None:
        def check(name: str, ok: bool, rule: str) -> None:
            if not ok:
                raise SynthError(f"SynthSpec.{name} must be {rule}, got {getattr(self, name)!r}")

        def integer(name: str, low: int, high: float = math.inf) -> None:
            value = getattr(self, name)
            rule = f"an integer >= {low}" if high == math.inf else f"an integer in [{low}, {high}]"
            check(name, _is_int(value) and low <= value <= high, rule)
            object.__setattr__(self, name, int(value))

        def real(name: str, ok: Callable[[float], bool], rule: str) -> None:
            value = getattr(self, name)
            check(name, _is_real(value) and ok(value), rule)
            object.__setattr__(self, name, float(value))

        def pair(name: str, is_kind: Callable[[object], bool], low: float, high: float) -> None:
            value = getattr(self, name)
            ok = isinstance(value, (tuple, list)) and len(value) == 2 and all(map(is_kind, value))
            rule = f"a pair (lo, hi) with {low} <= lo <= hi <= {high}"
            check(name, ok and low <= value[0] <= value[1] <= high, rule)
            object.__setattr__(self, name, tuple(type(low)(v) for v in value))

        for name, low in (("clips", 1), ("unlabeled", 0), ("seed", 0), ("min_sources", 1)):
            integer(name, low)
        integer("max_sources", self.min_sources, len(TAGS))
        integer("sample_rate", 16000, 192000)
        real("seconds", lambda v: 0.0 < v <= 3600.0, "in (0, 3600]")
        check("seconds", round(self.seconds * self.sample_rate) >= 1,
              f"long enough for a sample at {self.sample_rate} Hz")
        real("peak", lambda v: 0.0 < v <= 1.0, "in (0, 1]")
        for name in ("valid_fraction", "test_fraction", "verified_fraction"):
            real(name, lambda v: 0.0 <= v <= 1.0, "in [0, 1]")
        check("test_fraction", self.valid_fraction + self.test_fraction <= 1.0, "at most 1 - valid_fraction")
        check("noise_model", self.noise_model in NOISE_MODELS, f"one of {NOISE_MODELS}")
        for name in ("missing_rate", "spurious_rate"):
            if getattr(self, name) is None:
                object.__setattr__(self, name, DEFAULT_RATES[self.noise_model][name])
            pair(name, _is_real, 0.0, 1.0)
        real("missing_slope", lambda v: 0.0 <= v <= 10.0, "in [0, 10]")
        pair("level_db", _is_real, -60.0, 0.0)
        pair("clips_per_artist", _is_int, 1, 1_000_000)


@dataclass(frozen=True)
class ClipRow:
    """One planned clip: its manifest row, its clean and its noisy labels.

    Attributes:
        index: clip number (0-based), also its generators' key.
        path: audio path relative to the manifest, e.g. ``audio/clip-000017.wav``.
        split: ``train``, ``valid``, ``test`` or ``unlabeled``.
        artist: e.g. ``artist-004``; one artist's clips share a split.
        verified: the manifest shows the clean labels.
        clean: the tags of the sources mixed into the clip, in :data:`TAGS` order.
        noisy: crowd-like labels (empty for ``unlabeled``), in :data:`TAGS` order.
        levels_db: the level of each source in ``clean``, dB relative to unit RMS.
    """

    index: int
    path: str
    split: str
    artist: str
    verified: bool
    clean: tuple[str, ...]
    noisy: tuple[str, ...]
    levels_db: tuple[float, ...] = ()

    @property
    def shares_db(self) -> tuple[float, ...]:
        """Each source's share of the mix power, dB (≤ 0), in ``clean`` order."""
        return tuple(mix_shares_db(np.asarray(self.levels_db)).tolist())

    @property
    def manifest_tags(self) -> tuple[str, ...]:
        """What the manifest shows: clean if verified, else noisy (empty if unlabeled)."""
        return self.clean if self.verified else self.noisy


def _split_layout(spec: SynthSpec, rng: np.random.Generator) -> tuple[list[str], list[str]]:
    """Split and artist of every clip: each split is cut into artists of ``clips_per_artist``
    clips, and the artists are laid out in a random order, so no artist spans splits."""
    n_valid, n_test = round(spec.valid_fraction * spec.clips), round(spec.test_fraction * spec.clips)
    counts = {"train": spec.clips - n_valid - n_test, "valid": n_valid, "test": n_test}
    counts["unlabeled"] = spec.unlabeled
    groups = []
    for split, left in counts.items():
        while left > 0:
            size = min(left, int(rng.integers(spec.clips_per_artist[0], spec.clips_per_artist[1] + 1)))
            groups.append((split, size))
            left -= size
    splits, artists = [], []
    width = max(3, len(str(len(groups) - 1)))
    for number, group in enumerate(rng.permutation(len(groups))):
        split, size = groups[group]
        splits += [split] * size
        artists += [f"artist-{number:0{width}d}"] * size
    return splits, artists


def _names(mask: np.ndarray) -> tuple[str, ...]:
    return tuple(tag for tag, on in zip(TAGS, mask) if on)


def plan_corpus(spec: SynthSpec) -> tuple[list[ClipRow], dict[str, dict[str, float]]]:
    """Splits, artists, verified rows, clean sources and noisy labels of every clip (no audio).

    Per-tag noise rates, splits, artists and verified rows come from
    ``default_rng([seed, 0])``; a clip's sources, their levels and its noisy labels
    (:func:`raytag.data.synth.crowd_noise.crowd_labels`, ``spec.noise_model``) from
    ``default_rng([seed, 1, index])`` (its audio, in :func:`write_corpus`, from
    ``default_rng([seed, 2, index])``).

    Returns:
        (rows in clip order, per-tag rates ``{"missing": {tag: p}, "spurious": {tag: p}}``).
    """
    rng = np.random.default_rng([spec.seed, RNG_STREAMS["corpus"]])
    missing = rng.uniform(*spec.missing_rate, len(TAGS))
    spurious = rng.uniform(*spec.spurious_rate, len(TAGS))
    splits, artists = _split_layout(spec, rng)
    train = [i for i, split in enumerate(splits) if split == "train"]
    chosen = rng.choice(train, round(spec.verified_fraction * len(train)), replace=False) if train else []
    verified = {int(i) for i in chosen}
    width = max(6, len(str(len(splits) - 1)))
    partners = np.array([TAGS.index(CONFUSABLE[tag]) for tag in TAGS])
    rows = []
    for index, (split, artist) in enumerate(zip(splits, artists)):
        clip_rng = np.random.default_rng([spec.seed, RNG_STREAMS["labels"], index])
        truth = np.zeros(len(TAGS), dtype=bool)
        count = int(clip_rng.integers(spec.min_sources, spec.max_sources + 1))
        truth[clip_rng.choice(len(TAGS), count, replace=False)] = True
        levels = clip_rng.uniform(*spec.level_db, len(TAGS))[truth]
        shares = np.zeros(len(TAGS))
        shares[truth] = mix_shares_db(levels)
        shown = crowd_labels(
            truth, shares, model=spec.noise_model, missing=missing, spurious=spurious,
            slope=spec.missing_slope, partners=partners, rng=clip_rng,
        ) & (split != "unlabeled")
        path = f"audio/clip-{index:0{width}d}.wav"
        levels_db = tuple(float(level) for level in levels)
        rows.append(ClipRow(index, path, split, artist, index in verified, _names(truth), _names(shown), levels_db))
    rates = {"missing": dict(zip(TAGS, missing.tolist())), "spurious": dict(zip(TAGS, spurious.tolist()))}
    return rows, rates


def corpus_noise(rows: Sequence[ClipRow]) -> list[NoiseRow]:
    """Per-tag noise of the labels the manifest shows (noisy, clean on verified rows) against
    the clean labels, per split (train, valid, test: those with clips) and over all labelled
    rows (Lu et al. Table 1).
    """
    labelled = [r for r in rows if r.split != "unlabeled"]
    clean = np.array([[tag in r.clean for tag in TAGS] for r in labelled], dtype=bool).reshape(-1, len(TAGS))
    shown = np.array([[tag in r.manifest_tags for tag in TAGS] for r in labelled], dtype=bool).reshape(-1, len(TAGS))
    splits = [r.split for r in labelled]
    order = [split for split in ("train", "valid", "test") if split in splits]
    return noise_report(splits, clean, shown, TAGS, split_order=order)
