"""The base of every method's settings: a pydantic model validated from the job's ``objective``.

A method's ``Settings`` class lives in the method's own file; its fields are the keys the
method accepts in ``objective`` (beside ``name`` and the wrappers' sections), each with a type,
a default and a ``description`` that ``raytag methods`` and the README's tables show. Unknown
keys are rejected, so a setting of another method is an error naming the allowed keys, not a
value silently ignored.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

SETTINGS_RULES = ConfigDict(extra="forbid", validate_assignment=True, allow_inf_nan=False)
"""What every settings model of a job follows (the methods' here, :mod:`raytag.config`'s
sections too): unknown keys are rejected, assignments validated, and every float setting is
finite (``.inf``, ``nan`` or ``1e999`` from YAML or an override are refused naming the key)."""


class MethodSettings(BaseModel):
    """Settings of one method (or of a wrapper's ``objective`` section)."""

    model_config = SETTINGS_RULES


class NoSettings(MethodSettings):
    """A method with nothing to set."""
