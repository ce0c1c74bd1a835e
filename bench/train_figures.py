"""Figures of ``bench_train.py`` from per-epoch records: pure functions, plus a CPU-time sampler.

An :class:`EpochRecord` is what a training run tells about one epoch, whether it comes from the
plain loop (measured in process) or from a Ray job (read back from the metrics it logged to
MLflow: ``train/examples``, ``train/examples_per_s``, ``epoch_seconds``, ``workers``,
``resumed_from_epoch``, and the time ``train/loss`` was logged). Rates are computed here so both
arms go through the same arithmetic:

- :func:`steady_rate`: training clips per second over the epochs after the first (the first
  pays the warm-up: worker start, imports, first allocations), from ``train_epoch``'s own clock;
  epochs are numbered from 1, as every raytag record numbers them;
- :func:`epoch_window`: the same epochs as wall-clock time between two epoch ends, so
  validation, checkpoints and reporting are included;
- :func:`restart_figures`: the cost of an elastic restart, from the records and the kill time.

An :class:`Arm` is one measured run: its records, its wall-clock span and CPU samples.

:class:`CpuTimeline` samples the CPU seconds of process trees once a second, so the CPU time of
any window (an arm, the steady-state epochs) can be read afterwards (:func:`window_cpu`), and
:func:`metric_histories` reads a run's per-epoch metrics back from MLflow.
"""

from __future__ import annotations

import bisect
import os
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from process_meter import cpu_seconds, process_tree  # bench/process_meter.py, beside this file


METRIC_KEYS = ("train/examples", "train/examples_per_s", "epoch_seconds", "workers", "resumed_from_epoch",
               "train/loss")
"""The per-epoch metrics a Ray job logs that :func:`records_from_histories` reads."""


@dataclass(frozen=True)
class EpochRecord:
    """One epoch of one run.

    Attributes:
        epoch: its number, from 1.
        examples: training clips of one rank (rank 0's, as a Ray job logs them).
        train_seconds: seconds of ``train_epoch`` on that rank (data wait included).
        epoch_seconds: seconds from the epoch's start to its report (validation included).
        workers: ranks that trained the epoch; every rank takes the same number of clips.
        ended_at: wall-clock time (``time.time()``) the epoch was logged.
        resumed_from: the epoch whose checkpoint a restarted run resumed from, -1 if it never
            restarted.
    """

    epoch: int
    examples: int
    train_seconds: float
    epoch_seconds: float
    workers: int
    ended_at: float
    resumed_from: int = -1

    @property
    def clips(self) -> int:
        """Training clips of every rank together."""
        return self.examples * self.workers


def records_from_histories(histories: dict[str, Sequence[tuple[int, float, float]]]) -> list[EpochRecord]:
    """Epoch records from MLflow metric histories, ``key -> [(step, value, timestamp_s), ...]``.

    Keys read: ``train/examples``, ``train/examples_per_s``, ``epoch_seconds``, ``workers``
    (default 1), ``resumed_from_epoch`` (default -1) and ``train/loss`` (its timestamp is the
    epoch's end). Steps are epochs; an epoch logged more than once keeps its first value.
    """

    def by_step(key: str) -> dict[int, tuple[float, float]]:
        out: dict[int, tuple[float, float]] = {}
        for step, value, stamp in sorted(histories.get(key, ()), key=lambda item: item[2]):
            out.setdefault(int(step), (float(value), float(stamp)))
        return out

    examples, rates, seconds = by_step("train/examples"), by_step("train/examples_per_s"), by_step("epoch_seconds")
    workers, resumed, loss = by_step("workers"), by_step("resumed_from_epoch"), by_step("train/loss")
    records = []
    for epoch in sorted(examples):
        count = int(examples[epoch][0])
        rate = rates[epoch][0]
        records.append(EpochRecord(
            epoch=epoch, examples=count, train_seconds=count / rate if rate > 0 else float("nan"),
            epoch_seconds=seconds[epoch][0], workers=int(workers.get(epoch, (1, 0))[0]),
            ended_at=loss.get(epoch, examples[epoch])[1], resumed_from=int(resumed.get(epoch, (-1, 0))[0]),
        ))
    return records


def steady(records: Sequence[EpochRecord], skip: int = 1) -> list[EpochRecord]:
    """The records of the epochs after the first ``skip`` (epochs ``skip + 1`` and later)."""
    return [r for r in records if r.epoch > skip]


def steady_rate(records: Sequence[EpochRecord], skip: int = 1) -> float:
    """Training clips per second over the epochs after the first ``skip``: total clips (all
    ranks) over total ``train_epoch`` seconds (a ratio of sums, so a long epoch weighs what it
    took).

    Raises:
        ValueError: no epoch after epoch ``skip``.
    """
    kept = steady(records, skip)
    if not kept:
        raise ValueError(f"no epoch after epoch {skip} to measure (epochs: {[r.epoch for r in records]})")
    return sum(r.clips for r in kept) / sum(r.train_seconds for r in kept)


def epoch_window(records: Sequence[EpochRecord], skip: int = 1) -> tuple[float, float, int]:
    """``(start, end, clips)`` of the epochs after the first ``skip`` as wall-clock time: from
    the end of epoch ``skip`` to the end of the last epoch, and the clips trained in between.

    Raises:
        ValueError: epoch ``skip`` or every later epoch is missing.
    """
    ends = {r.epoch: r.ended_at for r in records}
    kept = steady(records, skip)
    if skip not in ends or not kept:
        raise ValueError(f"need epoch {skip} and a later one, got epochs {sorted(ends)}")
    return ends[skip], max(r.ended_at for r in kept), sum(r.clips for r in kept)


@dataclass(frozen=True)
class Restart:
    """What an elastic restart cost.

    Attributes:
        to_resumed_s: seconds from the kill to the start of the first epoch that was not
            checkpointed at the kill, as trained after the restart (its logged end minus its
            ``epoch_seconds``).
        to_next_epoch_s: seconds from the kill to the end of that epoch.
        resumed_from: the epoch whose checkpoint the restarted run began from (-1: it never
            restarted).
        done_at_kill: epochs complete (checkpointed) when the node was killed.
        epochs_repeated: complete epochs trained again (``done_at_kill - resumed_from``).
        partial_lost_s: seconds of the interrupted epoch thrown away (from the checkpoint's
            appearance to the kill).
        workers_before, workers_after: ranks of the last checkpointed epoch (0 if it was not
            logged) and of the first epoch after the kill.
    """

    to_resumed_s: float
    to_next_epoch_s: float
    resumed_from: int
    done_at_kill: int
    epochs_repeated: int
    partial_lost_s: float
    workers_before: int
    workers_after: int


def restart_figures(records: Sequence[EpochRecord], *, killed_at: float, done_at_kill: int,
                    checkpoint_at: float) -> Restart:
    """The restart after a kill at ``killed_at`` (``time.time()``), when ``done_at_kill``
    epochs had a complete checkpoint, the newest seen at ``checkpoint_at``.

    The epochs are matched by number, not by when they were logged: a checkpoint reaches
    storage before its epoch's metrics reach MLflow, so an epoch finished before the kill can be
    logged after it.

    Raises:
        ValueError: epoch ``done_at_kill + 1`` was never logged, or was logged before the kill.
    """
    by_epoch = {r.epoch: r for r in records}
    first, last = by_epoch.get(done_at_kill + 1), by_epoch.get(done_at_kill)
    if first is None or first.ended_at <= killed_at:
        raise ValueError(f"epoch {done_at_kill + 1} (the first not checkpointed at the kill) was not logged after "
                         f"the kill; logged epochs: {sorted(by_epoch)}")
    start = first.resumed_from if first.resumed_from >= 0 else 0
    return Restart(
        to_resumed_s=first.ended_at - first.epoch_seconds - killed_at,
        to_next_epoch_s=first.ended_at - killed_at,
        resumed_from=first.resumed_from,
        done_at_kill=done_at_kill,
        epochs_repeated=max(0, done_at_kill - start),
        partial_lost_s=killed_at - checkpoint_at,
        workers_before=last.workers if last else 0,
        workers_after=first.workers,
    )


def repeated_steps(history: Sequence[tuple[int, float, float]]) -> list[int]:
    """Steps logged more than once in one metric's history ``[(step, value, timestamp_s)]``."""
    steps = [int(step) for step, _, _ in history]
    return sorted({step for step in steps if steps.count(step) > 1})


@dataclass(frozen=True)
class Arm:
    """One measured training run: its epochs, the whole run's wall-clock span and its CPU samples
    (``failed_starts``: Ray starts that timed out and were retried before ``started``)."""

    name: str
    records: list[EpochRecord]
    started: float
    ended: float
    samples: list[Sample]
    failed_starts: int = 0

    @property
    def wall_s(self) -> float:
        return self.ended - self.started

    def cpu_s(self, start: float | None = None, end: float | None = None) -> float:
        return window_cpu(self.samples, self.started if start is None else start, self.ended if end is None else end)

    def load(self, start: float | None = None, end: float | None = None) -> float:
        return window_load(self.samples, self.started if start is None else start, self.ended if end is None else end)


@dataclass(frozen=True)
class Sample:
    """One sample of a :class:`CpuTimeline`: wall-clock time, CPU seconds used since the
    timeline started (every process seen), and the 1-minute load average."""

    at: float
    cpu_s: float
    load: float


def window_cpu(samples: Sequence[Sample], start: float, end: float) -> float:
    """CPU seconds used between ``start`` and ``end``, interpolated linearly between samples
    (clamped to the first and last sample)."""

    def cpu_at(moment: float) -> float:
        times = [s.at for s in samples]
        i = bisect.bisect_left(times, moment)
        if i == 0:
            return samples[0].cpu_s
        if i == len(samples):
            return samples[-1].cpu_s
        left, right = samples[i - 1], samples[i]
        share = (moment - left.at) / max(right.at - left.at, 1e-9)
        return left.cpu_s + share * (right.cpu_s - left.cpu_s)

    return cpu_at(end) - cpu_at(start)


def window_load(samples: Sequence[Sample], start: float, end: float) -> float:
    """Mean 1-minute load average of the samples between ``start`` and ``end`` (the nearest
    sample when none falls inside)."""
    inside = [s.load for s in samples if start <= s.at <= end]
    if inside:
        return sum(inside) / len(inside)
    return min(samples, key=lambda s: abs(s.at - (start + end) / 2)).load


class CpuTimeline:
    """``with CpuTimeline() as timeline: ...`` then ``timeline.samples``: the CPU seconds of the
    process trees under ``roots()`` (default: this process), sampled every ``interval_s`` in a
    background thread. A process that exits keeps the time of its last sample."""

    def __init__(self, interval_s: float = 1.0, roots: Callable[[], list[int]] | None = None):
        self.interval_s = interval_s
        self.roots = roots or (lambda: [os.getpid()])
        self.samples: list[Sample] = []
        self._start: dict[int, float] = {}
        self._last: dict[int, float] = {}
        self._first = True
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="cpu-timeline", daemon=True)

    def sample(self) -> Sample:
        pids = {pid for root in self.roots() for pid in process_tree(root)}
        for pid in pids:
            cpu = cpu_seconds(pid)
            if cpu is None:
                continue
            if self._first:
                self._start[pid] = cpu
            self._last[pid] = cpu
        self._first = False
        used = sum(cpu - self._start.get(pid, 0.0) for pid, cpu in self._last.items())
        point = Sample(time.time(), used, os.getloadavg()[0])
        self.samples.append(point)
        return point

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            self.sample()

    def __enter__(self) -> CpuTimeline:
        self.sample()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.sample()


def metric_histories(uri: str, run_id: str) -> dict[str, list[tuple[int, float, float]]]:
    """``key -> [(step, value, timestamp_s)]`` of a run's :data:`METRIC_KEYS` in MLflow."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(uri)
    return {key: [(m.step, m.value, m.timestamp / 1000) for m in client.get_metric_history(run_id, key)]
            for key in METRIC_KEYS}
