"""What ``raytag evaluate`` prints on Ray Data, read at the file-descriptor level of a separate
process: Ray's C++ components and its error listener write past Python's ``sys.stdout`` and
``sys.stderr``, so only a subprocess's real stdout and stderr show what a person sees."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from conftest import write_tiny_job
from teachers import write_random_tagger

from raytag.data.manifest import read_manifest

# Ray's lines that reached the console of every evaluation and audit on Ray Data (issue 26).
RAY_NOISE = ("has constructor arguments in the object store", "worker processes have been started")


@pytest.mark.ray
def test_evaluate_on_ray_data_prints_raytags_lines_and_none_of_rays(tiny_corpus, tmp_path):
    tags = list(read_manifest(tiny_corpus / "manifest.csv").vocabulary)
    model = write_random_tagger(tmp_path / "model", tags=tags)
    job = write_tiny_job(tmp_path, "console", tiny_corpus)
    env = {k: v for k, v in os.environ.items()
           if k not in ("RAY_ADDRESS", "RAYTAG_VERBOSE") and not k.startswith(("RAY_num_workers", "RAY_worker_",
                                                                               "RAY_BACKEND_LOG"))}
    # Its own local instance of 2 CPUs (Ray's worker warning depends on the CPU count), and the
    # Ray Data actor pool for every track (eval.ray_above=0), as evaluation above 300 tracks.
    completed = subprocess.run(
        [sys.executable, "-c", "import sys; from raytag.cli import main; sys.exit(main(sys.argv[1:]))",
         "evaluate", str(job), "ray.num_cpus=2", "eval.ray_above=0", "--model", str(model),
         "--split", "valid"],
        capture_output=True, text=True, env=env, timeout=600, cwd=tmp_path,
    )
    console = completed.stdout + completed.stderr
    assert completed.returncode == 0, console[-4000:]
    assert "macro" in completed.stdout and "in this process" not in console  # scored on Ray Data
    shown = [line for line in console.splitlines() if any(noise in line for noise in RAY_NOISE)]
    assert not shown, "\n".join(shown)


def test_local_instance_settings_keep_a_users_values(monkeypatch):
    from raytag.cluster.session import local_instance_settings

    for name in ("RAY_num_workers_soft_limit", "RAY_worker_maximum_startup_concurrency", "RAY_BACKEND_LOG_LEVEL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("RAY_worker_maximum_startup_concurrency", "3")
    applied = local_instance_settings(16, verbose=False)
    assert applied == {"RAY_num_workers_soft_limit": "32", "RAY_BACKEND_LOG_LEVEL": "error"}
    assert os.environ["RAY_worker_maximum_startup_concurrency"] == "3"
    monkeypatch.delenv("RAY_BACKEND_LOG_LEVEL")
    monkeypatch.delenv("RAY_num_workers_soft_limit")
    # With -v, Ray's C++ components keep their own level (warnings in the session logs).
    assert local_instance_settings(2, verbose=True) == {"RAY_num_workers_soft_limit": "8"}
    assert "RAY_BACKEND_LOG_LEVEL" not in os.environ
