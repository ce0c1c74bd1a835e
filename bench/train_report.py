"""The report of ``bench_train.py``: a table of the arms' steady state and whole runs, their
epochs, the ratios between arms, and the elastic restart."""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import shlex
import sys
from dataclasses import dataclass

import ray
import torch

from elastic_restart import ElasticRun  # bench/, beside this file
from train_figures import Arm, epoch_window, steady, steady_rate


@dataclass(frozen=True)
class Steady:
    """An arm's steady state (epochs 2..N): ``train_epoch`` rate, and its whole epochs as a
    wall-clock window with the CPU seconds and mean load in it."""

    train_rate: float
    clips: int
    window_s: float
    cpu_s: float
    load: float

    @classmethod
    def of(cls, arm: Arm) -> Steady:
        start, end, clips = epoch_window(arm.records)
        return cls(steady_rate(arm.records), clips, end - start, arm.cpu_s(start, end), arm.load(start, end))

    @property
    def epoch_rate(self) -> float:
        return self.clips / self.window_s

    @property
    def cpu_rate(self) -> float:
        return self.clips / max(self.cpu_s, 1e-9)


HEADER = (f"{'arm':<20} {'wkr':>3} {'ep':>2} {'clips':>5} {'train/s':>7} {'x plain':>7} {'epoch/s':>7} "
          f"{'/cpu-s':>6} {'win s':>6} {'cpu-s':>6} {'load':>4} | {'whole s':>7} {'cpu-s':>6} {'load':>4}")


def arm_line(arm: Arm, figures: Steady, reference: Steady | None) -> str:
    ratio = f"{figures.train_rate / reference.train_rate:7.2f}" if reference else f"{'-':>7}"
    return (f"{arm.name:<20} {arm.records[-1].workers:>3} {len(steady(arm.records)):>2} {figures.clips:>5} "
            f"{figures.train_rate:>7.2f} {ratio} {figures.epoch_rate:>7.2f} {figures.cpu_rate:>6.2f} "
            f"{figures.window_s:>6.1f} {figures.cpu_s:>6.1f} {figures.load:>4.1f} | {arm.wall_s:>7.1f} "
            f"{arm.cpu_s():>6.1f} {arm.load():>4.1f}")


def epoch_lines(arm: Arm) -> list[str]:
    rates = " ".join(f"{r.clips / r.train_seconds:6.2f}" for r in arm.records)
    seconds = " ".join(f"{r.epoch_seconds:6.1f}" for r in arm.records)
    return [f"  {arm.name:<20} train clip/s: {rates}", f"  {'':<20} epoch s:      {seconds}"]


def elastic_lines(run: ElasticRun, args: argparse.Namespace) -> list[str]:
    out = [f"(4) elastic restart: 2-node cluster (head 2 CPUs, worker node 1 CPU, one trainer each), "
           f"scaling.num_workers [1, 2], {args.elastic_epochs} epochs; the worker node killed "
           f"{args.kill_delay:g} s after the first checkpoint appeared in storage (polled every 0.5 s)"]
    restart, arm = run.restart, Arm("elastic", run.records, run.started, run.ended, run.samples)
    if restart is not None:
        end = run.killed_at + restart.to_next_epoch_s
        out += [
            f"  kill -> first resumed epoch starts: {restart.to_resumed_s:6.1f} s",
            f"  kill -> first resumed epoch ends:   {restart.to_next_epoch_s:6.1f} s   "
            f"({arm.cpu_s(run.killed_at, end):.1f} CPU-s, load {arm.load(run.killed_at, end):.1f})",
            f"  epochs checkpointed at the kill: {restart.done_at_kill} (trained by {restart.workers_before} workers); "
            f"resumed at epoch {restart.resumed_from} with {restart.workers_after} worker(s); complete epochs trained "
            f"again: {restart.epochs_repeated}; work of the interrupted epoch lost: {restart.partial_lost_s:.1f} s",
        ]
    if run.events:
        out.append("  what Ray logged (head node's Train controller and GCS logs), seconds after the kill:")
        out += [f"    {after:6.1f}  {what}" for after, what in run.events]
    if run.records:
        out += [f"  epochs logged {[r.epoch for r in run.records]}, workers {[r.workers for r in run.records]}, "
                f"epoch seconds {[round(r.epoch_seconds, 1) for r in run.records]}; logged twice: "
                f"{run.logged_twice or 'none'}",
                f"  driver exit code {run.exit_code}; whole run {arm.wall_s:.0f} s (cluster start to driver exit), "
                f"{arm.cpu_s():.0f} CPU-s, load {arm.load():.1f}"]
    if run.problem:
        out.append(f"  problem: {run.problem}")
    return out


def report(args: argparse.Namespace, *, plain: Arm, one: Arm, two: Arm, elastic: ElasticRun | None,
           load_start: float, total_s: float) -> list[str]:
    """The report's lines: (1) the plain loop, (2) and (3) Ray Train with 1 and 2 workers,
    (4) the elastic run (None: left out)."""
    figures = {arm.name: Steady.of(arm) for arm in (plain, one, two)}
    base, single, double = figures[plain.name], figures[one.name], figures[two.name]
    lines = [
        f"# bench_train: {datetime.datetime.now():%Y-%m-%d %H:%M}, torch {torch.__version__}, ray {ray.__version__}, "
        f"{platform.machine()}, {os.cpu_count()} CPUs (shared with other work), total {total_s:.0f} s",
        f"# command: python {shlex.join(sys.argv)}",
        f"# {args.model}, plain BCE, global batch {args.batch}, {args.epochs} epochs of {plain.records[0].examples} "
        f"training clips (synthetic: {args.clips} clips of {args.seconds:g} s at 16 kHz, seed {args.seed}); "
        f"validation every epoch (1 chunk per track)",
        f"# plain loop: {args.threads} torch thread(s), DataLoader with {args.loader_workers} worker process(es), a "
        f"checkpoint per epoch; Ray: a local instance per arm with {os.cpu_count()} logical CPUs, Train workers 0.5 CPU, "
        f"decode tasks 0.25 CPU",
        f"# 1-min load average {load_start:.1f} at the start, {os.getloadavg()[0]:.1f} at the end",
        "# steady state = epochs 2..N. train/s: clips of all ranks per second of train_epoch (rank 0's clock, data "
        "wait included); x plain: over the plain loop's; epoch/s: the same clips per wall second from the end of "
        "epoch 1 to the end of epoch N (validation, checkpoint, report included); /cpu-s: per CPU second of this "
        "process and all its descendants in that window (win s, cpu-s); load: mean 1-min load average in it; whole: "
        "the arm from start to end (plain loop: from reading the manifest to the last checkpoint, no export or test "
        "evaluation; Ray: the whole train() call)",
        "",
        HEADER,
        "-" * len(HEADER),
        *(arm_line(arm, figures[arm.name], None if arm is plain else base) for arm in (plain, one, two)),
        "",
        "per epoch (epoch 1 first):",
        *(line for arm in (plain, one, two) for line in epoch_lines(arm)),
        "",
        "ratios measured in this run:",
        f"  (2)/(1) Ray Train 1 worker / plain loop, train/s: {single.train_rate / base.train_rate:5.2f}x   goal >= 0.9x "
        "(Ray's overhead <= 10 %)",
        f"  (2)/(1) whole epochs: {single.epoch_rate / base.epoch_rate:5.2f}x per wall second, "
        f"{single.cpu_rate / base.cpu_rate:5.2f}x per CPU second",
        f"  (3)/(2) Ray Train 2 workers / 1 worker, train/s: {double.train_rate / single.train_rate:5.2f}x; whole epochs "
        f"{double.epoch_rate / single.epoch_rate:.2f}x per wall second, {double.cpu_rate / single.cpu_rate:.2f}x per "
        "CPU second",
        f"  whole runs: plain loop {plain.wall_s:.0f} s, Ray 1 worker {one.wall_s:.0f} s, Ray 2 workers {two.wall_s:.0f} s "
        "(Ray: start-up, scan, export, thresholds, test evaluation included)",
    ]
    failed = {arm.name: arm.failed_starts for arm in (one, two) if arm.failed_starts}
    if failed:
        lines.append(f"  Ray starts that timed out and were retried (not in the whole times): {failed}")
    if elastic is not None:
        lines += ["", *elastic_lines(elastic, args)]
    return lines
