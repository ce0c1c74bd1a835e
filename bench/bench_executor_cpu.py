"""CPU a consuming process spends on its own stream: a Ray Data pipeline vs plain Ray tasks (issue 27).

A Train worker iterates its epoch's stream while it trains. This script stands in for it with a
consumer that takes a batch and then only sleeps (``--step-s`` per batch: no CPU, no GIL), so
whatever CPU the consuming process uses is the stream's own: Ray Data's streaming executor and
iterator threads, or the plain-task stream's ``ray.get`` calls (the shape of
``raytag.cluster.data.task_stream``). Both streams carry the same blocks (``--rows`` rows of
3 s at 16 kHz, float32, in 32-row blocks, 4 tasks ahead for the plain stream), alternated
``--repeats`` times in one local Ray instance of 2 CPUs.

    python bench/bench_executor_cpu.py --out bench/results/executor-cpu.txt
"""

from __future__ import annotations

import argparse
import datetime
import os
import statistics
import time
from collections import deque
from pathlib import Path

import numpy as np
import ray

BLOCK = 32
BATCH = 8
AHEAD = 4


def _crops(batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    return {"audio": np.zeros((len(batch["row"]), 48000), np.float32), "row": batch["row"]}


_remote_crops = ray.remote(_crops)


def ray_data_stream(rows: int):
    ctx = ray.data.DataContext.get_current()
    ctx.enable_progress_bars = False
    ctx.execution_options.preserve_order = True
    ds = ray.data.from_items([{"row": i} for i in range(rows)], override_num_blocks=-(-rows // BLOCK))
    return ds.map_batches(_crops, batch_size=16, num_cpus=0.25).iter_torch_batches(batch_size=BATCH)


def task_stream(rows: int):
    blocks = deque({"row": np.arange(first, min(first + BLOCK, rows))} for first in range(0, rows, BLOCK))
    task = _remote_crops.options(num_cpus=0.25)
    pending = deque(task.remote(blocks.popleft()) for _ in range(min(AHEAD, len(blocks))))
    while pending:
        block = ray.get(pending.popleft())
        if blocks:
            pending.append(task.remote(blocks.popleft()))
        for first in range(0, len(block["row"]), BATCH):
            yield {name: column[first:first + BATCH] for name, column in block.items()}


def measure(stream, step_s: float) -> tuple[float, float]:
    """(wall seconds, CPU seconds of this process) of consuming ``stream``."""
    wall, cpu = time.perf_counter(), time.process_time()
    for _ in stream:
        time.sleep(step_s)
    return time.perf_counter() - wall, time.process_time() - cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=480, help="rows per stream (a rank's epoch of issue 27's job)")
    parser.add_argument("--step-s", type=float, default=0.1, help="the consumer's sleep per batch")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    load = os.getloadavg()[0]
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    results: dict[str, list[tuple[float, float]]] = {"ray data": [], "tasks": []}
    for _ in range(args.repeats):
        results["ray data"].append(measure(ray_data_stream(args.rows), args.step_s))
        results["tasks"].append(measure(task_stream(args.rows), args.step_s))
    ray.shutdown()
    lines = [
        f"# bench_executor_cpu: {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC, {os.cpu_count()} CPUs,"
        f" local Ray of 2 CPUs; 1-min load {load:.1f} at the start, {os.getloadavg()[0]:.1f} at the end",
        f"# {args.rows} rows of 3 s at 16 kHz, {BLOCK}-row blocks, batches of {BATCH}; the consumer sleeps "
        f"{args.step_s} s per batch; {args.repeats} alternated repeats",
        "",
        f"{'stream':9} {'wall s':>7} {'CPU s':>6} {'CPU-s per s':>11}",
    ]
    for name, runs in results.items():
        for wall, cpu in runs:
            lines.append(f"{name:9} {wall:>7.2f} {cpu:>6.2f} {cpu / wall:>11.3f}")
    for name, runs in results.items():
        lines.append(f"median {name}: {statistics.median(cpu / wall for wall, cpu in runs):.3f} CPU-s per s")
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out is not None:
        args.out.write_text(text)


if __name__ == "__main__":
    main()
