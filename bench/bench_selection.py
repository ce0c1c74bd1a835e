"""Model selection on noisy vs verified validation rows, and in-sample vs out-of-fold teachers
(issue 25 item 4): writes ``bench/results/selection.md`` and ``selection.json``.

Corpus ``selection`` (bench/corpus.py): 600 training, 450 validation, 450 test clips with the
synthetic corpus's audio-dependent label noise; the test split is scored against the clean
labels (reporting only: nothing is chosen on them). A "verified" validation sample of N rows is
a seeded random sample of the validation split whose labels are the clean ones (what a person
checking those rows would give); N = 100, 200, 400, nested, the same sample for every run.

**Selection.** Every run trains ``--epochs`` epochs through raytag's Ray-free core
(bench/noise_runner.py: ``raytag.engine.run.fit``) and scores, every epoch, the whole validation
split against its noisy labels (``valid/``), each verified sample against its clean labels
(``valid_verified<N>/``) and the test split against the clean labels. For each signal the
selected epoch is the first with the signal's highest ROC-AUC (``fit``'s rule; without a
selection window the training does not depend on which signal selects, so one run serves every
signal). Over the runs (methods × seeds), the Spearman correlation of the signal's value at its
selected epoch with the clean test ROC-AUC of that epoch says whether the signal can rank
models (the issue's goal: ≥ 0.6; noisy selection measured −0.10 on Lu et al.'s protocol).

**Teachers.** Balanced-Masking's teacher is B-Training of the same seed. In-sample: the teacher
scores the clips it trained on. Out-of-fold: ``--folds`` fold teachers (``train.leave_out``),
each trained without one fold (raytag.folds: a seeded hash of the track path) and scoring only
that fold (an out-of-fold teacher record, scored by ``noise_runner.teacher_track_scores`` as the
cluster's teacher scoring does). The mask's precision and recall against the clean labels are
the Balanced-Masking run's ``masking/*`` diagnostics. At the 80th percentile both teachers mask
the same number of entries per tag (20 % of its labelled negatives), so precision is compared at
the same number of masked entries, and recall follows it.

Resumable: each run is cached under ``<out>/runs`` (bench/run_cache.py); each finished run is
added to selection.json and the report is rewritten, so a stopped benchmark reports what it has.

    nice -n 10 python bench/bench_selection.py [--epochs 15] [--seeds 0 1 2] [--folds 5] [--lock FILE]

With ``--lock /tmp/raytag-heavy.lock`` each run takes the shared machine's lock while it trains
(a few minutes) and lets other work in between runs.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import fcntl
import json
import math
import time
from pathlib import Path

import numpy as np
from scipy.stats import spearmanr

from corpus import prepare
from noise_runner import MemoryCorpus, configure_process, load_corpus
from fold_teachers import fold_run_name, leave_outs, write_teacher_record
from run_cache import MODELS, cached_run, finite, job_tree

RESULTS = Path(__file__).resolve().parent / "results"
DEFAULT_OUT = Path(__file__).resolve().parent / "runs"
TRAIN = {"batch_size": 32, "lr": 1e-3, "select_metric": "roc_auc"}
EVAL = {"max_chunks": 16, "batch_size": 64}
VERIFIED_SIZES = (100, 200, 400)
SAMPLE_SEED = 0
PERCENTILE = 80
LABELS = {"bce": "BCE", "btrain": "B-Training", "fold": "B-Training fold teacher",
          "bmasking": "B-Masking (in-sample teacher)", "bmasking_oof": "B-Masking (out-of-fold teachers)"}


class TimeUp(Exception):
    """``--stop-at`` passed before a run started (the run's name)."""


def stop_time(text: str) -> float:
    """``HH:MM`` UTC today as a Unix time."""
    hours, minutes = (int(part) for part in text.split(":"))
    now = datetime.datetime.now(datetime.timezone.utc)
    return now.replace(hour=hours, minute=minutes, second=0, microsecond=0).timestamp()


@contextlib.contextmanager
def heavy_lock(path: Path | None):
    """Holds an exclusive ``flock`` on ``path`` (None: nothing) for the block's duration."""
    if path is None:
        yield
        return
    with open(path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def verified_samples(corpus: MemoryCorpus) -> dict[str, np.ndarray]:
    """``{"valid_verified<N>/": (n_valid,) bool}``: nested seeded samples of the validation split."""
    count = len(corpus.split("valid").table)
    order = np.random.default_rng(SAMPLE_SEED).permutation(count)
    samples = {}
    for size in VERIFIED_SIZES:
        if size > count:
            raise ValueError(f"the validation split has {count} clips, fewer than a verified sample of {size}")
        rows = np.zeros(count, dtype=bool)
        rows[order[:size]] = True
        samples[f"valid_verified{size}/"] = rows
    return samples


def signals() -> dict[str, str]:
    """Selection signal name -> per-epoch metric."""
    out = {"noisy (all valid rows)": "valid/roc_auc"}
    out.update({f"verified, {n} rows": f"valid_verified{n}/roc_auc" for n in VERIFIED_SIZES})
    return out


def tree(name: str, method: str, seed: int, corpus: Path, epochs: int, *, teacher: str | None = None,
         leave_out: dict | None = None) -> dict:
    objective = {"bce": {"name": "bce"}, "btrain": {"name": "balanced_training"}}.get(method)
    if objective is None:
        objective = {"name": "balanced_masking", "percentile": PERCENTILE, "teacher": teacher}
    train = {**TRAIN, "epochs": epochs, **({"leave_out": leave_out} if leave_out else {})}
    return job_tree(name, seed=seed, corpus=corpus, model=MODELS["shortres-tiny"], train=train, objective=objective,
                    eval={**EVAL, "average_last": epochs})  # the clean test split every epoch (reporting only)


def selected(history: list[dict], metric: str) -> dict:
    """The first epoch with ``metric``'s highest value; its value and clean test ROC-AUC."""
    best = max(history, key=lambda h: h[metric])  # max keeps the first of equals
    return {"epoch": int(best["epoch"]), "value": float(best[metric]), "test_roc_auc": float(best["test_epoch/roc_auc"])}


def summarise_run(kind: str, seed: int, result: dict) -> dict:
    history = result["history"]
    return {
        "kind": kind, "seed": seed, "seconds": result["seconds"], "train_tracks": result["train_tracks"],
        "selected": {name: selected(history, metric) for name, metric in signals().items()},
        "best_test_epoch": selected(history, "test_epoch/roc_auc"),
        "masking": {k.removeprefix("masking/"): v for k, v in result["columns"]["metrics"].items()
                    if k.startswith("masking/")},
    }


def analyse(runs: dict[str, dict]) -> dict:
    """Spearman of each signal (at its selected epoch) with the clean test ROC-AUC of that epoch,
    over the runs; the mean test ROC-AUC of the epochs each signal selects."""
    out = {}
    for name in signals():
        values = [r["selected"][name]["value"] for r in runs.values()]
        tests = [r["selected"][name]["test_roc_auc"] for r in runs.values()]
        rho = float(spearmanr(values, tests).statistic) if len(runs) >= 3 else math.nan
        out[name] = {"runs": len(runs), "spearman": rho, "mean_test_roc_auc": float(np.mean(tests)) if tests else None}
    return out


def masking_rows(runs: dict[str, dict]) -> list[dict]:
    rows = []
    for name, run in runs.items():
        if run["kind"] in ("bmasking", "bmasking_oof") and run["masking"]:
            rows.append({"run": name, "teacher": "in-sample" if run["kind"] == "bmasking" else "out-of-fold",
                         "seed": run["seed"], **run["masking"]})
    return rows


def write_report(state: dict, path_json: Path, path_md: Path) -> None:
    runs = state["runs"]
    state["analysis"] = analyse(runs)
    state["masking"] = masking_rows(runs)
    path_json.write_text(json.dumps(finite(state), indent=1))
    lines = ["# Model selection on verified rows, and out-of-fold teachers (issue 25)", "", state["protocol"], "",
             f"Runs finished: {len(runs)} of {state['planned']} planned.", "",
             "## Selection signals vs clean test ROC-AUC", "",
             "Spearman correlation, over the runs, of each signal's ROC-AUC at the epoch it selects with the clean "
             "test ROC-AUC of that epoch; and the mean clean test ROC-AUC of the selected epochs (the best test "
             "epoch, chosen on the clean labels for reference only: "
             f"{np.mean([r['best_test_epoch']['test_roc_auc'] for r in runs.values()]) if runs else float('nan'):.4f}).",
             "", "| signal | runs | Spearman with clean test ROC-AUC | mean clean test ROC-AUC of the selected epochs |",
             "| :--- | ---: | ---: | ---: |"]
    for name, row in state["analysis"].items():
        lines.append(f"| {name} | {row['runs']} | {row['spearman']:+.3f} | {row['mean_test_roc_auc'] or float('nan'):.4f} |")
    lines += ["", "Per run: selected epoch (value → clean test ROC-AUC) for each signal.", "",
              "| run | kind | seed | " + " | ".join(signals()) + " | seconds |",
              "| :--- | :--- | ---: | " + " | ".join("---:" for _ in signals()) + " | ---: |"]
    for name, run in runs.items():
        cells = [f"{s['epoch']} ({s['value']:.3f} → {s['test_roc_auc']:.3f})" for s in run["selected"].values()]
        lines.append(f"| {name} | {LABELS[run['kind']]} | {run['seed']} | " + " | ".join(cells)
                     + f" | {run['seconds']:.0f} |")
    lines += ["", "## Balanced-Masking's mask against the clean truth", "",
              f"Percentile {PERCENTILE}: each tag masks the labelled negatives its teacher scores highest. Precision: "
              "masked entries that are truly missing tags; recall: missing tags that were masked; base rate: the "
              "share of labelled negatives that are truly missing (a random mask's precision).", "",
              "| run | teacher | seed | masked entries | precision | recall | base rate |",
              "| :--- | :--- | ---: | ---: | ---: | ---: | ---: |"]
    for row in state["masking"]:
        lines.append(f"| {row['run']} | {row['teacher']} | {row['seed']} | {row.get('masked_entries', float('nan')):.0f} "
                     f"| {row.get('precision', float('nan')):.3f} | {row.get('recall', float('nan')):.3f} "
                     f"| {row.get('base_rate', float('nan')):.3f} |")
    lines += ["", "## Time", ""]
    teachers = state.get("teacher_seconds", {})
    for seed, cost in sorted(teachers.items()):
        if cost.get("in_sample") and cost.get("out_of_fold"):
            lines.append(f"- seed {seed}: in-sample teacher {cost['in_sample']:.0f} s; {cost['folds']} out-of-fold "
                         f"teachers {cost['out_of_fold']:.0f} s in all ({cost['out_of_fold'] / cost['in_sample']:.2f}× "
                         "the in-sample teacher, measured in this benchmark on the same machine and load).")
    lines.append("- Verified-row selection costs no extra compute: the verified rows' metrics come from the "
                 "validation scores every epoch computes already. Its cost is a person verifying N rows "
                 "(`raytag verify`).")
    path_md.write_text("\n".join(lines) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--results", type=Path, default=RESULTS)
    parser.add_argument("--stop-at", type=stop_time, default=None,
                        help="HH:MM (UTC, today): start no run after it; the report keeps what finished")
    parser.add_argument("--lock", type=Path, default=None,
                        help="a lock file (flock) each run holds while it trains, e.g. /tmp/raytag-heavy.lock")
    args = parser.parse_args()
    configure_process()
    out = args.out.resolve()
    corpus_dir = prepare(out, "selection")
    corpus = load_corpus(corpus_dir / "manifest.csv", corpus_dir / "clean.csv")
    samples = verified_samples(corpus)
    counts = {name: len(corpus.split(name).table) for name in ("train", "valid", "test")}
    args.results.mkdir(parents=True, exist_ok=True)
    path_json, path_md = args.results / "selection.json", args.results / "selection.md"
    state = {"protocol": (
        f"Corpus `selection` (bench/corpus.py): {counts['train']} training / {counts['valid']} validation / "
        f"{counts['test']} test clips, 10 tags, audio-dependent label noise. Model `shortres-tiny`, Adam 1e-3, batch "
        f"32, {args.epochs} epochs, seeds {args.seeds}. Verified samples: {', '.join(map(str, VERIFIED_SIZES))} "
        "validation rows with their clean labels (nested, seeded). Balanced-Masking at the 80th percentile; "
        f"out-of-fold teachers: {args.folds} folds. Trained by bench/noise_runner.py (raytag's Ray-free core), one "
        "thread per run, under `nice -n 10` on the shared 2-core machine."),
        "planned": len(args.seeds) * 3 + args.folds + 1, "runs": {}, "teacher_seconds": {}}

    def record(name: str, kind: str, seed: int, result: dict) -> None:
        state["runs"][name] = summarise_run(kind, seed, result)
        write_report(state, path_json, path_md)

    def run(name: str, kind: str, seed: int, *, job: dict | None = None, **options) -> dict:
        method = "btrain" if kind == "fold" else kind
        if args.stop_at is not None and time.time() >= args.stop_at:
            raise TimeUp(name)
        with heavy_lock(args.lock):  # one run at a time holds the machine's shared lock
            return cached_run(out, tree(name, method, seed, corpus_dir, args.epochs, **(job or {})), corpus,
                              verified_valid=samples, **options)

    try:
        run_all(args, run, record, state)
    except TimeUp as stopped:
        print(f"--stop-at reached before run {stopped}; reporting the runs that finished", flush=True)
    write_report(state, path_json, path_md)
    print(path_md.read_text())


def run_all(args, run, record, state: dict) -> None:
    """Every run of the benchmark, in the order that gives the most when stopped early."""
    out = args.out.resolve()
    for seed in args.seeds:
        # The first seed's teachers first (in-sample, then the folds), so that a stopped benchmark
        # has the masking comparison; BCE last.
        teacher = run(f"sel-btrain-s{seed}", "btrain", seed, export=True)
        record(f"sel-btrain-s{seed}", "btrain", seed, teacher)
        if seed == args.seeds[0]:  # out-of-fold teachers for the first seed only (K runs)
            folds = []
            for fold, leave_out in enumerate(leave_outs(args.folds, seed)):
                name = fold_run_name("sel", fold, args.folds, seed)
                result = run(name, "fold", seed, export=True, job={"leave_out": leave_out})
                record(name, "fold", seed, result)
                folds.append(result)
            oof = write_teacher_record(out / "models" / f"sel-oof{args.folds}-s{seed}", folds=args.folds, seed=seed,
                                       models=[r["model"] for r in folds])
            state["teacher_seconds"][str(seed)] = {"in_sample": teacher["seconds"], "folds": args.folds,
                                                   "out_of_fold": sum(r["seconds"] for r in folds)}
        masking = run(f"sel-bmasking-s{seed}", "bmasking", seed, job={"teacher": teacher["model"]},
                      upstream=(teacher["key"],))
        record(f"sel-bmasking-s{seed}", "bmasking", seed, masking)
        if seed == args.seeds[0]:
            oof_run = run(f"sel-bmasking-oof-s{seed}", "bmasking_oof", seed, job={"teacher": str(oof)},
                          upstream=tuple(r["key"] for r in folds))
            record(f"sel-bmasking-oof-s{seed}", "bmasking_oof", seed, oof_run)
        record(f"sel-bce-s{seed}", "bce", seed, run(f"sel-bce-s{seed}", "bce", seed))


if __name__ == "__main__":
    main()
