"""The evidence benchmark (issue 28): every method against BCE, seed by seed, in the papers' regime.

    nice -n 19 python bench/evidence.py --seeds 0 1 2 ... [--after-window same|sgd] [--select verified|noisy]
    python bench/evidence.py --report-only          # evidence.md (and the JSON's verdicts) from the JSON

Corpus: bench/evidence_corpus.py, redrawn per seed (10 s tracks, a random 3 s crop each epoch,
per-tag noise in Lu et al.'s Table 1 ranges, 200 verified validation tracks, 2,000 clean test
tracks). Model: the short-chunk ResNet (tiny preset) on 3 s crops. Trained by
bench/noise_runner.py (raytag's Ray-free core: the run a Ray Train worker runs, without Ray).

Protocol (every arm, every stage): Lu et al. §3.1, at the paper's length. The best epoch by the
selection signal is chosen in the first ``--window`` (80) epochs, its whole state is restored and
training goes on for ``--more`` (60) epochs; the figure is the mean clean-test metric of the last
``--last`` (10) epochs. (A pilot at 24 + 16 epochs had BCE's verified-validation ROC-AUC still
rising at epoch 40: the 3 s random crops of 10 s tracks keep BCE from memorising early, so the
shorter schedule never reached the regime the methods target.) Other lengths write their own
results file (``evidence-w<W>m<M>l<L>.json``).
The selection signal is the verified validation rows (``--select verified``, DESIGN.md: prefer
verified rows); ``--select noisy`` is the noisy-row variant. ``--after-window sgd`` is Won et
al.'s handoff instead (reload the best, SGD lr 1e-3, Nesterov, weight decay 1e-4): Lu et al.'s
text says only "load the best model and train another 60 epochs", so the default keeps the
restored Adam (the methods' own paper) and the handoff is the option. Adam lr 1e-3, weight decay
1e-4 (Won's solver), batch 32.

Balanced-Masking's teacher is Balanced-Training of the same seed: in-sample (the ``btrain`` arm's
model scores the tracks it trained on) or out-of-fold (``bmasking_oof*``: 5 fold teachers, each
trained without one fold of the training tracks (``train.leave_out``), and their out-of-fold
record, bench/fold_teachers.py; their CPU time is reported beside the in-sample teacher's).
Balanced-Masking's percentile, the mean teacher's EMA window (η) and β_max are the winners of
``bench/evidence_sweep.py`` (``raytag sweep`` on a development corpus, ranked on the rows that
``--select`` names) when ``<results>/evidence-sweep.json`` has them, else the papers' values;
evidence.md says which.

Resumable: seeds run in order, every arm of a seed before the next seed, so every finished seed
adds to all arms; each run is cached under ``--out`` and appended to the results JSON the moment
it finishes (written atomically), so a kill loses at most the run in progress. Each entry keeps
its run's metrics over the seed's resamplings of the test tracks (``track_resamples``), so the
two-level bootstrap pairs an arm with a BCE run of an earlier session whose scores are gone; a
BCE recorded before entries kept them is trained again once (deterministic: the same figure, or
a logged difference). Arms whose features have not landed are declared with the reason they
are skipped.
"""

from __future__ import annotations

import argparse
import datetime
import json
import math
import os
import sys
import time
from pathlib import Path

import numpy as np

import evidence_corpus as corpora
import fold_teachers
from evidence_arms import MODEL, Protocol, Stage, arm_table, stage_tree, teacher_arms, teacher_folder  # noqa: F401
from evidence_report import BASELINE, write_report
from evidence_sweep import arm_choices
from evidence_stats import track_bootstrap_values
from noise_runner import configure_process, load_corpus, run_job
from run_cache import finite, log_line, run_key
from raytag.config import validate_job

RESULTS = Path(__file__).resolve().parent / "results"
DEFAULT_OUT = Path(__file__).resolve().parent / "runs" / "evidence"
BOOTSTRAP_RESAMPLES = 200
RUNNER_OPTIONS_VERSION = 1
METRICS = ("roc_auc", "pr_auc")


class Runner:
    """Runs (or reads back) the stages of arms and seeds, and appends each result to the JSON."""

    def __init__(self, out: Path, protocol: Protocol, results: Path, log=log_line, *,
                 sizes: corpora.Sizes = corpora.Sizes(), seconds: float = corpora.SECONDS,
                 only: tuple[str, ...] | None = None, resamples: int = BOOTSTRAP_RESAMPLES):
        self.out, self.protocol, self.log, self.sizes, self.seconds = out, protocol, log, sizes, seconds
        choices, note = arm_choices(results, protocol.select)  # the sweep's choice, else the papers' values
        self.arms, self.teachers, self.resamples = arm_table(protocol, choices), teacher_arms(), resamples
        unknown = set(only or ()) - set(self.arms)
        if unknown:
            raise SystemExit(f"unknown arm(s) {sorted(unknown)}; choose from {sorted(self.arms)}")
        self.only = only
        self.path = results / f"evidence{protocol.suffix()}.json"
        self.data = json.loads(self.path.read_text()) if self.path.is_file() else {}
        self.data.setdefault("corpora", {})
        self.data["protocol"] = {**vars(protocol), "epochs": protocol.epochs, "mean_teacher": protocol.mean_teacher(),
                                 "model": MODEL, "sizes": vars(sizes), "seconds": seconds}
        arms = self.data.setdefault("arms", {})
        for name, arm in self.arms.items():
            entry = arms.setdefault(name, {"seeds": []})
            entry.update({"label": arm.label, "skipped": arm.skipped, "teacher": arm.teacher,
                          "stages": [s.part for s in arm.stages], "stage_epochs": [s.epochs for s in arm.stages]})
        self.data["hyperparameters"] = {"note": note, **{kind: vars(choice) for kind, choice in choices.items()}}
        for name, teacher in self.teachers.items():
            self.data.setdefault("teachers", {}).setdefault(name, {"seeds": []}).update(
                {"label": teacher.label, "stages": [s.part for s in teacher.stages],
                 "stage_epochs": [s.epochs for s in teacher.stages]})

    def save(self) -> None:
        """The JSON, written atomically, then evidence.md from it."""
        self.data["updated"] = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
        temporary = self.path.with_suffix(".json.tmp")
        temporary.write_text(json.dumps(finite(self.data), indent=1) + "\n")
        os.replace(temporary, self.path)
        write_report(self.path)

    def run_seed(self, seed: int) -> None:
        corpus_dir, took = corpora.prepare(self.out, seed, self.sizes, seconds=self.seconds)
        record = self.data["corpora"].setdefault(str(seed), {})
        record.update(took)
        if "noise" not in record:
            record["noise"] = corpora.realised_noise(corpus_dir)
            self.log(corpora.noise_table(record["noise"]))
        self.save()
        todo = [name for name, arm in self.arms.items() if arm.skipped is None and (self.only is None or name in self.only)
                and not self.recorded(name, seed, corpus_dir)]
        missing = self.missing_resamples(seed)
        unpaired = any(e["seed"] == seed and e.get("track_resamples") and not e.get("bootstrap")
                       for name, arm in self.data["arms"].items() if name != BASELINE for e in arm["seeds"])
        if not todo and not missing and not unpaired:
            return
        corpus = load_corpus(corpus_dir / "manifest.csv", corpus_dir / "clean.csv", compact=True,
                             splits=("train", "valid", "test", "unlabeled"))
        if missing:
            for name, entry in missing:
                entry["track_resamples"] = self.track_resamples(name, seed, corpus)
            self.fill_bootstrap(seed)
            self.save()
        if unpaired or any(name != BASELINE for name in todo):
            self.baseline_resamples(seed, corpus_dir, corpus)
        for name in todo:
            self.arm_result(name, seed, corpus_dir, corpus)

    def recorded(self, name: str, seed: int, corpus_dir: Path) -> bool:
        """Whether the JSON holds the arm's result for ``seed`` under its current key."""
        key = self.plan(name, seed, corpus_dir)[-1][2]
        return any(e["seed"] == seed and e["key"] == key for e in self.data["arms"][name]["seeds"])

    def plan(self, name: str, seed: int, corpus_dir: Path) -> list[tuple[Stage, dict, str]]:
        """The arm's stages with their jobs and keys (a key hashes the job, the runner's options
        and the keys of the runs whose exports it uses), computed without running anything."""
        arm, planned, keys = self.arms.get(name) or self.teachers[name], [], {}
        teacher = []
        if arm.teacher in self.teachers:  # out-of-fold: every fold teacher's key
            teacher = [key for _, _, key in self.plan(arm.teacher, seed, corpus_dir)]
        elif arm.teacher:
            teacher = [self.plan(arm.teacher, seed, corpus_dir)[-1][2]]
        for stage in arm.stages:
            tree = stage_tree(name, arm.teacher, stage, seed, corpus_dir, self.out, self.protocol,
                              final=stage is arm.stages[-1] and name in self.arms)
            upstream = list(teacher)
            if stage.init_from in keys:
                upstream.append(keys[stage.init_from])
            elif stage.init_from:
                other = stage.init_from.split(":")[0]
                upstream.append(self.plan(other, seed, corpus_dir)[0][2])
            options = {"select_labels": self.protocol.select, "upstream": upstream, "version": RUNNER_OPTIONS_VERSION}
            # Paths inside the working folder are hashed relative to it: a later session in another
            # checkout (another absolute path) finds the same keys.
            portable = json.loads(json.dumps(tree).replace(str(self.out), "<out>"))
            keys[stage.part] = run_key(portable, **options)
            planned.append((stage, tree, keys[stage.part]))
        return planned

    def arm_result(self, name: str, seed: int, corpus_dir: Path, corpus, *, need_export: bool = False) -> dict:
        """The arm's result for ``seed``: its JSON entry when the key matches (and no export is
        needed), else its stages run or read from the run cache (teachers first)."""
        arm, planned = self.arms[name], self.plan(name, seed, corpus_dir)
        entry = next((e for e in self.data["arms"][name]["seeds"] if e["seed"] == seed), None)
        if entry is not None and entry["key"] == planned[-1][2] and not need_export:
            return entry
        if arm.teacher in self.teachers:
            self.fold_teacher(arm.teacher, seed, corpus_dir, corpus)
        elif arm.teacher is not None:
            self.arm_result(arm.teacher, seed, corpus_dir, corpus, need_export=True)
        result = None
        for stage, tree, key in planned:
            if stage.init_from and ":" in stage.init_from:
                self.arm_result(stage.init_from.split(":")[0], seed, corpus_dir, corpus, need_export=True)
            result = self.stage_run(stage, tree, key, corpus)
        if entry is None or entry["key"] != result["key"]:
            self.record(name, seed, result, corpus)
        return result

    def fold_teacher(self, name: str, seed: int, corpus_dir: Path, corpus) -> Path:
        """The out-of-fold teacher ``name`` of ``seed``: its fold teachers run (or read from the
        run cache), their record written, their cost recorded in the JSON's ``teachers``."""
        planned = self.plan(name, seed, corpus_dir)
        results = [self.stage_run(stage, tree, key, corpus) for stage, tree, key in planned]
        folder = teacher_folder(self.out, name, seed)
        fold_teachers.write_teacher_record(folder, folds=len(results), seed=seed, models=[
            self.out / "models" / validate_job(tree).name for _, tree, _ in planned])
        entry = {"seed": seed, "keys": [key for _, _, key in planned],
                 "seconds": round(sum(r["seconds"] for r in results), 1),
                 "cpu_seconds": round(sum(r.get("cpu_seconds", math.nan) for r in results), 1)}
        record = self.data["teachers"][name]
        if entry not in record["seeds"]:
            record["seeds"] = sorted([e for e in record["seeds"] if e["seed"] != seed] + [entry], key=lambda e: e["seed"])
            self.save()
        return folder

    def stage_run(self, stage: Stage, tree: dict, key: str, corpus) -> dict:
        """One stage's result: read from ``out/runs`` when its key matches (and its export is in
        ``out/models`` if it makes one, and a fold teacher left out the same tracks), else
        trained and written there."""
        job = validate_job(tree)
        runs, model = self.out / "runs", self.out / "models" / job.name if stage.export else None
        runs.mkdir(parents=True, exist_ok=True)
        path = runs / f"{job.name}.json"
        leave_out, folds = job.train.leave_out, None
        if leave_out is not None:
            folds = fold_teachers.assignment_digest(corpus.split("train").table.paths, folds=leave_out.folds,
                                                    seed=leave_out.seed)
        if path.is_file():
            cached = json.loads(path.read_text())
            if cached.get("key") == key and (model is None or (model / "model.json").is_file()) \
                    and cached.get("fold_assignment") == folds:
                return cached
        self.log(f"--- training {job.name}")
        cpu = time.process_time()
        result = run_job(job, corpus, export_to=model, log=self.log, select_labels=self.protocol.select)
        result["cpu_seconds"] = time.process_time() - cpu
        np.save(runs / f"{job.name}.npy", result.pop("test_epoch_scores"))
        result.pop("test_scores")
        result = finite({**result, "key": key, **({} if folds is None else {"fold_assignment": folds})})
        temporary = path.with_suffix(".json.tmp")
        temporary.write_text(json.dumps(result, indent=1))
        os.replace(temporary, path)
        self.log(f"--- {job.name}: test ROC-AUC {result['test_last'].get('roc_auc', math.nan):.4f} (mean of the last "
                 f"epochs), best epoch {result['best_epoch']}, {result['seconds'] / 60:.1f} min")
        return result

    def record(self, name: str, seed: int, result: dict, corpus) -> None:
        """Appends (or replaces) the arm's entry for ``seed`` and saves the JSON."""
        runs = self.out / "runs"
        stages = [json.loads(path.read_text()) for path in (runs / f"{name}-{s.part}-s{seed}.json"
                                                            for s in self.arms[name].stages) if path.is_file()]
        entry = {"seed": seed, "key": result["key"], "roc_auc": result["test_last"].get("roc_auc"),
                 "pr_auc": result["test_last"].get("pr_auc"), "selected_roc_auc": result["test"]["roc_auc"],
                 "selected_pr_auc": result["test"]["pr_auc"], "best_epoch": result["best_epoch"],
                 "peak_epoch": max(result["history"], key=lambda h: h["valid/roc_auc"])["epoch"],
                 "epochs": len(result["history"]),
                 "seconds": round(sum(r["seconds"] for r in stages), 1),
                 "cpu_seconds": round(sum(r.get("cpu_seconds", math.nan) for r in stages), 1), "memorised": result["memorised"],
                 "track_resamples": self.track_resamples(name, seed, corpus), "bootstrap": None}
        seeds = [e for e in self.data["arms"][name]["seeds"] if e["seed"] != seed] + [entry]
        self.data["arms"][name]["seeds"] = sorted(seeds, key=lambda e: e["seed"])
        self.fill_bootstrap(seed)
        self.save()

    def track_resamples(self, name: str, seed: int, corpus) -> dict[str, list[float]]:
        """The run's metrics over the seed's resamplings of the test tracks (the mean of its last
        epochs' scores; :func:`evidence_stats.track_bootstrap_values`), kept in its JSON entry:
        two runs of a seed subtract into the two-level bootstrap's paired differences in any later
        session, without either run's scores."""
        scores = np.load(self.out / "runs" / f"{name}-{self.arms[name].stages[-1].part}-s{seed}.npy")
        labels = corpus.split("test").clean
        return {metric: np.round(track_bootstrap_values(labels, scores, metric=metric, resamples=self.resamples,
                                                        seed=seed), 6).tolist() for metric in METRICS}

    def fill_bootstrap(self, seed: int) -> bool:
        """Sets the paired differences to BCE (``bootstrap``) of every arm of ``seed`` that has
        its track resamples and none yet, once BCE's entry has its own. Returns whether any was set."""
        base = next((e for e in self.data["arms"][BASELINE]["seeds"] if e["seed"] == seed), None)
        if base is None or not base.get("track_resamples"):
            return False
        filled = False
        for name, arm in self.data["arms"].items():
            for entry in arm["seeds"]:
                if name != BASELINE and entry["seed"] == seed and entry.get("track_resamples") and not entry.get("bootstrap"):
                    entry["bootstrap"] = {metric: np.round(np.subtract(entry["track_resamples"][metric],
                                                                       base["track_resamples"][metric]), 6).tolist()
                                          for metric in METRICS}
                    filled = True
        return filled

    def missing_resamples(self, seed: int) -> list[tuple[str, dict]]:
        """The entries of ``seed`` without track resamples (recorded before runs kept them) whose
        last epochs' scores are in this working folder's run cache under the entry's key."""
        missing = []
        for name, arm in self.arms.items():
            for entry in self.data["arms"][name]["seeds"]:
                if entry["seed"] != seed or entry.get("track_resamples"):
                    continue
                run = self.out / "runs" / f"{name}-{arm.stages[-1].part}-s{seed}"
                cached = json.loads(run.with_suffix(".json").read_text()) if run.with_suffix(".json").is_file() else {}
                if cached.get("key") == entry["key"] and run.with_suffix(".npy").is_file():
                    missing.append((name, entry))
        return missing

    def baseline_resamples(self, seed: int, corpus_dir: Path, corpus) -> None:
        """Makes sure BCE's entry of ``seed`` has its track resamples before other arms record
        theirs: a BCE recorded in a session whose run cache is gone is trained again (the runner
        is deterministic; a different figure is logged) and its resamples added."""
        entry = next((e for e in self.data["arms"][BASELINE]["seeds"] if e["seed"] == seed), None)
        if entry is None or entry.get("track_resamples"):
            return
        self.log(f"--- BCE of seed {seed} has no track resamples (recorded before they were kept); its run again")
        result = self.arm_result(BASELINE, seed, corpus_dir, corpus, need_export=True)
        again = result["test_last"].get("roc_auc")
        if again != entry["roc_auc"]:
            self.log(f"--- BCE of seed {seed} again: test ROC-AUC {again} vs {entry['roc_auc']} recorded")
        entry["track_resamples"] = self.track_resamples(BASELINE, seed, corpus)
        self.fill_bootstrap(seed)
        self.save()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=list(range(12)))
    parser.add_argument("--window", type=int, default=Protocol.window)
    parser.add_argument("--more", type=int, default=Protocol.more)
    parser.add_argument("--last", type=int, default=Protocol.last)
    parser.add_argument("--after-window", choices=("same", "sgd"), default="same")
    parser.add_argument("--select", choices=("verified", "noisy"), default="verified")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="working folder (corpora, runs, models)")
    parser.add_argument("--results", type=Path, default=RESULTS)
    parser.add_argument("--arms", nargs="+", default=None, help="run only these arms (default: every arm)")
    parser.add_argument("--report-only", action="store_true", help="write evidence.md from the JSON and stop")
    args = parser.parse_args()
    protocol = Protocol(window=args.window, more=args.more, last=args.last, after_window=args.after_window,
                        select=args.select)
    if args.report_only:
        write_report(args.results / f"evidence{protocol.suffix()}.json")
        return
    configure_process()
    runner = Runner(args.out.resolve(), protocol, args.results, only=None if args.arms is None else tuple(args.arms))
    for seed in args.seeds:
        started = time.perf_counter()
        runner.run_seed(seed)
        log_line(f"=== seed {seed} done in {(time.perf_counter() - started) / 60:.1f} min")


if __name__ == "__main__":
    sys.exit(main())
