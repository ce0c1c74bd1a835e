"""Training throughput across source trees: the same job, per-rank clips/s, against the model's bound.

Issue 27: every other benchmark compares variants inside one tree, so a change that costs
throughput in every variant is invisible. This script trains one job on each source tree
(``--tree LABEL=PATH``, a checkout of raytag, e.g. ``git worktree add /tmp/tree-45c9f88 45c9f88``)
with ``PYTHONPATH=PATH`` and the same interpreter, through the tree's own ``raytag train``
command, and reads each run's ``train/examples_per_s`` (rank 0's clips per second of its
training epoch; every DDP rank takes the same steps) from the MLflow store the run wrote.

The bound: the model's own training step (forward + backward + Adam on random crops of the same
shape, the per-rank batch) in one process on one thread, measured by this tree's
``bench_models.training_clips_per_s`` in the same run, before every tree's run and after the
last; a run's bound is the mean of the measurements just before and just after it, since the
machine's load moves them. Its clips per CPU-second are printed too: they do not depend on the
load, and are what the rate would be with a core to itself. A rank of a 2-worker job on 2 cores
can at best reach that rate; decoding, the data stream and DDP's all-reduce share the cores.

Job (issue 27): ``raytag synth OUT --clips 1200 --seconds 6 --sample-rate 16000`` (written once
with this tree's ``synth``, or ``--corpus``); mtt-tiny with conv 32, width 64, depth 2, heads 4,
dropout 0; global batch 16 (8 per rank: trees before ``rank_batch_size`` read ``batch_size`` per
worker and get 8); 2 workers x 0.5 CPU; 3 epochs; a local Ray instance of ``--num-cpus`` CPUs
per run. Trees run in turn, ``--repeats`` rounds (ABC ABC ...), so load drift spreads over
all of them.

    python bench/bench_throughput_trees.py --tree 45c9f88=/tmp/tree-45c9f88 --tree main=/work/main \\
        --tree fix=. --out bench/results/throughput-trees.txt

Everything a run writes goes to a temporary folder (storage, MLflow's SQLite file).
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
GLOBAL_BATCH = 16
WORKERS = 2
MODEL_ARGS = {"conv_channels": 32, "width": 64, "depth": 2, "heads": 4, "dropout": 0.0}

JOB = """\
name: {name}
seed: 0
storage: {storage}
data:
  manifest: {corpus}/manifest.csv
  clean_labels: {corpus}/clean.csv
model:
  name: mtt-tiny
  args: {model_args}
train:
  epochs: {epochs}
  batch_size: {batch_size}
  lr: 0.001
  select_metric: roc_auc
  log_every: 10
scaling:
  num_workers: {workers}
  cpus_per_worker: 0.5
  max_failures: 0
eval:
  split: test
  max_chunks: 8
  batch_size: 16
ray:
  num_cpus: {num_cpus}
tracking:
  uri: {uri}
  experiment: bench-throughput
"""


def per_worker_batch(tree: Path) -> bool:
    """True when the tree reads ``train.batch_size`` per worker (before the global batch size)."""
    rows = tree / "raytag" / "data" / "rows.py"
    return not (rows.exists() and "def rank_batch_size" in rows.read_text())


def model_bound(args: argparse.Namespace, num_tags: int) -> tuple[float, float]:
    """Clips/s and clips per CPU-second of the model's own training step, one process, one
    thread, the per-rank batch."""
    code = (
        "import sys, json, torch\n"
        f"sys.path.insert(0, {str(ROOT / 'bench')!r}); sys.path.insert(0, {str(ROOT)!r})\n"
        "from bench_models import training_clips_per_s\n"
        "from raytag.models import create_model\n"
        "torch.set_num_threads(1); torch.manual_seed(0)\n"
        f"model = create_model('mtt-tiny', num_tags={num_tags}, **{MODEL_ARGS!r})\n"
        f"rate = training_clips_per_s(model, batch={GLOBAL_BATCH // WORKERS}, warmup=3, steps={args.bound_steps},"
        " generator=torch.Generator().manual_seed(0))\n"
        "print('RESULT ' + json.dumps([rate.clips_per_s, rate.clips_per_cpu_s]))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"})
    lines = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
    if done.returncode or not lines:
        sys.exit(f"model-bound measurement failed ({done.returncode}):\n{done.stderr[-4000:]}")
    wall, cpu = json.loads(lines[-1][len("RESULT "):])
    return float(wall), float(cpu)


def busiest_processes(count: int = 5) -> list[str]:
    """What else is running: the ``count`` processes using the most CPU (``ps``), as short lines."""
    done = subprocess.run(["ps", "-eo", "pcpu,etimes,args", "--sort=-pcpu"], capture_output=True, text=True)
    return [" ".join(line.split())[:110] for line in done.stdout.splitlines()[1:count + 1]]


def run_tree(args: argparse.Namespace, label: str, tree: Path, corpus: Path, index: int) -> dict:
    """One training run of the job on ``tree``; its per-epoch metrics from the MLflow store."""
    from mlflow.tracking import MlflowClient

    with tempfile.TemporaryDirectory(prefix=f"raytag-throughput-{label}-") as work:
        uri = f"sqlite:///{work}/mlflow.db"
        batch = GLOBAL_BATCH // WORKERS if per_worker_batch(tree) else GLOBAL_BATCH
        job = Path(work) / "job.yaml"
        job.write_text(JOB.format(name=f"tp-{label}-{index}", storage=f"{work}/storage", corpus=corpus,
                                  model_args=json.dumps(MODEL_ARGS), epochs=args.epochs, batch_size=batch,
                                  workers=WORKERS, num_cpus=args.num_cpus, uri=uri))
        env = {**os.environ, "PYTHONPATH": str(tree.resolve())}
        env.pop("RAY_ADDRESS", None)
        load = os.getloadavg()[0]
        others = busiest_processes()
        print(f"[{label}] {tree}: training (batch_size={batch}), load {load:.1f} ...", flush=True)
        started = time.perf_counter()
        done = subprocess.run([sys.executable, "-m", "raytag.cli", "train", str(job)], cwd=work, env=env,
                              capture_output=True, text=True)
        wall = time.perf_counter() - started
        if done.returncode:
            print(f"[{label}] train failed ({done.returncode}):\n{done.stdout[-2000:]}\n{done.stderr[-4000:]}",
                  flush=True)
            return {"label": label, "failed": done.returncode, "wall_s": wall}
        client = MlflowClient(uri)
        experiment = client.get_experiment_by_name("bench-throughput")
        runs = client.search_runs([experiment.experiment_id])
        run = next(r for r in runs if client.get_metric_history(r.info.run_id, "train/examples_per_s"))

        def history(key: str) -> list[float]:
            return [m.value for m in sorted(client.get_metric_history(run.info.run_id, key), key=lambda m: m.step)]

        result = {"label": label, "wall_s": wall, "load_start": load, "load_end": os.getloadavg()[0], "others": others,
                  "clips_per_s": history("train/examples_per_s"), "epoch_s": history("epoch_seconds"),
                  "examples": history("train/examples"), "data_wait_s": history("train/data_wait_s")}
        print(f"[{label}] clips/s per epoch {['%.1f' % v for v in result['clips_per_s']]}, {wall:.0f} s", flush=True)
        return result


def step_only(run: dict) -> str:
    """Clips/s of epochs 2..N counting only the time outside waits for batches
    (``train/data_wait_s``, logged by trees since issue 27; "-" before)."""
    if len(run["data_wait_s"]) != len(run["clips_per_s"]) or len(run["examples"]) != len(run["clips_per_s"]):
        return "-"
    rates = []
    for examples, rate, wait in list(zip(run["examples"], run["clips_per_s"], run["data_wait_s"]))[1:]:
        seconds = examples / rate
        rates.append(examples / max(seconds - wait, 1e-9))
    return f"{statistics.mean(rates):.1f}"


def report(args: argparse.Namespace, bounds: list[tuple[float, float]], runs: list[dict], labels: list[str]) -> str:
    """The report; ``bounds`` has one measurement before each run and one after the last."""
    walls = [wall for wall, _ in bounds]
    local = [statistics.mean(walls[i:i + 2]) for i in range(len(runs))]
    lines = [
        f"# bench_throughput_trees: {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC, "
        f"{os.cpu_count()} CPUs, local Ray with {args.num_cpus} CPUs per run",
        f"# command: python bench/bench_throughput_trees.py {' '.join(args.argv)}",
        f"# job: synth --clips {args.clips} --seconds 6 --sample-rate 16000; mtt-tiny {MODEL_ARGS}; global batch "
        f"{GLOBAL_BATCH} ({GLOBAL_BATCH // WORKERS} per rank); {WORKERS} workers x 0.5 CPU; {args.epochs} epochs",
        "# clips/s: train/examples_per_s of rank 0 (its epoch's clips / the epoch's training seconds), epochs 2..N;"
        " step-only: the same without the seconds rank 0 waited for batches (train/data_wait_s, where logged)",
        f"# model bound: the model's own step, 1 process, 1 thread, batch {GLOBAL_BATCH // WORKERS}: "
        + ", ".join(f"{b:.1f}" for b in walls) + " clips/s (before each run, after the last; a run's bound is the"
        f" mean of its two), {statistics.mean(cpu for _, cpu in bounds):.1f} clips per CPU-s (load-free)",
        "",
        f"{'tree':10} {'round':>5} {'clips/s epochs 2..N':>22} {'mean':>6} {'x bound':>7} {'step-only':>9} "
        f"{'epoch s':>17} {'wall s':>6} {'load':>9}",
    ]
    means: dict[str, list[float]] = {label: [] for label in labels}
    ratios: dict[str, list[float]] = {label: [] for label in labels}
    for number, run in enumerate(runs):
        if "failed" in run:
            lines.append(f"{run['label']:10} {number // len(labels) + 1:>5} train failed (exit {run['failed']})")
            continue
        steady = run["clips_per_s"][1:] or run["clips_per_s"]
        mean = statistics.mean(steady)
        means[run["label"]].append(mean)
        ratios[run["label"]].append(mean / local[number])
        lines.append(
            f"{run['label']:10} {number // len(labels) + 1:>5} {' '.join(f'{v:6.1f}' for v in steady):>22} "
            f"{mean:>6.1f} {mean / local[number]:>7.2f} {step_only(run):>9} {' '.join(f'{v:5.1f}' for v in run['epoch_s']):>17} "
            f"{run['wall_s']:>6.0f} {run['load_start']:>4.1f}-{run['load_end']:<4.1f}"
        )
    lines += ["", "# the busiest processes (%CPU, seconds running, command) when each run started:"]
    for number, run in enumerate(runs):
        for other in run.get("others", []):
            lines.append(f"#   {run['label']} round {number // len(labels) + 1}: {other}")
    lines += ["", "per tree (mean over rounds of the epochs-2..N mean), ratios to the first tree and to the bound:"]
    first = statistics.mean(means[labels[0]]) if means[labels[0]] else float("nan")
    for label in labels:
        if not means[label]:
            lines.append(f"  {label:10} no finished run")
            continue
        value = statistics.mean(means[label])
        lines.append(f"  {label:10} {value:6.1f} clips/s per rank   {value / first:5.2f}x {labels[0]}   "
                     f"{statistics.mean(ratios[label]):5.2f}x bound")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tree", action="append", default=[], metavar="LABEL=PATH",
                        help="a source tree to train with (repeatable; default: this tree)")
    parser.add_argument("--corpus", type=Path, default=None, help="an existing synth corpus (default: write one)")
    parser.add_argument("--clips", type=int, default=1200)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=1, help="rounds over the trees (default 1)")
    parser.add_argument("--num-cpus", type=int, default=2, help="CPUs of each run's local Ray instance")
    parser.add_argument("--bound-steps", type=int, default=30, help="timed steps of the model bound (default 30)")
    parser.add_argument("--out", type=Path, default=None, help="also write the report to this file")
    args = parser.parse_args(argv)
    args.argv = sys.argv[1:] if argv is None else argv
    if args.epochs < 2:
        parser.error("--epochs must be at least 2 (epoch 1 is warm-up)")
    trees: list[tuple[str, Path]] = []
    for spec in args.tree or [f"this={ROOT}"]:
        label, sep, path = spec.partition("=")
        if not sep or not (Path(path) / "raytag").is_dir():
            parser.error(f"--tree {spec!r}: expected LABEL=PATH of a raytag checkout")
        trees.append((label, Path(path).resolve()))
    with tempfile.TemporaryDirectory(prefix="raytag-throughput-corpus-") as scratch:
        corpus = args.corpus
        if corpus is None:
            corpus = Path(scratch) / "synth"
            subprocess.run([sys.executable, "-m", "raytag.cli", "synth", str(corpus), "--clips", str(args.clips),
                            "--seconds", "6", "--sample-rate", "16000"], check=True,
                           env={**os.environ, "PYTHONPATH": str(ROOT)})
        corpus = corpus.resolve()
        num_tags = len((corpus / "tags.txt").read_text().split())
        bounds, runs = [], []
        for index in range(args.repeats):
            for label, tree in trees:
                bounds.append(model_bound(args, num_tags))
                print(f"model bound {bounds[-1][0]:.1f} clips/s, {bounds[-1][1]:.1f} per CPU-s", flush=True)
                runs.append(run_tree(args, label, tree, corpus, index))
        bounds.append(model_bound(args, num_tags))
    text = report(args, bounds, runs, [label for label, _ in trees])
    print(text)
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text)


if __name__ == "__main__":
    main()
