"""CPU seconds and memory of this process and all its descendants, sampled from ``/proc``.

A local Ray instance started by ``ray.init`` is a tree under the driver (GCS, raylet, the
dashboard, idle and busy worker processes), and so are a DataLoader's workers, so the tree
rooted at the driver holds every process a measurement must count. Linux only.

- *Memory*: the sum of PSS (proportional set size, ``/proc/PID/smaps_rollup``) over the tree,
  so pages shared between processes (Ray's object store, forked DataLoader workers, shared
  libraries) are counted once in total rather than once per process as an RSS sum would.
- *CPU*: user + system time of every process seen (``/proc/PID/stat``); a process that exits
  between samples keeps the time of its last sample, so up to one sampling interval of a
  short-lived process's time is missed.

The sampler runs in a thread of the driver; its own cost (a few ms per sample) is in the
driver's CPU time.
"""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass

_TICKS = os.sysconf("SC_CLK_TCK")


def _children() -> dict[int, list[int]]:
    tree: dict[int, list[int]] = {}
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                with open(f"/proc/{name}/stat") as stat:
                    fields = stat.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            tree.setdefault(int(fields[1]), []).append(int(name))
    return tree


def process_tree(root: int) -> list[int]:
    """``root`` and every process descended from it."""
    tree, out, todo = _children(), [], [root]
    while todo:
        pid = todo.pop()
        out.append(pid)
        todo.extend(tree.get(pid, []))
    return out


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU seconds of one process; None when it is gone."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / _TICKS


def tree_cpu_seconds(pid: int) -> float | None:
    """User + system CPU seconds of one process and of its children that ended and were waited
    for; None when it is gone."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return sum(int(fields[i]) for i in (11, 12, 13, 14)) / _TICKS


def pss_bytes(pid: int) -> int:
    """Proportional set size of one process in bytes; 0 when it is gone."""
    try:
        with open(f"/proc/{pid}/smaps_rollup") as rollup:
            for line in rollup:
                if line.startswith("Pss:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


@dataclass(frozen=True)
class Usage:
    """What a measured block used: wall and CPU seconds, memory before and at its peak."""

    wall_s: float
    cpu_s: float
    baseline_bytes: int
    peak_bytes: int
    processes: int
    load_before: float
    load_after: float


class ProcessMeter:
    """``with ProcessMeter() as meter: ...`` then ``meter.usage``: samples the process tree
    every ``interval_s`` in a background thread."""

    def __init__(self, interval_s: float = 0.2, root: int | None = None):
        self.interval_s, self.root = interval_s, root or os.getpid()
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._start_cpu: dict[int, float] = {}
        self._last_cpu: dict[int, float] = {}
        self._peak = 0
        self._seen: set[int] = set()
        self.usage: Usage | None = None

    def _sample(self, *, first: bool = False) -> int:
        total = 0
        for pid in process_tree(self.root):
            cpu = cpu_seconds(pid)
            if cpu is None:
                continue
            with self._lock:
                if first:
                    self._start_cpu[pid] = cpu
                self._last_cpu[pid] = cpu
                self._seen.add(pid)
            total += pss_bytes(pid)
        with self._lock:
            self._peak = max(self._peak, total)
        return total

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            self._sample()

    def __enter__(self) -> ProcessMeter:
        self._load = os.getloadavg()[0]
        self._baseline = self._sample(first=True)
        self._wall = time.perf_counter()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        wall = time.perf_counter() - self._wall
        self._stop.set()
        self._thread.join()
        self._sample()
        cpu = sum(last - self._start_cpu.get(pid, 0.0) for pid, last in self._last_cpu.items())
        self.usage = Usage(wall, cpu, self._baseline, self._peak, len(self._seen), self._load, os.getloadavg()[0])
