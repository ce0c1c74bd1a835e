"""Integration: raytag on a local Ray cluster whose nodes share nothing but storage and audio.

The cluster (tests/multinode.py) has a head node in the machine's file system view and worker
nodes in mount namespaces that hide the driver's working directory. Every driver is a real
`raytag` process in that hidden folder, with MLflow's default SQLite file there. Each node offers
one `trainer` resource and each Train worker asks for one, so a 2-worker run must use two nodes.

These tests start their own Ray processes and run in their own pytest invocation (marker
`multinode`, see the Makefile), never beside the shared local instance of the other tests.
"""

from __future__ import annotations

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

from multinode import LocalCluster, free_port, node_env
from object_store import s3_env, start_s3_server
from requirements import needs_root_unshare

pytestmark = [pytest.mark.multinode, needs_root_unshare]

TRAINER = {"trainer": 1}


S3_PORT = free_port()
S3_ENDPOINT = f"http://127.0.0.1:{S3_PORT}"


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """The cluster, and an S3-compatible server (moto's) in its network that every node and
    driver reaches through the AWS environment variables."""
    from raytag.data.synth.corpus import SynthSpec, write_corpus

    cluster = LocalCluster(tmp_path_factory.mktemp("cluster"), env=s3_env(S3_ENDPOINT))
    write_corpus(cluster.shared / "audio", SynthSpec(clips=40, seconds=2.0, sample_rate=16000, seed=3), overwrite=True)
    server = None
    try:
        server = start_s3_server(cluster.root / "s3.log", wrap=cluster.in_network, port=S3_PORT)
        cluster.start_head(cpus=2, resources=TRAINER)
        cluster.add_worker("w1", cpus=1, resources=TRAINER)
        yield cluster
    finally:
        cluster.stop()
        if server is not None:
            server.stop()


def write_job(cluster: LocalCluster, name: str, **overrides) -> Path:
    job = {
        "name": name,
        "storage": str(cluster.shared / "storage"),
        "data": {"manifest": str(cluster.shared / "audio" / "manifest.csv"),
                 "clean_labels": str(cluster.shared / "audio" / "clean.csv"), "decode_cpus": 0.25},
        "model": {"name": "mtt-tiny", "args": {"crop_seconds": 1.0}},
        "train": {"epochs": 2, "batch_size": 16, "lr": 0.003},
        "scaling": {"num_workers": [1, 2], "cpus_per_worker": 0.25, "resources": TRAINER, "max_failures": 3,
                    "resize_check_s": 5, "start_timeout_s": 20},
        "eval": {"max_chunks": 2, "batch_size": 8},
        "ray": {"address": cluster.address},
        "tracking": {"experiment": "multinode"},
    }
    for path, value in overrides.items():
        node = job
        *parents, last = path.split(".")
        for part in parents:
            node = node.setdefault(part, {})
        node[last] = value
    path = cluster.private / f"{name}.yaml"
    path.write_text(yaml.safe_dump(job))
    return path


def driver_store(cluster: LocalCluster) -> MlflowClient:
    """The driver's default MLflow store: ./mlflow.db in its (private) working directory."""
    return MlflowClient(f"sqlite:///{cluster.private / 'mlflow.db'}")


def run_named(client: MlflowClient, name: str):
    experiment = client.get_experiment_by_name("multinode")
    runs = client.search_runs([experiment.experiment_id], filter_string=f"attributes.run_name = '{name}'")
    assert len(runs) == 1, f"expected one run {name}, found {len(runs)}"
    return runs[0]


def metric_steps(client: MlflowClient, run, key: str) -> list[tuple[int, float]]:
    return sorted((m.step, m.value) for m in client.get_metric_history(run.info.run_id, key))


def check(proc: subprocess.CompletedProcess) -> None:
    assert proc.returncode == 0, f"driver failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"


def test_a_d_a_two_node_pipeline_lands_complete_and_its_scoring_pools_spread(cluster):
    """(a) 2-node DDP runs land complete in the driver's store, their files in storage; (d) the
    teacher-scoring and evaluation actor pools run on both nodes. The job names no address: the
    driver joins the cluster ``RAY_ADDRESS`` names (as under ``ray job submit``); a local instance
    would have no ``trainer`` resource for the workers."""
    job = write_job(cluster, "spread", **{
        "ray.address": None,
        "stages": [
            {"name": "teacher", "overrides": {"objective": {"name": "balanced_training"}}},
            {"name": "student", "teacher": "teacher", "overrides": {"objective": {"name": "balanced_masking"}}},
        ],
        "train.epochs": 1, "scaling.num_workers": 2,
        # Enough batches for both actors of each pool: 0.25 s chunks, 8 per 2 s track, 4 per batch.
        "model.args": {"crop_seconds": 0.25}, "eval.max_chunks": 8, "eval.batch_size": 4,
        "eval.ray_above": 0,  # evaluation on the actor pool, however few the tracks
    })
    check(cluster.run_driver("run", str(job), env={"RAY_ADDRESS": cluster.address}))
    client = driver_store(cluster)
    teacher, student = run_named(client, "spread-teacher"), run_named(client, "spread-student")
    for run in (teacher, student):
        assert run.info.status == "FINISHED"
        assert [step for step, _ in metric_steps(client, run, "train/loss")] == [1]  # every epoch, once
        assert {value for _, value in metric_steps(client, run, "workers")} == {2.0}  # one worker per node
        assert "test/roc_auc" in run.data.metrics
    run_folder = cluster.shared / "storage" / "spread-teacher"
    assert list(run_folder.glob("checkpoint_*")) and (run_folder / "best_model" / "model.json").is_file()
    # Nothing was written anywhere but the driver's store and storage: the worker node had no
    # way to (its view of the driver's folder is an empty tmpfs).
    assert not list((cluster.shared / "storage").rglob("mlflow.db"))
    assert student.data.metrics["teacher_scores/scoring_nodes"] == 2
    assert student.data.metrics["test/scoring_nodes"] == 2
    assert teacher.data.metrics["test/scoring_nodes"] == 2


def test_g_a_worker_node_reads_everything_from_an_object_store(cluster):
    """Manifest, audio, checkpoints, the exported model and the caches at ``s3://``: the worker
    node trains and scores from the server alone (nothing of the job is in the shared folder)."""
    helper = [sys.executable, str(Path(__file__).with_name("object_store.py")), S3_ENDPOINT]
    subprocess.run(cluster.in_network([*helper, "upload", str(cluster.shared / "audio"), "s3://corpus/synth"]),
                   check=True)
    subprocess.run(cluster.in_network([*helper, "bucket", "runs"]), check=True)
    job = write_job(cluster, "objects", **{
        "storage": "s3://runs/raytag", "data.manifest": "s3://corpus/synth/manifest.csv",
        "data.clean_labels": "s3://corpus/synth/clean.csv", "train.epochs": 1, "scaling.num_workers": 2,
    })
    check(cluster.run_driver("train", str(job)))
    run = run_named(driver_store(cluster), "objects")
    assert run.info.status == "FINISHED" and "test/roc_auc" in run.data.metrics
    assert len(run.data.tags["raytag.train_nodes"].split(",")) == 2  # the worker node trained
    listed = subprocess.run(cluster.in_network([*helper, "keys", "s3://runs/raytag/objects"]), check=True,
                            capture_output=True, text=True).stdout
    keys = json.loads(listed)
    assert "s3://runs/raytag/objects/best_model/model.pt" in keys and any("/checkpoint_" in k for k in keys)
    assert not (cluster.shared / "storage" / "objects").exists()


def test_e_a_run_logs_to_a_real_mlflow_server_and_survives_its_death(cluster):
    port = free_port()
    store = cluster.private / "server.db"
    server_log = cluster.root / "mlflow-server.log"
    server = subprocess.Popen(
        cluster.in_network([str(Path(sys.executable).with_name("mlflow")), "server", "--backend-store-uri",
                            f"sqlite:///{store}", "--artifacts-destination", str(cluster.private / "server-artifacts"),
                            "--host", "127.0.0.1", "--port", str(port), "--workers", "1"]),
        env={**node_env(), "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"},  # no background job consumers
        stdout=server_log.open("w"), stderr=subprocess.STDOUT, start_new_session=True,
    )
    uri = f"http://127.0.0.1:{port}"
    # The server lives in the cluster's network; this process reads what it stored from its file.
    served = MlflowClient(f"sqlite:///{store}")
    try:
        _wait_for_server(cluster, uri, server)
        job = write_job(cluster, "served", **{"tracking.uri": uri, "train.epochs": 4})
        driver = cluster.start_driver("train", str(job))
        deadline = time.time() + 300
        while time.time() < deadline and not _logged_epochs(served, "served"):
            assert driver.poll() is None, (cluster.root / "driver.log").read_text()[-3000:]
            time.sleep(2)
        assert _logged_epochs(served, "served"), "no epoch reached the tracking server"
        os.killpg(server.pid, signal.SIGKILL)  # the server goes away mid-run
        server.wait(timeout=30)
        assert driver.wait(timeout=600) == 0, (cluster.root / "driver.log").read_text()[-3000:]
        log = (cluster.root / "driver.log").read_text()
        assert "training continues" in log  # a warning, not the end of the run
    finally:
        if server.poll() is None:
            os.killpg(server.pid, signal.SIGKILL)
    run = run_named(served, "served")  # what reached the server stayed
    assert metric_steps(served, run, "train/loss")


def test_f_a_sweeps_trials_spread_over_both_nodes_and_land_in_the_drivers_store(cluster):
    job = write_job(cluster, "swept", **{"scaling.num_workers": 1, "train.epochs": 1})
    space = cluster.private / "space.yaml"
    space.write_text("params:\n  train.lr: {grid: [0.001, 0.003]}\n")
    check(cluster.run_driver("sweep", str(job), str(space), "--samples", "1", "--scheduler", "fifo",
                             "--max-concurrent", "2"))
    client = driver_store(cluster)
    parent = run_named(client, "swept-sweep")
    experiment = client.get_experiment_by_name("multinode")
    trials = client.search_runs([experiment.experiment_id],
                                filter_string=f"tags.mlflow.parentRunId = '{parent.info.run_id}'")
    assert len(trials) == 2 and all(t.info.status == "FINISHED" for t in trials)
    assert all("test/roc_auc" in t.data.metrics for t in trials)
    nodes = {t.data.tags.get("raytag.train_nodes") for t in trials}
    assert len({n for trial in nodes for n in (trial or "").split(",") if n}) == 2  # both nodes trained


# The run lasts as long as the test needs it: it outlasts a node's death, the shrunk group's
# start, a new node's join, Ray Train's resize check (scaling.resize_check_s 5) and the grown
# group's start, and ends with `raytag stop` once the grown group has trained an epoch. The epoch
# count is only a bound (a fixed count raced the resize: 14 epochs sufficed at Ray's 2 s poll,
# 60 were needed at 0.5 s and still ended before the grown group on a slow machine).
ELASTIC_EPOCHS = 1000


def test_b_c_an_elastic_run_shrinks_when_a_node_dies_and_grows_when_one_joins(cluster):
    job = write_job(cluster, "elastic", **{"train.epochs": ELASTIC_EPOCHS})
    driver = cluster.start_driver("train", str(job))
    run_folder = cluster.shared / "storage" / "elastic"
    try:
        _wait_for(lambda: len(list(run_folder.glob("checkpoint_*"))) >= 1, driver, cluster)
        cluster.kill_worker("w1")  # a node dies mid-run
        _wait_for(lambda: 1 in _workers_per_epoch(cluster, "elastic"), driver, cluster)
        cluster.add_worker("w2", cpus=1, resources=TRAINER)  # a node joins
        _wait_for(lambda: _grew_back(_workers_per_epoch(cluster, "elastic")), driver, cluster)
        check(cluster.run_driver("stop", str(job)))  # then the run ends after its current epoch
        assert driver.wait(timeout=600) == 0, (cluster.root / "driver.log").read_text()[-4000:]
    finally:
        if driver.poll() is None:
            os.killpg(driver.pid, signal.SIGKILL)
    client = driver_store(cluster)
    run = run_named(client, "elastic")
    workers = _workers_per_epoch(cluster, "elastic")
    assert workers[0] == 2 and _grew_back(workers)  # shrank, then grew back
    steps = [step for step, _ in metric_steps(client, run, "train/loss")]
    assert steps == list(range(1, len(steps) + 1)) and len(steps) < ELASTIC_EPOCHS  # each epoch once; stopped
    assert max(v for _, v in metric_steps(client, run, "resumed_from_epoch")) >= 1  # from a checkpoint
    # The stopped run ended as a finished one does: best epoch exported and evaluated.
    assert run.info.status == "FINISHED" and "test/roc_auc" in run.data.metrics
    assert (run_folder / "best_model" / "model.json").is_file() and not (run_folder / "stop_requested").exists()
    assert f"stopped on request after epoch {len(steps)} of {ELASTIC_EPOCHS}" in (cluster.root / "driver.log").read_text()


def _workers_per_epoch(cluster: LocalCluster, name: str) -> list[int]:
    """The ``workers`` metric of each logged epoch of run ``name``, in epoch order."""
    client = driver_store(cluster)
    try:
        run = run_named(client, name)
    except (AssertionError, AttributeError):
        return []
    return [int(value) for _, value in metric_steps(client, run, "workers")]


def _grew_back(workers: list[int]) -> bool:
    """Whether an epoch with 2 workers follows one with 1."""
    return 1 in workers and 2 in workers[workers.index(1):]


def _logged_epochs(client: MlflowClient, name: str) -> list:
    experiment = client.get_experiment_by_name("multinode")
    if experiment is None:
        return []
    runs = client.search_runs([experiment.experiment_id], filter_string=f"attributes.run_name = '{name}'")
    return client.get_metric_history(runs[0].info.run_id, "train/loss") if runs else []


def _wait_for(condition, driver: subprocess.Popen, cluster: LocalCluster, timeout: float = 600) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if condition():
            return
        assert driver.poll() is None, (cluster.root / "driver.log").read_text()[-4000:]
        time.sleep(1)
    raise TimeoutError((cluster.root / "driver.log").read_text()[-4000:])


def _tail(path: Path, chars: int = 3000) -> str:
    return path.read_text()[-chars:] if path.is_file() else f"(no {path.name})"


def _wait_for_server(cluster: LocalCluster, uri: str, server: subprocess.Popen, timeout: float = 180) -> None:
    """Asks the server's health endpoint from inside the cluster's network."""
    probe = f"import urllib.request; urllib.request.urlopen('{uri}/health', timeout=2)"
    deadline = time.time() + timeout
    while time.time() < deadline:
        assert server.poll() is None, f"mlflow server exited: {_tail(cluster.root / 'mlflow-server.log')}"
        if subprocess.run(cluster.in_network([sys.executable, "-c", probe]), capture_output=True).returncode == 0:
            return
        time.sleep(1)
    raise TimeoutError(f"mlflow server at {uri} did not come up")
