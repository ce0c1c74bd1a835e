"""A Ray cluster on one machine whose nodes share nothing but a storage folder and the audio.

The head node runs in the machine's own file system view. Every worker node is a ``ray start``
inside its own mount namespace (``unshare --mount``, root only) with empty tmpfs mounts over the
driver's private folder and the head's temporary folder, so a worker node sees the installed
raytag, the shared storage and the audio, and nothing of the driver's working directory: a code
path that reads the driver's files on a worker fails instead of passing by accident.

The whole cluster, its drivers and any tracking server live in a network namespace of their own
with only a loopback interface (Ray otherwise advertises the machine's routable address even
when told 127.0.0.1); the test process talks to them through files only.

Every process a node starts is found again by its node's unique temporary folder and killed by
process id when the node stops, so nothing outlives a test.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

RAY = str(Path(sys.executable).with_name("ray"))
START_TIMEOUT_S = 90


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def node_env() -> dict[str, str]:
    """The environment of every node and of the driver: loopback only, no token auth (the
    cluster is reachable from this machine only), no usage reporting."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_")}
    env.update({"RAY_AUTH_MODE": "disabled", "RAY_USAGE_STATS_ENABLED": "0", "PYTHONUNBUFFERED": "1",
                # A loaded 2-core machine can take longer than Ray's 30 s to register a node.
                "RAY_raylet_start_wait_time_s": "180"})
    return env


@dataclass
class Node:
    name: str
    temp_dir: Path
    process: subprocess.Popen
    log: Path

    def pids(self) -> list[int]:
        """Every live process of this node: those whose command line names its temp folder, and
        the ``ray start`` process itself."""
        found = {self.process.pid}
        marker = str(self.temp_dir)
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            except OSError:
                continue
            if marker in cmdline:
                found.add(int(entry.name))
        return sorted(found)

    def kill(self) -> None:
        """SIGKILL to the node's process group and every process of the node."""
        for _ in range(3):
            try:
                os.killpg(self.process.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
            for pid in self.pids():
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                continue
            if self.pids() == [self.process.pid]:
                return


@dataclass
class LocalCluster:
    """A head node plus worker nodes; ``shared`` holds storage and audio, ``private`` the driver's
    working directory (hidden from worker nodes); ``env`` adds to every node's and driver's
    environment (e.g. an object store's endpoint and credentials)."""

    root: Path
    env: dict[str, str] = field(default_factory=dict)
    port: int = field(default_factory=free_port)
    nodes: dict[str, Node] = field(default_factory=dict)
    network: subprocess.Popen | None = None

    def __post_init__(self) -> None:
        for folder in (self.shared, self.private, self.root / "nodes"):
            folder.mkdir(parents=True, exist_ok=True)
        # A process that holds a network namespace with only "lo" up; everything joins it.
        self.network = subprocess.Popen(
            ["unshare", "--net", "sh", "-c", "ip link set lo up && exec sleep infinity"], start_new_session=True
        )
        time.sleep(0.5)

    def in_network(self, command: list[str]) -> list[str]:
        """``command`` run inside the cluster's loopback-only network namespace."""
        return ["nsenter", f"--net=/proc/{self.network.pid}/ns/net", *command]

    @property
    def shared(self) -> Path:
        return self.root / "shared"

    @property
    def private(self) -> Path:
        return self.root / "private"

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    @staticmethod
    def _ports(head: bool) -> list[str]:
        """Free ports for every listening process of a node, so nodes (and any other Ray on the
        machine) never collide on Ray's default ports."""
        names = ["--node-manager-port", "--object-manager-port", "--dashboard-agent-listen-port",
                 "--dashboard-agent-grpc-port", "--runtime-env-agent-port", "--metrics-export-port"]
        if head:
            names += ["--dashboard-port", "--ray-client-server-port"]
        return [item for name in names for item in (name, str(free_port()))]

    def _start(self, name: str, args: list[str], *, isolated: bool) -> Node:
        temp_dir = Path("/tmp") / f"rtn-{self.port}-{name}"  # short: Ray's socket paths have a length limit
        shutil.rmtree(temp_dir, ignore_errors=True)
        temp_dir.mkdir(parents=True)
        log = self.root / "nodes" / f"{name}.log"
        command = [RAY, "start", "--block", "--temp-dir", str(temp_dir), "--node-ip-address", "127.0.0.1",
                   "--disable-usage-stats", *self._ports(head=not isolated), *args]
        if isolated:
            hidden = [self.private, self.nodes["head"].temp_dir]
            mounts = " && ".join(f"mount -t tmpfs -o size=1m tmpfs {shlex.quote(str(path))}" for path in hidden)
            command = ["unshare", "--mount", "--propagation", "private", "sh", "-c",
                       f"{mounts} && exec {shlex.join(command)}"]
        process = subprocess.Popen(self.in_network(command), stdout=log.open("w"), stderr=subprocess.STDOUT,
                                   env={**node_env(), **self.env}, start_new_session=True, cwd="/")
        node = Node(name, temp_dir, process, log)
        self.nodes[name] = node
        return node

    def start_head(self, *, cpus: float, resources: dict[str, float] | None = None) -> None:
        self._wait_started(self._start("head", ["--head", "--port", str(self.port), "--num-cpus", str(cpus),
                                               "--resources", json.dumps(resources or {}),
                                               "--include-dashboard", "false"], isolated=False))

    def add_worker(self, name: str, *, cpus: float, resources: dict[str, float] | None = None) -> None:
        """Starts a worker node that sees only the shared folder (and the installed code)."""
        self._wait_started(self._start(name, ["--address", self.address, "--num-cpus", str(cpus),
                                              "--resources", json.dumps(resources or {})], isolated=True))

    def kill_worker(self, name: str) -> None:
        node = self.nodes.pop(name)
        node.kill()
        shutil.rmtree(node.temp_dir, ignore_errors=True)

    @staticmethod
    def _wait_started(node: Node) -> None:
        """``ray start --block`` says so once the node's raylet has registered with the head."""
        deadline = time.time() + START_TIMEOUT_S
        while time.time() < deadline:
            if "Ray runtime started" in node.log.read_text(errors="replace"):
                return
            if node.process.poll() is not None:
                raise RuntimeError(f"node {node.name} exited:\n{node.log.read_text()[-3000:]}")
            time.sleep(0.5)
        raise TimeoutError(f"node {node.name} did not start in {START_TIMEOUT_S} s:\n{node.log.read_text()[-3000:]}")

    def stop(self) -> None:
        """Kills every node (workers first), by process id; leaves no Ray process behind."""
        for name in [n for n in self.nodes if n != "head"] + [n for n in self.nodes if n == "head"]:
            self.nodes[name].kill()
            shutil.rmtree(self.nodes[name].temp_dir, ignore_errors=True)
        self.nodes.clear()
        if self.network is not None and self.network.poll() is None:
            os.killpg(self.network.pid, signal.SIGKILL)
            self.network.wait(timeout=10)

    def run_driver(self, *args: str, timeout: float = 600, env: dict[str, str] | None = None
                   ) -> subprocess.CompletedProcess:
        """Runs ``raytag ARGS`` as a driver process in the private folder (the machine's own
        file system view: it sees everything, as a user's laptop or head node would); ``env``
        adds to the nodes' environment."""
        return subprocess.run(self.in_network([sys.executable, "-m", "raytag.cli", *args]), cwd=self.private,
                              env={**node_env(), **self.env, **(env or {})}, capture_output=True, text=True,
                              timeout=timeout)

    def start_driver(self, *args: str) -> subprocess.Popen:
        log = self.root / "driver.log"
        return subprocess.Popen(self.in_network([sys.executable, "-m", "raytag.cli", *args]), cwd=self.private,
                                env={**node_env(), **self.env}, stdout=log.open("w"), stderr=subprocess.STDOUT,
                                start_new_session=True)
