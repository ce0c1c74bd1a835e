"""Checkpoints in Ray Train's storage: finding the newest, restoring it on a worker, reporting.

Ray Train persists a reported checkpoint to ``<storage>/<job>/checkpoint_*`` before its
controller registers it, and registers it only when it next polls the workers: a worker killed
right after reporting would restart from an older checkpoint (or none). So workers (and a rerun
of the job) look in storage themselves, through the storage file system, for the newest
complete checkpoint folder, and fall back to the one Ray Train hands back.

Rank 0 uploads its checkpoint itself (:func:`upload_checkpoint`, Ray Train's
``checkpoint_upload_fn``) through :func:`raytag.storage.upload`, which retries an object
store's requests and the whole upload for minutes: Ray Train's own upload tries three times
within seconds, and an upload that fails ends the worker group (a restart from the previous
checkpoint, and the epoch recomputed).
"""

from __future__ import annotations

import functools
import tempfile
from pathlib import Path

import ray.train
from ray.train import Checkpoint

from raytag import storage
from raytag.engine import checkpoint as ckpt


def latest_checkpoint(run_location: str) -> tuple[str, ckpt.TrainingState] | None:
    """``(location, state)`` of the most advanced complete checkpoint in a run folder, if any.

    A folder counts only if every file of the format is there and its state parses, so a
    checkpoint cut short by a crash is passed over.
    """
    best: tuple[str, ckpt.TrainingState] | None = None
    for folder in storage.list_folders(run_location, prefix="checkpoint_"):
        if not all(storage.is_file(f"{folder}/{name}") for name in ckpt.REQUIRED_FILES):
            continue
        try:
            state = ckpt.parse_state(storage.read_bytes(f"{folder}/{ckpt.STATE_FILE}").decode())
        except ValueError:
            continue
        if best is None or state.epochs_done >= best[1].epochs_done:
            best = (folder, state)
    return best


def load_latest(run_location: str) -> tuple[ckpt.TrainingState, ckpt.Snapshot, ckpt.Snapshot] | None:
    """``(state, latest snapshot, best snapshot)`` of the newest checkpoint (on a Train
    worker), or None when the run starts afresh."""
    found = latest_checkpoint(run_location)
    if found is not None:
        with storage.local_folder(found[0]) as folder:
            return ckpt.load(folder)
    registered = ray.train.get_checkpoint()
    if registered is not None:
        with registered.as_directory() as folder:
            return ckpt.load(Path(folder))
    return None


def upload_checkpoint(run_folder: str, checkpoint: Checkpoint, folder_name: str) -> Checkpoint:
    """Ray Train's ``checkpoint_upload_fn``: copies the local ``checkpoint`` to
    ``<run_folder>/<folder_name>`` with :func:`raytag.storage.upload`'s retries, and returns it
    as Ray Train names it (its storage file system, its experiment folder: the same place, as
    ``run_folder`` is ``storage/<job name>``)."""
    storage.upload(checkpoint.path, f"{run_folder}/{folder_name}")
    context = ray.train.get_context().get_storage()
    return Checkpoint(f"{context.experiment_fs_path}/{folder_name}", filesystem=context.storage_filesystem)


def report(metrics: dict, *, rank: int, state: ckpt.TrainingState, job: dict, latest, best,
           run_folder: str) -> None:
    """Every rank reports (the controller keeps all ranks' metrics; MLflow gets rank 0's);
    rank 0 attaches the checkpoint and uploads it to ``run_folder`` (:func:`upload_checkpoint`).

    Args:
        latest: a zero-argument function giving this epoch's :class:`Snapshot` (only rank 0
            takes it).
        best: the best epoch's snapshot.
        run_folder: the run's folder in storage (:func:`raytag.locations.run_location`).
    """
    if rank != 0:
        ray.train.report(metrics, checkpoint=None)
        return
    with tempfile.TemporaryDirectory(prefix="raytag-ckpt-") as folder:
        ckpt.save(Path(folder), latest=latest(), best=best, state=state, job=job)
        ray.train.report(metrics, checkpoint=Checkpoint.from_directory(folder),
                         checkpoint_upload_fn=functools.partial(upload_checkpoint, run_folder))
