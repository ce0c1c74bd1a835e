"""bench/bench_throughput_trees.py: which batch a tree reads, and the report's arithmetic (no Ray)."""

from __future__ import annotations

import argparse
import json

import pytest

from bench_modules import load_bench

bench = load_bench("bench_throughput_trees")


def _run(label, rates, waits=(), examples=(480, 480, 480)):
    return {"label": label, "clips_per_s": list(rates), "epoch_s": [30.0] * len(rates), "examples": list(examples),
            "data_wait_s": list(waits), "wall_s": 100.0, "load_start": 1.0, "load_end": 2.0}


def test_trees_before_the_global_batch_size_get_the_per_rank_batch(tmp_path):
    (tmp_path / "raytag" / "data").mkdir(parents=True)
    assert bench.per_worker_batch(tmp_path)  # 45c9f88: no rows.py, batch_size is per worker
    (tmp_path / "raytag" / "data" / "rows.py").write_text("def rank_batch_size(global_batch, world_size): ...\n")
    assert not bench.per_worker_batch(tmp_path)


def test_the_job_file_is_the_issues_job():
    job = bench.JOB.format(name="x", storage="/s", corpus="/c", model_args=json.dumps(bench.MODEL_ARGS), epochs=3,
                           batch_size=16, workers=2, num_cpus=2, uri="sqlite:///x.db")
    assert "cpus_per_worker: 0.5" in job and "num_workers: 2" in job and '"dropout": 0.0' in job


def test_step_only_rates_leave_the_waits_out_and_skip_epoch_one():
    # epoch 2: 480 clips at 20/s = 24 s, 4 s of it waiting -> 480 / 20 = 24 clips/s
    run = _run("a", [10.0, 20.0, 24.0], waits=[9.0, 4.0, 0.0])
    assert bench.step_only(run) == f"{(24.0 + 24.0) / 2:.1f}"
    assert bench.step_only(_run("old", [10.0, 20.0, 24.0])) == "-"  # a tree that logs no waits


def test_the_report_takes_ratios_to_the_first_tree_and_the_bound():
    args = argparse.Namespace(argv=[], num_cpus=2, clips=1200, epochs=3)
    runs = [_run("old", [5.0, 20.0, 22.0]), _run("new", [5.0, 30.0, 33.0]), {"label": "broken", "failed": 1,
                                                                           "wall_s": 3.0}]
    bounds = [(40.0, 50.0), (44.0, 50.0), (40.0, 50.0), (40.0, 50.0)]  # before each run, after the last
    text = bench.report(args, bounds, runs, ["old", "new", "broken"])
    lines = {line.split()[0]: line for line in text.splitlines()[-3:]}
    # each run against the mean of the bounds measured just before and after it: 42 and 42
    assert "21.0 clips/s" in lines["old"] and "1.00x old" in lines["old"] and "0.50x bound" in lines["old"]
    assert "31.5 clips/s" in lines["new"] and "1.50x old" in lines["new"] and "0.75x bound" in lines["new"]
    assert "50.0 clips per CPU-s" in text
    assert "no finished run" in lines["broken"] and "train failed (exit 1)" in text
    with pytest.raises(SystemExit):
        bench.main(["--epochs", "1"])
