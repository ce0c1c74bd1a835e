"""Ray's fixed cost per training run: the demo job timed in two source trees (before/after).

For each tree (``--tree LABEL=PATH``, a checkout of raytag; default: this one) a child process
with ``PYTHONPATH=PATH`` starts a local Ray instance of ``--num-cpus`` CPUs and trains
``jobs/demo-teacher.yaml`` (the job ``make demo`` runs: mtt-tiny, 2 DDP workers, the 400-clip
synthetic corpus at 16 kHz, which this script writes once for all trees) three times through
``raytag.cluster.training.driver.train``:

- *cold*: ``--epochs`` epochs (the demo's 12), the first run in the fresh instance, as
  ``raytag train`` on a laptop runs (Ray's start-up is timed separately and added);
- *warm 1*, *warm 2*: ``--short`` and ``--long`` epochs in the same instance, as a sweep trial or
  an integration test runs on a running cluster; ``--repeats`` times each, alternating (one warm
  run varies by several seconds on 2 busy cores: the figures use each kind's median).

Per-run overhead, two ways: (a) the *intercept*: whole run time = overhead + per-epoch time x
epochs, the per-epoch time from the two warm runs' difference; (b) *outside epochs*: the whole
run minus the sum of its epochs' own seconds (``epoch_seconds``, rank 0's clock). Both count
the first epoch's warm-up as overhead in (a) and as epoch time in (b). Each child also reports
the seconds of the driver's phases where the tree records them (``Outcome.seconds``).

    python bench/bench_overhead.py --tree before=../wt-before --tree after=. \
        --out bench/results/overhead-cpu.txt

Everything a run writes goes to a temporary folder (corpus, storage, MLflow's SQLite file).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def child(args: argparse.Namespace) -> None:
    """Runs in a tree's interpreter: Ray start-up, then the three runs; prints one JSON line."""
    started = time.perf_counter()
    import ray
    from mlflow.tracking import MlflowClient

    from raytag.cluster.training.driver import train
    from raytag.cluster.session import init_ray
    from raytag.config import load_job

    imports = time.perf_counter() - started
    started = time.perf_counter()
    init_ray(None, args.num_cpus)
    ray_start = time.perf_counter() - started
    work = Path(args.work)
    uri = f"sqlite:///{work / 'mlflow.db'}"
    runs = []
    plan = [("cold", args.epochs)] + [("warm 1", args.short), ("warm 2", args.long)] * args.repeats
    for index, (name, epochs) in enumerate(plan):
        job = load_job(ROOT / "jobs" / "demo-teacher.yaml", [
            f"name=bench-{index}-{name.replace(' ', '')}", f"train.epochs={epochs}", f"storage={work / 'storage'}",
            f"data.manifest={args.corpus}/manifest.csv", f"data.clean_labels={args.corpus}/clean.csv",
            f"tracking.uri={uri}", "tracking.experiment=bench-overhead",
        ])
        started = time.perf_counter()
        outcome = train(job)
        wall = time.perf_counter() - started
        history = MlflowClient(uri).get_metric_history(outcome.run_id, "epoch_seconds")
        runs.append({"name": name, "epochs": epochs, "wall_s": wall, "roc_auc": outcome.report.roc_auc_macro,
                     "epoch_s": [m.value for m in sorted(history, key=lambda m: m.step)],
                     "phases": getattr(outcome, "seconds", {})})
    ray.shutdown()
    print("RESULT " + json.dumps({"imports_s": imports, "ray_start_s": ray_start, "runs": runs}), flush=True)


def run_tree(args: argparse.Namespace, label: str, path: Path, corpus: Path) -> dict:
    with tempfile.TemporaryDirectory(prefix=f"raytag-overhead-{label}-") as work:
        env = {**os.environ, "PYTHONPATH": str(path.resolve())}
        command = [sys.executable, str(Path(__file__).resolve()), "--child", "--work", work, "--corpus", str(corpus),
                   "--epochs", str(args.epochs), "--short", str(args.short), "--long", str(args.long),
                   "--num-cpus", str(args.num_cpus), "--repeats", str(args.repeats)]
        print(f"[{label}] {path}: training the demo job {1 + 2 * args.repeats} times ...", flush=True)
        done = subprocess.run(command, cwd=work, env=env, capture_output=True, text=True)
        lines = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
        if done.returncode or not lines:
            sys.exit(f"[{label}] child failed ({done.returncode}):\n{done.stderr[-4000:]}")
        return json.loads(lines[-1][len("RESULT "):])


def figures(result: dict, short: int, long: int) -> dict:
    """Per-epoch seconds and the overheads of one tree's runs: each kind of run (cold, warm 1,
    warm 2) by the median of its repeats."""
    kinds: dict[str, list[dict]] = {}
    for run in result["runs"]:
        kinds.setdefault(run["name"], []).append(run)
    wall = {name: statistics.median(r["wall_s"] for r in runs) for name, runs in kinds.items()}
    per_epoch = (wall["warm 2"] - wall["warm 1"]) / (long - short)
    out = {"per_epoch_s": per_epoch, "ray_start_s": result["ray_start_s"], "runs": []}
    for run in result["runs"]:
        out["runs"].append({"wall_s": run["wall_s"], "intercept_s": run["wall_s"] - per_epoch * run["epochs"],
                            "outside_s": run["wall_s"] - sum(run["epoch_s"]), "roc_auc": run["roc_auc"]})
    for name, runs in kinds.items():
        out[name] = {"wall_s": wall[name], "intercept_s": wall[name] - per_epoch * runs[0]["epochs"]}
    return out


def report(args: argparse.Namespace, results: dict[str, dict]) -> str:
    load = os.getloadavg()[0]
    lines = [
        f"# bench_overhead: {datetime.datetime.now():%Y-%m-%d %H:%M}, {os.cpu_count()} CPUs, local Ray with "
        f"{args.num_cpus} CPUs; 1-min load average {args.load_start:.1f} at the start, {load:.1f} at the end",
        f"# command: python bench/bench_overhead.py {' '.join(args.argv)}",
        "# job: jobs/demo-teacher.yaml (mtt-tiny, 2 DDP workers of 0.5 CPU, 400 synthetic clips at 16 kHz);"
        f" cold = first run in a fresh instance, {args.epochs} epochs (+ Ray's start-up); warm = runs in the same"
        f" instance, {args.short} and {args.long} epochs",
        f"# intercept: whole run - per-epoch seconds x epochs (per-epoch from the medians of the {args.repeats}"
        " warm runs of each length); outside epochs: whole run - the sum of its epochs' own seconds",
        "",
        f"{'tree':10} {'run':7} {'epochs':>6} {'wall s':>7} {'intercept s':>11} {'outside s':>9} {'ROC-AUC':>7}",
    ]
    for label, result in results.items():
        fig = figures(result, args.short, args.long)
        for run, f in zip(result["runs"], fig["runs"]):
            lines.append(f"{label:10} {run['name']:7} {run['epochs']:>6} {f['wall_s']:>7.1f} {f['intercept_s']:>11.1f} "
                         f"{f['outside_s']:>9.1f} {f['roc_auc']:>7.4f}")
        lines.append(f"{label:10} Ray start-up {fig['ray_start_s']:.1f} s; per epoch {fig['per_epoch_s']:.2f} s; "
                     f"demo train+eval (cold run + Ray start-up) {fig['cold']['wall_s'] + fig['ray_start_s']:.1f} s; "
                     f"medians: warm 1 {fig['warm 1']['wall_s']:.1f} s, warm 2 {fig['warm 2']['wall_s']:.1f} s")
        for run in result["runs"]:
            if run["phases"]:
                phases = ", ".join(f"{k} {v:.1f}" for k, v in run["phases"].items())
                lines.append(f"{'':10} phases of {run['name']} (s): {phases}")
    labels = list(results)
    if len(labels) == 2:
        before, after = (figures(results[label], args.short, args.long) for label in labels)
        lines += ["", f"ratios {labels[1]} / {labels[0]} (lower is better; warm runs by their medians):"]
        for name in ("cold", "warm 1", "warm 2"):
            lines.append(f"  {name:7} whole run {after[name]['wall_s'] / before[name]['wall_s']:.2f}x, intercept "
                         f"{after[name]['intercept_s']:.1f} s vs {before[name]['intercept_s']:.1f} s")
        lines.append(f"  per-run overhead of a warm run (intercept, {labels[1]}): {after['warm 1']['intercept_s']:.1f} s"
                     " (goal <= 20 s)")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tree", action="append", default=[], help="LABEL=PATH of a raytag checkout (repeatable)")
    parser.add_argument("--epochs", type=int, default=12, help="epochs of the cold run (the demo's)")
    parser.add_argument("--short", type=int, default=2)
    parser.add_argument("--long", type=int, default=6)
    parser.add_argument("--num-cpus", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3, help="warm runs of each length (default 3)")
    parser.add_argument("--out", type=Path)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--work", help=argparse.SUPPRESS)
    parser.add_argument("--corpus", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args)
        return
    args.argv, args.load_start = sys.argv[1:], os.getloadavg()[0]
    trees = dict(item.split("=", 1) for item in args.tree) or {"this": str(ROOT)}
    sys.path.insert(0, str(ROOT))
    from raytag.data.synth.corpus import SynthSpec, write_corpus

    with tempfile.TemporaryDirectory(prefix="raytag-overhead-corpus-") as corpus:
        write_corpus(corpus, SynthSpec(clips=400, sample_rate=16000), overwrite=True)
        results = {label: run_tree(args, label, Path(path), Path(corpus)) for label, path in trees.items()}
    text = report(args, results)
    print(text, end="")
    if args.out:
        args.out.write_text(text)


if __name__ == "__main__":
    main()
