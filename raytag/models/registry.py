"""Registry of model families and their named presets, readable without torch.

A *family* is an ``nn.Module`` class, named by import path, with the default value of every
keyword argument it takes. The class itself takes keyword-only arguments without defaults, so
the family's table is the one place a default lives. A *preset* is a family with some defaults
overridden and a one-line summary::

    TRANSFORMER = register_family("transformer", "raytag.models.transformer:MusicTaggingTransformer",
                                  num_tags=50, sample_rate=22050, width=256, ...)
    register_preset("mtt-compact", TRANSFORMER, "knowledge-distillation student", width=64)

``create_model("mtt-compact", width=128)`` imports the class and builds it with an override;
``model_arguments("mtt-compact")`` lists what a job may set, without importing torch, so a job
file is validated on a machine (or in a process) that never loads a model.
"""

from __future__ import annotations

import difflib
import importlib
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from raytag.errors import InputError

__all__ = [
    "Family",
    "ModelError",
    "Preset",
    "count_parameters",
    "create_model",
    "list_models",
    "model_arguments",
    "preset",
    "register_family",
    "register_preset",
]


class ModelError(InputError):
    """An unknown model name, an unknown model argument, or a bad registration."""


@dataclass(frozen=True)
class Family:
    """An ``nn.Module`` class (``"package.module:Class"``) and its argument defaults."""

    name: str
    target: str
    defaults: Mapping[str, Any]

    def load(self) -> type:
        """Imports and returns the class."""
        module, _, attribute = self.target.partition(":")
        return getattr(importlib.import_module(module), attribute)


@dataclass(frozen=True)
class Preset:
    """A named variant of a family: its arguments (family defaults, some overridden)."""

    name: str
    family: Family
    arguments: Mapping[str, Any]
    summary: str


_FAMILIES: dict[str, Family] = {}
_PRESETS: dict[str, Preset] = {}


def register_family(name: str, target: str, **defaults: Any) -> Family:
    """Registers a model class with the default of every keyword argument it takes.

    Raises:
        ModelError: the name is taken, or ``num_tags`` is not among the arguments.
    """
    if name in _FAMILIES:
        raise ModelError(f"model family {name!r} is already registered")
    if "num_tags" not in defaults:
        raise ModelError(f"model family {name!r} must take a num_tags argument")
    family = Family(name, target, MappingProxyType(dict(defaults)))
    _FAMILIES[name] = family
    return family


def register_preset(name: str, family: Family, summary: str, **overrides: Any) -> Preset:
    """Registers ``name`` as ``family`` with ``overrides`` of its defaults.

    Raises:
        ModelError: the name is taken, or an override is not an argument of the family.
    """
    if name in _PRESETS:
        raise ModelError(f"model {name!r} is already registered")
    _check_known(name, overrides, family.defaults)
    arguments = MappingProxyType({**family.defaults, **overrides})
    entry = Preset(name, family, arguments, summary)
    _PRESETS[name] = entry
    return entry


def preset(name: str) -> Preset:
    """The registered preset ``name``.

    Raises:
        ModelError: unknown name; the message lists the registered ones.
    """
    try:
        return _PRESETS[name]
    except KeyError:
        raise ModelError(
            f"unknown model {name!r}{_suggestion(name, _PRESETS)}; available models: {', '.join(list_models())}"
        ) from None


def list_models() -> list[str]:
    """Names of all registered presets, sorted."""
    return sorted(_PRESETS)


def model_arguments(name: str) -> dict[str, Any]:
    """Every argument ``create_model(name, ...)`` accepts, with the value the preset uses."""
    return dict(preset(name).arguments)


def create_model(name: str, **overrides: Any):
    """A freshly initialised model of preset ``name``; it maps a waveform (B, T) to logits
    (B, num_tags) and has ``sample_rate``, ``crop_samples``, ``min_samples`` (the shortest
    input it accepts) and ``num_tags`` attributes.

    Raises:
        ModelError: unknown name or argument; the message names it and lists the allowed ones.
        ValueError: the model rejects an argument's value.
    """
    entry = preset(name)
    _check_known(name, overrides, entry.arguments)
    return entry.family.load()(**{**entry.arguments, **overrides})


def check_argument_values(name: str, values: Mapping[str, Any]) -> list[str]:
    """What is wrong with the kinds of ``values`` (known arguments of preset ``name``), one line
    each, judged by the preset's defaults: a whole number where the default is one (not a bool,
    not 12.5), a finite number where it is a float (an int will do; ``None`` too where the
    default is ``None``), a list of such where it is a tuple. Unknown names are left to
    :func:`create_model`'s check; ranges (a positive width) to the model's own.
    """
    defaults = preset(name).arguments
    problems = []
    for key, value in values.items():
        if key not in defaults:
            continue
        default = defaults[key]
        kind = _kind(default)
        if kind is None or _is_kind(value, kind):
            continue
        shown = list(default) if isinstance(default, tuple) else default
        problems.append(f"{key}: {_KIND_WORDS[kind]} (the preset's default is {shown}); got {value!r}")
    return problems


_KIND_WORDS = {"int": "a whole number", "float": "a finite number", "optional float": "a finite number or null",
               "int list": "a list of whole numbers", "float list": "a list of finite numbers"}


def _kind(default: Any) -> str | None:
    if isinstance(default, bool):
        return None
    if isinstance(default, int):
        return "int"
    if isinstance(default, float):
        return "float"
    if default is None:
        return "optional float"
    if isinstance(default, tuple) and default and all(_kind(item) in ("int", "float") for item in default):
        return "int list" if all(_kind(item) == "int" for item in default) else "float list"
    return None


def _is_kind(value: Any, kind: str) -> bool:
    def whole(x):
        return isinstance(x, int) and not isinstance(x, bool)

    def number(x):
        return (whole(x) or isinstance(x, float)) and math.isfinite(x)

    if kind == "int":
        return whole(value)
    if kind == "float":
        return number(value)
    if kind == "optional float":
        return value is None or number(value)
    if not isinstance(value, (list, tuple)):
        return False
    return all(whole(x) if kind == "int list" else number(x) for x in value)


def count_parameters(module) -> int:
    """Number of trainable (``requires_grad``) parameter elements in ``module``."""
    return sum(parameter.numel() for parameter in module.parameters() if parameter.requires_grad)


def _check_known(name: str, overrides: Mapping[str, Any], allowed: Mapping[str, Any]) -> None:
    unknown = [key for key in overrides if key not in allowed]
    if unknown:
        hints = "".join(_suggestion(key, allowed) for key in unknown)
        raise ModelError(
            f"model {name!r} got unknown argument(s) {', '.join(map(repr, unknown))}{hints}; "
            f"allowed arguments: {', '.join(sorted(allowed))}"
        )


def _suggestion(word: str, candidates: Iterable[str]) -> str:
    """`` (did you mean 'x'?)`` for the closest candidate, or an empty string."""
    matches = difflib.get_close_matches(word, list(candidates), n=1)
    return f" (did you mean {matches[0]!r}?)" if matches else ""
