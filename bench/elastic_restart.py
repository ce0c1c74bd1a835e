"""Arm (4) of ``bench_train.py``: an elastic Ray Train run loses a node; what does the restart cost?

A 2-node cluster from ``tests/multinode.py`` (``LocalCluster``: a head node and a worker node,
each offering one ``trainer`` resource, in a loopback-only network namespace; root only) runs a
``raytag train`` driver whose job asks ``scaling.num_workers: [min, max]`` workers of one
``trainer`` each, so it starts with one worker per node. Once the first complete checkpoint is in
storage (and ``kill_delay_s`` more, default none), the worker node is killed (SIGKILL to every
process of the node): right after a report is where a restart is most likely to pick an older
checkpoint, so that is where epochs repeated would show. The run's epochs are read back from the driver's default
MLflow store (``mlflow.db`` in its private folder) after the driver exits, and what Ray did
in between from the head node's logs (the Train controller's and the GCS's; best effort, their
wording is Ray's): :func:`ray_events`.
"""

from __future__ import annotations

import datetime
import json
import logging
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import yaml

from train_figures import (  # bench/, beside this file
    CpuTimeline, EpochRecord, Restart, Sample, metric_histories, records_from_histories, repeated_steps,
    restart_figures,
)

from raytag.data.synth.corpus import SynthSpec, write_corpus

REPO = Path(__file__).resolve().parents[1]
TRAINER = {"trainer": 1}
log = logging.getLogger("bench_train")


@dataclass(frozen=True)
class ElasticRun:
    """What the elastic run did.

    Attributes:
        records: its epochs, as logged.
        started, ended: wall-clock times of the cluster's start and the driver's end.
        samples: CPU samples of this process's tree (the cluster's nodes and the driver).
        killed_at: when the worker node was killed (None: it never was).
        restart: the restart's figures (None when they could not be measured).
        logged_twice: epochs whose ``train/loss`` is in MLflow more than once.
        events: what Ray logged from the kill on, ``(seconds after the kill, what)``.
        exit_code: the driver's (None: it was stopped).
        problem: what went wrong, if anything; with the end of the driver's log.
    """

    records: list[EpochRecord]
    started: float
    ended: float
    samples: list[Sample]
    killed_at: float | None
    restart: Restart | None
    logged_twice: list[int]
    events: list[tuple[float, str]]
    exit_code: int | None
    problem: str = ""


def run_elastic(tree: dict, spec: SynthSpec, *, kill_delay_s: float, timeout_s: float) -> ElasticRun:
    """Runs the job ``tree`` (its data, storage, scaling and ray keys are set here) on a fresh
    2-node cluster over a corpus made from ``spec``, kills the worker node after the first
    checkpoint, and lets the driver finish (or stops it after ``timeout_s``)."""
    sys.path.insert(0, str(REPO / "tests"))
    from multinode import LocalCluster

    # The nodes and the driver import raytag from this checkout (a worker node sees it: it hides
    # only the driver's private folder and the head's temporary folder).
    os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH")) if p)
    with tempfile.TemporaryDirectory(prefix="bench-train-elastic-") as root:
        return _run_on(LocalCluster(Path(root)), tree, spec, kill_delay_s=kill_delay_s, timeout_s=timeout_s)


def _run_on(cluster, tree: dict, spec: SynthSpec, *, kill_delay_s: float, timeout_s: float) -> ElasticRun:
    """:func:`run_elastic` on a new ``LocalCluster`` (no node started yet), stopped at the end."""
    from raytag.cluster.training.checkpoints import latest_checkpoint
    from raytag.locations import run_location

    timeline = CpuTimeline()
    driver: subprocess.Popen | None = None
    killed_at, checkpoint_at, done_at_kill, code, problem = None, 0.0, 0, None, ""
    killed_folder: Path | None = None
    started = time.time()
    try:
        corpus, storage = cluster.shared / "audio", cluster.shared / "storage"
        write_corpus(corpus, spec, overwrite=True)
        tree = {**tree, "storage": str(storage), "ray": {"address": cluster.address}}
        tree["data"] = {**tree["data"], "manifest": str(corpus / "manifest.csv"), "clean_labels": str(corpus / "clean.csv")}
        tree["scaling"] = {**tree["scaling"], "resources": TRAINER, "resize_check_s": 5}
        job_file = cluster.private / f"{tree['name']}.yaml"
        job_file.write_text(yaml.safe_dump(tree, sort_keys=False))
        run = run_location(str(storage), tree["name"])
        with timeline:
            started = time.time()
            cluster.start_head(cpus=2, resources=TRAINER)
            cluster.add_worker("w1", cpus=1, resources=TRAINER)
            driver = cluster.start_driver("train", str(job_file))
            _wait_for(lambda: latest_checkpoint(run), driver, deadline=started + timeout_s)
            checkpoint_at = time.time()
            time.sleep(kill_delay_s)
            done_at_kill = latest_checkpoint(run)[1].epochs_done
            killed_at, killed_folder = time.time(), cluster.nodes["w1"].temp_dir
            cluster.kill_worker("w1")
            log.info("elastic: killed the worker node with %d epoch(s) checkpointed", done_at_kill)
            try:
                code = driver.wait(timeout=max(1.0, started + timeout_s - time.time()))
            except subprocess.TimeoutExpired:
                problem = f"the driver had not finished {timeout_s:.0f} s after the cluster started"
    except TimeoutError as exc:
        problem = str(exc)
    finally:
        if driver is not None and driver.poll() is None:
            os.killpg(driver.pid, signal.SIGKILL)  # the driver's own session: only what it started
            driver.wait(timeout=30)
        events = _head_events(cluster, killed_at)
        cluster.stop()
        if killed_folder is not None:  # kill_worker leaves the node's temporary folder behind
            shutil.rmtree(killed_folder, ignore_errors=True)
    ended = time.time()
    histories = _histories(cluster.private / "mlflow.db", tree["tracking"]["experiment"])
    records = records_from_histories(histories)
    if problem or code != 0:
        driver_log = cluster.root / "driver.log"
        tail = driver_log.read_text(errors="replace")[-3000:] if driver_log.exists() else ""
        problem = f"{problem or f'the driver exited with {code}'}\n{tail}"
    restart = None
    if killed_at is not None:
        try:
            restart = restart_figures(records, killed_at=killed_at, done_at_kill=done_at_kill,
                                      checkpoint_at=checkpoint_at)
        except ValueError as exc:
            problem = problem or str(exc)
    return ElasticRun(records, started, ended, timeline.samples, killed_at, restart,
                      repeated_steps(histories.get("train/loss", [])), events, code, problem)


def _wait_for(condition, driver: subprocess.Popen, *, deadline: float):
    """Polls ``condition()`` until it is truthy; TimeoutError when the driver exits first or
    ``deadline`` (``time.time()``) passes."""
    while time.time() < deadline:
        value = condition()
        if value:
            return value
        if driver.poll() is not None:
            raise TimeoutError(f"the driver exited ({driver.returncode}) before its first checkpoint")
        time.sleep(0.5)
    raise TimeoutError("no checkpoint before the time limit")


def _histories(store: Path, experiment_name: str) -> dict[str, list[tuple[int, float, float]]]:
    """The run's per-epoch metric histories from the driver's MLflow store, if it got that far."""
    from mlflow.tracking import MlflowClient

    if not store.exists():
        return {}
    uri = f"sqlite:///{store}"
    client = MlflowClient(uri)
    experiment = client.get_experiment_by_name(experiment_name)
    runs = client.search_runs([experiment.experiment_id]) if experiment else []
    return metric_histories(uri, runs[0].info.run_id) if runs else {}


_GCS_TIME = re.compile(r"^\[(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}) ")
_GROUP = re.compile(r"(Attempting to start|Started) training worker group of size (\d+)")


def _local_time(stamp: str) -> float:
    """``time.time()`` of a Ray log time stamp (``2026-11-21 20:10:47,032``, local time)."""
    return datetime.datetime.strptime(stamp, "%Y-%m-%d %H:%M:%S,%f").timestamp()


def ray_events(controller_lines: list[str], gcs_lines: list[str], *, since: float) -> list[tuple[float, str]]:
    """The steps of a Train restart that Ray logs, at or after ``since`` (``time.time()``), as
    ``(seconds after since, what)`` in time order.

    Args:
        controller_lines: the Train controller's JSON log lines (``logs/train/ray-train-sys-
            controller-*.log``): failure decisions, worker group starts and their time-outs.
        gcs_lines: the GCS's log lines (``logs/gcs_server.out``): when it marks a node dead.
    """
    events: list[tuple[float, str]] = []
    for line in controller_lines:
        try:
            entry = json.loads(line)
            at, message = _local_time(entry["asctime"]), str(entry["message"])
        except (ValueError, KeyError, TypeError):
            continue
        group = _GROUP.search(message)
        if message.startswith("[FailurePolicy]"):
            parts = message.splitlines()
            decision = parts[0].removeprefix("[FailurePolicy]").strip()
            source = next((part.split(":", 1)[1].strip() for part in parts if part.strip().startswith("Source:")), "?")
            events.append((at, f"Train controller: {decision} after a failure in the {source}"))
        elif group:
            verb = "starts" if group.group(1) == "Attempting to start" else "started"
            events.append((at, f"worker group of {group.group(2)} {verb}"))
        elif "worker group startup timed out" in message:
            seconds = re.search(r"after ([\d.]+) seconds", message)
            events.append((at, f"worker group start timed out{f' after {seconds.group(1)} s' if seconds else ''}"))
    for line in gcs_lines:
        stamp = _GCS_TIME.match(line)
        if stamp and "has been marked dead" in line:
            events.append((_local_time(stamp.group(1)), "GCS marks the node dead (missed health checks)"))
    return sorted((at - since, what) for at, what in events if at >= since)


def _head_events(cluster, killed_at: float | None) -> list[tuple[float, str]]:
    """:func:`ray_events` from the head node's session logs (read before the cluster stops)."""
    head = cluster.nodes.get("head")
    if killed_at is None or head is None:
        return []
    logs = head.temp_dir / "session_latest" / "logs"

    def lines(paths) -> list[str]:
        return [line for path in paths for line in path.read_text(errors="replace").splitlines()]

    try:
        return ray_events(lines(sorted(logs.glob("train/ray-train-sys-controller-*.log"))),
                          lines([logs / "gcs_server.out"] if (logs / "gcs_server.out").exists() else []),
                          since=killed_at)
    except OSError:
        return []
