"""Which Ray raytag uses: a job's ``ray.address``, else ``RAY_ADDRESS``, else a new local instance;
never the cluster Ray's ``ray_current_cluster`` file remembers unless asked (``auto``), and an
address nothing answers at is a one-line error, not minutes of retries.

No Ray instance is started here. Joining through ``RAY_ADDRESS`` is shown on a real cluster in
tests/test_multinode.py (a), and a run that ignores a stale ``ray_current_cluster`` file in
tests/test_object_store.py.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from multinode import free_port
from raytag.cluster.session import cluster_address, reachable_gcs
from raytag.errors import JobError


def stale_cluster_file(ray_tmpdir: Path) -> str:
    """Writes Ray's ``ray_current_cluster`` file under ``ray_tmpdir`` (what ``RAY_TMPDIR``
    points Ray at) naming a cluster whose head is gone; returns that address."""
    address = f"127.0.0.1:{free_port()}"
    (ray_tmpdir / "ray").mkdir(parents=True, exist_ok=True)
    (ray_tmpdir / "ray" / "ray_current_cluster").write_text(address + "\n")
    return address


def test_the_jobs_address_wins_then_ray_address_then_a_local_instance(monkeypatch):
    monkeypatch.setenv("RAY_ADDRESS", "10.0.0.1:6379")
    assert cluster_address("10.0.0.2:6379") == "10.0.0.2:6379"
    assert cluster_address(None) == "10.0.0.1:6379"
    monkeypatch.delenv("RAY_ADDRESS")
    assert cluster_address(None) == "local"


def test_an_address_nothing_listens_at_is_an_error_naming_it():
    address = f"127.0.0.1:{free_port()}"
    with pytest.raises(JobError, match=rf"cannot reach the Ray cluster at RAY_ADDRESS '{address}'.*RAY_ADDRESS"):
        reachable_gcs(address, source="RAY_ADDRESS")
    with pytest.raises(JobError, match=r"ray.address 'head-node': Invalid address"):
        reachable_gcs("head-node")


def test_auto_names_the_cluster_of_a_stale_ray_current_cluster_file_and_fails(tmp_path):
    """Ray resolves ``auto`` from running GCS processes before the file, so the check runs in a
    PID namespace of its own (root; CI is): another Ray on the machine, such as the shared test
    instance, must not answer for the stale file."""
    port = stale_cluster_file(tmp_path).rpartition(":")[2]
    check = ("from raytag.cluster.session import reachable_gcs\n"
             "from raytag.errors import JobError\n"
             "try:\n    reachable_gcs('auto')\nexcept JobError as exc:\n    print(exc)\n")
    proc = subprocess.run(["unshare", "--pid", "--fork", "--mount-proc", sys.executable, "-c", check],
                          capture_output=True, text=True, timeout=120, env={**os.environ, "RAY_TMPDIR": str(tmp_path)})
    assert proc.returncode == 0, proc.stderr
    assert re.match(rf"cannot reach the Ray cluster at ray.address 'auto' \(.*:{port}\)", proc.stdout), proc.stdout


def test_train_with_an_unreachable_ray_address_exits_1_with_one_line(tmp_path, tiny_job):
    """The whole command: the job is read and validated, then the address is checked before
    anything of Ray starts (no session folder appears in Ray's temporary folder)."""
    address = f"127.0.0.1:{free_port()}"
    env = {**os.environ, "RAY_ADDRESS": address, "RAY_TMPDIR": str(tmp_path / "raytmp")}
    proc = subprocess.run([sys.executable, "-m", "raytag.cli", "train", str(tiny_job("unreachable"))],
                          capture_output=True, text=True, timeout=120, env=env, cwd=tmp_path)
    assert proc.returncode == 1, proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("raytag train:")]
    assert len(errors) == 1 and "Traceback" not in proc.stderr, proc.stderr  # log lines aside
    assert errors[0].startswith(f"raytag train: cannot reach the Ray cluster at RAY_ADDRESS '{address}'")
    assert not list((tmp_path / "raytmp").glob("ray/session_*"))
