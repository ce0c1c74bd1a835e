"""One training run on the local multi-node cluster survives, in turn: a worker node's death,
the MLflow tracking server restarted, a second worker node's death, and the S3 server (which
holds the run's checkpoints) unreachable for 30 s. The run ends with every epoch logged once
(steps 1..N, one value each), every metric of the outage in the server's store, and each
restarted worker group resuming from the newest checkpoint.

Marked ``multinode`` (the second pytest lane of ``make test``). The cluster is tests/multinode.py's:
a head node and one worker node with one ``trainer`` each, so a 2-worker group spans both;
elastic (1 to 2 workers), so a death shrinks the group to the head and a new node grows it back.
With ``RAYTAG_FAULTS_REPORT=PATH`` the seconds each fault cost are written to PATH too.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from mlflow.tracking import MlflowClient

from faults import Fault, MlflowServer, fault_costs, paused
from multinode import LocalCluster, free_port
from object_store import s3_env, start_s3_server
from requirements import needs_root_unshare

pytestmark = [pytest.mark.multinode, needs_root_unshare]

TRAINER = {"trainer": 1}
S3_PAUSE_S = 30
EPOCHS = 1000  # a bound: the run is stopped (`raytag stop`) once every fault is behind it
RUN = "faults"
WAIT_S = 240


@pytest.fixture
def cluster(tmp_path):
    """The cluster, moto's S3 server and an MLflow server in its network; everything stopped
    by process id at the end, whatever happened."""
    from raytag.data.synth.corpus import SynthSpec, write_corpus

    s3_port = free_port()
    cluster = LocalCluster(tmp_path / "cluster", env=s3_env(f"http://127.0.0.1:{s3_port}"))
    write_corpus(cluster.shared / "audio", SynthSpec(clips=40, seconds=2.0, sample_rate=16000, seed=3), overwrite=True)
    servers = {}
    try:
        servers["s3"] = start_s3_server(cluster.root / "s3.log", wrap=cluster.in_network, port=s3_port)
        subprocess.run(cluster.in_network([sys.executable, str(Path(__file__).with_name("object_store.py")),
                                           servers["s3"].endpoint, "bucket", "runs"]), check=True)
        servers["mlflow"] = MlflowServer(cluster.private / "server.db", cluster.private / "server-artifacts",
                                         free_port(), cluster.root / "mlflow-server.log", wrap=cluster.in_network)
        servers["mlflow"].start()
        cluster.start_head(cpus=2, resources=TRAINER)
        cluster.add_worker("w1", cpus=1, resources=TRAINER)
        yield cluster, servers
    finally:
        cluster.stop()
        if "mlflow" in servers:
            servers["mlflow"].kill()
        if "s3" in servers:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(servers["s3"].process.pid, signal.SIGCONT)
            servers["s3"].stop()


def write_job(cluster: LocalCluster, uri: str) -> Path:
    job = {
        "name": RUN,
        "storage": "s3://runs/raytag",  # checkpoints in the object store that is paused
        "data": {"manifest": str(cluster.shared / "audio" / "manifest.csv"),
                 "clean_labels": str(cluster.shared / "audio" / "clean.csv"), "decode_cpus": 0.25},
        "model": {"name": "mtt-tiny", "args": {"crop_seconds": 1.0}},
        "train": {"epochs": EPOCHS, "batch_size": 16, "lr": 0.003},
        "scaling": {"num_workers": [1, 2], "cpus_per_worker": 0.25, "resources": TRAINER, "max_failures": 6,
                    "resize_check_s": 5, "start_timeout_s": 20},
        "eval": {"max_chunks": 2, "batch_size": 8},
        "ray": {"address": cluster.address},
        "tracking": {"experiment": "faults", "uri": uri},
    }
    path = cluster.private / f"{RUN}.yaml"
    path.write_text(yaml.safe_dump(job))
    return path


class Watch:
    """What the run logged so far, read from the tracking server's SQLite file (also while the
    server is down)."""

    def __init__(self, store: Path, driver: subprocess.Popen, log: Path):
        self.client = MlflowClient(f"sqlite:///{store}")
        self.driver, self.log = driver, log

    def history(self, key: str) -> list:
        experiment = self.client.get_experiment_by_name("faults")
        if experiment is None:
            return []
        runs = self.client.search_runs([experiment.experiment_id], filter_string=f"attributes.run_name = '{RUN}'")
        return sorted(self.client.get_metric_history(runs[0].info.run_id, key), key=lambda m: m.step) if runs else []

    def epochs(self) -> dict[int, float]:
        """``{epoch: workers}`` of the logged epochs."""
        return {m.step: m.value for m in self.history("workers")}

    def wait(self, what: str, condition) -> None:
        deadline = time.monotonic() + WAIT_S
        while time.monotonic() < deadline:
            if condition(self.epochs()):
                return
            assert self.driver.poll() is None, f"driver ended while waiting for {what}:\n{self.log.read_text()[-4000:]}"
            time.sleep(1)
        raise TimeoutError(f"no {what} within {WAIT_S} s; epochs {self.epochs()}:\n{self.log.read_text()[-4000:]}")


def test_one_run_survives_two_node_deaths_an_mlflow_restart_and_an_s3_outage(cluster):
    cluster, servers = cluster
    mlflow, s3 = servers["mlflow"], servers["s3"]
    job = write_job(cluster, mlflow.uri)
    driver = cluster.start_driver("train", str(job))
    log = cluster.root / "driver.log"
    watch = Watch(mlflow.store, driver, log)
    faults: list[Fault] = []
    last_before_death: list[int] = []
    try:
        # Each fault spans from its injection to the first epoch of the recovered run; two
        # clean epochs separate the faults, so each interval between epochs has one cause.
        def settle() -> None:
            done = max(watch.epochs())
            watch.wait("two clean epochs", lambda e: max(e) >= done + 2)

        # 1. A worker node dies once the 2-worker group has logged an epoch.
        watch.wait("epoch on 2 workers", lambda e: 2.0 in e.values())
        last_before_death.append(max(watch.epochs()))
        began = time.time()
        cluster.kill_worker("w1")
        done = max(watch.epochs())
        watch.wait("epoch on 1 worker after the death", lambda e: max(e) > done and e[max(e)] == 1.0)
        faults.append(Fault("node death 1", began, time.time()))
        settle()

        # 2. The tracking server is killed and started again on its port and store, while the
        #    run goes on at one worker (the epochs of the outage are kept by the driver).
        began = time.time()
        mlflow.restart()
        faults.append(Fault("MLflow server restart", began, time.time()))
        settle()

        # A new node joins; the group grows back to 2 workers (no fault: an event of the run).
        began = time.time()
        cluster.add_worker("w2", cpus=1, resources=TRAINER)
        grown = len(watch.epochs())
        watch.wait("epoch on 2 workers after the join", lambda e: any(e[s] == 2.0 for s in sorted(e)[grown:]))
        faults.append(Fault("node join (group grows)", began, time.time(), counts=False))
        settle()

        # 3. The second worker node dies.
        last_before_death.append(max(watch.epochs()))
        began = time.time()
        cluster.kill_worker("w2")
        done = max(watch.epochs())
        watch.wait("epoch on 1 worker after the second death", lambda e: max(e) > done and e[max(e)] == 1.0)
        faults.append(Fault("node death 2", began, time.time()))
        settle()

        # 4. The object store that holds the checkpoints stops answering for 30 s.
        began = time.time()
        with paused(s3.process):
            time.sleep(S3_PAUSE_S)
        done = max(watch.epochs())
        watch.wait("an epoch after the S3 outage", lambda e: max(e) > done)
        faults.append(Fault("S3 unreachable 30 s", began, time.time()))
        settle()

        stop = cluster.run_driver("stop", str(job))
        assert stop.returncode == 0, stop.stderr
        assert driver.wait(timeout=WAIT_S) == 0, log.read_text()[-4000:]
    finally:
        if driver.poll() is None:
            os.killpg(driver.pid, signal.SIGKILL)
            driver.wait(timeout=30)

    text = log.read_text()
    loss = watch.history("train/loss")
    steps = [m.step for m in loss]
    # Every epoch logged exactly once, steps 1..N, nothing missing from the outage.
    assert steps == list(range(1, len(steps) + 1)) and len(steps) < EPOCHS, steps
    for key in ("workers", "valid/roc_auc", "resumed_from_epoch", "epoch_seconds"):
        assert [m.step for m in watch.history(key)] == steps, key
    run = watch.client.search_runs([watch.client.get_experiment_by_name("faults").experiment_id])[0]
    assert run.info.status == "FINISHED" and "test/roc_auc" in run.data.metrics
    assert "records kept during an outage" in text and "could not be logged" not in text
    # No checkpoint lost: the group restarted after each death resumed from an epoch at least
    # as recent as the last one logged before the node died.
    resumed = {m.step: int(m.value) for m in watch.history("resumed_from_epoch")}
    for last in last_before_death:
        after = [resumed[s] for s in steps if s > last and resumed[s] != resumed[last]]
        assert after and after[0] >= last, (last, resumed)

    epoch_times = [(m.step, m.timestamp / 1000) for m in loss]
    costs = fault_costs(epoch_times, faults)
    kept = [line for line in text.splitlines() if "records kept during an outage" in line]
    lines = [f"one run, {len(steps)} epochs of mtt-tiny on 40 clips (2 s, 16 kHz), storage s3:// (moto), "
             f"MLflow server; head + 1 worker node, elastic 1-2 workers; 2 cores shared",
             f"normal epoch interval (median, no fault near): {costs['normal epoch']:.1f} s"]
    for fault in faults:
        what = "cost" if fault.counts else "took (not a fault)"
        lines.append(f"{fault.name}: {what} {costs[fault.name]:+.1f} s beyond normal epochs "
                     f"(injection to recovery seen: {fault.end - fault.start:.1f} s)")
    lines += [f"driver: {line.strip()}" for line in kept]
    lines.append(f"resumed_from_epoch per epoch: {[resumed[s] for s in steps]}")
    lines.append(f"workers per epoch: {[int(m.value) for m in watch.history('workers')]}")
    report = "\n".join(lines) + "\n"
    print(report)
    if os.environ.get("RAYTAG_FAULTS_REPORT"):
        Path(os.environ["RAYTAG_FAULTS_REPORT"]).write_text(report)
    (cluster.root / "faults.json").write_text(json.dumps(costs))
