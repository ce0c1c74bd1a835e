"""Synthetic noisy-label music-tagging corpus (``raytag synth OUT``).

:func:`render_clip` draws a tempo, a key and one score per tag and mixes the parts rendered
by the instruments of :mod:`raytag.data.instruments`; :func:`write_corpus` writes clips, a
manifest with crowd-like noisy labels, the clean labels and the parameters used. A corpus is
a pure function of its :class:`SynthSpec`: each clip draws from generators keyed by (seed,
stream, clip index), so the same spec gives byte-identical files whatever the order clips
are made in. ``TAGS``, ``Score``, ``INSTRUMENTS`` and ``draw_score`` are re-exported.
"""

from __future__ import annotations

import csv
import io
import json
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import soundfile as sf

from raytag.data.instruments import INSTRUMENTS, TAGS, Instrument, Score, draw_score

__all__ = [
    "INSTRUMENTS", "LEVEL_DB", "TAGS", "TEMPO_BPM", "ClipRow", "Instrument", "Score", "SynthSpec",
    "draw_score", "plan_corpus", "render_clip", "wav_bytes", "write_corpus",
]

TEMPO_BPM = (80.0, 160.0)
"""Range of the tempo drawn per clip, beats per minute."""
LEVEL_DB = (-10.0, 0.0)
"""Range of each source's level in a mix, dB relative to unit RMS."""
_SCALES = ((0, 2, 4, 7, 9), (0, 3, 5, 7, 10), (0, 2, 4, 5, 7, 9, 11))  # pentatonics, major


def render_clip(
    tags: Sequence[str],
    *,
    seconds: float,
    sample_rate: int,
    rng: np.random.Generator,
    peak: float = 0.9,
) -> np.ndarray:
    """Renders one mixed clip with one part per tag.

    Draws a tempo in :data:`TEMPO_BPM`, a key and a scale shared by all parts; each part is
    scaled to unit RMS times a level drawn in :data:`LEVEL_DB`; the mix is scaled to ``peak``.

    Args:
        tags: distinct tags from :data:`TAGS`, rendered (and drawing from ``rng``) in order.
        seconds: clip length, seconds (> 0).
        sample_rate: Hz (16000 or more keeps every instrument in band).
        rng: the random generator; the same state gives the same clip.
        peak: absolute peak of the mix (default 0.9).

    Returns:
        (round(seconds * sample_rate),) float32 mono waveform.

    Raises:
        ValueError: empty, unknown or repeated tags, or a length under one sample.
    """
    if not tags or any(t not in INSTRUMENTS for t in tags) or len(set(tags)) != len(tags):
        raise ValueError(f"tags must be distinct tags from {TAGS}, got {list(tags)}")
    n_samples = int(round(seconds * sample_rate))
    if n_samples < 1:
        raise ValueError(f"seconds * sample_rate must give a sample or more, got {seconds} s, {sample_rate} Hz")
    beat_seconds = 60.0 / rng.uniform(*TEMPO_BPM)
    root, scale = int(rng.integers(0, 12)), _SCALES[int(rng.integers(0, len(_SCALES)))]
    mix = np.zeros(n_samples, dtype=np.float32)
    for tag in tags:
        instrument = INSTRUMENTS[tag]
        score = draw_score(
            instrument, n_samples=n_samples, sample_rate=sample_rate, beat_seconds=beat_seconds,
            root=root, scale=scale, rng=rng,
        )
        part = np.asarray(instrument.render(score, rng), dtype=np.float32)
        rms = float(np.sqrt(np.mean(np.square(part, dtype=np.float64))))
        level = 10.0 ** (rng.uniform(*LEVEL_DB) / 20.0)
        if rms > 0.0:
            mix += part * np.float32(level / rms)
    top = float(np.max(np.abs(mix)))
    return mix * np.float32(peak / top) if top > 0.0 else mix


# --- corpus ------------------------------------------------------------------------------------

_GENERATOR = "raytag.synth"
_FORMAT_VERSION = 1
_STREAM_CORPUS, _STREAM_LABELS, _STREAM_AUDIO = 0, 1, 2
_OWN_FILES = ("manifest.csv", "clean.csv", "tags.txt", "synth.json")


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
        missing_rate: (low, high): each tag's chance that a true tag is left out of the noisy
            labels is drawn uniformly in it, once per tag. Default (0.2, 0.5).
        spurious_rate: (low, high), likewise the chance that an absent tag is added.
            Default (0.01, 0.05).
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
    missing_rate: tuple[float, float] = (0.2, 0.5)
    spurious_rate: tuple[float, float] = (0.01, 0.05)
    clips_per_artist: tuple[int, int] = (2, 6)
    peak: float = 0.9

    def __post_init__(self) -> None:
        def check(name: str, ok: bool, rule: str) -> None:
            if not ok:
                raise ValueError(f"SynthSpec.{name} must be {rule}, got {getattr(self, name)!r}")

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
        real("peak", lambda v: 0.0 < v <= 1.0, "in (0, 1]")
        for name in ("valid_fraction", "test_fraction", "verified_fraction"):
            real(name, lambda v: 0.0 <= v <= 1.0, "in [0, 1]")
        check("test_fraction", self.valid_fraction + self.test_fraction <= 1.0, "at most 1 - valid_fraction")
        pair("missing_rate", _is_real, 0.0, 1.0)
        pair("spurious_rate", _is_real, 0.0, 1.0)
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
    """

    index: int
    path: str
    split: str
    artist: str
    verified: bool
    clean: tuple[str, ...]
    noisy: tuple[str, ...]

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
    ``default_rng([seed, 0])``; a clip's sources and noisy labels from
    ``default_rng([seed, 1, index])`` (its audio, in :func:`write_corpus`, from
    ``default_rng([seed, 2, index])``).

    Returns:
        (rows in clip order, per-tag rates ``{"missing": {tag: p}, "spurious": {tag: p}}``).
    """
    rng = np.random.default_rng([spec.seed, _STREAM_CORPUS])
    missing = rng.uniform(*spec.missing_rate, len(TAGS))
    spurious = rng.uniform(*spec.spurious_rate, len(TAGS))
    splits, artists = _split_layout(spec, rng)
    train = [i for i, split in enumerate(splits) if split == "train"]
    chosen = rng.choice(train, round(spec.verified_fraction * len(train)), replace=False) if train else []
    verified = {int(i) for i in chosen}
    width = max(6, len(str(len(splits) - 1)))
    rows = []
    for index, (split, artist) in enumerate(zip(splits, artists)):
        clip_rng = np.random.default_rng([spec.seed, _STREAM_LABELS, index])
        truth = np.zeros(len(TAGS), dtype=bool)
        count = int(clip_rng.integers(spec.min_sources, spec.max_sources + 1))
        truth[clip_rng.choice(len(TAGS), count, replace=False)] = True
        draw = clip_rng.random(len(TAGS))
        shown = np.where(truth, draw >= missing, draw < spurious) & (split != "unlabeled")
        path = f"audio/clip-{index:0{width}d}.wav"
        rows.append(ClipRow(index, path, split, artist, index in verified, _names(truth), _names(shown)))
    rates = {"missing": dict(zip(TAGS, missing.tolist())), "spurious": dict(zip(TAGS, spurious.tolist()))}
    return rows, rates


def wav_bytes(audio: np.ndarray, sample_rate: int) -> bytes:
    """The bytes of a mono 16-bit PCM WAV file, encoded by soundfile in memory (writing
    through libsndfile directly syncs every file to disk: ~3x slower for short clips).

    Args:
        audio: (n_samples,) float waveform in [-1, 1].
        sample_rate: Hz.
    """
    buffer = io.BytesIO()
    sf.write(buffer, audio, sample_rate, subtype="PCM_16", format="WAV")
    return buffer.getvalue()


def _prepare_output(out: Path, overwrite: bool) -> None:
    """Creates ``out``, or removes a previous synth output's files there if ``overwrite``."""
    if out.exists() and not out.is_dir():
        raise NotADirectoryError(f"{out} exists and is not a directory")
    if not out.exists() or not any(out.iterdir()):
        out.mkdir(parents=True, exist_ok=True)
        return
    try:
        previous = json.loads((out / "synth.json").read_text(encoding="utf-8")).get("generator") == _GENERATOR
    except (OSError, ValueError, AttributeError):
        previous = False
    if not previous:
        raise FileExistsError(
            f"{out} is not empty and is not a synth corpus (no synth.json written by {_GENERATOR}); "
            "choose a new or empty directory"
        )
    if not overwrite:
        raise FileExistsError(f"{out} already holds a synth corpus; pass overwrite=True to replace it")
    for clip in (out / "audio").glob("clip-*.wav"):
        clip.unlink()
    for name in _OWN_FILES:
        (out / name).unlink(missing_ok=True)


def _write_csv(path: Path, header: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
    with path.open("w", encoding="utf-8", newline="") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(header)
        writer.writerows(rows)


def _counts(rows: Sequence[ClipRow]) -> dict:
    """Clips per split, verified rows, and per tag over labelled rows: clean positives,
    noisy positives, missing (clean, not noisy) and spurious (noisy, not clean) labels."""
    labelled = [r for r in rows if r.split != "unlabeled"]
    tests = {
        "clean": lambda clean, noisy: clean,
        "noisy": lambda clean, noisy: noisy,
        "missing": lambda clean, noisy: clean and not noisy,
        "spurious": lambda clean, noisy: noisy and not clean,
    }
    labels = {
        key: {tag: sum(test(tag in r.clean, tag in r.noisy) for r in labelled) for tag in TAGS}
        for key, test in tests.items()
    }
    splits = {split: sum(r.split == split for r in rows) for split in ("train", "valid", "test", "unlabeled")}
    return {"clips": splits, "verified": sum(r.verified for r in rows), "labels": labels}


def _metadata(spec: SynthSpec, rates: dict, rows: Sequence[ClipRow], complete: bool) -> str:
    meta = {
        "generator": _GENERATOR, "format_version": _FORMAT_VERSION, "complete": complete,
        "spec": asdict(spec), "tags": list(TAGS), "rates": rates, "counts": _counts(rows),
    }
    return json.dumps(meta, indent=2) + "\n"


def write_corpus(
    out_dir: str | Path,
    spec: SynthSpec,
    progress: Callable[[int, int], None] | None = None,
    *,
    overwrite: bool = False,
) -> dict:
    """Writes a synthetic corpus into ``out_dir``.

    Files: ``audio/clip-NNNNNN.wav`` (mono 16-bit PCM); ``manifest.csv`` (path, tags, split,
    verified, artist; tags ';'-separated in :data:`TAGS` order: noisy, clean on verified
    rows, empty on unlabeled ones); ``clean.csv`` (path, tags: the clean labels of every
    labelled row); ``tags.txt`` (the vocabulary, one per line); ``synth.json`` (generator,
    spec, per-tag noise rates, counts). ``synth.json`` is written first with
    ``"complete": false``, so an interrupted run is still recognised as synth output.

    Args:
        out_dir: a new or empty directory, or a previous synth output (with ``overwrite``).
        spec: the corpus parameters.
        progress: called as ``progress(clips_done, clips_total)`` after each clip.
        overwrite: replace a previous synth output in ``out_dir`` (its own files only).

    Returns:
        ``clips`` (per split), ``verified``, ``audio_seconds``, ``manifest``, ``clean``,
        ``tags``, ``metadata`` (file paths as strings) and ``elapsed_s``.

    Raises:
        FileExistsError: ``out_dir`` is not empty and not a synth output, or it is one and
            ``overwrite`` is False.
    """
    started = time.perf_counter()
    out = Path(out_dir)
    _prepare_output(out, overwrite)
    rows, rates = plan_corpus(spec)
    (out / "synth.json").write_text(_metadata(spec, rates, rows, complete=False), encoding="utf-8")
    (out / "audio").mkdir(exist_ok=True)
    for done, row in enumerate(rows, start=1):
        rng = np.random.default_rng([spec.seed, _STREAM_AUDIO, row.index])
        audio = render_clip(
            row.clean, seconds=spec.seconds, sample_rate=spec.sample_rate, peak=spec.peak, rng=rng
        )
        (out / row.path).write_bytes(wav_bytes(audio, spec.sample_rate))
        if progress is not None:
            progress(done, len(rows))
    manifest = [(r.path, ";".join(r.manifest_tags), r.split, str(r.verified).lower(), r.artist) for r in rows]
    _write_csv(out / "manifest.csv", ("path", "tags", "split", "verified", "artist"), manifest)
    clean = [(r.path, ";".join(r.clean)) for r in rows if r.split != "unlabeled"]
    _write_csv(out / "clean.csv", ("path", "tags"), clean)
    (out / "tags.txt").write_text("".join(f"{tag}\n" for tag in TAGS), encoding="utf-8")
    (out / "synth.json").write_text(_metadata(spec, rates, rows, complete=True), encoding="utf-8")
    counts = _counts(rows)
    return {
        "clips": counts["clips"],
        "verified": counts["verified"],
        "audio_seconds": len(rows) * round(spec.seconds * spec.sample_rate) / spec.sample_rate,
        "manifest": str(out / "manifest.csv"),
        "clean": str(out / "clean.csv"),
        "tags": str(out / "tags.txt"),
        "metadata": str(out / "synth.json"),
        "elapsed_s": time.perf_counter() - started,
    }
