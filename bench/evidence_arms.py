"""The evidence benchmark's arms (issue 28): the protocol every arm shares, each arm's stages as
raytag job sections, the teachers that are not arms (out-of-fold fold teachers), and the raw job
of one stage (:func:`stage_tree`). bench/evidence.py runs them; see its docstring for the protocol.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import evidence_corpus as corpora
import fold_teachers
from evidence_sweep import Choice, paper_choice
from run_cache import job_tree

MODEL = {"name": "shortres-tiny", "args": {"crop_samples": corpora.CROP_SAMPLES}}
PAPER_STEPS_PER_EPOCH = math.ceil(32136 / 16)
"""Lu et al. train on MTG-Jamendo split-0 top-50 (32,136 training tracks) with Won et al.'s
solver (batch 16): 2,009 steps per epoch, 140 epochs."""
PAPER_EPOCHS = 140
TEACHER_FOLDS = 5
"""K of the out-of-fold teacher (Balanced-Training fold teachers, issue 25's 5)."""


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


def teacher_arms() -> dict[str, Arm]:
    """Teachers that are not arms: ``btrain_oof``, Balanced-Training's K fold teachers (each
    trained without one fold of the training split, :mod:`raytag.folds`) and their out-of-fold
    record in ``models/btrain_oof-s<seed>``."""
    folds = tuple(Stage(f"fold{k}of{TEACHER_FOLDS}", {"objective": {"name": "balanced_training"}, "train": {
        "leave_out": {key: value for key, value in leave_out.items() if key != "seed"}}}, export=True)
        for k, leave_out in enumerate(fold_teachers.leave_outs(TEACHER_FOLDS, 0)))  # seed: the job's (stage_tree)
    return {"btrain_oof": Arm(f"Balanced-Training, {TEACHER_FOLDS} out-of-fold teachers", folds)}


def teacher_folder(out: Path, teacher: str, seed: int) -> Path:
    """The exported teacher (or out-of-fold record) arm or teacher ``teacher`` of ``seed`` leaves."""
    return out / "models" / (f"{teacher}-s{seed}" if teacher in teacher_arms() else f"{teacher}-run-s{seed}")


def masking_objective(protocol: Protocol, choice: Choice, *, mean_teacher: bool) -> dict:
    """Balanced-Masking's objective at ``choice``; the papers' values give the objective the
    runner gave before sweeps existed (the same run keys)."""
    objective = {"name": "balanced_masking", "percentile": choice.percentile}
    if mean_teacher:
        objective["mean_teacher"] = protocol.mean_teacher() if choice.source == "paper" else {
            **protocol.mean_teacher(), "window_epochs": choice.window_fraction * protocol.epochs,
            "beta_max": choice.beta_max}
    return objective


def arm_table(protocol: Protocol, choices: dict[str, Choice] | None = None) -> dict[str, Arm]:
    """The arms; ``choices``: Balanced-Masking's settings per teacher kind (``in_sample``,
    ``out_of_fold``; default: the papers' values, :func:`evidence_sweep.paper_choice`)."""
    choices = {"in_sample": paper_choice(), "out_of_fold": paper_choice(), **(choices or {})}

    def masking(kind: str, mean_teacher: bool) -> tuple[Stage, ...]:
        return (Stage("run", {"objective": masking_objective(protocol, choices[kind], mean_teacher=mean_teacher)}),)

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
