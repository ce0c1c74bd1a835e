"""Every random draw of a run derives from the job's ``seed`` and where the draw happens.

A run is reproducible when each draw depends only on (seed, what, epoch, rank or row), never on
which process made it or in which order tasks finished:

- ``epoch_order``: the order tracks are visited in an epoch (seed, epoch);
- ``shard``: which positions of that order a rank takes (rank, world size);
- ``row_seed``: a track's crop offset and augmentation draws in an epoch (seed, epoch, track),
  the same whichever rank or decode task handles it;
- ``rank_generator``: per-rank randomness of the training step (dropout, Balanced-Training
  masks) in an epoch (seed, epoch, rank), so ranks differ from each other and epochs from epochs.

Streams are separated by a fixed tag (``STREAMS``), so e.g. the unlabeled stream's order is not
the labelled stream's.
"""

from __future__ import annotations

import numpy as np

STREAMS = {"order": 1, "crop": 2, "unlabeled": 3, "step": 4, "init": 5}


def derive_seed(seed: int, stream: str, *keys: int) -> int:
    """A 63-bit seed from the job seed, a named stream and integer keys (epoch, rank, row, ...)."""
    sequence = np.random.SeedSequence([int(seed) & 0xFFFFFFFF, STREAMS[stream], *(int(k) for k in keys)])
    return int(sequence.generate_state(1, dtype=np.uint64)[0] >> np.uint64(1))


def epoch_order(num_rows: int, *, seed: int, epoch: int, shuffle: bool, stream: str = "order") -> np.ndarray:
    """The order rows are visited in ``epoch``: a permutation drawn from (seed, stream, epoch), or
    ``arange`` without shuffling. Returns (num_rows,) int64."""
    if not shuffle:
        return np.arange(num_rows, dtype=np.int64)
    return np.random.default_rng(derive_seed(seed, stream, epoch)).permutation(num_rows).astype(np.int64)


def shard(order: np.ndarray, *, rank: int, world_size: int) -> np.ndarray:
    """Rank ``rank``'s positions of ``order``: every ``world_size``-th from ``rank``.

    Every rank gets the same count, ``ceil(len / world_size)``, so DDP ranks take the same number
    of steps: when the length does not divide, the order is padded by repeating its first
    entries (at most ``world_size - 1`` rows are seen twice in the epoch; none is dropped).
    """
    if not 0 <= rank < world_size:
        raise ValueError(f"rank must be in [0, {world_size}), got {rank}")
    if len(order) == 0:
        return order
    per_rank = -(-len(order) // world_size)
    padded = np.resize(order, per_rank * world_size)  # np.resize repeats from the start
    return padded[rank::world_size]


def row_seed(seed: int, epoch: int, row: int, stream: str = "crop") -> int:
    """The seed of one row's draws (crop offset, augmentation) in one epoch."""
    return derive_seed(seed, stream, epoch, row)


def rank_generator_seed(seed: int, epoch: int, rank: int) -> int:
    """The seed of one rank's training-step randomness (dropout, masks) in one epoch."""
    return derive_seed(seed, "step", epoch, rank)


def init_seed(seed: int) -> int:
    """The seed of the model's initial weights (the same on every rank)."""
    return derive_seed(seed, "init")
