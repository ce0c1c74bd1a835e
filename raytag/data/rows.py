"""Row plans: which light rows (a path, a few integers, labels) a decode stage gets, and when.

A :class:`TrackTable` holds what is known of a split's usable tracks before any audio is
decoded. From it, pure functions make the rows of

- one rank's share of one training epoch (:func:`epoch_rows`): a seeded order, sharded over the
  ranks, each row carrying the seed of its crop and augmentation draws;
- the chunks that cover each track for evaluation (:func:`chunk_rows`).

Rows are plain dicts of Python/NumPy values, so any executor (Ray Data, a list in a test) can
take them, and the same job gives the same rows on any machine.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from raytag.audio.io import chunk_starts, source_frames
from raytag.engine.seeding import epoch_order, row_seed, shard

RANDOM_START = -1
"""``start`` of a row whose crop offset is drawn at decode time, from the row's ``seed``."""

BASE_COLUMNS = ("path", "track", "frames", "rate", "start", "seed", "labels")


@dataclass(frozen=True)
class TrackTable:
    """A split's usable tracks, in a fixed order; ``track`` in every row indexes it.

    Attributes:
        paths: absolute audio paths (or URIs), (N,).
        frames, rates: each file's length in frames and sample rate (Hz), from the header scan.
        labels: (N, K) float32 multi-hot targets (zeros for unlabeled audio).
        columns: extra per-track columns a method asked for, name -> (N, ...) array.
    """

    paths: tuple[str, ...]
    frames: np.ndarray
    rates: np.ndarray
    labels: np.ndarray
    columns: dict[str, np.ndarray] = field(default_factory=dict)

    def __post_init__(self) -> None:
        n = len(self.paths)
        for name, array in {"frames": self.frames, "rates": self.rates, "labels": self.labels, **self.columns}.items():
            if len(array) != n:
                raise ValueError(f"track table column {name!r} has {len(array)} rows for {n} tracks")
        clash = set(self.columns) & set(BASE_COLUMNS)
        if clash:
            raise ValueError(f"track table columns {sorted(clash)} clash with the row columns")

    def __len__(self) -> int:
        return len(self.paths)

    def row(self, index: int, *, start: int, seed: int) -> dict:
        """The row of track ``index`` with a crop ``start`` (or RANDOM_START) and draw seed."""
        row = {
            "path": self.paths[index],
            "track": index,
            "frames": int(self.frames[index]),
            "rate": int(self.rates[index]),
            "start": int(start),
            "seed": int(seed),
            "labels": self.labels[index].astype(np.float32),
        }
        for name, array in self.columns.items():
            row[name] = np.asarray(array[index], dtype=np.float32)
        return row


def epoch_rows(
    table: TrackTable,
    *,
    seed: int,
    epoch: int,
    rank: int,
    world_size: int,
    shuffle: bool = True,
    stream: str = "crop",
) -> list[dict]:
    """One rank's training rows for one epoch, in the order they are visited.

    The epoch's order is a permutation drawn from (seed, epoch) (or the table's order without
    ``shuffle``), sharded so every rank gets the same number of rows. Each row's random crop
    offset and augmentation come from ``row_seed(seed, epoch, track)``: a track draws the same
    crop in an epoch whichever rank or task decodes it, and another crop in the next epoch.

    Args:
        stream: ``"crop"`` for labelled data, ``"unlabeled"`` for the noisy-student stream (its
            own order and draws).
    """
    order = epoch_order(len(table), seed=seed, epoch=epoch, shuffle=shuffle, stream="order" if stream == "crop" else stream)
    return [
        table.row(int(i), start=RANDOM_START, seed=row_seed(seed, epoch, int(i), stream))
        for i in shard(order, rank=rank, world_size=world_size)
    ]


def batch_sizes(rows: int, batch_size: int, *, join_single_tail: bool = False) -> list[int]:
    """The sizes of the batches ``rows`` rows are cut into, in order: full batches of
    ``batch_size`` and what is left.

    With ``join_single_tail`` (training), a last batch of one row joins the batch before it
    (``batch_size + 1`` rows): batch normalisation cannot normalise a single example in
    training mode, and dropping the row would leave a clip out of the epoch without a word.
    """
    if rows < 0 or batch_size < 1:
        raise ValueError(f"need rows >= 0 and batch_size >= 1, got {rows} and {batch_size}")
    full, tail = divmod(rows, batch_size)
    sizes = [batch_size] * full + ([tail] if tail else [])
    if join_single_tail and tail == 1 and full:
        sizes[-2:] = [batch_size + 1]
    return sizes


def rank_batch_size(global_batch: int, world_size: int) -> int:
    """Each rank's share of a global batch (rounded, at least 1): a job's ``train.batch_size``
    is the batch of one optimizer step over all workers, whatever their number."""
    return max(1, round(global_batch / world_size))


def chunk_rows(
    table: TrackTable,
    *,
    sample_rate: int,
    crop_samples: int,
    max_chunks: int | None,
    rank: int = 0,
    world_size: int = 1,
) -> list[dict]:
    """Evaluation rows: chunks that cover each track (see :func:`raytag.audio.io.chunk_starts`),
    track by track. With ``world_size`` > 1, rank ``r`` gets the tracks ``r, r + world_size, ...``
    (all chunks of a track stay together, so its predictions can be averaged on one rank)."""
    rows = []
    for index in range(rank, len(table), world_size):
        crop_frames = source_frames(crop_samples, int(table.rates[index]), sample_rate)
        for start in chunk_starts(int(table.frames[index]), crop_frames, max_chunks):
            rows.append(table.row(index, start=start, seed=0))
    return rows
