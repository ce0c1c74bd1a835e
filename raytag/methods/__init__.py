"""Training methods, one file each, registered by name.

The table below is the registry: ``objective.name`` in a job picks one of ``BASE_METHODS``;
``WRAPPERS`` add to it when their config section is enabled (``objective.mean_teacher``,
``semi``). It names classes by import path, so reading it (e.g. to validate a job file) does not
import torch. A new method is its own file, one line here, its config keys and its tests.
"""

from __future__ import annotations

import importlib
from typing import Any

BASE_METHODS = {
    "bce": "raytag.methods.bce:PlainBCE",
    "balanced_training": "raytag.methods.balanced_training:BalancedTraining",
    "balanced_masking": "raytag.methods.balanced_masking:BalancedMasking",
    "bootstrap_soft": "raytag.methods.bootstrap:SoftBootstrap",
    "bootstrap_hard": "raytag.methods.bootstrap:HardBootstrap",
    "coteaching": "raytag.methods.coteaching:CoTeaching",
    "staged_training": "raytag.methods.staged_training:StagedTraining",
}
WRAPPERS = {
    # name: (class, the config switch that enables it); applied in this order
    "multi_activation": ("raytag.methods.multi_activation:MultiActivation", lambda job: job.model.head != "sigmoid"),
    "mean_teacher": ("raytag.methods.mean_teacher:MeanTeacher", lambda job: job.objective.mean_teacher.enabled),
    "noisy_student": ("raytag.methods.noisy_student:NoisyStudent", lambda job: job.semi.enabled),
}
TEACHER_KEYS = {
    # method -> the config key naming the exported teacher it needs (a pipeline's teacher fills it)
    "balanced_masking": "objective.masking.teacher",
    "noisy_student": "semi.teacher",
}


def method_names() -> list[str]:
    """The names ``objective.name`` accepts."""
    return sorted(BASE_METHODS)


def teacher_keys(job: Any) -> list[str]:
    """The config keys where the job's methods take an exported teacher."""
    names = [job.objective.name] + [name for name, (_, enabled) in WRAPPERS.items() if enabled(job)]
    return [TEACHER_KEYS[name] for name in names if name in TEACHER_KEYS]


def load_class(target: str) -> type:
    module, _, attribute = target.partition(":")
    return getattr(importlib.import_module(module), attribute)


def build_method(job: Any, *, tags: list[str]):
    """The method a validated job config describes: its base method, wrapped by every enabled
    wrapper in the table's order. Built the same way on the driver (for its needs) and on every
    training worker (for its loss)."""
    if job.objective.name not in BASE_METHODS:
        raise ValueError(f"unknown method {job.objective.name!r}; choose one of {', '.join(method_names())}")
    method = load_class(BASE_METHODS[job.objective.name]).from_job(job, tags=list(tags))
    for target, enabled in WRAPPERS.values():
        if enabled(job):
            method = load_class(target).wrap(method, job)
    return method
