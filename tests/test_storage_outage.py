"""An object store that refuses connections for a while (a restart, a network blip) costs
storage calls time, not the job: the S3 file system retries each request (``S3_MAX_ATTEMPTS``)
and a folder's upload (checkpoints, exported models) is tried again for minutes. The server is
moto's, started on its port only seconds after the calls began."""

from __future__ import annotations

import threading
import time

import pytest

from multinode import free_port
from object_store import keys, s3_env, start_s3_server
from raytag import storage

LATE_START_S = 10.0  # pyarrow's default 3 attempts gave up after 0.6-6 s here


@pytest.fixture
def late_server(tmp_path, monkeypatch):
    """The AWS environment of a server at a free port where nothing answers yet; a thread starts
    moto's server there after ``LATE_START_S`` seconds and makes bucket ``runs``."""
    port = free_port()
    endpoint = f"http://127.0.0.1:{port}"
    for name, value in s3_env(endpoint).items():
        monkeypatch.setenv(name, value)
    servers, errors = [], []

    def start_late() -> None:
        time.sleep(LATE_START_S)
        try:
            servers.append(start_s3_server(tmp_path / "s3.log", port=port))
            servers[0].create_bucket("runs")
        except Exception as exc:  # noqa: BLE001 - reported by the test below
            errors.append(exc)

    thread = threading.Thread(target=start_late, daemon=True)
    thread.start()
    try:
        yield endpoint
    finally:
        thread.join()
        for server in servers:
            server.stop()
        assert not errors, errors


def test_calls_made_while_the_store_refuses_connections_succeed_once_it_answers(late_server, tmp_path):
    folder = tmp_path / "checkpoint"
    folder.mkdir()
    (folder / "state.json").write_text('{"epoch": 3}')
    (folder / "model.pt").write_bytes(b"\0" * 1000)
    # Refused at first: without retries beyond pyarrow's default this raised OSError.
    storage.upload(folder, "s3://runs/raytag/job/checkpoint_000003", retry_s=60)
    assert not storage.exists("s3://runs/raytag/job/stop_requested")
    assert keys(late_server, "s3://runs/raytag/job") == [
        "s3://runs/raytag/job/checkpoint_000003/model.pt", "s3://runs/raytag/job/checkpoint_000003/state.json"]
    assert storage.read_text("s3://runs/raytag/job/checkpoint_000003/state.json") == '{"epoch": 3}'


def test_an_upload_gives_up_with_the_stores_own_error_once_its_time_is_over(tmp_path, monkeypatch):
    for name, value in s3_env(f"http://127.0.0.1:{free_port()}").items():
        monkeypatch.setenv(name, value)
    monkeypatch.setattr(storage, "S3_MAX_ATTEMPTS", 1)  # one refused request per try: quick
    (tmp_path / "a.txt").write_text("x")
    with pytest.raises(OSError, match="NETWORK_CONNECTION"):
        storage.upload(tmp_path, "s3://runs/raytag/job/checkpoint_000001", retry_s=2)
