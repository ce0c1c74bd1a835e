"""Synthetic noisy-label music-tagging corpus (``raytag synth OUT``).

:func:`render_clip` draws a tempo, a key and one score per tag and mixes the parts rendered
by the instruments of :mod:`raytag.data.synth.instruments`; :func:`write_corpus` writes clips, a
manifest with crowd-like noisy labels (by default noise that depends on the audio, see
:mod:`raytag.data.synth.crowd_noise`), the clean labels, a per-tag noise report and the parameters
used. A corpus is a pure function of its :class:`SynthSpec`: each clip draws from generators
keyed by (seed, stream, clip index), so the same spec gives byte-identical files whatever the
order clips are made in. The plan (spec, splits, sources, levels, labels) is
:mod:`raytag.data.synth.plan`; it and ``TAGS``, ``Score``, ``INSTRUMENTS`` and ``draw_score``
are re-exported.
"""

from __future__ import annotations

import csv
import io
import json
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict
from pathlib import Path

import numpy as np
import soundfile as sf

from raytag.data.manifest import MANIFEST_COLUMNS, label_row, track_row, write_labels, write_manifest
from raytag.data.synth.plan import (
    LEVEL_DB,
    RNG_STREAMS,
    ClipRow,
    SynthError,
    SynthSpec,
    corpus_noise,
    plan_corpus,
)
from raytag.data.synth.crowd_noise import CONFUSABLE, NOISE_MODELS, write_noise_csv
from raytag.data.synth.instruments import INSTRUMENTS, TAGS, Instrument, Score, draw_score

__all__ = [
    "INSTRUMENTS", "LEVEL_DB", "NOISE_MODELS", "TAGS", "TEMPO_BPM", "ClipRow", "Instrument", "Score",
    "SynthSpec", "corpus_noise", "draw_score", "plan_corpus", "render_clip", "wav_bytes", "write_corpus",
]

TEMPO_BPM = (80.0, 160.0)
"""Range of the tempo drawn per clip, beats per minute."""
_SCALES = ((0, 2, 4, 7, 9), (0, 3, 5, 7, 10), (0, 2, 4, 5, 7, 9, 11))  # pentatonics, major


def render_clip(
    tags: Sequence[str],
    *,
    seconds: float,
    sample_rate: int,
    rng: np.random.Generator,
    peak: float = 0.9,
    levels_db: Sequence[float] | None = None,
) -> np.ndarray:
    """Renders one mixed clip with one part per tag.

    Draws a tempo in :data:`TEMPO_BPM`, a key and a scale shared by all parts; each part is
    scaled to unit RMS times its level (``levels_db``, or drawn in :data:`LEVEL_DB`); the mix
    is scaled to ``peak``.

    Args:
        tags: distinct tags from :data:`TAGS`, rendered (and drawing from ``rng``) in order.
        seconds: clip length, seconds (> 0).
        sample_rate: Hz (16000 or more keeps every instrument in band).
        rng: the random generator; the same state gives the same clip.
        peak: absolute peak of the mix (default 0.9).
        levels_db: one level per tag, dB relative to unit RMS; ``None`` (default) draws each
            in :data:`LEVEL_DB` from ``rng`` after rendering its part.

    Returns:
        (round(seconds * sample_rate),) float32 mono waveform.

    Raises:
        ValueError: empty, unknown or repeated tags, a length under one sample, or levels
            that are not one per tag.
    """
    if not tags or any(t not in INSTRUMENTS for t in tags) or len(set(tags)) != len(tags):
        raise ValueError(f"tags must be distinct tags from {TAGS}, got {list(tags)}")
    if levels_db is not None and len(levels_db) != len(tags):
        raise ValueError(f"levels_db must give one level per tag ({len(tags)}), got {len(levels_db)}")
    n_samples = int(round(seconds * sample_rate))
    if n_samples < 1:
        raise ValueError(f"seconds * sample_rate must give a sample or more, got {seconds} s, {sample_rate} Hz")
    beat_seconds = 60.0 / rng.uniform(*TEMPO_BPM)
    root, scale = int(rng.integers(0, 12)), _SCALES[int(rng.integers(0, len(_SCALES)))]
    mix = np.zeros(n_samples, dtype=np.float32)
    for index, tag in enumerate(tags):
        instrument = INSTRUMENTS[tag]
        score = draw_score(
            instrument, n_samples=n_samples, sample_rate=sample_rate, beat_seconds=beat_seconds,
            root=root, scale=scale, rng=rng,
        )
        part = np.asarray(instrument.render(score, rng), dtype=np.float32)
        rms = float(np.sqrt(np.mean(np.square(part, dtype=np.float64))))
        level_db = rng.uniform(*LEVEL_DB) if levels_db is None else float(levels_db[index])
        level = 10.0 ** (level_db / 20.0)
        if rms > 0.0:
            mix += part * np.float32(level / rms)
    top = float(np.max(np.abs(mix)))
    return mix * np.float32(peak / top) if top > 0.0 else mix

# --- corpus ------------------------------------------------------------------------------------

_GENERATOR = "raytag.synth"
_FORMAT_VERSION = 2
_OWN_FILES = ("manifest.csv", "clean.csv", "tags.txt", "synth.json", "noise.csv", "sources.csv")


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
        raise SynthError(f"{out} exists and is not a directory")
    if not out.exists() or not any(out.iterdir()):
        out.mkdir(parents=True, exist_ok=True)
        return
    try:
        previous = json.loads((out / "synth.json").read_text(encoding="utf-8")).get("generator") == _GENERATOR
    except (OSError, ValueError, AttributeError):
        previous = False
    if not previous:
        raise SynthError(
            f"{out} is not empty and is not a synth corpus (no synth.json written by {_GENERATOR}); "
            "choose a new or empty directory"
        )
    if not overwrite:
        raise SynthError(f"{out} already holds a synth corpus; pass overwrite=True (--overwrite) to replace it")
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
        "spec": asdict(spec), "tags": list(TAGS), "rates": rates, "confusable": dict(CONFUSABLE),
        "counts": _counts(rows),
    }
    return json.dumps(meta, indent=2) + "\n"


def _source_rows(rows: Sequence[ClipRow]) -> list[tuple[str, ...]]:
    """sources.csv rows: path, split, tag, level_db, share_db, labelled (true/false; empty on
    unlabeled clips) for every source of every clip."""
    table = []
    for r in rows:
        for tag, level, share in zip(r.clean, r.levels_db, r.shares_db):
            labelled = "" if r.split == "unlabeled" else str(tag in r.manifest_tags).lower()
            table.append((r.path, r.split, tag, f"{level:.3f}", f"{share:.3f}", labelled))
    return table


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
    labelled row); ``tags.txt`` (the vocabulary, one per line); ``noise.csv`` (the per-tag
    noise of the manifest's labels, :func:`corpus_noise`, columns of
    :class:`~raytag.data.synth.crowd_noise.NoiseRow`); ``sources.csv`` (path, split, tag, level_db,
    share_db, labelled: every source of every clip, its level and share of the mix in dB and
    whether the manifest shows it); ``synth.json`` (generator, spec, per-tag noise rates,
    confusable partners, counts). ``synth.json`` is written first with ``"complete": false``,
    so an interrupted run is still recognised as synth output.

    Args:
        out_dir: a new or empty directory, or a previous synth output (with ``overwrite``).
        spec: the corpus parameters.
        progress: called as ``progress(clips_done, clips_total)`` after each clip.
        overwrite: replace a previous synth output in ``out_dir`` (its own files only).

    Returns:
        ``clips`` (per split), ``verified``, ``audio_seconds``, ``manifest``, ``clean``,
        ``tags``, ``metadata``, ``noise_report``, ``sources`` (file paths as strings),
        ``noise`` (the rows of ``noise.csv``, a list of
        :class:`~raytag.data.synth.crowd_noise.NoiseRow`) and ``elapsed_s``.

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
        rng = np.random.default_rng([spec.seed, RNG_STREAMS["audio"], row.index])
        audio = render_clip(
            row.clean, seconds=spec.seconds, sample_rate=spec.sample_rate, peak=spec.peak, rng=rng,
            levels_db=row.levels_db,
        )
        (out / row.path).write_bytes(wav_bytes(audio, spec.sample_rate))
        if progress is not None:
            progress(done, len(rows))
    # Previous files were removed above; both files are checked by reading them back.
    write_manifest(out / "manifest.csv", MANIFEST_COLUMNS,
                   [track_row(r.path, r.manifest_tags, r.split, r.verified, r.artist) for r in rows], overwrite=True)
    write_labels(out / "clean.csv", [label_row(r.path, r.clean) for r in rows if r.split != "unlabeled"],
                 overwrite=True)
    (out / "tags.txt").write_text("".join(f"{tag}\n" for tag in TAGS), encoding="utf-8")
    noise = corpus_noise(rows)
    write_noise_csv(out / "noise.csv", noise)
    header = ("path", "split", "tag", "level_db", "share_db", "labelled")
    _write_csv(out / "sources.csv", header, _source_rows(rows))
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
        "noise_report": str(out / "noise.csv"),
        "sources": str(out / "sources.csv"),
        "noise": noise,
        "elapsed_s": time.perf_counter() - started,
    }
