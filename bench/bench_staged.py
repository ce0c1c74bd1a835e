"""He et al. 2020 staged training vs BCE on a corpus with a verified subset, with and without the
sigmoid-sparsemax multi-activation head (He et al. Table 1, our corpus), with the diagnostic that
explains it: the share of truly noisy clips among those stage 2 ignored.

Per head (``sigmoid``, ``sigmoid_sparsemax``) and seed, on He et al.'s CNN-GRU (tiny preset):

    bce        BCE on every training clip (verified and unverified), the whole step budget
    verified   stage 1 alone: BCE on the verified clips only (He et al.'s "verified data" column)
    staged2    stage 2: staged training from stage 1's best epoch on every clip, an unverified
               clip's loss ignored above η_t = α·η_{t−1} + (1 − α)·T_t (k 5 of a 32-clip batch:
               He et al.'s 10 of 64; α 0.9)
    staged     stage 3: BCE on the verified clips from stage 2's best epoch (the method's result)

The step budget of ``bce`` (``--epochs`` over all 598 training clips) is split 2:2:1 over the
three stages, as He et al.'s 10k/10k/5k iterations. Every stage and run keeps its best epoch by
noisy-validation ROC-AUC (a stage starts from the previous stage's best, as ``raytag run``
pipelines with ``init_from`` do). Paired differences to ``bce`` with the sigmoid head, per seed.

Differences from He et al.: their stage-2 batches hold as many verified as unverified clips; raytag's
staged training draws stage-2 batches from all training clips (30 % verified here).

    python bench/bench_staged.py --seeds 0 1 2 [--epochs 40]
Report: <out>/results/staged.{json,md}, a scratch folder (bench/run_cache.py's ``scratch_results``):
bench/evidence.py's arms and controls supersede this table in bench/results.
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

from bench_report import difference_section, memorisation_section, write_results
from bench_stats import markdown_table, mean_sd
from corpus import prepare
from noise_runner import configure_process, load_corpus
from run_cache import MODELS, cached_run, job_tree, scratch_results

DEFAULT_OUT = Path(__file__).resolve().parent / "runs"
TRAIN = {"batch_size": 32, "lr": 1e-3, "select_metric": "roc_auc"}
EVAL = {"max_chunks": 16, "batch_size": 64, "average_last": 5}
HEADS = {"sigmoid": "sigmoid", "sigmoid_sparsemax": "sig-sparse"}
STAGED = {"k": 5, "alpha": 0.9}


def stage_epochs(epochs: int, *, all_clips: int, verified_clips: int, batch_size: int) -> tuple[int, int, int]:
    """Epochs of stages 1-3 that split the steps of ``epochs`` epochs over every clip 2:2:1."""
    steps = epochs * math.ceil(all_clips / batch_size)
    per_verified, per_all = math.ceil(verified_clips / batch_size), math.ceil(all_clips / batch_size)
    return (max(1, round(0.4 * steps / per_verified)), max(1, round(0.4 * steps / per_all)),
            max(1, round(0.2 * steps / per_verified)))


def run_table(seeds: list[int], epochs: int, out: Path) -> tuple[dict[str, dict[int, dict]], tuple[int, int, int]]:
    """Every configuration × seed (cached), stages in order; returns (config -> seed -> result,
    the three stages' epochs)."""
    corpus_dir = prepare(out, "verified")
    corpus = load_corpus(corpus_dir / "manifest.csv", corpus_dir / "clean.csv")
    train = corpus.split("train")
    s1, s2, s3 = stage_epochs(epochs, all_clips=len(train.table), verified_clips=int(train.verified.sum()),
                              batch_size=TRAIN["batch_size"])
    results: dict[str, dict[int, dict]] = {}
    for head in HEADS:
        model = {**MODELS["cnn-gru-tiny"], "head": head}
        for seed in seeds:
            def tree(name: str, stage_epochs: int, **sections):
                return job_tree(f"he-{name}-{head}-s{seed}", seed=seed, corpus=corpus_dir, train={**TRAIN,
                                "epochs": stage_epochs}, eval=EVAL, **{"model": model, **sections})

            def add(name: str, result: dict) -> dict:
                results.setdefault(f"{name}-{head}", {})[seed] = result
                return result

            add("bce", cached_run(out, tree("bce", epochs), corpus))
            first = add("verified", cached_run(out, tree("verified", s1, data={"train_subset": "verified"}), corpus,
                                               export=True))
            second = add("staged2", cached_run(
                out, tree("staged2", s2, model={**model, "init": first["model"]},
                          objective={"name": "staged_training", **STAGED}),
                corpus, export=True, upstream=(first["key"],)))
            add("staged", cached_run(
                out, tree("staged", s3, model={**model, "init": second["model"]}, data={"train_subset": "verified"}),
                corpus, upstream=(second["key"],)))
    return results, (s1, s2, s3)


def ignored_section(results: dict[str, dict[int, dict]]) -> str:
    """Stage 2's ignored clips against the truly noisy ones, over all stage-2 epochs."""
    rows = []
    for config, runs in results.items():
        if not config.startswith("staged2"):
            continue
        shares, precisions, recalls, bases = [], [], [], []
        for run in runs.values():
            considered = run["columns"]["metrics"]["staged/unverified_tracks"]
            epochs = run["history"]
            ignored = sum(h["staged/ignored"] for h in epochs)
            caught = sum(h["staged/ignored"] * (h["staged/ignored_precision"] or 0.0) for h in epochs)
            noisy = sum(h["staged/noisy_base_rate"] * considered for h in epochs)
            shares.append(ignored / (considered * len(epochs)))
            precisions.append(caught / ignored if ignored else math.nan)
            recalls.append(caught / noisy if noisy else math.nan)
            bases.append(noisy / (considered * len(epochs)))
        rows.append([config.removeprefix("staged2-"), mean_sd(shares, 3), mean_sd(precisions, 3), mean_sd(bases, 3),
                     mean_sd(recalls, 3)])
    header = ["head", "unverified clips ignored", "truly noisy among ignored (precision)",
              "truly noisy among unverified (base rate)", "noisy clips ignored (recall)"]
    return ("## Stage 2: are the ignored clips the noisy ones?\n\nOver every stage-2 epoch (a clip judged in "
            "several epochs counts each time); a clip is truly noisy when any of its labels differs from the "
            "clean ones. Mean ± sd over seeds.\n\n" + markdown_table(header, rows))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--epochs", type=int, default=40, help="epochs of the BCE baseline over every clip")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args()
    configure_process()
    results, (s1, s2, s3) = run_table(args.seeds, args.epochs, args.out.resolve())
    labels = {f"{name}-{head}": f"{text} ({short})" for head, short in HEADS.items() for name, text in (
        ("bce", "BCE, all clips"), ("verified", "verified clips only (stage 1)"),
        ("staged2", "staged, after stage 2"), ("staged", "staged training (stages 1-3)"))}
    preamble = (
        "Corpus `verified` (bench/corpus.py): 598 training clips of which 179 verified (clean labels), 156 "
        "validation clips (noisy labels), 546 test clips scored against their clean labels. Model `cnn-gru-tiny` "
        f"(He et al.'s CNN-GRU, tiny), Adam 1e-3, batch 32; BCE {args.epochs} epochs over all clips; staged: "
        f"stage 1 {s1} epochs on the verified clips, stage 2 {s2} epochs on all clips (k {STAGED['k']}, "
        f"α {STAGED['alpha']}), stage 3 {s3} epochs on the verified clips (steps 2:2:1, as He et al.). "
        f"{len(args.seeds)} seeds. Each run or stage keeps its best epoch by noisy-validation ROC-AUC. "
        "Trained by bench/noise_runner.py (raytag's Ray-free core, no Ray).")
    base = "bce-sigmoid"
    sections = [
        difference_section(results, baseline=base, labels=labels, heading="Selected epoch: clean-label test metrics"),
        difference_section({k: results[k] for k in ("bce-sigmoid_sparsemax", "staged-sigmoid_sparsemax")},
                           baseline="bce-sigmoid_sparsemax", labels=labels,
                           heading="With the sig-sparse head: staged training vs BCE"),
        ignored_section(results),
        memorisation_section({k: v for k, v in results.items() if k.startswith(("bce", "staged2"))}, labels=labels),
    ]
    write_results(scratch_results(args.out.resolve()), "staged", results, sections, preamble=preamble,
                  title="He et al. 2020 staged training and the sigmoid-sparsemax head on a corpus with a verified subset")


if __name__ == "__main__":
    main()
