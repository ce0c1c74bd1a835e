"""How tracks are scored: the one options object and THE defaults.

Used by the job's ``eval`` section (:class:`raytag.config.EvalConfig` takes its defaults from
here), ``raytag predict`` (its flags' defaults), the MLflow model and evaluation.

- ``max_chunks`` (default 16): chunks per track, spread evenly from its start to its end
  (:func:`raytag.audio.io.chunk_starts`); None covers the whole track. 16 because a model's
  per-tag decision thresholds are chosen on validation scores made this way, so scoring a
  track otherwise shifts the scores those thresholds apply to; 16 equally spaced crops is
  also the short-chunk evaluation protocol of Won et al. 2021, and it bounds the cost of a
  long track (a 10-minute track in 3 s crops is 200 chunks otherwise). An exported model
  records the ``max_chunks`` it was evaluated with (:func:`raytag.models.export.recorded_scoring`);
  predict and the MLflow model use that unless told otherwise (:meth:`ScoringOptions.for_model`).
- ``batch_size`` (default 16): chunks per forward pass. Does not change the numbers.
- ``ray_above`` (default 300): more tracks than this are scored on a Ray Data actor pool,
  up to it in this process. Does not change the numbers (both executions score the same
  chunks with the same step). 300 because on 2 CPUs the in-process loop is faster even at
  1,000 files once Ray's start-up is counted (``bench/bench_predict.py``: a fresh Ray
  instance 0.51x the plain loop's clips/s, warm 0.73x): a few hundred tracks take tens of
  seconds in one process, where a cluster's parallelism starts to pay for its start.

Imports neither numpy nor torch.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from raytag.errors import InputError

DEFAULT_MAX_CHUNKS = 16
DEFAULT_BATCH_SIZE = 16
DEFAULT_RAY_ABOVE = 300
RECORDED_KEYS = ("max_chunks",)
"""The settings an exported model records: those that change the numbers."""


class ScoringError(InputError):
    """A scoring setting or input that cannot be used; the message names it."""


@dataclass(frozen=True)
class ScoringOptions:
    """How tracks are scored (see the module docstring for the defaults and why).

    Attributes:
        max_chunks: most chunks per track (None: chunks covering the whole track). Default 16.
        batch_size: chunks per forward pass. Default 16.
        ray_above: more tracks than this are scored on Ray Data; up to it, in this process.
            Default 300.
    """

    max_chunks: int | None = DEFAULT_MAX_CHUNKS
    batch_size: int = DEFAULT_BATCH_SIZE
    ray_above: int = DEFAULT_RAY_ABOVE

    def __post_init__(self) -> None:
        if self.max_chunks is not None and not _is_int(self.max_chunks, minimum=1):
            raise ScoringError(f"max_chunks must be at least 1, or None for the whole track; got {self.max_chunks!r}")
        if not _is_int(self.batch_size, minimum=1):
            raise ScoringError(f"batch_size must be at least 1; got {self.batch_size!r}")
        if not _is_int(self.ray_above, minimum=0):
            raise ScoringError(f"ray_above must be at least 0; got {self.ray_above!r}")

    def recorded(self) -> dict[str, Any]:
        """What an exported model records of these options (:data:`RECORDED_KEYS`)."""
        return {key: getattr(self, key) for key in RECORDED_KEYS}

    @classmethod
    def for_model(cls, recorded: Mapping[str, Any] | None, **given: Any) -> ScoringOptions:
        """The options to score a model with: ``given`` settings, else those the model records
        (``recorded``, from :func:`raytag.models.export.recorded_scoring`), else the defaults.

        Raises:
            ScoringError: a given or recorded setting out of range.
        """
        settings = {key: value for key, value in (recorded or {}).items() if key in RECORDED_KEYS}
        return replace(cls(), **{**settings, **given})


def _is_int(value: Any, *, minimum: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= minimum
