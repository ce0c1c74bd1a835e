"""Lu et al. 2022 Table 2 on the synthetic noisy corpus, with diagnostics that explain it.

Methods (all on the same short-chunk ResNet, corpus, budget and selection rule):

    bce             plain BCE on the noisy labels (the baseline)
    bootstrap_soft  Reed et al. soft bootstrapping (β 0.95)
    bootstrap_hard  Reed et al. hard bootstrapping (β 0.8)
    coteaching      Han et al. co-teaching (τ 0.2, reached after 10 epochs: raytag's defaults)
    btrain          Balanced-Training (Algorithm 1); also the stage-1 teacher of the next two
    bmasking        Balanced-Masking (eq. 3, 80th percentile), teacher: btrain of the same seed
    bmasking_mt     Balanced-Masking + mean teacher (eqs. 4-7): Lu's "Proposed"
    oracle          BCE on the *clean* training labels: not a method, the ceiling noise leaves

Protocol: every run trains ``--epochs`` epochs; the selected epoch is the best by noisy-validation
ROC-AUC (its test metrics are the table's); the last 5 epochs' test metrics are averaged too
(the memorised regime). Test metrics are against the clean labels of 546 test clips. Per method,
the paired difference to BCE of the same seed, with its 95 % t-interval over seeds.

Runs use bench/noise_runner.py: raytag's Ray-free core in one process (no Ray: its per-run
overhead would not fit ≥ 3 seeds × 8 configurations on 2 cores), one thread each.

    python bench/bench_noise.py pilot [--epochs 60]            # does BCE memorise the noise?
    python bench/bench_noise.py table --seeds 0 1 2 [--epochs 40]
    python bench/bench_noise.py lu --seeds 0 1 2 [--window 40 --more 30]   # Lu et al.'s protocol
Results: <out>/runs/*.json (cached: a rerun resumes); ``lu`` writes bench/results/noise-lu.{json,md}
(``--results``; the README cites it as the old 1.5 s-clip run); ``pilot`` and ``table`` write
<out>/results/ (a scratch folder: bench/evidence.py's arms supersede their tables).

``lu`` is Lu et al.'s own protocol (§3.1), through the same run a Ray Train worker runs
(raytag.engine.run.fit): the best epoch by noisy-validation ROC-AUC is chosen among the first
``--window`` epochs, its whole training state (model, mean teacher, Adam) is restored, training
goes on for ``--more`` epochs, and the reported figure is the mean clean-label test metric of the
last 10 epochs. BCE vs B-Training vs B-Masking vs B-Masking + mean teacher (the full method).
The paper trains 80 + 60 epochs of ~1000 steps on MTG-Jamendo; this corpus has ~19 steps per
epoch and BCE's noisy validation loss levels off by epoch ~16 (``table`` at 20 epochs), so the
default 40 + 30 epochs (half the paper's) puts BCE well past its best before the window closes.
The mean teacher's warm-up and ramp (40 epochs and T0 = 40000 steps of 140 epochs in the paper)
keep their share of the budget; η 0.999 (about one paper epoch) is a one-epoch EMA window.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from bench_report import difference_section, masking_section, memorisation_section, write_results
from bench_stats import markdown_table
from corpus import prepare
from noise_runner import configure_process, load_corpus
from run_cache import MODELS, cached_run, job_tree, scratch_results

RESULTS = Path(__file__).resolve().parent / "results"
DEFAULT_OUT = Path(__file__).resolve().parent / "runs"
TRAIN = {"batch_size": 32, "lr": 1e-3, "select_metric": "roc_auc"}
EVAL = {"max_chunks": 16, "batch_size": 64}
LAST = 5
LABELS = {"bce": "BCE", "bootstrap_soft": "bootstrap (soft)", "bootstrap_hard": "bootstrap (hard)",
          "coteaching": "co-teaching", "btrain": "B-Training", "bmasking": "B-Masking",
          "bmasking_mt": "B-Masking + mean teacher", "oracle": "BCE on clean labels (oracle)"}
PROTOCOL = (
    "Corpus `noisy` (bench/corpus.py): 598 training, 156 validation clips with audio-dependent noisy labels, "
    "546 test clips scored against their clean labels; 10 tags. Model `shortres-tiny` (short-chunk ResNet, "
    "191 k parameters), Adam 1e-3, batch 32, {epochs} epochs, {seeds} seeds (the seed sets the initial weights, "
    "the order, the crops and every method's draws). Selected epoch: best noisy-validation ROC-AUC. Trained "
    "by bench/noise_runner.py: raytag's Ray-free core (methods, models, engine, seeding, metrics) without Ray, "
    "one process, one thread per run.")
METHODS = ("bce", "bootstrap_soft", "bootstrap_hard", "coteaching", "btrain", "bmasking", "bmasking_mt", "oracle")
LU_METHODS = ("bce", "btrain", "bmasking", "bmasking_mt")
LU_LAST = 10
"""Lu et al. report the mean of the last 10 epochs."""
LU_PROTOCOL = (
    "Lu et al.'s protocol (§3.1) through raytag.engine.run.fit, the run a Ray Train worker runs: the best epoch "
    "by noisy-validation ROC-AUC is chosen among the first {window} epochs, its whole training state (model, "
    "mean teacher, Adam moments) is restored, and training continues for {more} more epochs; the figure reported "
    "is the mean clean-label test metric of the last {last} epochs. Paper: 80 + 60 epochs of ~1000 steps; here "
    "{window} + {more} epochs of ~19 steps (corpus `noisy`, 598 training / 156 validation / 546 test clips, 10 "
    "tags, `shortres-tiny`, Adam 1e-3, batch 32). Mean teacher: warm-up and ramp {share} epochs each (the paper's "
    "40 epochs and T0 40000 steps, as shares of its 140), η over a one-epoch window, β_max 0.8, γ 0.5. "
    "Balanced-Masking: 80th percentile, teacher = B-Training of the same seed (its window-selected epoch). "
    "{seeds} seeds; paired differences to BCE of the same seed with 95 % t-intervals.")


def objectives(epochs: int, teacher: str) -> dict[str, dict]:
    """Each method's ``objective`` section. Mean-teacher settings scaled from Lu et al.'s 140
    epochs of ~1000 steps (MTG-Jamendo, batch 32): η 0.999 averages about one epoch
    (``window_epochs`` 1); T0 40000 steps and the 40 warm-up epochs are each 29 % of the budget."""
    share = max(1, round(epochs * 40 / 140))
    masking = {"percentile": 80, "teacher": teacher}
    return {
        "bce": {"name": "bce"}, "oracle": {"name": "bce"},
        "bootstrap_soft": {"name": "bootstrap_soft"}, "bootstrap_hard": {"name": "bootstrap_hard"},
        "coteaching": {"name": "coteaching"},
        "btrain": {"name": "balanced_training"},
        "bmasking": {"name": "balanced_masking", **masking},
        "bmasking_mt": {"name": "balanced_masking", **masking, "mean_teacher": {
            "enabled": True, "window_epochs": 1.0, "ramp_epochs": float(share), "warmup_epochs": share,
            "beta_max": 0.8, "gamma": 0.5}},
    }


def lu_tree(method: str, seed: int, corpus: Path, out: Path, epochs: int, *, last: int = LAST) -> dict:
    """The job of one method and seed (run name ``lu-<method>-s<seed>``)."""
    teacher = str(out / "models" / f"lu-btrain-s{seed}")
    return job_tree(f"lu-{method}-s{seed}", seed=seed, corpus=corpus, model=MODELS["shortres-tiny"],
                    train={**TRAIN, "epochs": epochs}, objective=objectives(epochs, teacher)[method],
                    eval={**EVAL, "average_last": last})


def lu_protocol_tree(method: str, seed: int, corpus: Path, out: Path, *, window: int, more: int) -> dict:
    """The job of one method and seed under Lu et al.'s protocol: ``window`` + ``more`` epochs,
    the best epoch chosen in the window, the last ``min(10, more)`` epochs averaged on the test split."""
    epochs = window + more
    tag = f"w{window}m{more}"
    teacher = str(out / "models" / f"lup-btrain-s{seed}-{tag}")
    return job_tree(f"lup-{method}-s{seed}-{tag}", seed=seed, corpus=corpus, model=MODELS["shortres-tiny"],
                    train={**TRAIN, "epochs": epochs, "select_until_epoch": window},
                    objective=objectives(epochs, teacher)[method], eval={**EVAL, "average_last": min(LU_LAST, more)})


def run_lu_protocol(seeds: list[int], window: int, more: int, out: Path) -> dict:
    """Every Lu-protocol method × seed (cached; B-Training before the maskers it teaches)."""
    corpus_dir = prepare(out, "noisy")
    corpus = load_corpus(corpus_dir / "manifest.csv", corpus_dir / "clean.csv")
    results: dict[str, dict[int, dict]] = {m: {} for m in LU_METHODS}
    for method in LU_METHODS:
        for seed in seeds:
            tree = lu_protocol_tree(method, seed, corpus_dir, out, window=window, more=more)
            upstream = (results["btrain"][seed]["key"],) if method in ("bmasking", "bmasking_mt") else ()
            results[method][seed] = cached_run(out, tree, corpus, export=method == "btrain", upstream=upstream)
    return results


def validation_curve_section(results: dict, *, window: int, labels: dict[str, str]) -> str:
    """Where each method's noisy-validation curve peaks, against the selection window and the
    end of training: is BCE past its best (the regime the methods target)?"""
    rows = []
    for config, runs in results.items():
        for seed, run in sorted(runs.items()):
            history = run["history"]
            peak = max(history, key=lambda h: h["valid/roc_auc"])
            low = min(history, key=lambda h: h["valid/loss"])
            rows.append([labels.get(config, config), str(seed), str(run["best_epoch"]), str(peak["epoch"]),
                         str(low["epoch"]), f"{low['valid/loss']:.4f}", f"{history[-1]['valid/loss']:.4f}",
                         f"{peak['valid/roc_auc']:.4f}", f"{history[-1]['valid/roc_auc']:.4f}"])
    header = ["configuration", "seed", "selected epoch (window)", "valid ROC-AUC peak epoch",
              "valid loss lowest epoch", "lowest valid loss", "last valid loss", "peak valid ROC-AUC",
              "last valid ROC-AUC"]
    return (f"## Validation curves (noisy labels): past the best?\n\nEpochs are numbered from 1; the selection window is "
            f"epochs 1–{window}. A method is past its best when its validation loss is lowest well before the "
            f"last epoch and ends higher.\n\n" + markdown_table(header, rows))


def run_table(seeds: list[int], epochs: int, out: Path, methods: tuple[str, ...] = METHODS) -> dict:
    """Every method × seed (cached), in the order teachers are needed; returns method -> seed -> result."""
    corpus_dir = prepare(out, "noisy")
    corpus = load_corpus(corpus_dir / "manifest.csv", corpus_dir / "clean.csv")
    results: dict[str, dict[int, dict]] = {m: {} for m in methods}
    for method in methods:  # method by method: every seed's BCE first (bench_semi.py's teacher)
        for seed in seeds:
            tree = lu_tree(method, seed, corpus_dir, out, epochs)
            upstream = (results["btrain"][seed]["key"],) if method in ("bmasking", "bmasking_mt") else ()
            results[method][seed] = cached_run(out, tree, corpus, export=method in ("bce", "btrain"), upstream=upstream,
                                               train_labels="clean" if method == "oracle" else "manifest")
    return results


def pilot(epochs: int, out: Path, model: str, corpus_name: str, seed: int = 0) -> dict:
    """BCE for ``epochs`` epochs with the test split evaluated every epoch."""
    corpus_dir = prepare(out, corpus_name)
    corpus = load_corpus(corpus_dir / "manifest.csv", corpus_dir / "clean.csv")
    tree = job_tree(f"pilot-{model}-{corpus_name}-s{seed}", seed=seed, corpus=corpus_dir, model=MODELS[model],
                    train={**TRAIN, "epochs": epochs}, eval={**EVAL, "average_last": epochs})
    return cached_run(out, tree, corpus)


def pilot_report(result: dict, every: int = 2) -> str:
    """Per-epoch losses and ROC-AUCs of a pilot run, and where validation loss turned up."""
    history = result["history"]
    low = min(history, key=lambda h: h["valid/loss"])
    best = max(history, key=lambda h: h["test_epoch/roc_auc"])
    lines = [f"Pilot `{result['job']}`: BCE, {len(history)} epochs, {result['train_tracks']} training clips.",
             f"Validation loss is lowest at epoch {low['epoch']} ({low['valid/loss']:.4f}) and "
             f"{history[-1]['valid/loss']:.4f} at the last; train loss falls from {history[0]['train/loss']:.4f} "
             f"to {history[-1]['train/loss']:.4f}. Clean test ROC-AUC peaks at epoch {best['epoch']} "
             f"({best['test_epoch/roc_auc']:.4f}); the epoch selected by noisy-validation ROC-AUC is "
             f"{result['best_epoch']} (test {result['test']['roc_auc']:.4f}). Selected and last epochs "
             f"fit the wrong training labels as follows (missing tags scored < 0.5, spurious > 0.5): "
             f"best {result['memorised']['best']['missing_fitted']:.3f} / "
             f"{result['memorised']['best']['spurious_fitted']:.3f}, last "
             f"{result['memorised']['last']['missing_fitted']:.3f} / "
             f"{result['memorised']['last']['spurious_fitted']:.3f}.", "",
             "| epoch | train loss | valid loss (noisy) | valid ROC-AUC (noisy) | test ROC-AUC (clean) | "
             "test PR-AUC (clean) |", "| ---: | ---: | ---: | ---: | ---: | ---: |"]
    for h in history:
        if h["epoch"] % every == 0 or h["epoch"] in (1, low["epoch"], result["best_epoch"]):
            lines.append(f"| {h['epoch']} | {h['train/loss']:.4f} | {h['valid/loss']:.4f} | "
                         f"{h['valid/roc_auc']:.4f} | {h['test_epoch/roc_auc']:.4f} | {h['test_epoch/pr_auc']:.4f} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("command", choices=("pilot", "table", "lu"))
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--epochs", type=int, default=None, help="default: 60 (pilot), 40 (table)")
    parser.add_argument("--model", default="shortres-tiny", choices=sorted(MODELS), help="pilot only")
    parser.add_argument("--corpus", default="noisy", choices=("noisy", "verified"), help="pilot only")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="working folder (runs, corpora, models)")
    parser.add_argument("--window", type=int, default=40, help="lu: epochs in which the best epoch is chosen")
    parser.add_argument("--more", type=int, default=30, help="lu: epochs trained after the window")
    parser.add_argument("--results", type=Path, default=RESULTS, help="lu: where noise-lu.{json,md} go")
    args = parser.parse_args()
    configure_process()
    out = args.out.resolve()
    if args.command == "pilot":
        result = pilot(args.epochs or 60, out, args.model, args.corpus)
        text = pilot_report(result)
        stem = f"pilot-{args.model}-{args.corpus}"
        scratch = scratch_results(out)
        (scratch / f"{stem}.json").write_text(json.dumps({k: v for k, v in result.items() if k != "key"}, indent=1))
        (scratch / f"{stem}.md").write_text(f"# {stem}\n\n{text}\n")
        print(text)
        return
    if args.command == "lu":
        lu_main(args.seeds, args.window, args.more, out, args.results)
        return
    epochs = args.epochs or 40
    results = run_table(args.seeds, epochs, out)
    sections = [
        difference_section(results, baseline="bce", labels=LABELS, heading="Selected epoch (best noisy-validation "
                           "ROC-AUC): clean-label test metrics"),
        difference_section(results, baseline="bce", labels=LABELS, part="test_last",
                           heading=f"Last {LAST} epochs' mean (the memorised regime): clean-label test metrics"),
        memorisation_section(results, labels=LABELS),
        masking_section(results["bmasking"], name="Balanced-Masking"),
    ]
    write_results(scratch_results(out), "noise", results, sections, preamble=PROTOCOL.format(epochs=epochs, seeds=len(args.seeds)),
                  title="Lu et al. 2022 Table 2 on the synthetic noisy corpus")


def lu_main(seeds: list[int], window: int, more: int, out: Path, folder: Path) -> str:
    """Runs (or reads from the cache) Lu et al.'s protocol and writes ``noise-lu.{json,md}``."""
    if window < 1 or more < 1:
        raise SystemExit("--window and --more must be at least 1")
    results = run_lu_protocol(seeds, window, more, out)
    last = min(LU_LAST, more)
    share = max(1, round((window + more) * 40 / 140))
    sections = [
        difference_section(results, baseline="bce", labels=LABELS, part="test_last",
                           heading=f"Mean of the last {last} epochs (Lu et al.'s reported figure): clean-label test "
                           "metrics"),
        difference_section(results, baseline="bce", labels=LABELS, heading=f"Epoch selected in the first {window} "
                           "epochs: clean-label test metrics"),
        validation_curve_section(results, window=window, labels=LABELS),
        memorisation_section(results, labels=LABELS),
        masking_section(results["bmasking"], name="Balanced-Masking"),
    ]
    return write_results(folder, "noise-lu", results, sections, title="Lu et al. 2022's protocol on the synthetic "
                         "noisy corpus", preamble=LU_PROTOCOL.format(window=window, more=more, last=last, share=share,
                                                                     seeds=len(seeds)))


if __name__ == "__main__":
    main()
