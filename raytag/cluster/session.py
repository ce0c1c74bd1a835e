"""Starting or joining Ray.

``ray.address`` (or ``RAY_ADDRESS``, which ``ray job submit`` sets for the jobs it runs) names
the cluster to join: ``auto`` (the cluster this machine's last ``ray start`` made), ``HOST:PORT``
(a head node's GCS) or ``ray://HOST:PORT`` (Ray Client). With neither, raytag starts its own
local instance and never joins whatever cluster a machine happens to remember. An address that
cannot be reached is an error naming it within seconds, not minutes of "Failed to connect to
GCS".
"""

from __future__ import annotations

import logging
import os
import re
import socket
import sys
import tempfile

import ray

from raytag.errors import JobError

log = logging.getLogger("raytag")

CONNECT_TIMEOUT_S = 5.0

ACTOR_RESTART_WARNING = "has constructor arguments in the object store and max_restarts > 0"
"""What Ray's core worker says (once per process, at ERROR level, straight to the process's
standard error) when it creates an actor that has restarts and a constructor argument held by
reference (ray-project/ray#53727)."""

WORKER_POOL_WARNING = re.compile(r"\d+ \w+ worker processes have been started on node")
"""What the raylet says (GCS error type ``worker_pool_large``) each time a node's worker processes
pass another multiple of 4x its startup concurrency (its CPU count), and what Ray's driver
prints to standard output for it."""


def cluster_address(address: str | None) -> str:
    """The address to use: the job's, else ``RAY_ADDRESS``, else ``"local"`` (a new instance)."""
    return address or os.environ.get("RAY_ADDRESS") or "local"


def init_ray(address: str | None = None, num_cpus: int | None = None) -> None:
    """Joins the cluster at ``address`` or starts a local instance, unless already connected.

    A local instance keeps more idle worker processes than Ray's default (one per CPU).
    Decode tasks import torch, which takes seconds; with the default, Ray kills the idle task
    workers between epochs and every epoch pays those imports again (measured on 2 cores: a
    demo epoch took 20 s instead of 3 s). On a cluster, set ``RAY_num_workers_soft_limit``
    for ``ray start`` the same way.

    Raises:
        JobError: the address cannot be resolved or reached.
    """
    # Per-operator progress bars from several workers garble a terminal; epochs log progress.
    # Set in every process that builds datasets (a driver, a Tune trial).
    ray.data.DataContext.get_current().enable_progress_bars = False
    if ray.is_initialized():
        return
    target = cluster_address(address)
    if target == "local":
        cpus = num_cpus or os.cpu_count() or 1
        os.environ.setdefault("RAY_num_workers_soft_limit", str(max(8, 2 * cpus)))
        ray.init(address="local", num_cpus=num_cpus, log_to_driver=_log_to_driver(), logging_level=_ray_level())
        _quiet_after_init()
        _spend_actor_restart_warning()
        return
    if num_cpus is not None:
        log.warning("ray.num_cpus applies to a local instance only; ignored when joining %s", target)
    if not target.startswith("ray://"):
        target = reachable_gcs(target, source="ray.address" if address else "RAY_ADDRESS")
    ray.init(address=target, log_to_driver=_log_to_driver(), logging_level=_ray_level())
    _quiet_after_init()
    if not target.startswith("ray://"):  # a Ray Client driver creates its actors on the server
        _spend_actor_restart_warning()


def reachable_gcs(address: str, timeout_s: float = CONNECT_TIMEOUT_S, source: str = "ray.address") -> str:
    """``host:port`` of the cluster ``address`` names (``auto`` or ``HOST:PORT``), after checking
    that something listens there. ``auto`` is what Ray's ``ray_current_cluster`` file (in Ray's
    temporary folder) names, which may be a cluster that is long gone; ``source`` (the setting
    the address came from) goes into the error.

    Raises:
        JobError: nothing to resolve ``auto`` to, a malformed address, or nothing listening.
    """
    from ray._private.services import canonicalize_bootstrap_address_or_die

    try:
        resolved = canonicalize_bootstrap_address_or_die(address)
    except (ConnectionError, ValueError) as exc:
        raise JobError(f"{source} {address!r}: {exc}") from None
    host, _, port = resolved.rpartition(":")
    try:
        with socket.create_connection((host, int(port)), timeout=timeout_s):
            pass
    except (OSError, ValueError) as exc:
        raise JobError(
            f"cannot reach the Ray cluster at {source} {address!r} ({resolved}): {exc}. Start its head "
            f"node (`ray start --head`), fix {source}, or leave it unset to start a local instance"
        ) from None
    return resolved


def _ray_level() -> int:
    """Ray's own log level on the console: INFO with -v, else errors only."""
    return logging.INFO if _log_to_driver() else logging.ERROR


def _quiet_after_init() -> None:
    # ray.init and the first imports of Ray Data and MLflow configure their loggers anew; a
    # quiet console (no -v) keeps only their errors. Everything stays in Ray's session logs.
    if not _log_to_driver():
        for name in ("ray", "ray.data", "ray.train", "ray.tune", "mlflow"):
            logging.getLogger(name).setLevel(logging.ERROR)
    _route_worker_pool_warning()


def _route_worker_pool_warning() -> None:
    """Sends the raylet's worker-count warning (:data:`WORKER_POOL_WARNING`) to raytag's log
    (debug: shown with ``-v``) instead of this driver's standard output; every other line Ray's
    driver prints is printed as before.

    Ray warns once the Python worker processes of a node reach 4x its CPUs, and again at each
    further multiple; on a 2-CPU node, at 8 beyond its IO workers. Ray's own actors for a run
    pass that alone: a sweep trial on 2 CPUs held 17 workers, 10 of them Ray's (the Train
    controllers, the trial, Ray Data's stats, autoscaling and dataset actors, queues, the
    placement-group cleaner), 5 idle task workers that raytag keeps between epochs
    (``RAY_num_workers_soft_limit``, see :func:`init_ray`) and 2 decode tasks. So on the small
    nodes raytag runs on, the line says nothing about the run. It stays in the raylet's log.

    Ray's driver thread that prints the GCS's error messages calls
    ``ray._private.worker.print_to_stdstream`` by its module name for each message; this wraps
    that function, once per process. Lines of Ray's other error messages (a worker that died,
    a node out of memory) are untouched. tests/test_console_ray.py fails if a Ray upgrade
    changes the route and the line reaches the console again.
    """
    from ray._private import worker as ray_worker

    printer = getattr(ray_worker, "print_to_stdstream", None)
    if printer is None or getattr(printer, "raytag_routed", False):
        return

    def print_routed(data, ignore_prefix: bool) -> None:
        if data.get("pid") == "raylet":
            shown = []
            for line in data.get("lines") or []:
                if WORKER_POOL_WARNING.search(line):
                    log.debug("Ray's raylet: %s", line.strip())
                else:
                    shown.append(line)
            if not shown:
                return
            data = {**data, "lines": shown}
        printer(data, ignore_prefix)

    print_routed.raytag_routed = True
    ray_worker.print_to_stdstream = print_routed


@ray.remote(num_cpus=0, max_restarts=1)
class _RestartWarningProbe:
    """An actor that :func:`_spend_actor_restart_warning` creates and kills at once."""

    def __init__(self, unused) -> None:
        pass


def _spend_actor_restart_warning() -> None:
    """Takes Ray's actor-restart warning (:data:`ACTOR_RESTART_WARNING`) off this driver's
    console, into raytag's log (debug: shown with ``-v``).

    Ray Data creates every actor-pool worker (evaluation, teacher scores, audits, ``raytag
    predict``, the noisy student's teacher) with restarts on and with its data context and map
    function as object refs, so the first pool of every driver printed the warning, whatever
    the pool's own constructor arguments. Those refs, and the model weights' ref they hold, live
    as long as the dataset, and a restarted actor rebuilds from them (tests/test_console_ray.py
    kills a scoring actor and gets the in-process scores), so for raytag the line is noise.
    Ray prints it once per process: this spends that once on a small actor of the same kind,
    killed at once, with standard error pointed at a file for the moment it is created;
    whatever else was written meanwhile goes back to standard error.
    """
    sys.stderr.flush()
    console = os.dup(2)
    with tempfile.TemporaryFile() as captured:
        os.dup2(captured.fileno(), 2)
        try:
            probe = _RestartWarningProbe.remote(ray.put(None))
        finally:
            os.dup2(console, 2)
            os.close(console)
        ray.kill(probe)
        captured.seek(0)
        shown, taken = split_captured_lines(captured.read().decode(errors="replace"), ACTOR_RESTART_WARNING)
    if shown:
        sys.stderr.write(shown)
        sys.stderr.flush()
    for line in taken:
        log.debug("Ray (once per process, for every Ray Data actor pool): %s", line)


def split_captured_lines(text: str, marker: str) -> tuple[str, list[str]]:
    """``text`` without its lines that contain ``marker``, and those lines (newlines dropped)."""
    shown, taken = [], []
    for line in text.splitlines(keepends=True):
        (taken if marker in line else shown).append(line)
    return "".join(shown), [line.rstrip("\n") for line in taken]


def _log_to_driver() -> bool:
    # Workers' output reaches the console only when asked for (-v); it is always in Ray's
    # session logs.
    return os.environ.get("RAYTAG_VERBOSE") == "1"


def ensure_ray(job) -> None:
    """Connects to ``ray.address`` or starts a local instance (once per process)."""
    init_ray(job.ray.address, job.ray.num_cpus)
    cpus = ray.cluster_resources().get("CPU", 0)
    train_cpus = job.scaling.worker_range[1] * job.scaling.cpus_per_worker
    if cpus and train_cpus > cpus / 2:
        log.warning(
            "Train workers take %.1f of the cluster's %.0f CPUs; Ray Data decoding gets what is left "
            "and can starve (lower scaling.cpus_per_worker if epochs do not start)", train_cpus, cpus,
        )


def driver_node_resource() -> str:
    """A resource only the driver's node has, to keep trial processes beside the driver.

    A trial's process drives its Ray Train run, and Ray Train runs its controller (which writes
    the trial's MLflow run) on that process's node; the sweep's MLflow store (by default the
    driver's SQLite file) is reachable from the driver's node only. Trials are light (0.1 CPU);
    their Train workers still go wherever the cluster has room.
    """
    node_id = ray.get_runtime_context().get_node_id()
    node = next(n for n in ray.nodes() if n["NodeID"] == node_id)
    if "node:__internal_head__" in node["Resources"]:
        return "node:__internal_head__"
    return f"node:{node['NodeManagerAddress']}"
