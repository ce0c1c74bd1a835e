"""Typed, validated job configuration.

A job file is YAML with the sections below; ``key=value`` overrides on the command line use
dotted paths (``train.lr=3e-4``, ``model.args.width=64``) and YAML values. Loading rejects an
unknown key or a bad value with a :class:`ConfigError` that names it, before any cluster work.
Relative paths are taken from the current working directory.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal, Union

import yaml
from pydantic import BaseModel, Discriminator, Field, Tag, ValidationError, create_model, model_validator

from raytag.audio.augment_spec import AugmentSpec
from raytag.errors import InputError
from raytag.locations import resolve_storage
from raytag.methods import DEFAULT_METHOD, conflicts, method_names, methods, objective_sections, teacher_keys
from raytag.methods.settings import SETTINGS_RULES
from raytag.models import ModelError, check_argument_values, model_arguments
from raytag.models.export import best_model_location
from raytag.scoring.options import DEFAULT_BATCH_SIZE, DEFAULT_MAX_CHUNKS, DEFAULT_RAY_ABOVE, ScoringOptions
from raytag.threshold_choice import MIN_VERIFIED, ThresholdLabelChoice


class ConfigError(InputError):
    """A job file or override that cannot be used; the message names the key."""


class _Section(BaseModel):
    model_config = SETTINGS_RULES  # unknown keys refused, floats finite


class DataConfig(_Section):
    """Where the audio and labels are."""

    manifest: str = Field(description="CSV/TSV/JSONL manifest (path, tags, split, ...); a path or a URI (s3://...)")
    clean_labels: str | None = Field(None, description="label file used instead of the manifest's at evaluation")
    tags: list[str] | None = Field(None, description="tag vocabulary; default: every tag in the manifest")
    decode_cpus: float = Field(0.25, gt=0, description="CPUs per Ray Data decode task")
    train_subset: Literal["all", "verified"] = Field(
        "all", description="train on every training row, or on the verified ones only (He et al. stages 1 and 3)"
    )


class ModelConfig(_Section):
    """A registered preset and argument overrides (see ``raytag models``)."""

    name: str = "mtt"
    args: dict[str, Any] = Field(default_factory=dict)
    head: Literal["sigmoid", "sigmoid_sparsemax"] = Field(
        "sigmoid", description="output head; sigmoid_sparsemax: He et al. 2020's multi-activation head"
    )
    init: str | None = Field(None, description="exported model to start from (a pipeline's init_from fills it)")

    @model_validator(mode="after")
    def _known_model_and_args(self) -> ModelConfig:
        try:
            allowed = model_arguments(self.name)
        except ModelError as exc:
            raise ValueError(str(exc)) from None
        # num_tags is not a free argument: it always comes from the tag vocabulary.
        unknown = sorted(a for a in self.args if a not in allowed or a == "num_tags")
        if unknown:
            choices = ", ".join(sorted(a for a in allowed if a != "num_tags"))
            raise ValueError(
                f"unknown argument(s) {', '.join(unknown)} for model {self.name!r}; allowed: {choices}"
                " (num_tags comes from the tag vocabulary)"
            )
        wrong = check_argument_values(self.name, self.args)
        if wrong:
            raise ValueError("; ".join(f"args.{line}" for line in wrong))
        return self


class LeaveOutConfig(_Section):
    """Train without one fold of the training split: an out-of-fold teacher (a pipeline stage's
    ``folds`` fills it for each of its fold teachers; :mod:`raytag.folds`)."""

    folds: int = Field(ge=2, description="K: how many folds the training split is cut into")
    fold: int = Field(ge=0, description="the fold left out (0 … K−1), the one this teacher scores")
    seed: int = Field(0, description="seed of the track hash that assigns folds (stable across runs)")

    @model_validator(mode="after")
    def _fold_in_range(self) -> LeaveOutConfig:
        if self.fold >= self.folds:
            raise ValueError(f"fold {self.fold} is not one of the {self.folds} folds (0 … {self.folds - 1})")
        return self


class TrainConfig(_Section):
    """Optimisation of one supervised run."""

    epochs: int = Field(100, gt=0)
    batch_size: int = Field(
        32, gt=0, description="global batch: examples per optimizer step over all workers (each takes its share)"
    )
    lr: float = Field(1e-4, gt=0)
    weight_decay: float = Field(0.0, ge=0)
    select_metric: Literal["roc_auc", "pr_auc", "lwlrap", "loss"] = Field(
        "roc_auc", description="validation metric that picks the best epoch (loss: lowest)"
    )
    select_labels: Literal["auto", "noisy", "verified"] = Field(
        "auto", description="validation labels that pick the best epoch, bound select_until_epoch and rank sweep "
        "trials: auto = the verified validation rows when there are eval.threshold_min_verified of them (the "
        "thresholds' rule), else every row's noisy labels (raytag.selection)",
    )
    amp: Literal["auto", "bf16", "off"] = Field("auto", description="auto: bf16 autocast on GPU only")
    log_every: int = Field(20, gt=0, description="progress line every N steps")
    select_until_epoch: int | None = Field(
        None, gt=0, description="N: only epochs 1..N can be best; epoch N+1 goes on from the best "
        "(Lu et al. §3.1: validate the first 80 epochs, reload the best, train 60 more)",
    )
    after_window: Literal["same", "sgd"] = Field(
        "same", description="after the selection window: same = go on with the job's Adam and its restored "
        "moments (Lu et al.); sgd = Won et al.'s solver: the best model with SGD lr 1e-3, momentum 0.9, Nesterov, "
        "weight decay 1e-4",
    )
    shuffle: bool = True
    leave_out: LeaveOutConfig | None = Field(
        None, description="train without this fold of the training split (an out-of-fold teacher)")


def _objective_models() -> dict[str, type[BaseModel]]:
    """Per registered method, the model of an ``objective`` section that picks it: ``name``, the
    method's own settings and every wrapper's section (:mod:`raytag.methods` declares them all)."""
    sections = {key: (settings, Field(default_factory=settings)) for key, settings in objective_sections().items()}
    return {
        name: create_model(f"{cls.__name__}Objective", __base__=cls.Settings, __doc__=cls.summary,
                           name=(Literal[name], Field(name, description="the training method")), **sections)
        for name, cls in methods().items()
    }


OBJECTIVE_MODELS = _objective_models()
# Module attributes, so that a job (e.g. in a Ray task's arguments) pickles its objective by name.
globals().update({model.__name__: model for model in OBJECTIVE_MODELS.values()})


def _method_of(section: Any) -> Any:
    if isinstance(section, dict):
        return section.get("name", DEFAULT_METHOD)
    return getattr(section, "name", None)


ObjectiveConfig = Annotated[
    Union[tuple(Annotated[model, Tag(name)] for name, model in OBJECTIVE_MODELS.items())],
    Discriminator(_method_of),
]
"""The ``objective`` section: ``name`` picks a method (:mod:`raytag.methods`), whose settings class
validates the other keys; an instance of the method's settings, with ``name`` and the wrappers'
sections (``mean_teacher``) beside them."""


class SemiConfig(_Section):
    """Noisy student training (Won et al. §3.3): a teacher's soft labels on unlabeled audio.

    Unlabeled audio is the manifest's ``unlabeled`` split plus the audio files under
    ``unlabeled_dir``. The teacher labels the clean crop on Ray Data inference workers; the
    student sees the augmented crop (see ``augment``).
    """

    enabled: bool = False
    teacher: str | None = Field(None, description="exported teacher model folder or URI (a pipeline fills it)")
    unlabeled_dir: Path | None = Field(None, description="folder of extra unlabeled audio files")
    ratio: float = Field(1.0, gt=0, description="unlabeled : labelled examples per batch (paper 1:1)")
    weight: float = Field(1.0, ge=0, description="weight of the unlabeled loss")
    hard_labels: bool = Field(False, description="threshold the teacher's probabilities at 0.5")
    teacher_cpus: float = Field(0.25, gt=0, description="CPUs of the teacher inference actor")


class AugmentConfig(_Section):
    """Waveform augmentations of Won et al. §3.4 on Ray Data CPU workers (any training mode)."""

    enabled: bool = False
    probability: float | None = Field(
        None, ge=0, le=1, description="one chance for every step; default: each step's own (AugmentSpec)"
    )
    params: dict[str, Any] = Field(default_factory=dict, description="AugmentSpec fields, e.g. pitch_semitones")

    def spec(self):
        """The :class:`raytag.audio.augment.AugmentSpec` these settings describe: every
        augmentation's probability is ``probability`` unless ``params`` sets its ``*_p``."""
        return AugmentSpec.from_settings(enabled=self.enabled, probability=self.probability, **self.params)

    @model_validator(mode="after")
    def _valid_spec(self) -> AugmentConfig:
        try:
            self.spec()
        except (TypeError, ValueError) as exc:
            raise ValueError(str(exc)) from None
        return self


class ScalingConfig(_Section):
    """Ray Train workers. Fractional CPUs keep Data and Train from deadlocking on small hosts.

    ``num_workers`` is a number, or ``[min, max]`` for elastic training: Ray Train starts with
    as many workers as the cluster can hold (at least ``min``), restarts the group from the
    latest checkpoint with fewer when a worker or node is lost, and with more when resources
    appear (checked every ``resize_check_s``). ``train.batch_size`` is the global batch, so a
    resize changes each worker's share of it, not the optimisation.
    """

    num_workers: int | tuple[int, int] = Field(2, description="workers, or [min, max] for elastic training")
    use_gpu: bool = False
    cpus_per_worker: float = Field(0.5, gt=0)
    gpus_per_worker: float = Field(1.0, gt=0, description="GPUs per worker when use_gpu")
    resources: dict[str, float] = Field(default_factory=dict, description="custom Ray resources per worker")
    max_failures: int = Field(2, ge=0, description="worker failures survived by resuming")
    resize_check_s: float = Field(60.0, gt=0, description="elastic runs look for more workers this often")
    start_timeout_s: float | None = Field(
        None, gt=0, description="a worker group that has not started in this time is retried, smaller "
        "if possible (Ray Train's default, 60 s, when unset); what a lost node costs an elastic run")

    @model_validator(mode="after")
    def _workers(self) -> ScalingConfig:
        low, high = self.worker_range
        if not 1 <= low <= high:
            raise ValueError(f"num_workers must be a positive number or [min, max] with 1 <= min <= max, got {self.num_workers}")
        return self

    @property
    def worker_range(self) -> tuple[int, int]:
        """``(min, max)`` workers (equal for a fixed-size run)."""
        return (self.num_workers, self.num_workers) if isinstance(self.num_workers, int) else tuple(self.num_workers)


class RayConfig(_Section):
    address: str | None = Field(
        None, description="auto, HOST:PORT or ray://HOST:PORT; None: RAY_ADDRESS, else a new local instance"
    )
    num_cpus: int | None = Field(None, gt=0, description="logical CPUs of a local instance")


class TrackingConfig(_Section):
    enabled: bool = True
    uri: str | None = Field(None, description="MLflow tracking URI; None: sqlite:///<cwd>/mlflow.db")
    experiment: str = "raytag"
    register_as: str | None = Field(None, description="register the best model in MLflow's model registry under this name")


class EvalConfig(_Section):
    """How the trained model is evaluated: its scoring settings (defaults:
    :mod:`raytag.scoring.options`, the ones ``raytag predict`` and the MLflow model use) and
    how its decision thresholds are chosen."""

    split: Literal["valid", "test"] = "test"
    max_chunks: int | None = Field(
        DEFAULT_MAX_CHUNKS, gt=0, description="chunks per track; None: cover the whole track. Recorded in the "
        "exported model, which predict and the MLflow model then use by default")
    batch_size: int = Field(DEFAULT_BATCH_SIZE, gt=0, description="chunks per forward pass")
    average_last: int = Field(
        0, ge=0, description="also evaluate each of the last N epochs on `split` and report their mean "
        "(Lu et al. §3.1 average the last ten)",
    )
    threshold_labels: ThresholdLabelChoice = Field(
        ThresholdLabelChoice.AUTO, description="labels the per-tag decision thresholds are chosen on: auto = the "
        "verified validation rows when there are threshold_min_verified of them, else the manifest's (noisy) "
        "labels; clean = data.clean_labels (experiments only: a user has no clean labels)",
    )
    threshold_min_verified: int = Field(MIN_VERIFIED, gt=0,
                                        description="fewest verified validation tracks auto uses on their own")
    ray_above: int = Field(
        DEFAULT_RAY_ABOVE, ge=0, description="an evaluation of at most this many tracks (all its splits together) is "
        "scored in the driver's process, like `raytag predict --ray-above`: same numbers without an actor pool's "
        "start-up; above it, with a Ray Data actor pool",
    )

    def scoring_options(self) -> ScoringOptions:
        """These settings as the scoring owner's :class:`~raytag.scoring.options.ScoringOptions`."""
        return ScoringOptions(max_chunks=self.max_chunks, batch_size=self.batch_size, ray_above=self.ray_above)


class StageConfig(_Section):
    """One stage of a pipeline: the job's settings with these overrides applied."""

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_-]*$")
    teacher: str | None = Field(None, description="an earlier stage whose best model teaches this one")
    init_from: str | None = Field(None, description="an earlier stage whose best model this one starts from")
    repeat: int = Field(1, ge=1, description="rounds: each repetition is taught by the previous one")
    folds: int | None = Field(
        None, ge=2, description="K out-of-fold teachers: teacher k trains without fold k of the training split "
        "(a seeded track hash) and scores fold k; a later stage taught by this one gets every training track "
        "scored by a teacher that did not see it")
    overrides: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _folds_alone(self) -> StageConfig:
        if self.folds is not None and self.repeat > 1:
            raise ValueError("folds cannot be combined with repeat")
        return self


class JobConfig(_Section):
    """One complete experiment."""

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
    seed: int = 0
    storage: str = Field(
        "ray_results", description="checkpoints, exported models and caches: a path, a shared file system or a URI"
    )
    data: DataConfig
    model: ModelConfig = Field(default_factory=ModelConfig)
    train: TrainConfig = Field(default_factory=TrainConfig)
    objective: ObjectiveConfig = Field(default_factory=OBJECTIVE_MODELS[DEFAULT_METHOD])
    semi: SemiConfig = Field(default_factory=SemiConfig)
    augment: AugmentConfig = Field(default_factory=AugmentConfig)
    scaling: ScalingConfig = Field(default_factory=ScalingConfig)
    ray: RayConfig = Field(default_factory=RayConfig)
    tracking: TrackingConfig = Field(default_factory=TrackingConfig)
    eval: EvalConfig = Field(default_factory=EvalConfig)
    stages: list[StageConfig] = Field(default_factory=list, description="pipeline stages, run in order")

    @model_validator(mode="after")
    def _methods_compatible(self) -> JobConfig:
        problems = conflicts(self)
        if problems:
            raise ValueError("; ".join(problems))
        return self

    @model_validator(mode="after")
    def _epoch_settings(self) -> JobConfig:
        if self.train.select_until_epoch is not None and self.train.select_until_epoch > self.train.epochs:
            raise ValueError("train.select_until_epoch must not exceed train.epochs")
        if self.train.after_window != "same" and self.train.select_until_epoch is None:
            raise ValueError("train.after_window: sgd needs train.select_until_epoch (the window it follows)")
        if self.eval.average_last > self.train.epochs:
            raise ValueError("eval.average_last must not exceed train.epochs")
        if self.eval.threshold_labels == ThresholdLabelChoice.CLEAN and self.data.clean_labels is None:
            raise ValueError("eval.threshold_labels is clean but data.clean_labels is not set")
        return self

    @model_validator(mode="after")
    def _stage_references(self) -> JobConfig:
        seen: set[str] = set()
        folded: dict[str, bool] = {}
        for stage in self.stages:
            if stage.name in seen:
                raise ValueError(f"stage name {stage.name!r} is used twice")
            for role in ("teacher", "init_from"):
                earlier = getattr(stage, role)
                if earlier is not None and earlier not in seen:
                    raise ValueError(f"stage {stage.name!r}: {role} {earlier!r} is not an earlier stage")
            if stage.init_from is not None and folded.get(stage.init_from):
                raise ValueError(f"stage {stage.name!r}: init_from {stage.init_from!r} has folds, so no single model "
                                 "to start from")
            seen.add(stage.name)
            folded[stage.name] = stage.folds is not None
        return self

    def resolved(self) -> dict[str, Any]:
        """Plain, JSON-able dict with absolute paths: what is saved with every run."""
        data = self.model_dump(mode="json")
        for section, key in (("data", "manifest"), ("data", "clean_labels")):
            if data[section][key] is not None:
                data[section][key] = resolve_storage(data[section][key])
        for key in teacher_keys(self):
            section, *path = key.split(".")
            node = data[section]
            for part in path[:-1]:
                node = node[part]
            if node[path[-1]] is not None:
                node[path[-1]] = resolve_storage(node[path[-1]])
        if data["model"]["init"] is not None:
            data["model"]["init"] = resolve_storage(data["model"]["init"])
        for key in ("teacher", "unlabeled_dir"):
            if data["semi"][key] is not None:
                data["semi"][key] = resolve_storage(data["semi"][key])
        data["storage"] = resolve_storage(data["storage"])
        return data


def flatten(tree: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"a": {"b": 1}}`` -> ``{"a.b": 1}`` (lists stay values)."""
    flat = {}
    for key, value in tree.items():
        if isinstance(value, dict) and value:
            flat.update(flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def apply_override(tree: dict[str, Any], assignment: str) -> None:
    """Applies one ``dotted.key=value`` (value parsed as YAML) to a raw config dict."""
    key, sep, raw = assignment.partition("=")
    key = key.strip()
    if not sep or not key:
        raise ConfigError(f"override {assignment!r} is not of the form key=value")
    _check_flow_depth(raw, key)
    try:
        value = yaml.safe_load(raw) if raw.strip() else None
    except (yaml.YAMLError, ValueError, OverflowError) as exc:  # PyYAML lets chr()'s errors out of escapes
        raise ConfigError(f"{key}: cannot parse value {raw!r} ({exc})") from None
    except RecursionError:
        raise ConfigError(f"{key}: the value is nested too deeply") from None
    check_yaml_value(value, key)
    node = tree
    parts = key.split(".")
    for i, part in enumerate(parts[:-1]):
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            raise ConfigError(f"{key}: {'.'.join(parts[: i + 1])} is a value, not a section")
        node = child
    node[parts[-1]] = value


def _describe(error: dict) -> str:
    loc = _shown(error["loc"])
    where = ".".join(str(p) for p in loc) or "<job>"
    if error["type"] == "union_tag_invalid":
        return f"{where}.name: unknown method {error['ctx']['tag']!r}; choose one of {', '.join(method_names())}"
    if error["type"] == "extra_forbidden":
        return f"{where}: unknown key{_allowed(error['loc'])}{_moved(loc)}"
    if error["type"] == "missing":
        return f"{where}: required key is missing"
    message = error["msg"].removeprefix("Value error, ")
    # A section's own check names the value it refused; the whole section is no help.
    shown = loc and not isinstance(error.get("input"), dict)
    return f"{where}: {message}" + (f" (got {error.get('input')!r})" if shown else "")


def _shown(loc: tuple) -> tuple:
    """The key path as the job file writes it: without the method tag pydantic puts after ``objective``."""
    if len(loc) > 1 and loc[0] == "objective" and loc[1] in OBJECTIVE_MODELS:
        return (loc[0], *loc[2:])
    return tuple(loc)


def _allowed(loc: tuple) -> str:
    model: type[BaseModel] | None = JobConfig
    parts = list(loc[:-1])
    while parts:
        part = str(parts.pop(0))
        if model is JobConfig and part == "objective" and parts and parts[0] in OBJECTIVE_MODELS:
            method = parts.pop(0)
            model = OBJECTIVE_MODELS[method]
            if not parts:
                return f" for method {method}; allowed: {', '.join(_keys(model))}"
            continue
        field = model.model_fields.get(part) if model else None
        annotation = field.annotation if field else None
        model = annotation if isinstance(annotation, type) and issubclass(annotation, BaseModel) else None
    return f"; allowed: {', '.join(model.model_fields)}" if model else ""


def _keys(model: type[BaseModel]) -> list[str]:
    return ["name"] + [key for key in model.model_fields if key != "name"]


def _moved(loc: tuple) -> str:
    """Where an ``objective`` key that is not the chosen method's lives: a key that moved when
    methods took over their settings, or another method's setting."""
    if len(loc) != 2 or loc[0] != "objective":
        return ""
    key = str(loc[1])
    moved: dict[tuple[str, str], list[str]] = {}
    for cls in methods().values():
        for old, new in cls.renamed.items():
            if old == key or old.startswith(f"{key}."):
                moved.setdefault((old, new), []).append(cls.name)
    hints = [f"objective.{old} is objective.{new} now ({', '.join(names)})" for (old, new), names in moved.items()]
    owners = [cls.name for cls in methods().values() if key in cls.Settings.model_fields]
    if owners and not hints:
        hints.append(f"{key} is a setting of {', '.join(owners)}")
    return f" ({'; '.join(hints)})" if hints else ""


def validate_job(tree: dict[str, Any]) -> JobConfig:
    """Validates a raw config dict; all problems are reported together."""
    try:
        return JobConfig.model_validate(tree)
    except ValidationError as exc:
        problems = "\n  ".join(_describe(e) for e in exc.errors())
        raise ConfigError(f"invalid configuration:\n  {problems}") from None


def switch_method(tree: dict[str, Any], name: Any) -> None:
    """Prepares a dumped job tree (every key written out) for ``objective.name: name``: when that
    changes the method, the old method's settings are dropped, so the new one starts from its own
    defaults; the wrappers' sections (``objective.mean_teacher``) stay."""
    objective = tree.get("objective")
    if isinstance(objective, dict) and objective.get("name", DEFAULT_METHOD) != name:
        tree["objective"] = {key: value for key, value in objective.items() if key in objective_sections()}


def _merge(base: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def stage_jobs(job: JobConfig) -> list[tuple[StageConfig, JobConfig]]:
    """The stand-alone job of every stage, validated: name ``<job>-<stage>``, overrides applied.

    A stage whose overrides pick another ``objective.name`` starts from that method's default
    settings (:func:`switch_method`). A stage with a ``teacher`` gets that stage's exported best
    model at every config key where its methods take a teacher (:func:`raytag.methods.teacher_keys`); a stage with ``init_from``
    starts from that stage's best model (``model.init``). Problems are reported with the stage's
    name, e.g. ``stages[student].train.lr``.
    """
    base = job.model_dump(mode="json", exclude={"stages"})
    jobs: dict[str, JobConfig] = {}
    out = []
    for stage in _expand_rounds(job.stages):
        stage_base = dict(base)
        objective = stage.overrides.get("objective")
        if isinstance(objective, dict) and "name" in objective:
            switch_method(stage_base, objective["name"])
        tree = _merge(stage_base, stage.overrides)
        tree["name"] = f"{job.name}-{stage.name}"
        try:
            stage_job = validate_job(tree)
        except ConfigError as exc:
            raise ConfigError(str(exc).replace("\n  ", f"\n  stages[{stage.name}].")) from None
        fills = []
        if stage.teacher is not None:
            keys = teacher_keys(stage_job)
            if not keys:
                raise ConfigError(f"stages[{stage.name}]: a teacher is given but none of its methods takes one")
            fills += [(key, jobs[stage.teacher]) for key in keys]
        if stage.init_from is not None:
            fills.append(("model.init", jobs[stage.init_from]))
        if fills:
            for key, earlier in fills:
                apply_override(tree, f"{key}={best_model_location(earlier.storage, earlier.name)}")
            stage_job = validate_job(tree)
        jobs[stage.name] = stage_job
        out.append((stage, stage_job))
    return out


def _expand_rounds(stages: list[StageConfig]) -> list[StageConfig]:
    """``repeat: n`` becomes n stages, round k taught by round k-1 (noisy student iteration)."""
    expanded = []
    for stage in stages:
        expanded.append(stage)
        for round_ in range(2, stage.repeat + 1):
            previous = expanded[-1].name
            expanded.append(stage.model_copy(update={"name": f"{stage.name}-r{round_}", "teacher": previous, "repeat": 1}))
    return expanded


def read_yaml_mapping(path: str | Path, what: str) -> dict[str, Any]:
    """A YAML file whose top level is a mapping; problems raise :class:`ConfigError`."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{what} not found: {path}")
    try:
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    _check_flow_depth(text, str(path))
    try:
        tree = yaml.safe_load(text) or {}
    except (yaml.YAMLError, ValueError, OverflowError) as exc:  # PyYAML lets chr()'s errors out of escapes
        raise ConfigError(f"{path}: not valid YAML ({exc})") from None
    except RecursionError:
        raise ConfigError(f"{path}: YAML nested too deeply") from None
    if not isinstance(tree, dict):
        raise ConfigError(f"{path}: a {what} must be a mapping of keys to settings")
    check_yaml_value(tree, str(path))
    return tree


MAX_FLOW_DEPTH = 100
"""The deepest nesting of ``[``/``{`` brackets YAML text may have: PyYAML's parser takes time
quadratic in it (seconds at a thousand) before it fails on Python's recursion limit."""


def _check_flow_depth(text: str, where: str) -> None:
    """Refuses text whose brackets nest deeper than :data:`MAX_FLOW_DEPTH` (brackets inside
    quotes and comments count too: no real setting comes near)."""
    depth = deepest = 0
    for char in text:
        if char in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif char in "]}" and depth:
            depth -= 1
    if deepest > MAX_FLOW_DEPTH:
        raise ConfigError(f"{where}: YAML nested too deeply ({deepest} levels of brackets; at most {MAX_FLOW_DEPTH})")


MAX_YAML_VALUES = 100_000
"""The most values (scalars, lists and mappings, counted with YAML aliases expanded) a job
file, a search space or an override value may hold; far above any real job."""


def check_yaml_value(value: Any, where: str) -> None:
    """Refuses a loaded YAML value that aliases make endless (an anchor used inside itself) or
    huge once expanded (nested aliases, the "billion laughs"): validation and saving the
    resolved config would loop or copy it without end.

    Raises:
        ConfigError: naming ``where`` and the key at fault.
    """
    sizes: dict[int, int] = {}

    def size(node: Any, trail: str, active: set[int]) -> int:
        if not isinstance(node, (dict, list)):
            return 1
        key = id(node)
        if key in sizes:
            return sizes[key]
        if key in active:
            raise ConfigError(f"{where}: {trail or 'the top level'} contains itself (a YAML alias of its own anchor)")
        active.add(key)
        items = node.items() if isinstance(node, dict) else enumerate(node)
        total = 1 + sum(size(child, f"{trail}.{name}" if trail else str(name), active) for name, child in items)
        active.discard(key)
        if total > MAX_YAML_VALUES:
            raise ConfigError(f"{where}: {trail or 'the file'} expands to more than {MAX_YAML_VALUES:,} values "
                              "(YAML aliases nested in aliases?)")
        sizes[key] = total
        return total

    try:
        size(value, "", set())
    except RecursionError:
        raise ConfigError(f"{where}: YAML nested too deeply") from None


def load_job(path: str | Path, overrides: list[str] | tuple[str, ...] = ()) -> JobConfig:
    """Reads a YAML job file, applies ``key=value`` overrides and validates the result."""
    tree = read_yaml_mapping(path, "job file")
    for assignment in overrides:
        apply_override(tree, assignment)
    job = validate_job(tree)
    stage_jobs(job)  # every stage must be valid too, before anything runs
    return job
