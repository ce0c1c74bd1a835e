"""What exact crops cost: clips per second of the old seek path and the new decode path, one run.

Issue 16 made crops exact: an MP3 crop is decoded from a 4608-frame-aligned pre-roll in one read
call (libsndfile's seek lost the bit reservoir and its reads were not seamless), an Ogg Vorbis
crop is decoded by libsndfile (with a 2048-frame pre-roll) and checked against FFmpeg's decode of
the same frames, decoded from the start of the file when they disagree, and an FFmpeg crop
(AAC, Opus) has a 0.5 s pre-roll instead of 0.2 s. This bench writes ``--tracks`` tracks of
``--seconds`` at 44.1 kHz stereo (real music from shared/data/real-audio when present, looped,
else a generated signal) as MP3, Ogg Vorbis, AAC (M4A) and FLAC, and clicks on silence every
0.1 s (where a crop without the bit reservoir comes back silent) as MP3 and Ogg Vorbis; adds
the real Ogg Vorbis recordings as they are (signal ``real``: libsndfile's seek lag shows on
them, not on the files its own encoder writes), draws the same random crops
of ``--crop-seconds`` for every arm, and measures on one core, in this process:

- *old*: what raytag did before (a plain ``soundfile`` seek and read; for AAC the old 0.2 s
  pre-roll), and how far its crops are from a decode of the whole file;
- *new*: :meth:`raytag.audio.decoders.Decoder.read` (what training and predict call);

each as decoded crops per second (best of ``--repeat`` passes), and new/old. FLAC (exact
before and after) is the control: its ratio should be about 1.

    python bench/bench_decode.py                          # about a minute on one idle core
    python bench/bench_decode.py --out bench/results/decode-cpu.txt
"""

from __future__ import annotations

import argparse
import datetime
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
import raytag.audio.decoders as decoders  # noqa: E402
from audio_files import impulses, music_like, write  # noqa: E402
from raytag.audio.decoders import open_decoder  # noqa: E402

REAL = Path(__file__).resolve().parents[2] / "shared" / "data" / "real-audio" / "openmic-000046_3840.ogg"
CASES = [("mp3", "music"), ("mp3", "impulses"), ("vorbis", "music"), ("vorbis", "impulses"),
         ("vorbis", "real"), ("aac-m4a", "music"), ("flac", "music")]


def source_audio(seconds: float, rate: int) -> np.ndarray:
    """(frames, 2) float32: a real 44.1 kHz stereo recording looped to ``seconds``, or generated."""
    frames = int(seconds * rate)
    if REAL.is_file():
        real, real_rate = sf.read(REAL, dtype="float32", always_2d=True)
        if real_rate == rate:
            return np.resize(real, (frames, real.shape[1])).astype(np.float32)
    mono = music_like(rate, seconds)
    return np.stack([mono, 0.7 * mono], axis=1)


def old_read(path: str, start: int, frames: int) -> np.ndarray:
    """The crop as raytag read it before: seek and read with libsndfile; FFmpeg formats through
    the FFmpeg decoder with the old 0.2 s pre-roll."""
    try:
        with sf.SoundFile(path) as f:
            f.seek(start)
            data = f.read(frames, dtype="float32", always_2d=True)
        return data.mean(axis=1)
    except sf.LibsndfileError:
        saved = decoders.PREROLL_SECONDS
        decoders.PREROLL_SECONDS = 0.2
        try:
            with open_decoder(path) as decoder:
                return decoder.read(start, frames)
        finally:
            decoders.PREROLL_SECONDS = saved


def new_read(path: str, start: int, frames: int) -> np.ndarray:
    with open_decoder(path) as decoder:
        return decoder.read(start, frames)


def rate_of(paths: list[str], starts: list[tuple[int, int]], crop: int, read, repeat: int) -> float:
    """Best crops per second over ``repeat`` passes of every (track, start)."""
    best = 0.0
    for _ in range(repeat):
        began = time.perf_counter()
        for track, start in starts:
            read(paths[track], start, crop)
        best = max(best, len(starts) / (time.perf_counter() - began))
    return best


def worst_error(paths, wholes, starts, crop, read) -> tuple[float, int]:
    """Largest difference from the whole-file decode, and how many crops differ by > 1e-4."""
    worst, wrong = 0.0, 0
    for track, start in starts:
        error = float(np.max(np.abs(read(paths[track], start, crop) - wholes[track][start : start + crop])))
        worst, wrong = max(worst, error), wrong + (error > 1e-4)
    return worst, wrong


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tracks", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--crop-seconds", type=float, default=3.0)
    parser.add_argument("--crops", type=int, default=60, help="crops per codec and arm")
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    rate = 44100
    crop = int(args.crop_seconds * rate)
    lines = [
        f"# bench_decode: {datetime.date.today()}, {platform.machine()}, one core, this process; "
        f"soundfile {sf.__version__} (libsndfile {sf.__libsndfile_version__})",
        f"# {args.tracks} tracks per codec, {args.seconds:.0f} s at {rate} Hz stereo "
        f"({'real music, looped' if REAL.is_file() else 'generated'}); {args.crops} random crops of "
        f"{args.crop_seconds:g} s per arm, best of {args.repeat} passes; crops at the file's rate (no resampling)",
        "# error: largest |crop - whole-file decode| over the crops; wrong: crops off by more than 1e-4",
        "",
        f"{'codec':8} {'signal':8} {'old clip/s':>10} {'new clip/s':>10} {'new/old':>8} {'old error':>10} {'old wrong':>9} "
        f"{'new error':>10} {'new wrong':>9}",
    ]
    with tempfile.TemporaryDirectory(prefix="bench-decode-") as scratch:
        audio = source_audio(args.seconds, rate)
        rng = np.random.default_rng(0)
        clicks = impulses(rate, args.seconds, every=0.1)
        clicks = np.stack([clicks, 0.5 * clicks], axis=1)
        for codec, signal in CASES:
            if signal == "real":
                paths = [str(p) for p in sorted(REAL.parent.glob("*.ogg")) if sf.info(str(p)).frames > 2 * crop]
            else:
                source = audio if signal == "music" else clicks
                paths = [str(write(Path(scratch) / f"{codec}-{signal}-{i}", np.roll(source, i * 12345, axis=0), rate,
                                   codec)) for i in range(args.tracks)]
            if not paths:
                continue
            frames = [open_decoder(p).info.frames for p in paths]
            wholes = [new_read(p, 0, n) for p, n in zip(paths, frames)]
            starts = [(int(t), int(rng.integers(1, frames[t] - crop))) for t in rng.integers(0, len(paths), args.crops)]
            old = rate_of(paths, starts, crop, old_read, args.repeat)
            new = rate_of(paths, starts, crop, new_read, args.repeat)
            old_error, old_wrong = worst_error(paths, wholes, starts, crop, old_read)
            new_error, new_wrong = worst_error(paths, wholes, starts, crop, new_read)
            lines.append(f"{codec:8} {signal:8} {old:10.1f} {new:10.1f} {new / old:7.2f}x {old_error:10.2e} {old_wrong:9d} "
                         f"{new_error:10.2e} {new_wrong:9d}")
            print(lines[-1], flush=True)
    text = "\n".join(lines) + "\n"
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text)
    print(text)


if __name__ == "__main__":
    main()
