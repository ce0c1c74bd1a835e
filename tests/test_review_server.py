"""``raytag review`` against a real ``mlflow server`` (REST store, proxied artifacts)."""

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient
from review_store import EXPECTED_ORDER, fill_pipeline

from raytag.tracking import run_tags as tag_names
from raytag.tracking.review import review_runs

STARTUP_DEADLINE_S = 120  # ~15 s on 2 idle cores; generous for a loaded machine


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def mlflow_server(tmp_path):
    """An ``mlflow server`` on a free local port with a SQLite backend in ``tmp_path``; the
    whole process group is stopped at teardown, whatever happened."""
    port = free_port()
    executable = Path(sys.executable).with_name("mlflow")
    log = (tmp_path / "server.log").open("wb")
    process = subprocess.Popen(
        [str(executable), "server", "--backend-store-uri", f"sqlite:///{tmp_path / 'server.db'}",
         "--artifacts-destination", str(tmp_path / "artifacts"), "--host", "127.0.0.1", "--port", str(port),
         "--workers", "1"],
        cwd=tmp_path, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        # The server's background job consumers (a dozen processes) serve features these tests
        # do not use and would slow its start on 2 cores.
        env={**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"},
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + STARTUP_DEADLINE_S
        while True:
            if process.poll() is not None:
                pytest.fail(f"mlflow server exited with {process.returncode}: {(tmp_path / 'server.log').read_text()[-2000:]}")
            try:
                with urllib.request.urlopen(f"{url}/health", timeout=2) as response:
                    if response.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"mlflow server not healthy after {STARTUP_DEADLINE_S} s: {(tmp_path / 'server.log').read_text()[-2000:]}")
            time.sleep(0.5)
        yield url
    finally:
        _stop(process)
        log.close()


def _stop(process: subprocess.Popen) -> None:
    """SIGTERM to the server's process group (it forks workers), SIGKILL if it lingers."""
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)
    try:  # workers left behind in the group
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def test_review_through_a_tracking_server_logs_the_report_to_the_parent(mlflow_server, tmp_path):
    client = MlflowClient(mlflow_server)
    experiment = client.create_experiment("served")
    ids = fill_pipeline(client, experiment)

    outcome = review_runs(tracking_uri=mlflow_server, parent_run_id=ids["parent"], html_path=tmp_path / "served.html")
    assert [run.stage for run in outcome.review.runs] == ["teacher", "student"]
    assert list(outcome.review.differences["tag"]) == EXPECTED_ORDER
    assert outcome.review.tracking_uri == mlflow_server

    assert client.get_run(ids["parent"]).data.tags[tag_names.REVIEW_REPORT] == "review/served.html"
    fetched = Path(client.download_artifacts(ids["parent"], "review/served.html", str(tmp_path / "fetched")))
    html = fetched.read_text()
    assert html == outcome.html_path.read_text()
    assert html.count('<img src="data:image/png;base64,') == len(outcome.review.images) >= 6
