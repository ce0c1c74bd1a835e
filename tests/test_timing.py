"""The driver's phase timer: seconds per named phase, in first-run order, summed on re-entry."""

from __future__ import annotations

import re
import time

import pytest

from raytag.timing import Phases


def test_phases_sum_re_entries_keep_first_run_order_and_become_time_metrics():
    phases = Phases()
    with phases("scan"):
        time.sleep(0.02)
    with phases("fit"):
        time.sleep(0.01)
    with phases("scan"):
        time.sleep(0.02)
    assert list(phases.seconds) == ["scan", "fit"]
    assert phases.seconds["scan"] >= 0.04 and phases.seconds["fit"] >= 0.01
    metrics = phases.as_metrics()
    assert set(metrics) == {"time/scan_s", "time/fit_s", "time/total_s"}
    # each value is rounded to the millisecond: the sum of two may pass the rounded total by 1 ms
    assert metrics["time/total_s"] >= metrics["time/scan_s"] + metrics["time/fit_s"] - 0.0015
    assert re.fullmatch(r"scan \d+\.\d s, fit \d+\.\d s; total \d+\.\d s", phases.summary())


def test_a_failing_phase_is_still_timed_and_the_error_propagates():
    phases = Phases()
    with pytest.raises(RuntimeError), phases("fit"):
        raise RuntimeError("boom")
    assert "fit" in phases.seconds
