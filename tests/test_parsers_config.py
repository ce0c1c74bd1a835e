"""Property-based tests of the job YAML, the search-space YAML and ``key=value`` overrides
(raytag.config, raytag.search_space): any file and overrides either load or raise ConfigError
naming the file or the key; never another exception or a hang (see tests/parser_properties.py).

Inputs start from the project's own job files (jobs/*.yaml) and search spaces
(tune_spaces/*.yaml): a setting replaced by any YAML value or removed, an unknown key added,
pipeline stages with any overrides, YAML's own tricks (anchors and aliases that nest or expand,
deep nesting, tags, dates), then byte-level damage. Overrides name known keys or odd ones, with
any value.
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import get_args, get_origin

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st
from parser_properties import PROFILE, damaged, odd_text, parses_or_refuses
from pydantic import BaseModel

from raytag.config import OBJECTIVE_MODELS, JobConfig, flatten, load_job, stage_jobs
from raytag.search_space import DISTRIBUTIONS, check_space, read_space

CHECKOUT = Path(__file__).resolve().parents[1]
JOB_FILES = sorted((CHECKOUT / "jobs").glob("*.yaml"))
SPACE_FILES = sorted((CHECKOUT / "tune_spaces").glob("*.yaml"))
JOBS = {path.name: yaml.safe_load(path.read_text()) for path in JOB_FILES}
KEYS = sorted({key for tree in JOBS.values() for key in flatten(tree)} | {
    "train.lr", "train.epochs", "model.args.width", "objective.name", "scaling.num_workers", "eval.max_chunks",
    "augment.params.pitch_semitones", "semi.enabled", "objective.mean_teacher.eta", "data.tags",
})
PROBLEM = re.compile(r"^invalid configuration:\n(  \S.*: .*(\n|$))+", re.DOTALL)

SCALARS = st.one_of(
    st.none(), st.booleans(), st.integers(), st.integers(min_value=10**20, max_value=10**400), st.floats(),
    odd_text(), st.sampled_from(["mtt", "mtt-tiny", "bce", "coteaching", "valid", "test", "auto", "[1, 2]", "1e-3"]),
)
VALUES = st.recursive(SCALARS, lambda inner: st.one_of(
    st.lists(inner, max_size=3), st.dictionaries(st.one_of(st.text(max_size=6), st.integers()), inner, max_size=3)),
    max_leaves=6)


@st.composite
def yaml_trick(draw) -> str:
    """YAML text that is a trap for a loader: anchors and aliases (a cycle, or an expansion of
    width**depth values), deep nesting, a tag, a date, a tab, a duplicate key."""
    kind = draw(st.sampled_from(["cycle", "expand", "deep", "tag", "date", "tab", "duplicate"]))
    key = draw(st.sampled_from(KEYS + ["x"])).split(".")[-1]
    if kind == "cycle":
        return f"{key}: &a [*a]\n"
    if kind == "expand":
        width, depth = draw(st.integers(2, 10)), draw(st.integers(1, 9))
        lines = ["_0: &l0 [" + ", ".join(["1"] * width) + "]"]
        lines += [f"_{i}: &l{i} [" + ", ".join([f"*l{i - 1}"] * width) + "]" for i in range(1, depth)]
        return "\n".join(lines) + f"\n{key}: *l{depth - 1}\n"
    if kind == "deep":
        depth = draw(st.sampled_from([50, 500, 5000]))
        return f"{key}: " + "[" * depth + "]" * depth + "\n"
    if kind == "tag":
        return f"{key}: !!{draw(st.sampled_from(['python/object:os.system x', 'binary aGk=', 'set {a}', 'omap []']))}\n"
    if kind == "date":
        return f"{key}: 2020-01-01\n"
    if kind == "tab":
        return f"{key}:\t1\n"
    return f"{key}: 1\n{key}: 2\n"


def set_key(tree: dict, dotted: str, value) -> None:
    node = tree
    parts = dotted.split(".")
    for part in parts[:-1]:
        if not isinstance(node.get(part), dict):
            node[part] = {}
        node = node[part]
    node[parts[-1]] = value


@st.composite
def job_text(draw) -> bytes:
    """A job file: one of jobs/*.yaml with settings changed, removed or added, maybe stages,
    maybe a YAML trick under a section; then byte-level damage."""
    tree = yaml.safe_load(yaml.safe_dump(JOBS[draw(st.sampled_from(sorted(JOBS)))]))
    for _ in range(draw(st.one_of(st.just(0), st.integers(0, 3)))):
        action = draw(st.sampled_from(["set", "set", "remove", "unknown", "stages"]))
        key = draw(st.sampled_from(KEYS))
        if action == "set":
            set_key(tree, key, draw(VALUES))
        elif action == "remove":
            set_key(tree, key, None)
            node = tree
            for part in key.split(".")[:-1]:
                node = node.get(part) if isinstance(node, dict) else None
            if isinstance(node, dict):
                node.pop(key.split(".")[-1], None)
        elif action == "unknown":
            set_key(tree, draw(st.sampled_from([key.rsplit(".", 1)[0] + ".", ""])).lstrip(".") + draw(odd_text())
                    or "x", draw(VALUES))
        else:
            tree["stages"] = draw(st.lists(st.fixed_dictionaries(
                {"name": st.one_of(st.sampled_from(["teacher", "student"]), odd_text())},
                optional={"teacher": st.sampled_from(["teacher", "student", "none"]),
                          "init_from": st.sampled_from(["teacher", "x"]), "repeat": st.integers(-1, 3),
                          "overrides": st.dictionaries(st.sampled_from(KEYS).map(lambda k: k.split(".")[0]),
                                                       VALUES, max_size=2)}), max_size=3))
    text = yaml.safe_dump(tree, allow_unicode=draw(st.booleans()))
    if draw(st.integers(0, 3)) == 0:
        section = draw(st.sampled_from(["model:\n  args:\n", "objective:\n", ""]))
        trick = draw(yaml_trick())
        text = text + (section + "".join("    " + line + "\n" for line in trick.splitlines()) if section else trick)
    return draw(damaged(text.encode("utf-8")))


@st.composite
def override(draw) -> str:
    """A ``key=value`` override: a known or odd key; a YAML value, odd text or a trick."""
    key = draw(st.one_of(st.sampled_from(KEYS), st.sampled_from(KEYS), odd_text()))
    value = draw(st.one_of(VALUES.map(lambda v: yaml.safe_dump(v, default_flow_style=True).strip()), odd_text(),
                           yaml_trick().map(lambda t: t.split(": ", 1)[-1].strip())))
    return draw(st.sampled_from([f"{key}={value}", f"{key} = {value}", key, f"={value}"]))


def names_the_problem(message: str, names: list[str]) -> bool:
    return any(n and (n in message or repr(n) in message) for n in names) or bool(PROBLEM.match(message))


def float_keys(model: type[BaseModel], prefix: str = "") -> list[str]:
    """Dotted keys of every typed float setting of ``model`` and its sections (a
    ``dict[str, float]`` by one made-up entry, ``.tpu``); free-form values (``model.args``,
    ``augment.params``, stage overrides) are no typed settings."""
    keys = []
    for name, field in model.model_fields.items():
        kinds = get_args(field.annotation) or (field.annotation,)
        if get_origin(field.annotation) is dict:
            keys += [f"{prefix}{name}.tpu"] if kinds[1] is float else []
        elif float in kinds:
            keys.append(f"{prefix}{name}")
        for kind in kinds:
            if isinstance(kind, type) and issubclass(kind, BaseModel):
                keys += float_keys(kind, f"{prefix}{name}.")
    return keys


FLOAT_SETTINGS = [(None, key) for key in float_keys(JobConfig)] + [
    (method, f"objective.{key}") for method, model in OBJECTIVE_MODELS.items() for key in float_keys(model)]
"""(method to choose or None, dotted key) of every float setting of a job, the methods' included."""
NON_FINITE = st.sampled_from([".inf", "-.inf", ".nan", "inf", "-inf", "nan", "Infinity", "1e999", "-1e999"])


def non_finite_settings(section: BaseModel, prefix: str = "") -> list[str]:
    """Keys of the typed float settings of ``section`` (and its sections) that hold inf or nan."""
    found = []
    for name, field in type(section).model_fields.items():
        value, key = getattr(section, name), f"{prefix}{name}"
        if isinstance(value, BaseModel):
            found += non_finite_settings(value, f"{key}.")
        elif isinstance(value, float) and not math.isfinite(value):
            found.append(key)
        elif isinstance(value, dict) and get_args(field.annotation)[1:] == (float,):
            found += [f"{key}.{entry}" for entry, number in value.items() if not math.isfinite(number)]
    return found


def every_setting_finite(job: JobConfig) -> None:
    for stage, stage_job in [(None, job), *stage_jobs(job)]:
        assert not non_finite_settings(stage_job), (stage and stage.name, non_finite_settings(stage_job))


@PROFILE
@given(data=job_text(), overrides=st.one_of(st.just([]), st.lists(override(), max_size=3)))
def test_any_job_file_and_overrides_load_or_are_refused(tmp_path, data, overrides):
    path = tmp_path / "job.yaml"
    path.write_bytes(data)
    keys = [o.partition("=")[0].strip() for o in overrides] + [f"override {o!r}" for o in overrides]
    outcome = parses_or_refuses("job-yaml", lambda: load_job(path, overrides), [str(path), *keys, *overrides, "invalid configuration:\n  "])
    if isinstance(outcome, Exception):
        assert names_the_problem(str(outcome), [str(path), *keys, *overrides]), str(outcome)
    else:
        every_setting_finite(outcome)


@PROFILE
@given(setting=st.sampled_from(FLOAT_SETTINGS), value=st.one_of(NON_FINITE, st.floats().map(repr)),
       in_file=st.booleans())
def test_a_float_setting_is_finite_or_refused_naming_its_key(tmp_path, setting, value, in_file):
    """Any float setting, set in the file or by an override to any float (inf and nan spelled
    every way YAML and Python read them): the job loads with a finite value, or is refused
    naming the key."""
    method, key = setting
    tree = yaml.safe_load(yaml.safe_dump(JOBS["demo-teacher.yaml"]))
    overrides = [f"objective.name={method}"] if method else []
    if in_file:
        set_key(tree, key, yaml.safe_load(value))
    else:
        overrides.append(f"{key}={value}")
    path = tmp_path / "job.yaml"
    path.write_text(yaml.safe_dump(tree))
    outcome = parses_or_refuses("float-setting", lambda: load_job(path, overrides), [f"{key}: "])
    if not isinstance(outcome, Exception):
        every_setting_finite(outcome)


@st.composite
def space_text(draw) -> bytes:
    """A search space: one of tune_spaces/*.yaml with entries changed (any distribution name,
    any arguments, any path), metric/mode/stage of any value, a trick; then byte damage."""
    tree = yaml.safe_load(draw(st.sampled_from(SPACE_FILES)).read_text())
    params = tree.setdefault("params", {})
    for _ in range(draw(st.integers(0, 3))):
        action = draw(st.sampled_from(["param", "param", "args", "top", "params"]))
        if action == "param":
            kind = draw(st.one_of(st.sampled_from(DISTRIBUTIONS), odd_text()))
            args = draw(st.one_of(st.lists(st.one_of(st.integers(-5, 5), st.floats(), SCALARS), max_size=4), VALUES))
            params[draw(st.one_of(st.sampled_from(KEYS), odd_text()))] = {kind: args}
        elif action == "args" and params:
            params[draw(st.sampled_from(sorted(params)))] = draw(VALUES)
        elif action == "top":
            tree[draw(st.one_of(st.sampled_from(["metric", "mode", "stage"]), odd_text(), st.integers()))] = draw(VALUES)
        else:
            tree["params"] = draw(VALUES)
    text = yaml.safe_dump(tree, allow_unicode=True)
    if draw(st.integers(0, 4)) == 0:
        text += draw(yaml_trick())
    return draw(damaged(text.encode("utf-8")))


@pytest.fixture(scope="module")
def space_jobs(tmp_path_factory):
    """A plain job and a pipeline job (stages) that spaces are checked against."""
    folder = tmp_path_factory.mktemp("space-jobs")
    return [load_job(CHECKOUT / "jobs" / "demo-teacher.yaml"), load_job(CHECKOUT / "jobs" / "demo-noisy-student.yaml")]


@PROFILE
@given(data=space_text(), pipeline=st.booleans())
def test_any_search_space_reads_and_checks_or_is_refused(tmp_path, space_jobs, data, pipeline):
    path = tmp_path / "space.yaml"
    path.write_bytes(data)
    space = parses_or_refuses("space-yaml", lambda: read_space(path), [str(path), "params."])
    if isinstance(space, Exception):
        return
    keys = [p.path for p in space.params] + ([space.stage] if isinstance(space.stage, str) else [])
    parses_or_refuses("space-yaml", lambda: check_space(space_jobs[pipeline], space), ["search space", *keys])
