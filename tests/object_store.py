"""A real S3-compatible server for the tests: moto's server (``python -m moto.server``) on
127.0.0.1 and a free port, in a process group of its own, stopped by process id.

raytag reaches it the way a user reaches any S3-compatible store: ``s3://bucket/...`` URIs and
the standard AWS environment variables (``AWS_ENDPOINT_URL``, ``AWS_ACCESS_KEY_ID``,
``AWS_SECRET_ACCESS_KEY``, ``AWS_DEFAULT_REGION``), which pyarrow's S3 file system reads and Ray's
worker processes inherit.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pyarrow.fs as pafs

from multinode import free_port

START_TIMEOUT_S = 60


@dataclass
class S3Server:
    process: subprocess.Popen
    port: int

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def env(self) -> dict[str, str]:
        """What a process needs to use the server through ``s3://`` URIs."""
        return {"AWS_ENDPOINT_URL": self.endpoint, "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                "AWS_DEFAULT_REGION": "us-east-1", "AWS_EC2_METADATA_DISABLED": "true"}

    def filesystem(self) -> pafs.S3FileSystem:
        return pafs.S3FileSystem(endpoint_override=self.endpoint, access_key="testing", secret_key="testing",
                                 region="us-east-1", allow_bucket_creation=True)

    def create_bucket(self, name: str) -> None:
        self.filesystem().create_dir(name)

    def upload(self, local_dir: Path, uri: str) -> None:
        """Copies a local folder to ``s3://bucket/prefix``."""
        pafs.copy_files(str(local_dir), uri.removeprefix("s3://"), source_filesystem=pafs.LocalFileSystem(),
                        destination_filesystem=self.filesystem())

    def keys(self, uri: str) -> list[str]:
        """Every object under ``s3://bucket/prefix``, as URIs."""
        selector = pafs.FileSelector(uri.removeprefix("s3://"), recursive=True, allow_not_found=True)
        return sorted(f"s3://{info.path}" for info in self.filesystem().get_file_info(selector)
                      if info.type == pafs.FileType.File)

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=30)


def start_s3_server(log: Path) -> S3Server:
    """Starts the server and waits until it answers on its port."""
    port = free_port()
    process = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                               stdout=log.open("w"), stderr=subprocess.STDOUT, start_new_session=True)
    server = S3Server(process, port)
    deadline = time.time() + START_TIMEOUT_S
    while time.time() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"moto server exited:\n{log.read_text()[-3000:]}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return server
        except OSError:
            time.sleep(0.2)
    server.stop()
    raise TimeoutError(f"moto server did not listen on {port} in {START_TIMEOUT_S} s")
