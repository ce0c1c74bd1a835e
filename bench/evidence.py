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

Resumable: seeds run in order, every arm of a seed before the next seed, so every finished seed
adds to all arms; each run is cached under ``--out`` and appended to the results JSON the moment
it finishes (written atomically), so a kill loses at most the run in progress. Arms whose
features have not landed are declared with the reason they are skipped.
"""

from __future__ import annotations

import argparse
import datetime
import json
import math
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

import evidence_corpus as corpora
import fold_teachers
from evidence_report import write_report
from evidence_sweep import Choice, arm_choices, paper_choice
from evidence_stats import track_bootstrap_differences
from noise_runner import configure_process, load_corpus, run_job
from run_cache import finite, job_tree, log_line, run_key
from raytag.config import validate_job

RESULTS = Path(__file__).resolve().parent / "results"
DEFAULT_OUT = Path(__file__).resolve().parent / "runs" / "evidence"
MODEL = {"name": "shortres-tiny", "args": {"crop_samples": corpora.CROP_SAMPLES}}
PAPER_STEPS_PER_EPOCH = math.ceil(32136 / 16)
"""Lu et al. train on MTG-Jamendo split-0 top-50 (32,136 training tracks) with Won et al.'s
solver (batch 16): 2,009 steps per epoch, 140 epochs."""
PAPER_EPOCHS = 140
BOOTSTRAP_RESAMPLES = 200
TEACHER_FOLDS = 5
"""K of the out-of-fold teacher (Balanced-Training fold teachers, issue 25's 5)."""
RUNNER_OPTIONS_VERSION = 1


@dataclass(frozen=True)
class Protocol:
    """The settings every arm shares (see the module docstring)."""

    window: int = 80
    more: int = 60
    last: int = 10
    after_window: str = "same"
    select: str = "verified"
    batch_size: int = 32
    lr: float = 1e-3
    weight_decay: float = 1e-4
    max_chunks: int = 3

    @property
    def epochs(self) -> int:
        return self.window + self.more

    def suffix(self) -> str:
        """The results file's name part: empty for the default protocol."""
        parts = [] if (self.window, self.more, self.last) == (80, 60, 10) else [f"w{self.window}m{self.more}l{self.last}"]
        parts += [] if self.after_window == "same" else [f"handoff-{self.after_window}"]
        return "".join(f"-{p}" for p in parts + ([] if self.select == "verified" else [f"select-{self.select}"]))

    def mean_teacher(self) -> dict:
        """Lu et al.'s mean teacher in the paper's terms: warm-up 40 of 140 epochs, T0 40,000 steps
        (19.9 of its epochs of 2,009 steps), η 0.999 (an EMA over 1,000 steps = 0.50 of its epochs),
        β_max 0.8, γ 0.5; epochs mapped onto this run's length (``epochs / 140``) and converted to
        this corpus's steps per epoch by the method (``window_epochs``, ``ramp_epochs``)."""
        scale = self.epochs / PAPER_EPOCHS
        return {"enabled": True, "warmup_epochs": max(1, round(40 * scale)),
                "ramp_epochs": 40000 / PAPER_STEPS_PER_EPOCH * scale,
                "window_epochs": 1000 / PAPER_STEPS_PER_EPOCH * scale, "beta_max": 0.8, "gamma": 0.5}


@dataclass(frozen=True)
class Stage:
    """One run of an arm: its name part, job sections, epochs factor and upstream stage."""

    part: str
    sections: dict = field(default_factory=dict)
    epochs: float = 1.0
    init_from: str | None = None
    export: bool = False


@dataclass(frozen=True)
class Arm:
    """A configuration compared with BCE: its label, its stages (the last one's result is the
    arm's) and, for arms that cannot run yet, why."""

    label: str
    stages: tuple[Stage, ...] = ()
    teacher: str | None = None
    skipped: str | None = None


def _teachers() -> dict[str, Arm]:
    """Teachers that are not arms: ``btrain_oof``, Balanced-Training's K fold teachers (each
    trained without one fold of the training split, :mod:`raytag.folds`) and their out-of-fold
    record in ``models/btrain_oof-s<seed>``."""
    folds = tuple(Stage(f"fold{k}of{TEACHER_FOLDS}", {"objective": {"name": "balanced_training"}, "train": {
        "leave_out": {key: value for key, value in leave_out.items() if key != "seed"}}}, export=True)
        for k, leave_out in enumerate(fold_teachers.leave_outs(TEACHER_FOLDS, 0)))  # seed: the job's (stage_tree)
    return {"btrain_oof": Arm(f"Balanced-Training, {TEACHER_FOLDS} out-of-fold teachers", folds)}


def teacher_folder(out: Path, teacher: str, seed: int) -> Path:
    """The exported teacher (or out-of-fold record) arm or teacher ``teacher`` of ``seed`` leaves."""
    return out / "models" / (f"{teacher}-s{seed}" if teacher in _teachers() else f"{teacher}-run-s{seed}")


def _masking(protocol: Protocol, choice: Choice, *, mean_teacher: bool) -> dict:
    """Balanced-Masking's objective at ``choice``; the papers' values give the objective the
    runner gave before sweeps existed (the same run keys)."""
    objective = {"name": "balanced_masking", "percentile": choice.percentile}
    if mean_teacher:
        objective["mean_teacher"] = protocol.mean_teacher() if choice.source == "paper" else {
            **protocol.mean_teacher(), "window_epochs": choice.window_fraction * protocol.epochs,
            "beta_max": choice.beta_max}
    return objective


def _arms(protocol: Protocol, choices: dict[str, Choice] | None = None) -> dict[str, Arm]:
    """The arms; ``choices``: Balanced-Masking's settings per teacher kind (``in_sample``,
    ``out_of_fold``; default: the papers' values, :func:`evidence_sweep.paper_choice`)."""
    choices = {"in_sample": paper_choice(), "out_of_fold": paper_choice(), **(choices or {})}

    def masking(kind: str, mean_teacher: bool) -> tuple[Stage, ...]:
        return (Stage("run", {"objective": _masking(protocol, choices[kind], mean_teacher=mean_teacher)}),)

    staged = {"k": 5, "alpha": 0.9}  # He et al.'s k 10 of a 64-clip batch, for batches of 32
    verified = {"data": {"train_subset": "verified"}}
    # He et al. split 10k/10k/5k steps over the stages. With 15 % of the tracks verified, that split of
    # the BCE arm's steps would give stage 1 about 2.7 times its epochs (each validated): stages 1
    # and 3 get the BCE arm's epochs and half of them instead (fewer steps than BCE), stage 2 0.4 of them.
    s1, s2, s3 = 1.0, 0.4, 0.5

    def stages(head: str) -> tuple[Stage, ...]:
        model = {"model": {**MODEL, "head": head}}
        return (Stage("stage1", {**model, **verified}, s1, export=True),
                Stage("stage2", {**model, "objective": {"name": "staged_training", **staged}}, s2,
                      init_from="stage1", export=True),
                Stage("stage3", {**model, **verified}, s3, init_from="stage2"))

    return {
        "bce": Arm("BCE", (Stage("run", export=True),)),
        "btrain": Arm("Balanced-Training", (Stage("run", {"objective": {"name": "balanced_training"}}, export=True),)),
        "bmasking": Arm("Balanced-Masking, in-sample teacher", masking("in_sample", False), teacher="btrain"),
        "bmasking_mt": Arm("Balanced-Masking, in-sample teacher + mean teacher", masking("in_sample", True),
                           teacher="btrain"),
        "bmasking_oof": Arm("Balanced-Masking, out-of-fold teacher", masking("out_of_fold", False),
                            teacher="btrain_oof"),
        "bmasking_oof_mt": Arm("Balanced-Masking, out-of-fold teacher + mean teacher", masking("out_of_fold", True),
                               teacher="btrain_oof"),
        "bootstrap": Arm("bootstrap (soft, β 0.95)", (Stage("run", {"objective": {"name": "bootstrap_soft"}}),)),
        "coteaching": Arm("co-teaching (τ 0.2)", (Stage("run", {"objective": {"name": "coteaching"}}),)),
        "gce": Arm("generalized cross-entropy (q 0.7)", (Stage("run", {"objective": {"name": "gce"}}),)),
        "staged": Arm("staged training (He et al., stages 1-3), sigmoid head", stages("sigmoid")),
        "staged_sparsemax": Arm("staged training, sigmoid-sparsemax head", stages("sigmoid_sparsemax")),
        "bce_finetune_verified": Arm("control: BCE, then fine-tune on the verified clips", (
            Stage("run", {**verified}, s3, init_from="bce:run"),)),
        "noisy_student_ke": Arm("noisy student, KE (teacher: BCE of the seed; augmentation)", (Stage("run", {
            "augment": {"enabled": True}, "semi": {"enabled": True, "ratio": 1.0}}),), teacher="bce"),
        "bce_augment_2x": Arm("control: BCE + the same augmentation, twice the epochs (the student's examples)", (
            Stage("run", {"augment": {"enabled": True}}, 2.0),)),
    }


def stage_tree(arm: str, teacher: str | None, stage: Stage, seed: int, corpus_dir: Path, out: Path,
               protocol: Protocol, *, final: bool = True) -> dict:
    """The raw job of one stage of one arm and seed (name ``<arm>-<stage>-s<seed>``); ``teacher``:
    the arm whose export of the same seed teaches it (masking scores, noisy-student labels);
    ``final``: the arm's last stage, the only one whose last epochs are evaluated on the test split."""
    epochs = max(2, round(protocol.epochs * stage.epochs))
    window = max(1, round(epochs * protocol.window / protocol.epochs))
    sections = json.loads(json.dumps(stage.sections))  # a deep copy
    model = sections.pop("model", dict(MODEL))
    if stage.init_from is not None:
        upstream = stage.init_from if ":" in stage.init_from else f"{arm}:{stage.init_from}"
        model["init"] = str(out / "models" / f"{upstream.replace(':', '-')}-s{seed}")
    objective = sections.pop("objective", {"name": "bce"})
    if teacher is not None:
        folder = str(teacher_folder(out, teacher, seed))
        if objective.get("name") == "balanced_masking":
            objective["teacher"] = folder
        if "semi" in sections:
            sections["semi"]["teacher"] = folder
    train = {"epochs": epochs, "select_until_epoch": window, "after_window": protocol.after_window,
             "batch_size": protocol.batch_size, "lr": protocol.lr, "weight_decay": protocol.weight_decay,
             "select_metric": "roc_auc", "log_every": 1000, **sections.pop("train", {})}
    if "leave_out" in train:  # a fold teacher: the fold hash's seed is the job's, as a stage's ``folds: K``
        train["leave_out"] = {**train["leave_out"], "seed": seed}
    return job_tree(f"{arm}-{stage.part}-s{seed}", seed=seed, corpus=corpus_dir, model=model, train=train,
                    objective=objective, eval={"max_chunks": protocol.max_chunks, "batch_size": 64,
                                               "average_last": min(protocol.last, epochs - window) if final else 0}, **sections)


class Runner:
    """Runs (or reads back) the stages of arms and seeds, and appends each result to the JSON."""

    def __init__(self, out: Path, protocol: Protocol, results: Path, log=log_line, *,
                 sizes: corpora.Sizes = corpora.Sizes(), seconds: float = corpora.SECONDS,
                 only: tuple[str, ...] | None = None, resamples: int = BOOTSTRAP_RESAMPLES):
        self.out, self.protocol, self.log, self.sizes, self.seconds = out, protocol, log, sizes, seconds
        choices, note = arm_choices(results, protocol.select)  # the sweep's choice, else the papers' values
        self.arms, self.teachers, self.resamples = _arms(protocol, choices), _teachers(), resamples
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
                          "stages": [s.part for s in arm.stages]})
        self.data["hyperparameters"] = {"note": note, **{kind: vars(choice) for kind, choice in choices.items()}}
        for name, teacher in self.teachers.items():
            self.data.setdefault("teachers", {}).setdefault(name, {"seeds": []}).update(
                {"label": teacher.label, "stages": [s.part for s in teacher.stages]})

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
        if not todo:
            return
        corpus = load_corpus(corpus_dir / "manifest.csv", corpus_dir / "clean.csv", compact=True,
                             splits=("train", "valid", "test", "unlabeled"))
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
                 "cpu_seconds": round(sum(r.get("cpu_seconds", math.nan) for r in stages), 1), "memorised": result["memorised"], "bootstrap": None}
        if name != "bce":
            entry["bootstrap"] = self.bootstrap(name, seed, corpus)
        seeds = [e for e in self.data["arms"][name]["seeds"] if e["seed"] != seed] + [entry]
        self.data["arms"][name]["seeds"] = sorted(seeds, key=lambda e: e["seed"])
        self.save()

    def bootstrap(self, name: str, seed: int, corpus) -> dict | None:
        """The arm's track-resampled differences to BCE of the same seed (both metrics)."""
        runs, last = self.out / "runs", self.arms[name].stages[-1].part
        arm_path, base_path = runs / f"{name}-{last}-s{seed}.npy", runs / f"bce-run-s{seed}.npy"
        if not base_path.is_file():
            return None
        labels = corpus.split("test").clean
        arm, base = np.load(arm_path), np.load(base_path)
        return {metric: np.round(track_bootstrap_differences(labels, arm, base, metric=metric,
                                                             resamples=self.resamples, seed=seed), 6).tolist()
                for metric in ("roc_auc", "pr_auc")}


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
