"""Peak memory of ``raytag prepare`` as the corpus grows: N, 4N and 16N tracks.

bench_data.py measures N and 4N beside its throughput runs; this script measures only the
prepare phase, and adds 16N: while the number of decode tasks that can run at once (the
instance's CPUs / ``data.decode_cpus``) is not yet reached, more tracks means more tasks
decoding at the same time, so the peak grows; past it, a flat peak is what streaming promises.
Same corpus (bench_data's 180 s stereo MP3s, copied under new names), same meter (PSS summed
over the driver and all Ray processes), on a warm worker pool.

    python bench/bench_prepare_memory.py [--tracks 6] [--out bench/results/prepare-memory-cpu.txt]
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import shutil
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_data import (  # noqa: E402
    copies, crop_rows, make_corpus, mb, memory_line, prepare_run, ray_run, table_of, write_job,
)

DECODE_CPUS = 0.25  # a job's default data.decode_cpus


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tracks", type=int, default=6, help="N: tracks (default 6)")
    parser.add_argument("--seconds", type=float, default=180.0, help="track length (default 180)")
    parser.add_argument("--cpus", type=int, default=2, help="CPUs of the local Ray instance (default 2)")
    parser.add_argument("--work", type=Path, default=Path("/tmp/raytag-bench-prepare"), help="audio and caches")
    parser.add_argument("--out", type=Path, help="also write the report here")
    args = parser.parse_args(argv)

    import ray
    import torch

    from raytag.cluster.session import init_ray

    for old in args.work.glob("storage-*"):
        shutil.rmtree(old)  # every run prepares anew
    audio = make_corpus(args.work / "audio", tracks=args.tracks, seconds=args.seconds)["mp3"]
    load_start = os.getloadavg()[0]
    init_ray(num_cpus=args.cpus)
    ray_run(crop_rows(table_of(audio), 8 * args.cpus * 16), DECODE_CPUS)  # warm-up: start the decode workers
    rows = []
    for times in (1, 4, 16):
        paths = audio if times == 1 else copies(audio, args.work / f"copies{times}", times)
        job = write_job(args.work, paths, f"prepare-{times}n")
        rows.append((times, *prepare_run(job)))
    ray.shutdown()

    lines = [
        f"# bench_prepare_memory: {datetime.date.today()}, torch {torch.__version__}, ray {ray.__version__}, "
        f"{platform.machine()}, {os.cpu_count()} CPUs, Ray local instance with {args.cpus} logical CPUs; "
        f"1-min load average {load_start:.1f} at the start, {os.getloadavg()[0]:.1f} at the end",
        f"# {args.seconds:.0f} s stereo MP3 tracks; decode tasks of {DECODE_CPUS} CPU, so at most "
        f"{int(args.cpus / DECODE_CPUS)} at once; 2 tracks per task",
        "# peak memory: PSS summed over the driver and all its descendants in MiB; before: when prepare started",
    ]
    header = f"{'memory':<32} {'items':>6} {'wall s':>7} {'cpu-s':>7} {'before':>9} {'peak':>9} {'added':>9} procs"
    lines += [header, "-" * len(header)]
    for times, prepared, usage in rows:
        name = "N" if times == 1 else f"{times}N"
        lines.append(memory_line(f"prepare, {name} = {times * args.tracks} tracks", prepared, usage))
    added = {times: usage.peak_bytes - usage.baseline_bytes for times, _, usage in rows}
    lines.append(f"added at 16N over added at 4N: {mb(added[16])} / {mb(added[4])} MiB = "
                 f"{added[16] / max(added[4], 1):.2f}x (flat: about 1.0x)")
    print("\n".join(lines))
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
