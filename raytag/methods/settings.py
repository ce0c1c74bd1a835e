"""The base of every method's settings: a pydantic model validated from the job's ``objective``.

A method's ``Settings`` class lives in the method's own file; its fields are the keys the
method accepts in ``objective`` (beside ``name`` and the wrappers' sections), each with a type,
a default and a ``description`` that ``raytag methods`` and the README's tables show. Unknown
keys are rejected, so a setting of another method is an error naming the allowed keys, not a
value silently ignored.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class MethodSettings(BaseModel):
    """Settings of one method (or of a wrapper's ``objective`` section)."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class NoSettings(MethodSettings):
    """A method with nothing to set."""
