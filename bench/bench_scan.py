"""The header scan, first run vs second run, at 1k, 10k and 100k tracks.

The tracks are hard links to two real files (a 30 s WAV; every 10th track a 30 s MP3), so a
100k-track catalogue costs no disk; every link is its own location, so the scan reads (first
run) or looks up (second run) each one. Both runs call the job's own
:func:`raytag.cluster.data.datasets.scan_tracks` with the job's ``storage``: the first reads
every header on Ray Data tasks and writes the header-scan cache; the second asks the file
system for every file's size and modification time in one call, reuses every cached header and
reads none. A third run after touching 1% of the files reads only those. The baseline is the
first run, measured in the same process on the same catalogue.

Goal (issue 27 item 3): a second run costs <= 1 s per 10k unchanged tracks.

    python bench/bench_scan.py [--sizes 1000 10000 100000] [--out bench/results/scan-cpu.txt]
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import shutil
import sys
import time
from pathlib import Path

LINKS_PER_SOURCE = 50_000

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))


def make_sources(folder: Path) -> list[Path]:
    """A 30 s mono 22.05 kHz WAV and MP3 of music-like audio."""
    from audio_files import music_like, write

    folder.mkdir(parents=True, exist_ok=True)
    audio = music_like(22050, 30.0, seed=0)
    return [write(folder / "source", audio, 22050, "wav"), write(folder / "source", audio, 22050, "mp3")]


def catalogue(folder: Path, sources: list[Path], tracks: int, mp3_every: int = 10) -> list[str]:
    """``tracks`` hard links to ``sources`` (the WAV; every ``mp3_every``-th the MP3), 1,000 per
    folder."""
    paths = []
    for i in range(tracks):
        source = sources[1 if i % mp3_every == mp3_every - 1 else 0]
        # ext4 allows 65,000 links to a file: every 50,000 tracks link to a copy of their own.
        if i >= LINKS_PER_SOURCE:
            copy = source.with_name(f"{source.stem}-{i // LINKS_PER_SOURCE}{source.suffix}")
            if not copy.exists():
                shutil.copyfile(source, copy)
            source = copy
        path = folder / f"{i // 1000:03d}" / f"track-{i:06d}{source.suffix}"
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            os.link(source, path)
        paths.append(str(path))
    return paths


def timed_scan(paths: list[str], storage_root: str):
    from raytag.cluster.data.datasets import scan_tracks
    from raytag.data.manifest import Track

    tracks = [Track(p, (), "unlabeled") for p in paths]
    started = time.perf_counter()
    scan = scan_tracks(tracks, num_cpus=0.5, storage_root=storage_root)
    return time.perf_counter() - started, scan


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 10000, 100000])
    parser.add_argument("--cpus", type=int, default=2, help="CPUs of the local Ray instance (default 2)")
    parser.add_argument("--work", type=Path, default=Path("/tmp/raytag-bench-scan"))
    parser.add_argument("--out", type=Path, help="also write the report here")
    args = parser.parse_args(argv)

    import ray

    from raytag.cluster.session import init_ray

    sources = make_sources(args.work / "sources")
    load_start = os.getloadavg()[0]
    init_ray(num_cpus=args.cpus)
    timed_scan(catalogue(args.work / "warm", sources, 64), str(args.work / "storage-warm"))  # start workers
    lines = [f"{'tracks':>8} {'first s':>9} {'second s':>9} {'second/first':>12} {'s per 10k':>10} "
             f"{'touched 1%: s':>14} {'read':>6} {'reused':>7}", "-" * 84]
    for size in args.sizes:
        storage_root = args.work / f"storage-{size}"
        shutil.rmtree(storage_root, ignore_errors=True)
        paths = catalogue(args.work / "catalogue", sources, size)
        first, scan1 = timed_scan(paths, str(storage_root))
        second, scan2 = timed_scan(paths, str(storage_root))
        assert scan1.counts.read == size and scan2.counts.read == 0 and scan2.counts.reused == size, (
            scan1.summary(), scan2.summary())
        assert scan1.usable == scan2.usable and not scan1.skipped
        touched = paths[:: 100]
        now = time.time_ns()
        for path in touched:  # a hard link shares its inode: touch copies instead
            shutil.copyfile(path, path + ".tmp")
            os.replace(path + ".tmp", path)
            os.utime(path, ns=(now, now))
        third, scan3 = timed_scan(paths, str(storage_root))
        assert scan3.counts.read == len(touched), scan3.summary()
        lines.append(f"{size:>8,} {first:>9.2f} {second:>9.3f} {second / first:>12.4f} {second / size * 1e4:>10.3f} "
                     f"{third:>14.2f} {scan3.counts.read:>6,} {scan3.counts.reused:>7,}")
        print(lines[-1], flush=True)
        for path in touched:  # back to hard links for the next size
            os.remove(path)
        shutil.rmtree(storage_root, ignore_errors=True)
    shutil.rmtree(args.work / "catalogue", ignore_errors=True)
    head = [
        f"# bench_scan: {datetime.date.today()}, ray {ray.__version__}, {platform.machine()}, {os.cpu_count()} CPUs, "
        f"Ray local instance with {args.cpus} logical CPUs, scan tasks of 0.5 CPU; 1-min load average "
        f"{load_start:.1f} at the start, {os.getloadavg()[0]:.1f} at the end",
        "# tracks: hard links to a 30 s 22.05 kHz WAV (every 10th: a 30 s MP3), 1,000 per folder, local disk",
        "# first: no header-scan cache (every header read on Ray Data tasks, cache written); second: unchanged "
        "files (one stat call, every header reused, none read); touched 1%: 1 file in 100 rewritten "
        "(read again, only they)",
        "# goal: second run <= 1 s per 10k unchanged tracks",
    ]
    report = "\n".join(head + lines) + "\n"
    print(report)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(report)
    ray.shutdown()


if __name__ == "__main__":
    main()
