"""Ray Data pipelines from row plans to decoded, augmented crops.

Rows stay light (a path, a few integers, a label vector) until the decode stage, which reads
only the crop each row needs (on CPU tasks of ``num_cpus``). A job's training data is an
:class:`EpochData`: built on the driver from the split's :class:`~raytag.data.rows.TrackTable`,
shipped to every Train worker, and turned there into the rows of *this* rank for *this* epoch
(:func:`raytag.data.rows.epoch_rows`). Every draw depends on (seed, epoch, rank or row) and
order is preserved, so two runs of a job with the same number of workers see the same batches.

This module is what every decode task's process imports (Ray pickles ``_Decode`` by reference),
so it imports neither torch nor the engine: each decode process Ray starts would otherwise pay
torch's import (seconds of CPU on 2 cores) while the ranks train. ``tests/test_pipeline_costs.py``
keeps it so.
"""

from __future__ import annotations

import logging
import math
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import ray

from raytag.audio.files import AUDIO_SUFFIXES, audio_files  # noqa: F401 - re-exported
from raytag.audio.pcm_cache import is_cache_file
from raytag.audio.augment_spec import AugmentSpec
from raytag.cluster.data.task_stream import decoded_batches
from raytag.data import header_cache
from raytag.data.batches import batch_seed, decode_batch, scan_batch
from raytag.data.header_cache import Header, ScanCounts
from raytag.data.manifest import Track
from raytag.data.rows import TrackTable, chunk_rows, epoch_rows

log = logging.getLogger(__name__)

SCAN_BATCH = 64
ROWS_PER_BLOCK = 32
DECODE_BATCH = 16
CACHE_BLOCK_BYTES = 64 * 2**20
"""Decoded audio per block when every row reads the prepared cache (see :func:`decoded`)."""


def from_rows(rows: list[dict], min_blocks: int = 1, rows_per_block: int = ROWS_PER_BLOCK) -> ray.data.Dataset:
    """A dataset of light rows; a few dozen per block keeps per-task overhead small, and at
    least ``min_blocks`` blocks (as rows allow) give every actor of a pool downstream work."""
    blocks = max(1, math.ceil(len(rows) / rows_per_block), min(min_blocks, len(rows)))
    return ray.data.from_items(rows, override_num_blocks=blocks)


@dataclass(frozen=True)
class ScannedTrack:
    """A manifest track whose header could be read."""

    path: str
    frames: int
    rate: int


@dataclass(frozen=True)
class ScanResult:
    """Usable tracks by path, the skipped ones with their reasons, and how the headers were got
    (:class:`raytag.data.header_cache.ScanCounts`; None when nothing was scanned)."""

    usable: dict[str, ScannedTrack]
    skipped: list[tuple[str, str]]
    counts: ScanCounts | None = None

    def summary(self) -> str:
        total = len(self.usable) + len(self.skipped)
        counts = f" ({self.counts.summary()})" if self.counts is not None else ""
        if not self.skipped:
            return f"all {total} audio files are readable{counts}"
        kinds = Counter(_kind(reason) for _, reason in self.skipped)
        detail = ", ".join(f"{kind}: {n}" for kind, n in sorted(kinds.items()))
        return f"skipped {len(self.skipped)} of {total} audio files ({detail}){counts}"


def _kind(reason: str) -> str:
    if "no audio frames" in reason:
        return "empty"
    if "No such file" in reason or "not exist" in reason:
        return "missing"
    return "unreadable"


def scan_tracks(tracks: Sequence[Track], *, num_cpus: float, storage_root: str | None = None) -> ScanResult:
    """Every file's header; unusable files are listed, not fatal. With ``storage_root`` (the
    job's ``storage``) headers of files unchanged since a run that shared it come from the scan
    cache (:mod:`raytag.data.header_cache`), and only new or changed files are read."""
    paths = sorted({t.path for t in tracks})
    if not paths:
        return ScanResult({}, [])
    headers, counts = header_cache.scan(paths, storage_root, lambda todo: _read_headers(todo, num_cpus=num_cpus))
    usable, skipped = {}, []
    for path in paths:
        header = headers[path]
        if header.error:
            skipped.append((path, header.error))
        else:
            usable[path] = ScannedTrack(path, header.frames, header.rate)
    return ScanResult(usable, skipped, counts)


def _read_headers(paths: list[str], *, num_cpus: float) -> dict[str, Header]:
    """Reads every file's header on Ray Data workers.

    At most one scan task per CPU of the cluster runs at once, whatever ``num_cpus`` lets fit:
    a header read is short, and every extra task is a worker process to start (with 0.25-CPU
    tasks on 2 CPUs, 8 processes importing raytag at once made a cold scan of 400 files take
    11 s instead of 7 s).
    """
    # Never more tasks than batches (Ray Data warns about a concurrency its input cannot use).
    tasks = min(int(ray.cluster_resources().get("CPU", 1)), math.ceil(len(paths) / SCAN_BATCH))
    scanned = (
        from_rows([{"path": p} for p in paths])
        .map_batches(scan_batch, batch_size=SCAN_BATCH, num_cpus=num_cpus, batch_format="numpy",
                     concurrency=max(1, tasks))
        .to_pandas()
    )
    return {row.path: Header(int(row.frames), int(row.rate), row.error or "") for row in scanned.itertuples(index=False)}


def track_table(
    tracks: Sequence[Track],
    labels: np.ndarray,
    scan: ScanResult,
    columns: dict[str, np.ndarray] | None = None,
) -> tuple[TrackTable, list[int]]:
    """The usable tracks of a split as a :class:`TrackTable`, and their indices in ``tracks``.

    Args:
        tracks, labels: the split's tracks and their (N, K) labels, in the same order.
        scan: the header scan; tracks it skipped are left out (it counted them).
        columns: per-track columns for all of ``tracks`` (N, ...), kept for the usable ones.
    """
    kept = [i for i, t in enumerate(tracks) if t.path in scan.usable]
    infos = [scan.usable[tracks[i].path] for i in kept]
    table = TrackTable(
        paths=tuple(info.path for info in infos),
        frames=np.array([info.frames for info in infos], dtype=np.int64),
        rates=np.array([info.rate for info in infos], dtype=np.int64),
        labels=np.asarray(labels, dtype=np.float32)[kept],
        columns={name: np.asarray(array)[kept] for name, array in (columns or {}).items()},
    )
    return table, kept


def decoded_chunks(
    rows: list[dict], *, sample_rate: int, crop_samples: int, num_cpus: float, augment: AugmentSpec | None = None,
    min_blocks: int = 1, cache_blocks: bool = True,
) -> ray.data.Dataset:
    """Rows → decoded crops at the model's rate (CPU tasks) → augmented, when ``augment`` is
    enabled (each batch's draws seeded from its rows' seeds); see :func:`from_rows` for
    ``min_blocks``.

    When every row reads the prepared cache, a crop is one byte-range read (about 0.5 ms for
    3 s at 16 kHz), less than Ray's cost of a task of 32 rows. Then, unless something downstream
    depends on how rows fall into blocks, each task decodes one block of up to
    :data:`CACHE_BLOCK_BYTES` of audio (349 crops of 3 s at 16 kHz) as one batch. The crops,
    their order and their values are the same either way; consumers rebatch to their own sizes.
    Blocks stay 32 rows with augmentation (it seeds each 16-row batch of a block), with
    ``min_blocks`` > 1 (an actor pool downstream batches the blocks it gets) and with
    ``cache_blocks=False`` (the caller batches the output further).
    """
    per_block = None
    if cache_blocks and min_blocks <= 1 and not (augment is not None and augment.enabled):
        per_block = _cache_rows_per_block(rows, crop_samples)
    if per_block is not None:
        return from_rows(rows, rows_per_block=per_block).map_batches(
            _Decode(sample_rate, crop_samples), batch_size=None, num_cpus=num_cpus, batch_format="numpy"
        )
    # A decode task takes a whole block when blocks are smaller than its batch, so min_blocks
    # blocks stay min_blocks blocks downstream.
    decode_batch = DECODE_BATCH if min_blocks <= 1 else max(1, min(DECODE_BATCH, len(rows) // min_blocks))
    ds = from_rows(rows, min_blocks).map_batches(
        _Decode(sample_rate, crop_samples), batch_size=decode_batch, num_cpus=num_cpus, batch_format="numpy"
    )
    if augment is not None and augment.enabled:
        ds = ds.map_batches(_Augment(sample_rate, augment), batch_size=DECODE_BATCH, num_cpus=num_cpus,
                            batch_format="numpy")
    return ds


def _cache_rows_per_block(rows: list[dict], crop_samples: int) -> int | None:
    """Rows per block when every row reads a prepared-cache file, else None."""
    if not rows or not all(is_cache_file(row["path"]) for row in rows):
        return None
    return max(ROWS_PER_BLOCK, CACHE_BLOCK_BYTES // (4 * crop_samples))


class _Decode:
    """``map_batches`` function: decode each row's crop (a plain callable, run in tasks)."""

    def __init__(self, sample_rate: int, crop_samples: int):
        self.sample_rate, self.crop_samples = sample_rate, crop_samples

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        return decode_batch(batch, sample_rate=self.sample_rate, crop_samples=self.crop_samples)


class _Augment:
    """``map_batches`` function: the augmentation chain, seeded by the batch's rows."""

    def __init__(self, sample_rate: int, spec: AugmentSpec):
        self.sample_rate, self.spec = sample_rate, spec

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        from raytag.audio.augment import augment_numpy_batch

        return augment_numpy_batch(batch, sample_rate=self.sample_rate, spec=self.spec, seed=batch_seed(batch["seed"]))


def labelled_by_teacher(
    rows: list[dict],
    *,
    sample_rate: int,
    crop_samples: int,
    num_cpus: float,
    labeler: type,
    labeler_kwargs: dict,
    teacher_cpus: float,
    teacher_gpus: float,
    augment: AugmentSpec,
) -> ray.data.Dataset:
    """Noisy-student stream: clean crops → teacher inference actors attach ``soft`` → the
    augmentation stage makes the student's view → columns ``u_audio``, ``u_soft``, ``u_decoded``.

    The teacher (an actor pool of ``labeler``) sees the crop before augmentation; the training
    workers never run it.
    """
    # Blocks stay 32 rows: the augmentation after the teacher batches them.
    ds = decoded_chunks(rows, sample_rate=sample_rate, crop_samples=crop_samples, num_cpus=num_cpus,
                 cache_blocks=False).map_batches(
        labeler,
        fn_constructor_kwargs=labeler_kwargs,
        batch_size=DECODE_BATCH,
        compute=ray.data.ActorPoolStrategy(size=1),
        num_cpus=teacher_cpus,
        num_gpus=teacher_gpus,
        batch_format="numpy",
    )
    if augment.enabled:
        ds = ds.map_batches(_Augment(sample_rate, augment), batch_size=DECODE_BATCH, num_cpus=num_cpus,
                            batch_format="numpy")
    return ds.map_batches(_student_view, batch_format="numpy")


def _student_view(batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    return {"u_audio": batch["audio"], "u_soft": batch["soft"], "u_decoded": batch["decoded"]}


@dataclass(frozen=True)
class UnlabeledSource:
    """The noisy-student stream of a job: unlabeled tracks and the teacher that labels them."""

    table: ray.ObjectRef  # TrackTable
    labeler: type
    labeler_kwargs: dict
    teacher_cpus: float
    teacher_gpus: float
    ratio: float


@dataclass(frozen=True)
class EpochData:
    """Everything a Train worker needs to stream its share of an epoch, built on the driver.

    Tables travel as object references; the worker makes, per epoch, the rows of its rank
    (:func:`raytag.data.rows.epoch_rows`) and decodes them in order with plain Ray tasks
    (:func:`raytag.cluster.data.task_stream.decoded_batches`: Ray Data's executor would run
    in the training process, see there). The noisy-student stream, whose teacher is an actor
    pool, stays a Ray Data pipeline.
    """

    train: ray.ObjectRef  # TrackTable
    valid: ray.ObjectRef  # TrackTable
    test: ray.ObjectRef | None  # TrackTable, when the job evaluates epochs on its test split
    sample_rate: int
    crop_samples: int
    num_cpus: float
    seed: int
    shuffle: bool
    augment: AugmentSpec
    max_chunks: int | None
    unlabeled: UnlabeledSource | None = None
    valid_verified: np.ndarray | None = None
    """(N,) bool over the ``valid`` table's tracks: which a person verified (None: none)."""

    def steps_per_epoch(self, *, world_size: int, batch_size: int) -> int:
        """Optimizer steps each rank takes per epoch (every rank takes the same number)."""
        rows_per_rank = -(-len(ray.get(self.train)) // world_size)  # see raytag.engine.seeding.shard
        return -(-rows_per_rank // batch_size)

    def train_batches(self, *, epoch: int, rank: int, world_size: int, batch_size: int) -> Iterator[dict]:
        """This rank's training batches for ``epoch`` (dicts of numpy arrays, which the engine
        moves to the device), paired with unlabeled batches (torch tensors from Ray Data) when
        the job has an unlabeled stream."""
        rows = epoch_rows(ray.get(self.train), seed=self.seed, epoch=epoch, rank=rank, world_size=world_size,
                          shuffle=self.shuffle)
        labelled = decoded_batches(rows, batch_size=batch_size, sample_rate=self.sample_rate,
                                   crop_samples=self.crop_samples, num_cpus=self.num_cpus, augment=self.augment,
                                   training=True)
        if self.unlabeled is None:
            return labelled
        _preserve_order()
        from raytag.engine.loop import with_unlabeled  # torch: see the module docstring

        u_batch = max(1, round(self.unlabeled.ratio * batch_size))
        passes = iter(range(1 << 30))

        def unlabeled_pass():
            # A stream that runs out restarts with a new pass: another order and other crops.
            key = epoch * 1000 + next(passes)
            return self._unlabeled(key, rank, world_size).iter_torch_batches(batch_size=u_batch)

        return with_unlabeled(labelled, unlabeled_pass)

    def _unlabeled(self, key: int, rank: int, world_size: int) -> ray.data.Dataset:
        source = self.unlabeled
        rows = epoch_rows(ray.get(source.table), seed=self.seed, epoch=key, rank=rank, world_size=world_size,
                          shuffle=True, stream="unlabeled")
        return labelled_by_teacher(
            rows, sample_rate=self.sample_rate, crop_samples=self.crop_samples, num_cpus=self.num_cpus,
            labeler=source.labeler, labeler_kwargs=source.labeler_kwargs, teacher_cpus=source.teacher_cpus,
            teacher_gpus=source.teacher_gpus, augment=self.augment,
        )

    def chunks(self, split: str, *, batch_size: int, rank: int = 0,
               world_size: int = 1) -> tuple[Iterator[dict[str, np.ndarray]], int]:
        """Batches of the chunks that cover this rank's tracks of ``split`` ("valid" or
        "test"), in order, and how many tracks the split has."""
        table = ray.get(self.valid if split == "valid" else self.test)
        rows = chunk_rows(table, sample_rate=self.sample_rate, crop_samples=self.crop_samples,
                          max_chunks=self.max_chunks, rank=rank, world_size=world_size)
        return decoded_batches(rows, batch_size=batch_size, sample_rate=self.sample_rate,
                               crop_samples=self.crop_samples, num_cpus=self.num_cpus), len(table)


def _preserve_order() -> None:
    # Batches must come out in row order for a run to be reproducible; set in the process
    # that executes the dataset (a Train worker).
    ray.data.DataContext.get_current().execution_options.preserve_order = True
