"""Sweep throughput: trials completed per hour with ASHA vs FIFO on the same search space.

Runs the same random-search sweep (same space, samples and seed) of the tiny demo teacher
twice on a local Ray instance, once with the FIFO scheduler (the baseline: every trial runs
all its epochs) and once with ASHA (bad trials are stopped early), and prints for each the wall
time, the trials completed (run to the end or stopped by the scheduler) per hour, the epochs
trained, the best validation ROC-AUC found, and the ASHA / FIFO ratios.

Usage: python bench/bench_tune.py [--samples 8] [--epochs 6] [--clips 200] [--out DIR]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from raytag.config import load_job
from raytag.data.synth.corpus import SynthSpec
from raytag.search_space import read_space
from raytag.cluster.training.sweep import SweepOptions, run_sweep

from corpus import prepare  # bench/corpus.py, beside this script

ROOT = Path(__file__).resolve().parents[1]
SPACE = """metric: valid/roc_auc
mode: max
params:
  train.lr: {loguniform: [0.00003, 0.01]}
  model.args.width: {choice: [16, 32]}
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=8)
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--clips", type=int, default=200)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    out, corpus = prepare(args.out, "bench-tune-", SynthSpec(clips=args.clips, seconds=4.0, sample_rate=16000, seed=99))
    space_file = out / "space.yaml"
    space_file.write_text(SPACE)
    rows = {}
    for scheduler in ("fifo", "asha"):
        job = load_job(
            ROOT / "jobs" / "demo-teacher.yaml",
            [
                f"name=tune-{scheduler}",
                f"storage={out / 'runs'}",
                f"train.epochs={args.epochs}",
                "scaling.num_workers=1",
                f"data.manifest={corpus / 'manifest.csv'}",
                f"data.clean_labels={corpus / 'clean.csv'}",
                f"tracking.uri=sqlite:///{out / 'mlflow.db'}",
                "tracking.experiment=bench-tune",
            ],
        )
        started = time.perf_counter()
        outcome = run_sweep(job, read_space(space_file), SweepOptions(samples=args.samples, scheduler=scheduler))
        seconds = time.perf_counter() - started
        rows[scheduler] = {
            "seconds": seconds,
            "trials": outcome.finished,
            "stopped": outcome.stopped_early,
            "per_hour": outcome.finished / seconds * 3600,
            "best": outcome.best_value,
        }
        print(f"{scheduler}: {outcome.finished} trials in {seconds:.0f} s, {outcome.stopped_early} stopped early, "
              f"best valid ROC-AUC {outcome.best_value:.4f}", flush=True)
    print(f"\n{args.samples} samples, {args.epochs} epochs each, mtt-tiny on {args.clips} clips, 2-core local Ray")
    print(f"{'scheduler':<10} {'wall s':>8} {'trials':>7} {'stopped':>8} {'trials/h':>9} {'best AUC':>9}")
    for name, r in rows.items():
        print(f"{name:<10} {r['seconds']:>8.0f} {r['trials']:>7} {r['stopped']:>8} {r['per_hour']:>9.1f} {r['best']:>9.4f}")
    print(f"ASHA / FIFO: {rows['asha']['per_hour'] / rows['fifo']['per_hour']:.2f}x trials per hour, "
          f"best AUC {rows['asha']['best'] - rows['fifo']['best']:+.4f}")


if __name__ == "__main__":
    main()
