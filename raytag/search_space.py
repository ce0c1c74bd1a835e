"""Search spaces: YAML files of dotted config paths and distributions, checked against a job.

A space file::

    stage: student              # pipeline jobs: the stage whose settings are swept
    metric: valid/roc_auc       # what trials are compared on (default: the job's select_metric
                                # on its train.select_labels rows: valid_verified/... or valid/...)
    mode: max
    params:
      objective.percentile: {grid: [70, 80, 90]}
      objective.mean_teacher.eta: {uniform: [0.99, 0.9995]}
      train.lr: {loguniform: [1.0e-4, 3.0e-3]}
      model.args.depth: {choice: [1, 2, 4]}
      objective.mean_teacher.warmup_epochs: {quniform: [2, 8, 2]}

Validation happens before anything starts: the job is validated with every value a
distribution can produce at its edges (its bounds, its choices) set at its path. An unknown
path or an impossible value thus fails with the path and the reason, not mid-sweep.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from raytag.config import (
    ConfigError,
    JobConfig,
    apply_override,
    read_yaml_mapping,
    stage_jobs,
    switch_method,
    validate_job,
)

DISTRIBUTIONS = ("choice", "grid", "uniform", "loguniform", "quniform")


@dataclass(frozen=True)
class Param:
    """One swept setting: a dotted path, a distribution name and its arguments."""

    path: str
    kind: str
    args: tuple

    def candidates(self) -> list[Any]:
        """Values that stand for the whole range in validation (choices, or the bounds)."""
        if self.kind in ("choice", "grid"):
            return list(self.args)
        if self.kind == "quniform":
            low, high, q = self.args
            return [_quantize(low, q), _quantize(high, q)]
        return list(self.args[:2])


@dataclass(frozen=True)
class SearchSpace:
    params: tuple[Param, ...]
    metric: str | None = None
    mode: str = "max"
    stage: str | None = None

    def as_dict(self) -> dict:
        """The space as it was read (for logging as an artifact)."""
        return {
            "stage": self.stage,
            "metric": self.metric,
            "mode": self.mode,
            "params": {p.path: {p.kind: list(p.args)} for p in self.params},
        }


def _quantize(value: float, q: float) -> float | int:
    out = round(value / q) * q
    return int(out) if float(q).is_integer() and float(out).is_integer() else out


def _parse_param(path: str, spec: Any) -> Param:
    where = f"params.{path}"
    if not isinstance(spec, dict) or len(spec) != 1:
        raise ConfigError(f"{where}: give exactly one distribution, e.g. {{uniform: [0.1, 0.9]}}")
    kind, args = next(iter(spec.items()))
    if kind not in DISTRIBUTIONS:
        raise ConfigError(f"{where}: unknown distribution {kind!r}; use one of {', '.join(DISTRIBUTIONS)}")
    if not isinstance(args, list) or not args:
        raise ConfigError(f"{where}: {kind} needs a non-empty list of arguments")
    if kind in ("uniform", "loguniform", "quniform"):
        expected = 3 if kind == "quniform" else 2
        if len(args) != expected or not all(isinstance(a, (int, float)) and not isinstance(a, bool) for a in args):
            shape = "[low, high, q]" if kind == "quniform" else "[low, high]"
            raise ConfigError(f"{where}: {kind} takes {shape} numbers, got {args}")
        if not all(math.isfinite(a) for a in args):
            raise ConfigError(f"{where}: {kind} takes finite numbers, got {args}")
        low, high = args[0], args[1]
        if not low < high:
            raise ConfigError(f"{where}: {kind} needs low < high, got {low} and {high}")
        if kind == "loguniform" and low <= 0:
            raise ConfigError(f"{where}: loguniform needs positive bounds, got {low}")
        if kind == "quniform" and not args[2] > 0:
            raise ConfigError(f"{where}: quniform needs q > 0, got {args[2]}")
        if kind == "quniform" and not all(math.isfinite(bound / args[2]) for bound in (low, high)):
            raise ConfigError(f"{where}: quniform's q {args[2]} is too small for the bounds {low} and {high}")
    return Param(path, kind, tuple(args))


def read_space(path: str | Path) -> SearchSpace:
    """Reads a space file; structural problems raise :class:`ConfigError` naming the entry."""
    tree = read_yaml_mapping(path, "search space")
    unknown = sorted(repr(k) if not isinstance(k, str) else k for k in tree if k not in ("params", "metric", "mode", "stage"))
    if unknown:
        raise ConfigError(f"{path}: unknown key(s) {', '.join(unknown)}; allowed: params, metric, mode, stage")
    params = tree.get("params")
    if not isinstance(params, dict) or not params:
        raise ConfigError(f"{path}: 'params' must map dotted config paths to distributions")
    if tree.get("mode", "max") not in ("max", "min"):
        raise ConfigError(f"{path}: mode must be max or min, got {tree['mode']!r}")
    for key in ("metric", "stage"):
        if not isinstance(tree.get(key, ""), str):
            raise ConfigError(f"{path}: {key} must be a name, got {tree[key]!r}")
    return SearchSpace(
        params=tuple(_parse_param(str(k), v) for k, v in params.items()),
        metric=tree.get("metric"),
        mode=tree.get("mode", "max"),
        stage=tree.get("stage"),
    )


def target_job(job: JobConfig, space: SearchSpace) -> JobConfig:
    """The job the trials run: the job itself, or the space's stage of a pipeline job."""
    if not job.stages:
        if space.stage is not None:
            raise ConfigError(f"the space names stage {space.stage!r} but the job has no stages")
        return job
    stages = {stage.name: stage_job for stage, stage_job in stage_jobs(job)}
    name = space.stage or list(stages)[-1]
    if name not in stages:
        raise ConfigError(f"the space names stage {name!r}; the job's stages are {', '.join(stages)}")
    return stages[name]


def apply_params(job: JobConfig, values: dict[str, Any], name: str | None = None) -> JobConfig:
    """``job`` with dotted-path values set (and renamed), validated."""
    tree = job.model_dump(mode="json", exclude={"stages"})
    if "objective.name" in values:
        switch_method(tree, values["objective.name"])
    for path, value in values.items():
        apply_override(tree, f"{path}={yaml.safe_dump(value, default_flow_style=True).strip()}")
    if name is not None:
        tree["name"] = name
    return validate_job(tree)


def check_space(job: JobConfig, space: SearchSpace) -> JobConfig:
    """Validates the space against the job: unknown paths and impossible values name the path.

    Returns the job that trials will run (see :func:`target_job`).
    """
    target = target_job(job, space)
    for param in space.params:
        for value in param.candidates():
            try:
                apply_params(target, {param.path: value})
            except ConfigError as exc:
                detail = str(exc).replace("invalid configuration:\n  ", "")
                raise ConfigError(f"search space params.{param.path} = {value!r}: {detail}") from None
    if space.metric is not None and not space.metric.startswith(("valid/", "valid_verified/", "train/")):
        raise ConfigError(f"search space metric {space.metric!r}: use a per-epoch metric (valid/..., "
                          "valid_verified/... or train/...)")
    return target

