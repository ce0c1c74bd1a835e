"""``raytag stop``: a request in the job's run folder under storage, which the Train workers look
for after every epoch (raytag/cluster/training/stop.py; the run ending on it: tests/test_engine_run.py,
and on a cluster: tests/test_multinode.py's elastic run)."""

from __future__ import annotations

from raytag.cli import main
from raytag.cluster.training.stop import stop_requested, take_stop_request
from raytag.locations import run_location, stop_request_location

JOB = """
name: long
storage: {storage}
data: {{manifest: m.csv}}
model: {{name: mtt-tiny}}
"""


def test_raytag_stop_leaves_a_request_where_the_workers_and_the_driver_look(tmp_path, capsys):
    job = tmp_path / "long.yaml"
    job.write_text(JOB.format(storage=tmp_path / "runs"))
    run = run_location(str(tmp_path / "runs"), "long")
    assert not stop_requested(run) and not take_stop_request(run)
    assert main(["stop", str(job)]) == 0
    assert f"asked long to stop after its current epoch ({stop_request_location(run)})" in capsys.readouterr().out
    assert stop_requested(run)
    assert take_stop_request(run) and not stop_requested(run) and not take_stop_request(run)
    # Overrides name the job as `raytag train` would: another name, another run folder.
    assert main(["stop", str(job), "name=other"]) == 0
    assert stop_requested(run_location(str(tmp_path / "runs"), "other")) and not stop_requested(run)


def test_a_job_with_stages_is_refused(tmp_path, capsys):
    job = tmp_path / "pipeline.yaml"
    job.write_text(JOB.format(storage=tmp_path / "runs") + "stages:\n  - {name: teacher}\n")
    assert main(["stop", str(job)]) == 2
    assert "has stages" in capsys.readouterr().err
