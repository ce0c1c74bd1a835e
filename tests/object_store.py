"""A real S3-compatible server for the tests: moto's server (``python -m moto.server``) on
127.0.0.1 and a free port, in a process group of its own, stopped by process id.

raytag reaches it the way a user reaches any S3-compatible store: ``s3://bucket/...`` URIs and
the standard AWS environment variables (``AWS_ENDPOINT_URL``, ``AWS_ACCESS_KEY_ID``,
``AWS_SECRET_ACCESS_KEY``, ``AWS_DEFAULT_REGION``), which pyarrow's S3 file system reads and Ray's
worker processes inherit.

Run as a script (``python object_store.py ENDPOINT upload LOCAL_DIR s3://...``, ``... bucket NAME``
or ``... keys s3://...``) it does the same from inside another network namespace (tests/multinode.py's
cluster network, where the server must run for the nodes to reach it).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pyarrow.fs as pafs

from multinode import free_port

START_TIMEOUT_S = 60


def s3_env(endpoint: str) -> dict[str, str]:
    """What a process needs to use the server at ``endpoint`` through ``s3://`` URIs."""
    return {"AWS_ENDPOINT_URL": endpoint, "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": "us-east-1", "AWS_EC2_METADATA_DISABLED": "true"}


def _filesystem(endpoint: str) -> pafs.S3FileSystem:
    return pafs.S3FileSystem(endpoint_override=endpoint, access_key="testing", secret_key="testing",
                             region="us-east-1", allow_bucket_creation=True)


def upload(endpoint: str, local_dir: Path, uri: str) -> None:
    """Copies a local folder to ``s3://bucket/prefix``, creating the bucket."""
    filesystem = _filesystem(endpoint)
    filesystem.create_dir(uri.removeprefix("s3://").split("/")[0])
    pafs.copy_files(str(local_dir), uri.removeprefix("s3://"), source_filesystem=pafs.LocalFileSystem(),
                    destination_filesystem=filesystem)


def keys(endpoint: str, uri: str) -> list[str]:
    """Every object under ``s3://bucket/prefix``, as URIs."""
    selector = pafs.FileSelector(uri.removeprefix("s3://"), recursive=True, allow_not_found=True)
    return sorted(f"s3://{info.path}" for info in _filesystem(endpoint).get_file_info(selector)
                  if info.type == pafs.FileType.File)


@dataclass
class S3Server:
    process: subprocess.Popen
    port: int

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def env(self) -> dict[str, str]:
        return s3_env(self.endpoint)

    def create_bucket(self, name: str) -> None:
        _filesystem(self.endpoint).create_dir(name)

    def upload(self, local_dir: Path, uri: str) -> None:
        upload(self.endpoint, local_dir, uri)

    def keys(self, uri: str) -> list[str]:
        return keys(self.endpoint, uri)

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=30)


def start_s3_server(log: Path, wrap=lambda command: command, port: int | None = None) -> S3Server:
    """Starts the server (its command passed through ``wrap``, e.g. into another network
    namespace) and waits until it answers on its port."""
    port = port or free_port()
    process = subprocess.Popen(wrap([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)]),
                               stdout=log.open("w"), stderr=subprocess.STDOUT, start_new_session=True)
    server = S3Server(process, port)
    probe = wrap([sys.executable, "-c", f"import socket; socket.create_connection(('127.0.0.1', {port}), timeout=1)"])
    deadline = time.time() + START_TIMEOUT_S
    while time.time() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"moto server exited:\n{log.read_text()[-3000:]}")
        if subprocess.run(probe, capture_output=True).returncode == 0:
            return server
        time.sleep(0.3)
    server.stop()
    raise TimeoutError(f"moto server did not listen on {port} in {START_TIMEOUT_S} s")


if __name__ == "__main__":
    endpoint, command, *arguments = sys.argv[1:]
    if command == "upload":
        upload(endpoint, Path(arguments[0]), arguments[1])
    elif command == "bucket":
        _filesystem(endpoint).create_dir(arguments[0])
    elif command == "keys":
        print(json.dumps(keys(endpoint, arguments[0])))
    else:
        raise SystemExit(f"unknown command {command!r}")
