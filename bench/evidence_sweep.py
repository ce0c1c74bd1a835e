"""The evidence arms' swept hyperparameters (issue 28): Balanced-Masking's percentile, the mean
teacher's EMA window (η) and β_max, chosen by ``raytag sweep`` on verified validation rows.

    nice -n 10 python bench/evidence_sweep.py [--teachers in_sample out_of_fold] [--epochs 28]

This module owns ``bench/results/evidence-sweep.json``: it runs the sweep, writes the file, and
reads it back for ``bench/evidence.py`` (:func:`arm_choices`).

**The product's path.** The sweep is ``raytag sweep`` (its command function, run in this process:
Ray Tune over Ray Train runs, MLflow tracking in ``<out>/mlflow.db``) of a two-stage pipeline job, the search space ``tune_spaces/evidence-masking.yaml`` on
its ``student`` stage: stage ``teacher`` (Balanced-Training; with ``--teachers out_of_fold`` a
``folds: 5`` stage of out-of-fold teachers) runs once, then one trial per grid point trains the
Balanced-Masking + mean-teacher student. Trials are ranked as the product ranks them: the best
epoch's ``valid_verified/roc_auc`` (``train.select_labels: verified``); the same trials ranked on
the noisy rows (``valid/roc_auc``) are reported beside it, and ``bench/evidence.py --select
noisy`` takes that ranking's winner.

**Sized for 2 CPUs.** A development corpus that is no evaluated seed's (:data:`DEV_SEED`; the
evidence corpus's regime: 10 s tracks, 3 s random crops, Lu et al.'s noise, 200 verified
validation rows) with 300 training tracks, and a shortened schedule: :data:`SWEEP_EPOCHS` (28, a
fifth of the protocol's 140) with no selection window, the mean teacher's warm-up and ramp scaled
to it as the protocol scales them. The grid is 3 percentiles × 2 windows × 2 β_max = 12 trials
(FIFO: every trial runs its full length, so both rankings see the same epochs).

Until the sweep has run, the arms use the papers' values (:func:`paper_choice`), and
evidence.md says so.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict, dataclass
from pathlib import Path

import yaml

import evidence_corpus as corpora
from bench_stats import markdown_table  # bench/bench_stats.py, beside this file

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
SWEEP_FILE = "evidence-sweep.json"
SPACE = ROOT / "tune_spaces" / "evidence-masking.yaml"
DEV_SEED = 1000
"""The development corpus is ``evidence_corpus.prepare(out, DEV_SEED)``: SynthSpec seed 3800, no
evaluated seed's corpus (those are seeds 0, 1, ... of the same base)."""
DEV_SIZES = corpora.Sizes(train=300, valid=300, test=100, unlabeled=0)
SWEEP_EPOCHS = 28
TEACHERS = {"in_sample": None, "out_of_fold": 5}
"""Teacher kind -> the teacher stage's ``folds`` (None: one in-sample teacher)."""
SIGNALS = {"verified": "valid_verified/roc_auc", "noisy": "valid/roc_auc"}
PAPER_WINDOW_FRACTION = 1000 / (2009 * 140)
"""Lu et al.'s η 0.999 (an EMA over 1,000 steps) as a share of their run (140 epochs of 2,009 steps)."""
PERCENTILE, WINDOW, BETA = "objective.percentile", "objective.mean_teacher.window_epochs", "objective.mean_teacher.beta_max"


@dataclass(frozen=True)
class Choice:
    """Balanced-Masking's settings for the arms: the percentile, the EMA window as a share of the
    run (the arms' window in epochs is ``window_fraction × epochs``) and β_max."""

    percentile: float
    window_fraction: float
    beta_max: float
    source: str


def paper_choice() -> Choice:
    """The papers' values: percentile 80 (Lu et al.'s grid choice), η 0.999, β_max 0.8."""
    return Choice(80, PAPER_WINDOW_FRACTION, 0.8, "paper")


def trial_best(history: list[dict], metric: str) -> float | None:
    """A trial's value on ``metric``: its best epoch's (Tune's ``scope="all"``, max)."""
    values = [h[metric] for h in history if isinstance(h.get(metric), (int, float))]
    return max(values) if values else None


def choose(trials: list[dict], signal: str, *, sweep_epochs: int) -> dict | None:
    """The trial ``signal`` (``verified`` / ``noisy``) ranks first, as a :class:`Choice`'s fields
    plus ``value`` and ``trial``; None without a trial that has the signal. Ties: the first."""
    scored = [t for t in trials if t.get(signal) is not None]
    if not scored:
        return None
    best = max(scored, key=lambda t: t[signal])
    paper, config = paper_choice(), best["config"]
    return {"percentile": config.get(PERCENTILE, paper.percentile),
            "window_fraction": config[WINDOW] / sweep_epochs if WINDOW in config else paper.window_fraction,
            "beta_max": config.get(BETA, paper.beta_max), "value": best[signal], "trial": best["trial"]}


def summarise(trials: list[dict], *, sweep_epochs: int) -> dict:
    """One teacher kind's sweep: each trial's config and best value on both signals, the choice
    of each signal, and where the verified choice ranks on the noisy signal."""
    rows = [{"trial": t["trial"], "config": t["config"], "epochs": len(t["history"]),
             **{signal: trial_best(t["history"], metric) for signal, metric in SIGNALS.items()}} for t in trials]
    chosen = {signal: choose(rows, signal, sweep_epochs=sweep_epochs) for signal in SIGNALS}
    noisy_order = sorted((r for r in rows if r["noisy"] is not None), key=lambda r: -r["noisy"])
    verified = chosen["verified"]
    rank = next((i + 1 for i, r in enumerate(noisy_order) if verified and r["trial"] == verified["trial"]), None)
    return {"trials": rows, "chosen": chosen, "verified_choice_noisy_rank": rank}


def read_trials(experiment: Path) -> list[dict]:
    """The trials of a Tune experiment folder: ``{"trial", "config", "history"}`` from each trial
    folder's ``params.json`` and ``result.json`` (one JSON line per reported epoch)."""
    trials = []
    for params in sorted(Path(experiment).glob("*/params.json")):
        lines = (params.parent / "result.json").read_text().splitlines() if (params.parent / "result.json").is_file() else []
        history = [json.loads(line) for line in lines if line.strip()]
        trials.append({"trial": params.parent.name, "config": json.loads(params.read_text()), "history": history})
    return trials


def arm_choices(results: Path, select: str) -> tuple[dict[str, Choice], str]:
    """What the arms take: teacher kind -> :class:`Choice` (the sweep's winner on ``select``'s
    rows, else the papers' values), and one sentence for evidence.md saying which."""
    path = Path(results) / SWEEP_FILE
    data = json.loads(path.read_text()) if path.is_file() else {}
    out, said, fallback = {}, [], []
    for kind in TEACHERS:
        chosen = data.get("teachers", {}).get(kind, {}).get("chosen", {}).get(select)
        if chosen is None:
            out[kind] = paper_choice()
            fallback.append(kind.replace("_", "-"))
        else:
            out[kind] = Choice(chosen["percentile"], chosen["window_fraction"], chosen["beta_max"], f"sweep-{select}")
            said.append(f"{kind.replace('_', '-')} teacher: swept on {select} rows of the development corpus (seed "
                        f"{data.get('dev_seed')}): percentile {chosen['percentile']:g}, EMA window "
                        f"{chosen['window_fraction']:.4f} of the run, β_max {chosen['beta_max']:g}")
    if fallback:
        said.append(f"{' and '.join(fallback)} teacher: the papers' values (percentile 80, η 0.999, β_max 0.8), "
                    f"because {SWEEP_FILE} has no {select}-row sweep for it (`bench/evidence_sweep.py` has not run)")
    return out, "; ".join(said) + "."


def report_section(data: dict) -> list[str]:
    """evidence.md's lines for the sweep (``data``: evidence-sweep.json): per teacher kind, each
    trial's settings and best validation ROC-AUC on the verified and the noisy rows, each
    signal's choice, where the verified choice ranks on the noisy rows, and the spread."""
    if not data.get("teachers"):
        return ["No sweep has run (`bench/evidence_sweep.py`): the masking arms take the papers' values."]
    epochs = data.get("sweep_epochs", SWEEP_EPOCHS)
    lines = [f"`raytag sweep` of tune_spaces/evidence-masking.yaml on the development corpus (seed "
             f"{data.get('dev_seed')}, {data.get('sizes', {}).get('train', '?')} training tracks), {epochs}-epoch trials, "
             "each trial one run: its best epoch's ROC-AUC on the 200 verified validation rows (the product's "
             "ranking, `train.select_labels: verified`) and on all validation rows with their noisy labels.", ""]
    for kind, summary in data["teachers"].items():
        chosen = summary.get("chosen", {})
        marks = {signal: (chosen.get(signal) or {}).get("trial") for signal in SIGNALS}
        rows = []
        for trial in sorted(summary["trials"], key=lambda t: -(t.get("verified") or -1)):
            config = trial["config"]
            rows.append([f"{config.get(PERCENTILE, '–')}", f"{config.get(WINDOW, '–')}", f"{config.get(BETA, '–')}",
                         _value(trial.get("verified")) + (" **(chosen)**" if trial["trial"] == marks["verified"] else ""),
                         _value(trial.get("noisy")) + (" **(chosen)**" if trial["trial"] == marks["noisy"] else "")])
        values = [t["verified"] for t in summary["trials"] if t.get("verified") is not None]
        spread = f"{max(values) - min(values):.4f}" if values else "–"
        gap = ""
        if len(values) > 1:
            top = sorted(values, reverse=True)
            gap = f"; the chosen trial leads the next by {top[0] - top[1]:.4f}"
        lines += [f"### {kind.replace('_', '-')} teacher", "",
                  markdown_table(["percentile", f"EMA window (epochs of {epochs})", "β_max",
                                  "verified ROC-AUC", "noisy ROC-AUC"], rows), "",
                  f"Verified rows choose {_choice(chosen.get('verified'))}; noisy rows choose "
                  f"{_choice(chosen.get('noisy'))}. The verified choice ranks {summary.get('verified_choice_noisy_rank')} "
                  f"of {len(rows)} on the noisy rows. Spread of the verified values: {spread}{gap}. Each trial is one "
                  "run on one corpus, so differences of this size are not settled; the arms take the verified "
                  "choice as the product would.", ""]
    return lines


def _value(value) -> str:
    return "–" if value is None else f"{value:.4f}"


def _choice(chosen: dict | None) -> str:
    if not chosen:
        return "nothing (no trial has the signal)"
    return (f"percentile {chosen['percentile']:g}, EMA window {chosen['window_fraction']:.4f} of the run, "
            f"β_max {chosen['beta_max']:g}")


def sweep_job(corpus: Path, out: Path, kind: str, *, epochs: int, verified: int = corpora.VERIFIED_VALID) -> dict:
    """The pipeline job the sweep runs for teacher kind ``kind`` (see the module docstring)."""
    from evidence_arms import MODEL, Protocol  # bench/evidence_arms.py imports this module

    protocol = Protocol()
    mean_teacher = Protocol(window=epochs, more=0, last=0).mean_teacher()  # the papers' terms, at this length
    teacher = {"name": "teacher", "overrides": {"objective": {"name": "balanced_training"}}}
    if TEACHERS[kind] is not None:
        teacher["folds"] = TEACHERS[kind]
    return {
        "name": f"evidence-sweep-{kind.replace('_', '-')}", "seed": DEV_SEED, "storage": str(out / "storage"),
        "data": {"manifest": str(corpus / "manifest.csv"), "clean_labels": str(corpus / "clean.csv")},
        "model": MODEL, "scaling": {"num_workers": 1, "cpus_per_worker": 1},
        "train": {"epochs": epochs, "batch_size": protocol.batch_size, "lr": protocol.lr,
                  "weight_decay": protocol.weight_decay, "select_metric": "roc_auc", "select_labels": "verified",
                  "log_every": 1000},
        "eval": {"split": "valid", "max_chunks": protocol.max_chunks, "threshold_min_verified": min(100, verified)},
        "tracking": {"uri": f"sqlite:///{out / 'mlflow.db'}", "experiment": "evidence-sweep"},
        "stages": [teacher, {"name": "student", "teacher": "teacher", "overrides": {"objective": {
            "name": "balanced_masking", "percentile": 80, "mean_teacher": mean_teacher}}}],
    }


def run_sweep(out: Path, kind: str, *, epochs: int, sizes: corpora.Sizes = DEV_SIZES,
              seconds: float = corpora.SECONDS, space: Path = SPACE) -> dict:
    """Runs ``raytag sweep`` for teacher kind ``kind`` on the development corpus (a finished sweep
    is resumed, not rerun) and returns :func:`summarise` of its trials."""
    from raytag.cli import cmd_sweep  # `raytag sweep`, in this process (a test's Ray instance serves it)

    corpus, _ = corpora.prepare(out, DEV_SEED, sizes, seconds=seconds)
    job = sweep_job(corpus, out, kind, epochs=epochs, verified=sizes.verified_valid)
    job_file = out / f"{job['name']}.yaml"
    job_file.write_text(yaml.safe_dump(job, sort_keys=False))
    experiment = out / "storage" / f"{job['name']}-sweep"
    # raytag sweep JOB SPACE --scheduler fifo --samples 1 --max-concurrent 1 [--resume]: the grid, each
    # trial its whole length, one at a time
    cmd_sweep(argparse.Namespace(job=str(job_file), space=str(space), overrides=[], samples=1, scheduler="fifo",
                                 search="random", max_concurrent=1, resume=experiment.is_dir()))
    return {**summarise(read_trials(experiment), sweep_epochs=epochs), "job": job["name"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--teachers", nargs="+", choices=sorted(TEACHERS), default=list(TEACHERS))
    parser.add_argument("--epochs", type=int, default=SWEEP_EPOCHS)
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "runs" / "evidence-sweep")
    parser.add_argument("--results", type=Path, default=RESULTS)
    parser.add_argument("--train", type=int, default=DEV_SIZES.train, help="development corpus training tracks")
    parser.add_argument("--seconds", type=float, default=corpora.SECONDS, help="track length (s)")
    args = parser.parse_args()
    out, path = args.out.resolve(), args.results / SWEEP_FILE
    sizes = corpora.Sizes(**{**asdict(DEV_SIZES), "train": args.train})
    data = json.loads(path.read_text()) if path.is_file() else {}
    data.update({"dev_seed": DEV_SEED, "sweep_epochs": args.epochs, "sizes": asdict(sizes), "seconds": args.seconds,
                 "space": yaml.safe_load(SPACE.read_text())})
    for kind in args.teachers:
        data.setdefault("teachers", {})[kind] = run_sweep(out, kind, epochs=args.epochs, sizes=sizes,
                                                          seconds=args.seconds)
        path.write_text(json.dumps(data, indent=1) + "\n")
        print(json.dumps(data["teachers"][kind]["chosen"], indent=1))


if __name__ == "__main__":
    main()
