"""Training methods, one file each, found by looking: the registry.

Every module in this folder (but :mod:`base` and :mod:`settings`) is imported, and each
:class:`~raytag.methods.base.Method` subclass that sets ``name`` in its own body is registered:
a :class:`~raytag.methods.base.Wrapper` as a wrapper, anything else as a base method that
``objective.name`` picks. A method declares its settings, the wrappers it accepts and its
teacher key (see :class:`~raytag.methods.base.Method`); the job config, ``raytag methods`` and
the README's tables read them from here. Method modules import torch only where it runs, so
registering (and validating a job file) does not import it. A new method is its own file and
its tests.
"""

from __future__ import annotations

import importlib
import pkgutil
from functools import cache
from typing import Any

from raytag.methods.base import Method, Wrapper
from raytag.methods.settings import MethodSettings

DEFAULT_METHOD = "bce"
_NOT_METHODS = ("base", "settings", "catalog")


@cache
def _registry() -> tuple[dict[str, type[Method]], dict[str, type[Wrapper]]]:
    methods: dict[str, type[Method]] = {}
    wrappers: dict[str, type[Wrapper]] = {}
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda i: i.name):
        if info.name in _NOT_METHODS or info.name.startswith("_"):
            continue
        module = importlib.import_module(f"{__name__}.{info.name}")
        for value in vars(module).values():
            if not (isinstance(value, type) and issubclass(value, Method) and value.__module__ == module.__name__
                    and "name" in value.__dict__):
                continue
            table = wrappers if issubclass(value, Wrapper) else methods
            if value.name in methods or value.name in wrappers:
                raise RuntimeError(f"two methods are named {value.name!r}: {table[value.name]} and {value}")
            table[value.name] = value
    check_declarations([*methods.values(), *wrappers.values()], list(wrappers))
    return dict(sorted(methods.items())), dict(sorted(wrappers.items(), key=lambda kv: (kv[1].order, kv[0])))


def check_declarations(classes: list[type[Method]], wrapper_names: list[str]) -> None:
    """Raises RuntimeError if a class accepts a wrapper that is not registered (a typo would
    otherwise make every combination with it an error)."""
    for cls in classes:
        unknown = sorted(set(cls.accepts or ()) - set(wrapper_names))
        if unknown:
            raise RuntimeError(f"method {cls.name!r} accepts unknown wrapper(s) {', '.join(unknown)}; "
                               f"the wrappers are {', '.join(wrapper_names)}")


def methods() -> dict[str, type[Method]]:
    """Base methods by name (sorted): what ``objective.name`` accepts."""
    return dict(_registry()[0])


def wrappers() -> dict[str, type[Wrapper]]:
    """Wrappers by name, in the order they wrap a base method."""
    return dict(_registry()[1])


def method_names() -> list[str]:
    """The names ``objective.name`` accepts."""
    return list(methods())


def method_class(name: str) -> type[Method]:
    """The base method registered as ``name``.

    Raises:
        ValueError: for an unknown name, listing the registered ones.
    """
    try:
        return methods()[name]
    except KeyError:
        raise ValueError(f"unknown method {name!r}; choose one of {', '.join(method_names())}") from None


def objective_sections() -> dict[str, type[MethodSettings]]:
    """The ``objective`` sub-sections wrappers own (e.g. ``mean_teacher``) and their settings."""
    return {w.section: w.Settings for w in wrappers().values() if w.section is not None}


def accepted_wrappers(method: type[Method]) -> list[str]:
    """The wrappers ``method`` (a base method or a wrapper) can be combined with."""
    others = [name for name in wrappers() if name != method.name]
    return others if method.accepts is None else [name for name in others if name in method.accepts]


def enabled_wrappers(job: Any) -> list[type[Wrapper]]:
    """The wrappers a validated job turns on, in wrapping order."""
    return [w for w in wrappers().values() if w.enabled(job)]


def conflicts(job: Any) -> list[str]:
    """Why the job's method and the wrappers it turns on cannot run together (empty: they can).

    A pair conflicts unless each of the two accepts the other.
    """
    chain: list[type[Method]] = [method_class(job.objective.name), *enabled_wrappers(job)]
    problems = []
    for i, first in enumerate(chain):
        for second in chain[i + 1:]:
            if second.name not in accepted_wrappers(first) or (
                    issubclass(first, Wrapper) and first.name not in accepted_wrappers(second)):
                what = f"objective.name {first.name}" if i == 0 else f"{first.name} ({first.switch})"
                problems.append(f"{what} cannot be combined with {second.name} ({second.switch})")
    return problems


def teacher_keys(job: Any) -> list[str]:
    """The config keys where the job's methods take an exported teacher."""
    chain = [method_class(job.objective.name), *enabled_wrappers(job)]
    return [cls.teacher_key for cls in chain if cls.teacher_key is not None]


def build_method(job: Any, *, tags: list[str]) -> Method:
    """The method a validated job config describes: its base method, wrapped by every enabled
    wrapper in wrapping order. Built the same way on the driver (for its needs) and on every
    training worker (for its loss)."""
    method = method_class(job.objective.name).from_job(job, tags=list(tags))
    for wrapper in enabled_wrappers(job):
        method = wrapper.wrap(method, job)
    return method
