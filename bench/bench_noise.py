"""Noise-robust training methods on the synthetic noisy corpus, a Table-2-style comparison.

Trains, for each seed, the methods of Lu et al. 2022 Table 2 with the same tiny model, data and
budget on a local Ray instance, and prints clean-label test ROC-AUC and PR-AUC (mean ± std over
seeds) and the difference to the plain-BCE baseline of the same run:

    baseline        plain BCE on the noisy labels
    bootstrap-soft  Reed et al. soft bootstrapping (β 0.95)
    bootstrap-hard  Reed et al. hard bootstrapping (β 0.8)
    coteaching      Han et al. co-teaching (τ 0.2 reached after a third of the epochs)
    btrain          Balanced-Training (Algorithm 1) -- also the stage-1 teacher below
    bmasking        Balanced-Masking (eq. 3, 80th percentile) with the btrain teacher
    proposed        Balanced-Masking + mean-teacher consistency (eqs. 4-7)

Usage: python bench/bench_noise.py [--seeds 0 1 2] [--epochs 12] [--clips 400] [--out DIR]
It takes about 10 minutes per seed on 2 cores. Results are also written to DIR/results.json.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

from raytag.config import validate
from raytag.data.synth import SynthSpec
from raytag.cluster.driver import train

from corpus import prepare  # bench/corpus.py, beside this script

METHODS = {
    "baseline": {"name": "bce"},
    "bootstrap-soft": {"name": "bootstrap_soft"},
    "bootstrap-hard": {"name": "bootstrap_hard"},
    "coteaching": {"name": "coteaching", "forget_rate": 0.2},
    "btrain": {"name": "balanced_training"},
    "bmasking": {"name": "balanced_masking", "masking": {"percentile": 80}},
    "proposed": {
        "name": "balanced_masking",
        "masking": {"percentile": 80},
        "mean_teacher": {"enabled": True, "eta": 0.99, "t0": 100, "gamma": 0.5, "beta_max": 0.8},
    },
}
NEEDS_TEACHER = ("bmasking", "proposed")


def job_tree(method: str, seed: int, corpus: Path, out: Path, epochs: int) -> dict:
    objective = dict(METHODS[method])
    if method == "coteaching":
        objective["num_gradual"] = max(1, epochs // 3)
    if method == "proposed":
        objective["mean_teacher"] = {**objective["mean_teacher"], "warmup_epochs": max(1, epochs // 3)}
    if method in NEEDS_TEACHER:
        objective["masking"] = {**objective["masking"], "teacher": str(out / "runs" / f"btrain-s{seed}" / "best_model")}
    return {
        "name": f"{method}-s{seed}",
        "seed": seed,
        "storage": str(out / "runs"),
        "data": {"manifest": str(corpus / "manifest.csv"), "clean_labels": str(corpus / "clean.csv")},
        "model": {"name": "mtt-tiny"},
        "train": {"epochs": epochs, "batch_size": 16, "lr": 1e-3, "log_every": 1000},
        "objective": objective,
        "scaling": {"num_workers": 2, "cpus_per_worker": 0.5},
        "eval": {"split": "test", "max_chunks": 8},
        "tracking": {"uri": f"sqlite:///{out / 'mlflow.db'}", "experiment": "bench-noise"},
    }


def summarize(results: dict[str, list[dict]]) -> str:
    def stats(values: list[float]) -> str:
        mean = statistics.fmean(values)
        spread = statistics.stdev(values) if len(values) > 1 else 0.0
        return f"{mean:.4f} ± {spread:.4f}"

    base_roc = statistics.fmean(r["roc_auc"] for r in results["baseline"])
    base_pr = statistics.fmean(r["pr_auc"] for r in results["baseline"])
    lines = [
        f"{'method':<15} {'ROC-AUC':>17} {'PR-AUC':>17} {'ΔROC':>8} {'ΔPR':>8} {'min/run':>8}",
    ]
    for method, runs in results.items():
        roc = [r["roc_auc"] for r in runs]
        pr = [r["pr_auc"] for r in runs]
        lines.append(
            f"{method:<15} {stats(roc):>17} {stats(pr):>17} "
            f"{statistics.fmean(roc) - base_roc:>+8.4f} {statistics.fmean(pr) - base_pr:>+8.4f} "
            f"{statistics.fmean(r['seconds'] for r in runs) / 60:>8.1f}"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--epochs", type=int, default=12)
    parser.add_argument("--clips", type=int, default=400)
    parser.add_argument("--methods", nargs="+", default=list(METHODS), choices=list(METHODS))
    parser.add_argument("--out", type=Path, default=None, help="working folder (default: a temp dir)")
    args = parser.parse_args()
    out, corpus = prepare(args.out, "bench-noise-", SynthSpec(clips=args.clips, seconds=4.0, sample_rate=16000, seed=1234))
    methods = list(args.methods)
    if any(m in NEEDS_TEACHER for m in methods) and "btrain" not in methods:
        methods.insert(0, "btrain")
    methods.sort(key=lambda m: list(METHODS).index(m))
    results: dict[str, list[dict]] = {m: [] for m in methods}
    for seed in args.seeds:
        for method in methods:
            started = time.perf_counter()
            outcome = train(validate(job_tree(method, seed, corpus, out, args.epochs)))
            row = {
                "seed": seed,
                "roc_auc": outcome.report.roc_auc_macro,
                "pr_auc": outcome.report.pr_auc_macro,
                "seconds": time.perf_counter() - started,
            }
            results[method].append(row)
            print(f"seed {seed} {method:<15} ROC-AUC {row['roc_auc']:.4f}  PR-AUC {row['pr_auc']:.4f}", flush=True)
    (out / "results.json").write_text(json.dumps(results, indent=1))
    print(f"\nclean-label test metrics, {len(args.seeds)} seed(s), {args.epochs} epochs, mtt-tiny, {args.clips} clips")
    print(summarize(results))
    print(f"\nruns and MLflow store in {out}")


if __name__ == "__main__":
    main()
