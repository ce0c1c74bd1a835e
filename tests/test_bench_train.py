"""bench/train_figures.py: the arithmetic of bench_train.py's figures (no Ray, no training)."""

from __future__ import annotations

import math
import sys

import pytest

from bench_modules import load_bench

figures = load_bench("train_figures")
EpochRecord, Sample = figures.EpochRecord, figures.Sample


def record(epoch: int, *, examples: int = 10, train_s: float = 1.0, epoch_s: float = 2.0, workers: int = 1,
           ended: float = 0.0, resumed: int = -1) -> EpochRecord:
    return EpochRecord(epoch, examples, train_s, epoch_s, workers, ended, resumed)


def test_the_steady_rate_leaves_the_first_epoch_out_and_is_a_ratio_of_sums():
    records = [record(1, examples=10, train_s=100.0), record(2, examples=10, train_s=1.0),
               record(3, examples=30, train_s=2.0)]
    assert figures.steady_rate(records) == pytest.approx(40 / 3.0)  # not the mean of 10 and 15


def test_clips_count_every_rank():
    records = [record(1), record(2, examples=8, train_s=2.0, workers=2)]
    assert records[1].clips == 16
    assert figures.steady_rate(records) == pytest.approx(8.0)


def test_the_steady_rate_needs_an_epoch_after_the_first():
    with pytest.raises(ValueError, match="no epoch"):
        figures.steady_rate([record(1)])


def test_the_epoch_window_runs_from_the_end_of_the_first_epoch_to_the_last():
    records = [record(1, ended=10.0), record(2, examples=5, ended=14.0, workers=2), record(3, examples=5, ended=20.0,
                                                                                         workers=2)]
    assert figures.epoch_window(records) == (10.0, 20.0, 20)
    with pytest.raises(ValueError):
        figures.epoch_window(records[1:])


def test_records_from_histories_take_the_first_value_of_an_epoch_and_its_loss_time():
    histories = {
        "train/examples": [(1, 12, 5.0), (2, 12, 9.0)],
        "train/examples_per_s": [(1, 4.0, 5.0), (2, 6.0, 9.0)],
        "epoch_seconds": [(1, 4.5, 5.0), (2, 3.5, 9.0)],
        "workers": [(1, 2, 5.0), (2, 1, 9.0)],
        "resumed_from_epoch": [(1, -1, 5.0), (2, 1, 9.0), (2, 7, 99.0)],  # a later duplicate is ignored
        "train/loss": [(1, 0.7, 5.1), (2, 0.6, 9.1)],
    }
    first, second = figures.records_from_histories(histories)
    assert (first.epoch, first.examples, first.train_seconds, first.workers, first.ended_at) == (1, 12, 3.0, 2, 5.1)
    assert (second.train_seconds, second.epoch_seconds, second.workers, second.resumed_from) == (2.0, 3.5, 1, 1)


def test_records_default_to_one_worker_and_no_restart():
    histories = {"train/examples": [(1, 4, 1.0)], "train/examples_per_s": [(1, 2.0, 1.0)],
                 "epoch_seconds": [(1, 3.0, 1.0)]}
    (only,) = figures.records_from_histories(histories)
    assert (only.workers, only.resumed_from, only.ended_at) == (1, -1, 1.0)


def test_restart_figures_measure_from_the_kill():
    records = [record(1, ended=100.0, epoch_s=20.0, workers=2),
               record(2, ended=190.0, epoch_s=30.0, resumed=1),  # started at 160
               record(3, ended=220.0, epoch_s=30.0, resumed=1)]
    restart = figures.restart_figures(records, killed_at=110.0, done_at_kill=1, checkpoint_at=104.0)
    assert restart.to_resumed_s == pytest.approx(50.0)
    assert restart.to_next_epoch_s == pytest.approx(80.0)
    assert (restart.resumed_from, restart.epochs_repeated) == (1, 0)
    assert restart.partial_lost_s == pytest.approx(6.0)
    assert (restart.workers_before, restart.workers_after) == (2, 1)


def test_restart_figures_match_epochs_by_number_not_by_when_they_were_logged():
    # The checkpoint of epoch 1 was in storage at the kill; its metrics reached MLflow later.
    records = [record(1, ended=112.0, workers=2), record(2, ended=190.0, epoch_s=30.0, resumed=1)]
    restart = figures.restart_figures(records, killed_at=110.0, done_at_kill=1, checkpoint_at=110.0)
    assert restart.to_resumed_s == pytest.approx(50.0) and restart.workers_before == 2


def test_a_restart_from_an_older_checkpoint_or_from_scratch_repeats_epochs():
    records = [record(1, ended=10.0), record(2, ended=20.0), record(3, ended=60.0, resumed=1)]
    assert figures.restart_figures(records, killed_at=25.0, done_at_kill=2, checkpoint_at=20.0).epochs_repeated == 1
    records[-1] = record(3, ended=60.0, resumed=-1)
    assert figures.restart_figures(records, killed_at=25.0, done_at_kill=2, checkpoint_at=20.0).epochs_repeated == 2


def test_restart_figures_need_the_next_epoch_logged_after_the_kill():
    with pytest.raises(ValueError, match="not logged after the kill"):
        figures.restart_figures([record(1, ended=10.0)], killed_at=20.0, done_at_kill=1, checkpoint_at=10.0)
    with pytest.raises(ValueError):
        figures.restart_figures([record(1, ended=10.0), record(2, ended=15.0)], killed_at=20.0, done_at_kill=1,
                                checkpoint_at=10.0)


def test_repeated_steps_are_the_steps_logged_more_than_once():
    assert figures.repeated_steps([(0, 0.5, 1.0), (1, 0.4, 2.0), (1, 0.4, 3.0), (2, 0.3, 4.0)]) == [1]
    assert figures.repeated_steps([]) == []


def test_window_cpu_interpolates_between_samples_and_clamps_at_the_ends():
    samples = [Sample(0.0, 0.0, 1.0), Sample(10.0, 5.0, 3.0), Sample(20.0, 25.0, 5.0)]
    assert figures.window_cpu(samples, 5.0, 15.0) == pytest.approx(12.5)
    assert figures.window_cpu(samples, -5.0, 30.0) == pytest.approx(25.0)
    assert figures.window_load(samples, 5.0, 25.0) == pytest.approx(4.0)
    assert figures.window_load(samples, 11.0, 12.0) == 3.0  # none inside: the nearest


def test_the_timeline_counts_a_child_process():
    import subprocess

    child = "import time\nend = time.process_time() + 0.5\nwhile time.process_time() < end: pass\ntime.sleep(0.3)"
    with figures.CpuTimeline(interval_s=0.1) as timeline:
        subprocess.run([sys.executable, "-c", child], check=True)
    used = timeline.samples[-1].cpu_s
    assert 0.4 < used < 5.0 and not math.isnan(used)


def test_ray_events_read_the_restart_from_the_controller_and_gcs_logs():
    import datetime
    import json

    elastic = load_bench("elastic_restart")

    def controller(stamp: str, message: str) -> str:
        return json.dumps({"asctime": f"2026-11-21 {stamp}", "levelname": "INFO", "message": message})

    lines = [
        controller("20:09:49,806", "Attempting to start training worker group of size 2 with the following resources"),
        controller("20:10:47,032", "[FailurePolicy] RETRY\n  Source: worker group\n  Error count: 1 (max allowed: 3)"),
        controller("20:10:51,071", "Attempting to start training worker group of size 2 with the following resources"),
        controller("20:11:51,074", "Error in control loop iteration: The worker group startup timed out after 60.0 "
                                   "seconds waiting for 2 workers."),
        controller("20:11:58,200", "Started training worker group of size 1: \n- (ip=127.0.0.1, pid=12550)"),
        "not json",
    ]
    gcs = ["[2026-11-21 20:10:53,037 W 10077 10077] (gcs_server) gcs_node_manager.cc:761: The node with node id: e6 "
           "has been marked dead because the detector has missed too many heartbeats from it.",
           "[2026-11-21 20:10:41,034 W 10077 10077] (gcs_server) Health check failed for node e6"]
    kill = datetime.datetime(2026, 11, 21, 20, 10, 38, 200000).timestamp()
    events = elastic.ray_events(lines, gcs, since=kill)
    assert [round(after, 1) for after, _ in events] == [8.8, 12.9, 14.8, 72.9, 80.0]
    assert [what for _, what in events] == [
        "Train controller: RETRY after a failure in the worker group",
        "worker group of 2 starts",
        "GCS marks the node dead (missed health checks)",
        "worker group start timed out after 60.0 s",
        "worker group of 1 started",
    ]
