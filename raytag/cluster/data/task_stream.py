"""A rank's decoded crops, in row order, from plain Ray tasks a few blocks ahead of the consumer.

The per-epoch, per-rank streams of a training run (this rank's training rows, its shard of the
evaluation chunks) are decoded here rather than through a Ray Data pipeline. A Ray Data
pipeline iterated in a Train worker runs its streaming executor in a thread of that worker for
as long as the epoch is being consumed, and its scheduling loop (Ray 2.60) waits in ``ray.wait``
only while one of its tasks is running. Measured with a consumer that only sleeps, iterating
an epoch-sized pipeline cost the consuming process 0.14 CPU-s per second against 0.01 for this
stream; in a Train worker that thread takes CPU and the GIL from the training step (issue 27:
the per-epoch pipelines came with 7157c33, and the clips/s per rank fell 1.6x). Here the
consumer waits in ``ray.get`` (no GIL) and nothing else runs in its process.

What a stream yields is what the Ray Data path (:func:`raytag.cluster.data.datasets.decoded_chunks`)
yields for the same rows: rows go to tasks in blocks of :data:`ROWS_PER_BLOCK`, each block is
decoded by :func:`raytag.data.batches.decode_batch` (every crop drawn from its row's seed) and,
with augmentation, augmented in batches of :data:`AUGMENT_BATCH` rows seeded by their rows
(the Ray Data path's 16-row augmentation batches of 32-row blocks); the blocks are concatenated
in order and cut into batches of the consumer's size. ``tests/test_task_stream_ray.py`` checks
the two paths give the same arrays.

This module is imported by every decode task's process: it imports neither torch nor the engine
(augmentation imports torch inside the task, only when enabled).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator

import numpy as np
import ray
from ray.util.scheduling_strategies import PlacementGroupSchedulingStrategy

from raytag.audio.augment_spec import AugmentSpec
from raytag.data.batches import batch_seed, decode_batch, rows_to_batch
from raytag.data.rows import batch_sizes

ROWS_PER_BLOCK = 32
"""Rows per decode task (the Ray Data path's block size): ~0.1 s of a 2-core machine's CPU for
3 s WAV crops, so Ray's per-task cost stays small."""
AUGMENT_BATCH = 16
"""Rows per seeded augmentation batch (the Ray Data path's ``DECODE_BATCH``)."""
BLOCKS_AHEAD = 4
"""Decode tasks in flight per stream: enough to hide a task's latency behind the consumer's
steps, at most 4 x 32 decoded crops held per stream."""


def _decode_block(block: dict[str, np.ndarray], sample_rate: int, crop_samples: int,
                  augment: AugmentSpec | None) -> dict[str, np.ndarray]:
    """One task: a block's rows decoded (and augmented, seeded by each 16-row batch's rows)."""
    out = decode_batch(block, sample_rate=sample_rate, crop_samples=crop_samples)
    if augment is None or not augment.enabled:
        return out
    from raytag.audio.augment import augment_numpy_batch  # torch, in the task's process

    parts = []
    for first in range(0, len(out["seed"]), AUGMENT_BATCH):
        part = {name: column[first:first + AUGMENT_BATCH] for name, column in out.items()}
        parts.append(augment_numpy_batch(part, sample_rate=sample_rate, spec=augment, seed=batch_seed(part["seed"])))
    return _concatenate(parts)


_remote_decode = ray.remote(_decode_block)


def _concatenate(parts: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    return {name: np.concatenate([part[name] for part in parts]) for name in parts[0]}


def decoded_batches(
    rows: list[dict],
    *,
    batch_size: int,
    sample_rate: int,
    crop_samples: int,
    num_cpus: float,
    augment: AugmentSpec | None = None,
    ahead: int = BLOCKS_AHEAD,
    training: bool = False,
) -> Iterator[dict[str, np.ndarray]]:
    """Batches of ``batch_size`` decoded rows (the last may be smaller), in row order.

    Args:
        rows: row dicts (:mod:`raytag.data.rows`), in the order to visit them.
        batch_size: rows per yielded batch.
        sample_rate, crop_samples: the model's rate (Hz) and crop length (samples).
        num_cpus: CPUs per decode task (``data.decode_cpus``).
        augment: the augmentation applied in the decode task, when enabled.
        ahead: decode tasks submitted before their blocks are needed (at least 1).
        training: a last batch of one row joins the batch before it
            (:func:`raytag.data.rows.batch_sizes`).

    Yields:
        dicts as :func:`raytag.data.batches.decode_batch` returns them: ``audio`` (B, T) float32,
        ``labels`` (B, K), ``track``, ``seed``, ``decoded`` and the rows' extra columns.
    """
    if batch_size < 1 or ahead < 1:
        raise ValueError(f"batch_size and ahead must be at least 1, got {batch_size} and {ahead}")
    # Outside any placement group: a Tune trial's Train worker holds its bundle's CPUs, and a
    # child task captured into that bundle would wait for them forever (Ray Data's tasks also
    # run outside the trainer's placement group).
    task = _remote_decode.options(num_cpus=num_cpus,
                                  scheduling_strategy=PlacementGroupSchedulingStrategy(placement_group=None))
    blocks = (rows_to_batch(rows[first:first + ROWS_PER_BLOCK]) for first in range(0, len(rows), ROWS_PER_BLOCK))
    sizes = deque(batch_sizes(len(rows), batch_size, join_single_tail=training))
    pending: deque = deque()
    held: list[dict[str, np.ndarray]] = []
    held_rows = 0

    def submit() -> None:
        block = next(blocks, None)
        if block is not None:
            pending.append(task.remote(block, sample_rate, crop_samples, augment))

    for _ in range(ahead):
        submit()
    while pending:
        decoded = ray.get(pending.popleft())
        submit()
        held.append(decoded)
        held_rows += len(decoded["seed"])
        if not sizes or held_rows < sizes[0]:
            continue
        merged, first = _concatenate(held), 0
        while sizes and held_rows - first >= sizes[0]:
            size = sizes.popleft()
            yield {name: column[first:first + size] for name, column in merged.items()}
            first += size
        held = [{name: column[first:] for name, column in merged.items()}] if first < held_rows else []
        held_rows -= first
    if held_rows or sizes:  # each task returns one row per row it was given: never true
        raise RuntimeError(f"the decode tasks returned {held_rows} rows more or {sum(sizes)} fewer than "
                           f"the {len(rows)} rows given")
