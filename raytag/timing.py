"""Wall-clock seconds per phase of a run: the driver logs them at the end and records them in
MLflow (``time/<phase>_s``), so a slow run says where its time went."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator


class Phases:
    """Accumulates the wall-clock seconds of named phases, in the order they first ran.

    >>> phases = Phases()
    >>> with phases("scan"):
    ...     pass
    >>> list(phases.seconds)
    ['scan']
    """

    def __init__(self) -> None:
        self.started = time.perf_counter()
        self.seconds: dict[str, float] = {}

    @contextlib.contextmanager
    def __call__(self, name: str) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[name] = self.seconds.get(name, 0.0) + time.perf_counter() - start

    def total(self) -> float:
        """Seconds since this object was made."""
        return time.perf_counter() - self.started

    def summary(self) -> str:
        """``"scan 0.4 s, fit 61.2 s, ...; total 70.3 s"``."""
        parts = ", ".join(f"{name} {seconds:.1f} s" for name, seconds in self.seconds.items())
        return f"{parts}; total {self.total():.1f} s"

    def as_metrics(self, prefix: str = "time/") -> dict[str, float]:
        """``{prefix + name + "_s": seconds}`` for every phase, and ``{prefix}total_s``."""
        metrics = {f"{prefix}{name}_s": round(seconds, 3) for name, seconds in self.seconds.items()}
        metrics[f"{prefix}total_s"] = round(self.total(), 3)
        return metrics
