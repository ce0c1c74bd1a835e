"""Noisy student training on a synthetic corpus with an unlabeled pool: teacher vs students.

Runs `jobs/demo-noisy-student.yaml` (teacher with augmentation, a knowledge-expansion student of
the same size and a smaller knowledge-distillation student, both taught on the unlabeled pool)
for each seed on a local Ray instance, and prints clean-label test ROC-AUC and PR-AUC (mean ±
std over seeds), the difference to the teacher of the same run, and parameter counts.

Usage: python bench/bench_semi.py [--seeds 0 1] [--epochs 12] [--clips 200] [--unlabeled 400] [--out DIR]
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

from raytag.config import load_job, stage_jobs
from raytag.data.synth import SynthSpec
from raytag.models import count_parameters, create_model
from raytag.cluster.stages import run_pipeline

from corpus import prepare  # bench/corpus.py, beside this script

JOB = Path(__file__).resolve().parents[1] / "jobs" / "demo-noisy-student.yaml"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--epochs", type=int, default=12)
    parser.add_argument("--clips", type=int, default=200, help="labelled clips")
    parser.add_argument("--unlabeled", type=int, default=400, help="unlabeled clips")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    spec = SynthSpec(clips=args.clips, unlabeled=args.unlabeled, seconds=4.0, sample_rate=16000, seed=4321)
    out, corpus = prepare(args.out, "bench-semi-", spec)
    results: dict[str, list[dict]] = {}
    params: dict[str, int] = {}
    for seed in args.seeds:
        job = load_job(
            JOB,
            [
                f"name=semi-s{seed}",
                f"seed={seed}",
                f"storage={out / 'runs'}",
                f"train.epochs={args.epochs}",
                f"data.manifest={corpus / 'manifest.csv'}",
                f"data.clean_labels={corpus / 'clean.csv'}",
                f"tracking.uri=sqlite:///{out / 'mlflow.db'}",
                "tracking.experiment=bench-semi",
            ],
        )
        for stage, stage_job in stage_jobs(job):
            model = create_model(stage_job.model.name, num_tags=10, **stage_job.model.args)
            params[stage.name] = count_parameters(model)
        for result in run_pipeline(job):
            results.setdefault(result.name, []).append(result.metrics)
            print(f"seed {seed} {result.name:<12} ROC-AUC {result.metrics['test/roc_auc']:.4f}  "
                  f"PR-AUC {result.metrics['test/pr_auc']:.4f}", flush=True)
    (out / "results.json").write_text(json.dumps(results, indent=1))

    def stats(values: list[float]) -> str:
        spread = statistics.stdev(values) if len(values) > 1 else 0.0
        return f"{statistics.fmean(values):.4f} ± {spread:.4f}"

    base = {k: statistics.fmean(r[f"test/{k}"] for r in results["teacher"]) for k in ("roc_auc", "pr_auc")}
    print(f"\nclean-label test metrics, {len(args.seeds)} seed(s), {args.epochs} epochs, "
          f"{args.clips} labelled + {args.unlabeled} unlabeled clips")
    print(f"{'model':<12} {'params':>8} {'ROC-AUC':>17} {'PR-AUC':>17} {'ΔROC':>8} {'ΔPR':>8}")
    for name, runs in results.items():
        roc = [r["test/roc_auc"] for r in runs]
        pr = [r["test/pr_auc"] for r in runs]
        print(f"{name:<12} {params[name]:>8,} {stats(roc):>17} {stats(pr):>17} "
              f"{statistics.fmean(roc) - base['roc_auc']:>+8.4f} {statistics.fmean(pr) - base['pr_auc']:>+8.4f}")
    print(f"\nruns and MLflow store in {out}")


if __name__ == "__main__":
    main()
