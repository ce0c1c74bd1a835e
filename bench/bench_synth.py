"""Benchmark of ``raytag synth``: clips per second on one core, against a pure-I/O baseline.

The baseline writes the same number of silent 16-bit WAV files of the same length, so
``synth time / baseline time`` separates the cost of synthesis from that of writing files.

    python bench/bench_synth.py --clips 300 --seconds 4
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

try:
    from raytag.data.synth.corpus import SynthSpec, wav_bytes, write_corpus
except ImportError:  # run from a source checkout without installing the package
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from raytag.data.synth.corpus import SynthSpec, wav_bytes, write_corpus


def write_silence(out_dir: Path, clips: int, seconds: float, sample_rate: int) -> float:
    """Writes ``clips`` silent 16-bit mono WAV files the way ``write_corpus`` writes clips;
    returns the seconds it took."""
    started = time.perf_counter()
    (out_dir / "audio").mkdir(parents=True)
    silence = np.zeros(round(seconds * sample_rate), dtype=np.float32)
    for index in range(clips):
        (out_dir / "audio" / f"clip-{index:06d}.wav").write_bytes(wav_bytes(silence, sample_rate))
    return time.perf_counter() - started


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", type=int, default=300, help="clips to write (default 300)")
    parser.add_argument("--seconds", type=float, default=4.0, help="clip length in seconds (default 4.0)")
    parser.add_argument("--sample-rate", type=int, default=22050, help="Hz (default 22050)")
    parser.add_argument("--seed", type=int, default=0, help="corpus seed (default 0)")
    args = parser.parse_args(argv)
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})  # measure on one core
    spec = SynthSpec(clips=args.clips, seconds=args.seconds, sample_rate=args.sample_rate, seed=args.seed)
    with tempfile.TemporaryDirectory(prefix="bench-synth-") as tmp:
        baseline_s = write_silence(Path(tmp) / "silence", args.clips, args.seconds, args.sample_rate)
        summary = write_corpus(Path(tmp) / "corpus", spec)
    synth_s = summary["elapsed_s"]
    print(f"clips: {args.clips} x {args.seconds:g} s at {args.sample_rate} Hz, one core")
    print(f"synth:    {synth_s:7.2f} s  {args.clips / synth_s:8.1f} clips/s")
    print(f"baseline: {baseline_s:7.2f} s  {args.clips / baseline_s:8.1f} clips/s (silent WAV files only)")
    print(f"ratio synth/baseline: {synth_s / baseline_s:.1f}x")
    print(f"synthesis only (synth - baseline): {args.clips / max(synth_s - baseline_s, 1e-9):.1f} clips/s")


if __name__ == "__main__":
    main()
