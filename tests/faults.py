"""Fault injection for the multi-node tests (tests/multinode.py's cluster), by process id only.

- a worker node's death: :meth:`multinode.LocalCluster.kill_worker` (SIGKILL to the process
  group of the node's ``ray start``, which holds its raylet and workers, then to every process
  left that names the node's temporary folder);
- a tracking server restarted: :class:`MlflowServer` (killed, started again on the same port
  with the same backend store);
- an object store made unreachable: :func:`paused` (SIGSTOP to the server's process group,
  SIGCONT after a while; the kernel still accepts connections, nothing answers them).

:func:`fault_costs` says what each fault cost a run, from the run's own epoch timestamps.
"""

from __future__ import annotations

import contextlib
import os
import signal
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from multinode import node_env

SERVER_START_TIMEOUT_S = 180


@dataclass
class MlflowServer:
    """``mlflow server`` with a SQLite backend store on a fixed port, in the process group of
    its own; ``wrap`` puts its command (and the health probe) into another network namespace
    (e.g. :meth:`multinode.LocalCluster.in_network`)."""

    store: Path
    artifacts: Path
    port: int
    log: Path
    wrap: Callable[[list[str]], list[str]] = lambda command: command
    process: subprocess.Popen | None = None
    starts: int = 0

    @property
    def uri(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        """Starts the server and waits until its health endpoint answers."""
        command = [str(Path(sys.executable).with_name("mlflow")), "server", "--backend-store-uri",
                   f"sqlite:///{self.store}", "--artifacts-destination", str(self.artifacts), "--host", "127.0.0.1",
                   "--port", str(self.port), "--workers", "1"]
        self.starts += 1
        with self.log.open("a") as out:
            out.write(f"--- start {self.starts}\n")
            self.process = subprocess.Popen(
                self.wrap(command), stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
                env={**node_env(), "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"},  # no background job consumers
            )
        probe = self.wrap([sys.executable, "-c",
                           f"import urllib.request; urllib.request.urlopen('{self.uri}/health', timeout=2)"])
        deadline = time.monotonic() + SERVER_START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"mlflow server exited:\n{self.log.read_text()[-3000:]}")
            if subprocess.run(probe, capture_output=True).returncode == 0:
                return
            time.sleep(0.5)
        self.kill()
        raise TimeoutError(f"mlflow server at {self.uri} did not come up in {SERVER_START_TIMEOUT_S} s")

    def kill(self) -> None:
        """SIGKILL to the server's process group (it forks workers)."""
        if self.process is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=30)

    def restart(self) -> None:
        """Killed, then started again on the same port with the same backend store."""
        self.kill()
        self.start()


@contextlib.contextmanager
def paused(process: subprocess.Popen) -> Iterator[None]:
    """The process group of ``process`` stopped (SIGSTOP) for the body; continued (SIGCONT)
    after it, also when the body fails."""
    os.killpg(process.pid, signal.SIGSTOP)
    try:
        yield
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGCONT)


@dataclass
class Fault:
    """One injected fault (or another event of the run, e.g. a node joining): its name and
    wall-clock span in seconds since the epoch (``start == end`` for an instant)."""

    name: str
    start: float
    end: float = 0.0
    counts: bool = True  # False: an event that is no fault (reported, not a fault's cost)
    notes: dict[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.end = max(self.end, self.start)


def fault_costs(epoch_times: list[tuple[int, float]], faults: list[Fault]) -> dict[str, float]:
    """What each fault cost a run, from the times its epochs were logged.

    Args:
        epoch_times: ``(epoch, seconds since the epoch)`` of every logged epoch, in epoch order.
        faults: the faults and events, each spanning from its injection to when the run was
            seen to have recovered (e.g. the first epoch of the restarted group).

    Returns:
        ``{fault name: seconds}``: each interval between consecutive epochs minus the normal
        interval (the median of the intervals no fault touches), summed per fault; an interval
        goes to the last fault that began before it ended and whose span reaches it. Plus
        ``"normal epoch"``: that median.
    """
    times = [t for _, t in sorted(epoch_times)]
    gaps = list(zip(times, times[1:]))

    def owner(gap: tuple[float, float]) -> Fault | None:
        touching = [f for f in faults if f.start < gap[1] and f.end >= gap[0]]
        return max(touching, key=lambda f: f.start) if touching else None

    clean = [b - a for a, b in gaps if owner((a, b)) is None]
    if not clean:
        raise ValueError("no epoch interval without a fault: the normal epoch time is unknown")
    normal = statistics.median(clean)
    costs = {"normal epoch": normal, **{fault.name: 0.0 for fault in faults}}
    for gap in gaps:
        fault = owner(gap)
        if fault is not None:
            costs[fault.name] += gap[1] - gap[0] - normal
    return costs
