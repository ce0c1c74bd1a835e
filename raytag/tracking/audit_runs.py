"""How a ``raytag audit`` run (:mod:`raytag.cluster.inference.audit`) reads in a review: its
method, the split it audited and its numbers in one line; not a training run's final metrics
or method statistics."""

from __future__ import annotations

import math
from collections.abc import Mapping

from raytag.audit_files import AUDIT_DIR, PER_TAG_FILE
from raytag.tracking import run_tags as tag_names

AUDIT_METHOD = "label-noise audit"  # what the method column says for an audit run
NOT_LOGGED = "—"


def run_split(params: Mapping[str, str], tags: Mapping[str, str]) -> str:
    """The split a run's final numbers are about: the audited split of a label-noise audit run
    (its ``split`` param), else ``eval.split`` (default ``test``)."""
    if tags.get(tag_names.KIND) == tag_names.KIND_AUDIT:
        return params.get(tag_names.AUDIT_SPLIT_PARAM) or "valid"
    return params.get("eval.split", "test")


def audit_note(label: str, split: str, metrics: Mapping[str, float]) -> str:
    """What a label-noise audit run found, in one line: tags estimated, mean Err+ (share of
    labelled positives that are wrong) and mean Err− (share of labelled negatives whose tag is
    really there), from its ``audit/*`` metrics."""
    def share(key: str) -> str:
        value = metrics.get(key)
        return NOT_LOGGED if value is None or not math.isfinite(value) else f"{100 * value:.1f}%"

    tags = metrics.get("audit/tags_estimated")
    estimated = NOT_LOGGED if tags is None else f"{int(tags)}"
    return (f"{label}: label-noise audit of the {split} split: {estimated} tags estimated, mean Err+ "
            f"{share('audit/err_plus_mean')} (labelled positives that are wrong), mean Err− "
            f"{share('audit/err_minus_mean')} (labelled negatives whose tag is there); per tag in its "
            f"{AUDIT_DIR}/{PER_TAG_FILE}")
