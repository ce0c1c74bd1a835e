"""Won et al. 2021 noisy student training (Table 4's short-chunk ResNet rows) on the synthetic
corpus with an unlabeled pool: knowledge-expansion (KE) and knowledge-distillation (KD) students
against their teacher, the teacher trained without and with augmentation (DA).

Per seed, on the ``noisy`` corpus (598 labelled training clips, 2,000 unlabeled):

    teacher        BCE, no augmentation: the same job as bench_noise.py's ``bce`` (reused)
    teacher_da     BCE with the eight augmentations of Won et al. §3.4 (raytag's defaults)
    ke-<teacher>   student of the same size (short-chunk ResNet, 191 k parameters)
    kd-<teacher>   student with half the channels (49 k parameters)

A student trains from scratch on its augmented labelled batch (BCE on the noisy labels) plus as
many augmented unlabeled clips per step (ratio 1, as the paper) against the frozen teacher's
probabilities on the clean clip (soft labels, weight 1). Same epochs, optimiser and selection
rule (best noisy-validation ROC-AUC) as the teacher. The diagnostic: how good the pseudo-labels
are, the teacher's macro ROC-AUC on the unlabeled pool against its true sources.

    python bench/bench_semi.py --seeds 0 1 2 [--epochs 40]
Report: <out>/results/semi.{json,md}, a scratch folder (bench/run_cache.py's ``scratch_results``):
bench/evidence.py's arms and controls supersede this table in bench/results.
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path

import numpy as np

from bench_noise import LAST, lu_tree
from bench_report import difference_section, memorisation_section, write_results
from bench_stats import macro_roc_auc, markdown_table, mean_sd
from corpus import prepare
from noise_runner import configure_process, load_corpus, load_teacher, track_scores
from run_cache import MODELS, cached_run, job_tree, scratch_results

DEFAULT_OUT = Path(__file__).resolve().parent / "runs"
STUDENTS = {"ke": "shortres-tiny", "kd": "shortres-tiny-half"}
TEACHERS = {"teacher": "teacher", "teacher_da": "teacher + DA"}


def source_labels(corpus_dir: Path, paths: tuple[str, ...], tags: tuple[str, ...]) -> np.ndarray:
    """(N, K) true tags of clips from the corpus's ``sources.csv`` (it lists unlabeled clips too)."""
    truth = {path: np.zeros(len(tags), dtype=bool) for path in paths}
    with (corpus_dir / "sources.csv").open(newline="") as f:
        for line, row in enumerate(csv.DictReader(f), start=2):
            path = str((corpus_dir / row["path"]).resolve())
            if path in truth:
                if row["tag"] not in tags:
                    raise ValueError(f"{corpus_dir / 'sources.csv'}:{line}: unknown tag {row['tag']!r}")
                truth[path][tags.index(row["tag"])] = True
    return np.stack([truth[p] for p in paths])


def run_table(seeds: list[int], epochs: int, out: Path) -> tuple[dict[str, dict[int, dict]], dict[str, list[float]]]:
    """Every configuration × seed (cached); returns (config -> seed -> result, teacher -> the
    pseudo-labels' macro ROC-AUC on the unlabeled pool per seed)."""
    corpus_dir = prepare(out, "noisy")
    corpus = load_corpus(corpus_dir / "manifest.csv", corpus_dir / "clean.csv",
                         splits=("train", "valid", "test", "unlabeled"))
    pool = corpus.split("unlabeled")
    truth = source_labels(corpus_dir, pool.table.paths, corpus.tags)
    results: dict[str, dict[int, dict]] = {}
    quality: dict[str, list[float]] = {name: [] for name in TEACHERS}
    for seed in seeds:
        plain = lu_tree("bce", seed, corpus_dir, out, epochs)
        teachers = {
            "teacher": cached_run(out, plain, corpus, export=True),
            "teacher_da": cached_run(out, {**plain, "name": f"ns-teacher_da-s{seed}", "augment": {"enabled": True}},
                                     corpus, export=True),
        }
        for name, teacher in teachers.items():
            results.setdefault(name, {})[seed] = teacher
            network, rate, crop = load_teacher(teacher["model"], key="semi.teacher", tags=corpus.tags)
            scores = track_scores(network, pool, sample_rate=rate, crop_samples=crop, max_chunks=16, batch_size=64)
            quality[name].append(macro_roc_auc(truth, scores))
        for name, teacher in teachers.items():
            for kind, model in STUDENTS.items():
                tree = job_tree(f"ns-{kind}-{name}-s{seed}", seed=seed, corpus=corpus_dir, model=MODELS[model],
                                train=plain["train"], eval=plain["eval"], augment={"enabled": True},
                                semi={"enabled": True, "teacher": teacher["model"], "ratio": 1.0, "weight": 1.0})
                results.setdefault(f"{kind}-{name}", {})[seed] = cached_run(out, tree, corpus, upstream=(teacher["key"],))
    return results, quality


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--epochs", type=int, default=40, help="as bench_noise.py's, to reuse its BCE runs")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args()
    configure_process()
    results, quality = run_table(args.seeds, args.epochs, args.out.resolve())
    labels = dict(TEACHERS)
    labels.update({f"{kind}-{name}": f"{kind.upper()} student of {text}" for name, text in TEACHERS.items()
                   for kind in STUDENTS})
    params = {labels[c]: next(iter(runs.values()))["params"] for c, runs in results.items()}
    preamble = (
        "Corpus `noisy` (bench/corpus.py): 598 labelled training clips, 2,000 unlabeled clips, 156 validation "
        "clips (noisy labels), 546 test clips scored against their clean labels. Short-chunk ResNets (Won et al. "
        "Table 4's baseline architecture; parameters: " + ", ".join(f"{k} {v:,}" for k, v in params.items())
        + f"), Adam 1e-3, batch 32 labelled + 32 unlabeled per step, {args.epochs} epochs, {len(args.seeds)} "
        "seeds, augmentation: raytag's defaults (Won et al. §3.4, the authors' probabilities). Selected epoch: "
        "best noisy-validation ROC-AUC. Trained by bench/noise_runner.py (raytag's Ray-free core, no Ray).")
    quality_rows = [[TEACHERS[name], mean_sd(values)] for name, values in quality.items()]
    sections = [
        difference_section(results, baseline="teacher", labels=labels,
                           heading="Selected epoch: clean-label test metrics, against the teacher without DA"),
        difference_section({k: results[k] for k in ("teacher_da", "ke-teacher_da", "kd-teacher_da")},
                           baseline="teacher_da", labels=labels, heading="Students of the teacher + DA against it"),
        difference_section(results, baseline="teacher", labels=labels, part="test_last",
                           heading=f"Last {LAST} epochs' mean: clean-label test metrics"),
        "## How good are the pseudo-labels?\n\nThe teacher's macro ROC-AUC on the 2,000 unlabeled clips against "
        "their true sources (the soft labels the students learn from), mean ± sd over seeds.\n\n"
        + markdown_table(["teacher", "pseudo-label ROC-AUC"], quality_rows),
        memorisation_section(results, labels=labels),
    ]
    write_results(scratch_results(args.out.resolve()), "semi", results, sections, preamble=preamble,
                  title="Won et al. 2021 noisy student training (KE and KD) on the synthetic corpus")


if __name__ == "__main__":
    main()
