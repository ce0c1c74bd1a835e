"""What exact crops cost: clips per second of the old seek path, the issue-16 path and the current
decode path, one run.

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
- *fixed* (MP3 only): issue 16's rule, a libsndfile decode in one read call from a multiple
  of 4608 frames at least 4608 frames before the crop, which issue 26 found too short at low
  bitrates (signal ``lowbit``: 22.05 kHz mono VBR, clicks every second on silence coded at
  8 kbit/s);
- *new*: :meth:`raytag.audio.decoders.Decoder.read` (what training and predict call; for MP3
  the pre-roll is read from the frame headers, see :mod:`raytag.audio.mpeg_frames`);

each as decoded crops per CPU second of this process (best of ``--repeat`` passes; the arms
take turns within each pass, and CPU time leaves out other work on a shared machine), new/old
and new/fixed. FLAC (exact before
and after) is the control: its ratio should be about 1.

    python bench/bench_decode.py                          # about a minute on one idle core
    python bench/bench_decode.py --out bench/results/decode-cpu.txt
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
import raytag.audio.ffmpeg_decoder as ffmpeg_decoder  # noqa: E402
from audio_files import impulses, music_like, write  # noqa: E402
from raytag.audio.decoders import open_decoder  # noqa: E402

REAL = Path(__file__).resolve().parents[2] / "shared" / "data" / "real-audio" / "openmic-000046_3840.ogg"
CASES = [("mp3", "music"), ("mp3", "impulses"), ("mp3", "lowbit"), ("vorbis", "music"), ("vorbis", "impulses"),
         ("vorbis", "real"), ("aac-m4a", "music"), ("flac", "music")]
FIXED_PREROLL = 4608  # issue 16's MP3 pre-roll and alignment, in frames
LOWBIT_RATE = 22050


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
        saved = ffmpeg_decoder.PREROLL_SECONDS
        ffmpeg_decoder.PREROLL_SECONDS = 0.2
        try:
            with open_decoder(path) as decoder:
                return decoder.read(start, frames)
        finally:
            ffmpeg_decoder.PREROLL_SECONDS = saved


def fixed_read(path: str, start: int, frames: int) -> np.ndarray:
    """Issue 16's MP3 crop: one libsndfile read from a multiple of 4608 frames at least 4608
    frames before ``start``, trimmed."""
    first = max(start - FIXED_PREROLL, 0) // FIXED_PREROLL * FIXED_PREROLL
    with sf.SoundFile(path) as f:
        f.seek(first)
        data = f.read(start - first + frames, dtype="float32", always_2d=True)
    return data.mean(axis=1)[start - first :]


def new_read(path: str, start: int, frames: int) -> np.ndarray:
    with open_decoder(path) as decoder:
        return decoder.read(start, frames)


def rates_of(paths: list[str], starts: list[tuple[int, int]], crop: int, reads: list, repeat: int) -> list[float]:
    """Best crops per CPU second of this process (``time.process_time``: other work on a
    shared machine does not count) of each read function over ``repeat`` passes of every
    (track, start); within a pass the functions take turns."""
    best = [0.0] * len(reads)
    for _ in range(repeat):
        for arm, read in enumerate(reads):
            began = time.process_time()
            for track, start in starts:
                read(paths[track], start, crop)
            best[arm] = max(best[arm], len(starts) / (time.process_time() - began))
    return best


def lowbit_mp3(path: Path, seconds: float, shift: int) -> str:
    """22.05 kHz mono VBR MP3 (libsndfile's LAME) of clicks every second on silence."""
    clicks = np.roll(impulses(LOWBIT_RATE, seconds, every=1.0), shift)
    with sf.SoundFile(path, "w", LOWBIT_RATE, 1, format="MP3", subtype="MPEG_LAYER_III", bitrate_mode="VARIABLE",
                      compression_level=0.5) as out:
        out.write(clicks)
    return str(path)


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
        f"soundfile {sf.__version__} (libsndfile {sf.__libsndfile_version__}); load average at start "
        f"{' '.join(f'{x:.1f}' for x in os.getloadavg())}",
        f"# {args.tracks} tracks per codec, {args.seconds:.0f} s at {rate} Hz stereo "
        f"({'real music, looped' if REAL.is_file() else 'generated'}; lowbit: {LOWBIT_RATE} Hz mono VBR clicks); "
        f"{args.crops} random crops of {args.crop_seconds:g} s per arm, best of {args.repeat} interleaved passes; "
        "crops at the file's rate (no resampling)",
        "# clip/s: crops decoded per CPU second of this process (process_time); fixed: issue 16's MP3 rule "
        "(4608-frame aligned pre-roll), '-' where the format has no such arm; error: largest |crop - whole-file "
        "decode|; wrong: crops off by more than 1e-4",
        "",
        f"{'codec':8} {'signal':8} {'old clip/s':>10} {'fixed clip/s':>12} {'new clip/s':>10} {'new/old':>8} "
        f"{'new/fixed':>9} {'old error':>10} {'old wrong':>9} {'fixed wrong':>11} {'new error':>10} {'new wrong':>9}",
    ]
    with tempfile.TemporaryDirectory(prefix="bench-decode-") as scratch:
        audio = source_audio(args.seconds, rate)
        rng = np.random.default_rng(0)
        clicks = impulses(rate, args.seconds, every=0.1)
        clicks = np.stack([clicks, 0.5 * clicks], axis=1)
        for codec, signal in CASES:
            if signal == "real":
                paths = [str(p) for p in sorted(REAL.parent.glob("*.ogg")) if sf.info(str(p)).frames > 2 * crop]
            elif signal == "lowbit":
                paths = [lowbit_mp3(Path(scratch) / f"lowbit-{i}.mp3", args.seconds, i * 1234)
                         for i in range(args.tracks)]
            else:
                source = audio if signal == "music" else clicks
                paths = [str(write(Path(scratch) / f"{codec}-{signal}-{i}", np.roll(source, i * 12345, axis=0), rate,
                                   codec)) for i in range(args.tracks)]
            if not paths:
                continue
            frames = [open_decoder(p).info.frames for p in paths]
            wholes = [new_read(p, 0, n) for p, n in zip(paths, frames)]
            starts = [(int(t), int(rng.integers(1, frames[t] - crop))) for t in rng.integers(0, len(paths), args.crops)]
            reads = [old_read, fixed_read, new_read] if codec == "mp3" else [old_read, new_read]
            speeds = rates_of(paths, starts, crop, reads, args.repeat)
            errors = [worst_error(paths, wholes, starts, crop, read) for read in reads]
            old, new = speeds[0], speeds[-1]
            (old_error, old_wrong), (new_error, new_wrong) = errors[0], errors[-1]
            fixed = f"{speeds[1]:12.1f}" if len(reads) == 3 else f"{'-':>12}"
            versus_fixed = f"{new / speeds[1]:8.2f}x" if len(reads) == 3 else f"{'-':>9}"
            fixed_wrong = f"{errors[1][1]:11d}" if len(reads) == 3 else f"{'-':>11}"
            lines.append(f"{codec:8} {signal:8} {old:10.1f} {fixed} {new:10.1f} {new / old:7.2f}x {versus_fixed} "
                         f"{old_error:10.2e} {old_wrong:9d} {fixed_wrong} {new_error:10.2e} {new_wrong:9d}")
            print(lines[-1], flush=True)
    text = "\n".join(lines) + "\n"
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text)
    print(text)


if __name__ == "__main__":
    main()
