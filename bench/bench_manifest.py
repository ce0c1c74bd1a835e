"""Reading a manifest at the Million Song Dataset's size: 250,000 rows read and validated,
this tree's reader vs the reader of a baseline commit, in the same run.

The baseline's ``raytag/data/manifest.py`` is taken from git (``git show REF:...``) and loaded
as a module beside this tree's, so both read the same files on the same machine in the same
minutes. Each measurement runs in its own process: the time is the best of ``--repeats`` reads
of a fresh file, the memory the process's peak RSS (``ru_maxrss``) over the RSS it had before
the first read (interpreter and imports), i.e. what reading the manifest adds.

The manifests: MSD-like absolute paths (``.../A/B/C/TRABC....mp3``, 17,576 folders), three
tags of 50 per row, the three splits, ``verified``, ``artist``; as CSV, TSV and JSONL. A fourth
file has a bad split on line 200,001: both readers must name that line.

Goal (issue 27 item 4): 250,000 rows in <= 2 s, peak memory stated, errors naming their line.

    python bench/bench_manifest.py [--rows 250000] [--baseline 5cd4f09] [--out bench/results/manifest-cpu.txt]
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import random
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BAD_LINE = 200_001
_CHILD = r"""
import importlib.util, json, resource, sys, time
module_path, manifest, repeats = sys.argv[1], sys.argv[2], int(sys.argv[3])
if module_path == "-":
    from raytag.data import manifest as reader
else:
    spec = importlib.util.spec_from_file_location("baseline_manifest", module_path)
    reader = importlib.util.module_from_spec(spec)
    sys.modules["baseline_manifest"] = reader  # dataclasses look their module up
    spec.loader.exec_module(reader)
def rss_kib():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize() // 1024
before = rss_kib()
times, error, rows = [], "", 0
for _ in range(repeats):
    started = time.perf_counter()
    try:
        rows = len(reader.read_manifest(manifest).tracks)
    except Exception as exc:
        error = str(exc)[:200]
    times.append(time.perf_counter() - started)
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"best_s": min(times), "rows": rows, "error": error, "before_kib": before, "peak_kib": peak}))
"""


def bad_line(rows: int) -> int:
    return min(BAD_LINE, max(2, rows - 10))


def write_manifests(folder: Path, rows: int, seed: int = 0) -> dict[str, Path]:
    """CSV, TSV and JSONL manifests of ``rows`` MSD-like rows, and a CSV with a bad line."""
    rng = random.Random(seed)
    tags = [f"tag{i:02d}" for i in range(50)]
    letters = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
    records = []
    for i in range(rows):
        track = "TR" + "".join(rng.choice(letters) for _ in range(3)) + f"{i:013X}"
        path = f"{folder}/msd/{track[2]}/{track[3]}/{track[4]}/{track}.mp3"
        records.append((path, ";".join(rng.sample(tags, 3)), rng.choice(("train", "valid", "test")), "false",
                        f"AR{rng.randrange(40000):06d}"))
    header = ("path", "tags", "split", "verified", "artist")
    out = {}
    for kind, sep in (("csv", ","), ("tsv", "\t")):
        out[kind] = folder / f"manifest.{kind}"
        out[kind].write_text("\n".join(sep.join(r) for r in [header, *records]) + "\n")
    out["jsonl"] = folder / "manifest.jsonl"
    out["jsonl"].write_text("".join(json.dumps(dict(zip(header, r))) + "\n" for r in records))
    bad = list(records)
    line = bad_line(rows)
    bad[line - 2] = (*bad[line - 2][:2], "trian", *bad[line - 2][3:])
    out["csv, bad line"] = folder / "bad.csv"
    out["csv, bad line"].write_text("\n".join(",".join(r) for r in [header, *bad]) + "\n")
    return out


def measure(module: str, manifest: Path, repeats: int) -> dict:
    proc = subprocess.run([sys.executable, "-c", _CHILD, module, str(manifest), str(repeats)], cwd=ROOT,
                          capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"reading {manifest} with {module} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=250_000)
    parser.add_argument("--repeats", type=int, default=3, help="reads per measurement; the best counts")
    parser.add_argument("--baseline", default="5cd4f09", help="git commit of the baseline reader")
    parser.add_argument("--out", type=Path, help="also write the report here")
    args = parser.parse_args(argv)

    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout.strip()
    with tempfile.TemporaryDirectory(prefix="raytag-bench-manifest-") as tmp:
        baseline = Path(tmp) / "baseline_manifest.py"
        baseline.write_text(subprocess.run(["git", "show", f"{args.baseline}:raytag/data/manifest.py"], cwd=ROOT,
                                           capture_output=True, text=True, check=True).stdout)
        files = write_manifests(Path(tmp), args.rows)
        load_start = os.getloadavg()[0]
        lines = [f"{'file':<16} {'reader':<18} {'rows':>8} {'best s':>8} {'ratio':>7} {'peak MiB':>9} "
                 f"{'added MiB':>10}  error", "-" * 100]
        for kind, path in files.items():
            results = {}
            for name, module in ((f"baseline {args.baseline}", str(baseline)), (f"this tree {commit}", "-")):
                result = results[name] = measure(module, path, args.repeats if "bad" not in kind else 1)
                first = next(iter(results.values()))
                ratio = result["best_s"] / first["best_s"]
                error = result["error"].replace(str(tmp), "TMP")
                lines.append(f"{kind:<16} {name:<18} {result['rows']:>8,} {result['best_s']:>8.2f} {ratio:>6.2f}x "
                             f"{result['peak_kib'] / 1024:>9.0f} {(result['peak_kib'] - result['before_kib']) / 1024:>10.0f}"
                             f"  {error}")
                print(lines[-1], flush=True)
            if "bad" in kind:
                assert all(f"bad.csv:{bad_line(args.rows)}:" in r["error"] for r in results.values()), results
    head = [
        f"# bench_manifest: {datetime.date.today()}, Python {platform.python_version()}, {platform.machine()}, "
        f"{os.cpu_count()} CPUs; 1-min load average {load_start:.1f} at the start, {os.getloadavg()[0]:.1f} at the end",
        f"# {args.rows:,} MSD-like rows; best of {args.repeats} reads in a fresh process per reader and file; ratio: "
        "time over the baseline's on the same file; peak: the process's max RSS; added: peak over the RSS before "
        "the first read",
        "# goal: <= 2 s for 250,000 rows; an error names its line",
    ]
    report = "\n".join(head + lines) + "\n"
    print(report)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(report)


if __name__ == "__main__":
    main()
