"""``raytag prepare``: decode every usable track of a job once, at its model's rate, into the
prepared-audio cache under ``storage``.

read + validate the job and manifest (no Ray) → which tracks at which rate (the train, valid
and evaluation splits, and the noisy-student unlabeled audio; every stage's model of a pipeline)
→ scan headers (Ray Data) → look up what the cache holds → decode the rest in Ray Data tasks
(whole track, in bounded pieces: decode, downmix, resample, float16), each task writing its files
whole (:func:`raytag.storage.write_stream`) → a report: tracks prepared now, already
cached, failed with reasons, the cache's size.

Resumable: a file is complete or absent, so a rerun prepares only what is missing. A model at
another rate, or an audio file that changed, has other keys and is prepared anew.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import ray
from tqdm import tqdm

from raytag.audio import pcm_cache
from raytag.audio.decoders import AudioError, open_decoder
from raytag.audio.io import resampled_pieces
from raytag import storage
from raytag.cluster.data.audio_cache import cache_listing, folder_size, lookup
from raytag.cluster.data.datasets import ScanResult, scan_tracks
from raytag.cluster.session import init_ray
from raytag.config import JobConfig, stage_jobs
from raytag.data.manifest import Track, read_manifest
from raytag.errors import JobError
from raytag.locations import cache_location
from raytag.methods import build_method
from raytag.models.export import ModelRecipe

log = logging.getLogger("raytag")

PIECE_SECONDS = 30.0
"""Source audio decoded and resampled at once while preparing a track (bounds task memory)."""
TRACKS_PER_TASK = 2
STALE_PARTIAL_SECONDS = 600
"""A ``.partial`` file untouched this long was left by a killed writer and is removed."""


@dataclass(frozen=True)
class PrepareTarget:
    """The tracks to prepare at one rate, and the jobs (stages) whose models use that rate."""

    sample_rate: int
    jobs: tuple[str, ...]
    tracks: tuple[Track, ...]


def prepare_targets(job: JobConfig) -> list[PrepareTarget]:
    """What a job (every stage of a pipeline) decodes, grouped by its models' rates; no Ray.

    Raises:
        ManifestError: the manifest is malformed.
        JobError: the job has no audio to prepare.
    """
    jobs = [stage_job for _, stage_job in stage_jobs(job)] if job.stages else [job]
    by_rate: dict[int, tuple[list[str], dict[str, Track]]] = {}
    manifests = {}
    for one in jobs:
        source = (str(one.data.manifest), tuple(one.data.tags or ()))
        if source not in manifests:
            manifests[source] = read_manifest(one.data.manifest, one.data.tags)
        manifest = manifests[source]
        recipe = ModelRecipe(one.model.name, dict(one.model.args), manifest.vocabulary)
        rate = int(recipe.build().sample_rate)
        tracks = [t for split in sorted({"train", "valid", one.eval.split}) for t in manifest.split(split)]
        if build_method(one, tags=list(recipe.tags)).needs.unlabeled_teacher is not None:
            from raytag.plan import unlabeled_tracks

            tracks += unlabeled_tracks(one, manifest)
        names, unique = by_rate.setdefault(rate, ([], {}))
        names.append(one.name)
        for track in tracks:
            unique.setdefault(track.path, track)
    targets = [PrepareTarget(rate, tuple(names), tuple(unique.values())) for rate, (names, unique) in sorted(by_rate.items())]
    if not any(t.tracks for t in targets):
        raise JobError(f"{job.data.manifest}: no tracks to prepare")
    return targets


@dataclass
class RateReport:
    """The outcome at one rate. ``bytes_*`` count whole cache files."""

    sample_rate: int
    jobs: tuple[str, ...]
    usable: int
    already_cached: int = 0
    prepared: int = 0
    failed: list[tuple[str, str]] = field(default_factory=list)
    bytes_written: int = 0
    bytes_of_tracks: int = 0
    folder_files: int = 0
    folder_bytes: int = 0


@dataclass
class PrepareReport:
    """What ``raytag prepare`` did: per rate, and the files the header scan found unusable."""

    cache: str
    rates: list[RateReport]
    unusable: list[tuple[str, str]]
    seconds: float
    removed_partials: int = 0

    @property
    def failed(self) -> int:
        return sum(len(r.failed) for r in self.rates)

    def format(self, max_listed: int = 20) -> str:
        lines = [f"prepared audio cache: {self.cache}"]
        for r in self.rates:
            lines.append(
                f"  {r.sample_rate} Hz ({', '.join(r.jobs)}): {r.usable} usable tracks: {r.prepared} prepared now, "
                f"{r.already_cached} already cached, {len(r.failed)} failed"
            )
            lines.append(
                f"    these tracks' files: {human_bytes(r.bytes_of_tracks)} ({r.bytes_of_tracks:,} bytes; "
                f"{human_bytes(r.bytes_written)} written now); the {r.sample_rate}hz folder: {r.folder_files} files, "
                f"{human_bytes(r.folder_bytes)} ({r.folder_bytes:,} bytes)"
            )
        failed = [(r.sample_rate, path, reason) for r in self.rates for path, reason in r.failed]
        if failed:
            lines.append(f"failed while preparing ({len(failed)}; not cached: training decodes them from the audio "
                         "file, where a crop that reaches the damage is refused (valid=False, counted in "
                         "train/decode_failures) and never trained on):")
            lines += [f"  [{rate} Hz] {_with_path(path, reason)}" for rate, path, reason in failed[:max_listed]]
            lines += [f"  ... and {len(failed) - max_listed} more"] if len(failed) > max_listed else []
        if self.unusable:
            lines.append(f"unusable audio (skipped by the header scan, as training skips it): {len(self.unusable)}")
            lines += [f"  {_with_path(path, reason)}" for path, reason in self.unusable[:max_listed]]
            lines += [f"  ... and {len(self.unusable) - max_listed} more"] if len(self.unusable) > max_listed else []
        if self.removed_partials:
            lines.append(f"removed {self.removed_partials} partial files left by an interrupted prepare")
        lines.append(f"took {self.seconds:.1f} s")
        return "\n".join(lines)


def _with_path(path: str, reason: str) -> str:
    return reason if path in reason else f"{path}: {reason}"


def human_bytes(size: int) -> str:
    """``1536`` -> ``"1.5 KiB"``."""
    value, unit = float(size), "B"
    for unit in ("B", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if value < 1024 or unit == "PiB":
            break
        value /= 1024
    return f"{int(value)} B" if unit == "B" else f"{value:.1f} {unit}"


def write_cache_files(batch: dict[str, np.ndarray], *, piece_seconds: float = PIECE_SECONDS) -> dict[str, np.ndarray]:
    """``map_batches`` function: decodes each row's whole track at ``target_rate`` and writes its
    cache file (``location``), piece by piece, so memory stays flat however long the track.

    Rows: ``path``, ``frames`` and ``rate`` (from the header scan), ``target_rate``,
    ``location``. Returns ``path``, ``target_rate``, ``bytes`` (0 on failure) and ``error``
    ("" on success); a failure writes no file.
    """
    sizes, errors = [], []
    for path, frames, rate, target, location in zip(
        batch["path"], batch["frames"], batch["rate"], batch["target_rate"], batch["location"]
    ):
        try:
            sizes.append(_write_one(str(path), int(frames), int(rate), int(target), str(location), piece_seconds))
            errors.append("")
        except (AudioError, pcm_cache.PcmCacheError, OSError) as exc:
            sizes.append(0)
            errors.append(str(exc) or type(exc).__name__)
    return {
        "path": batch["path"],
        "target_rate": batch["target_rate"],
        "bytes": np.asarray(sizes, dtype=np.int64),
        "error": np.asarray(errors, dtype=object),
    }


def _write_one(path: str, frames: int, rate: int, target_rate: int, location: str, piece_seconds: float) -> int:
    with open_decoder(path) as decoder:
        info = decoder.info
        if (info.frames, info.sample_rate) != (frames, rate):
            raise AudioError(f"{path}: changed since its header was scanned ({info.frames} frames at "
                             f"{info.sample_rate} Hz, scanned {frames} at {rate} Hz); prepare again")
        pieces = resampled_pieces(decoder, target_rate=target_rate, piece_frames=max(1, round(piece_seconds * rate)))
        samples = pcm_cache.cached_samples(frames, rate, target_rate)
        return storage.write_stream(location, pcm_cache.cache_stream(pieces, samples=samples))


def remove_stale_partials(storage_root: str, sample_rate: int, *, older_than_s: float = STALE_PARTIAL_SECONDS) -> int:
    """Removes ``.partial`` files a killed prepare left in the cache folder of ``sample_rate``
    (untouched for ``older_than_s``); returns how many."""
    now_ns = time.time_ns()
    removed = 0
    for info in cache_listing(storage_root, sample_rate).values():
        if info.location.endswith(storage.PARTIAL_SUFFIX) and info.mtime_ns is not None \
                and now_ns - info.mtime_ns > older_than_s * 1e9:
            try:
                removed += storage.remove(info.location)
            except OSError:  # gone already (another prepare finished or removed it)
                continue
    return removed


def prepare_audio(job: JobConfig, *, progress: bool = True, piece_seconds: float = PIECE_SECONDS) -> PrepareReport:
    """Prepares the job's audio cache (see the module docstring); returns the report.

    Args:
        progress: show a one-line progress bar (tracks, bytes written) on stderr.
        piece_seconds: source audio decoded at once per track (bounds each task's memory).
    """
    started = time.perf_counter()
    targets = prepare_targets(job)
    init_ray(job.ray.address, job.ray.num_cpus)
    scan = scan_tracks([t for target in targets for t in target.tracks], num_cpus=job.data.decode_cpus,
                       storage_root=job.storage)
    log.info("audio scan: %s", scan.summary())
    removed = sum(remove_stale_partials(job.storage, t.sample_rate) for t in targets)
    reports, rows = _plan(job.storage, targets, scan)
    written = _run(rows, num_cpus=job.data.decode_cpus, progress=progress, piece_seconds=piece_seconds)
    for report in reports.values():
        report.prepared = sum(1 for r in written if r["target_rate"] == report.sample_rate and not r["error"])
        report.bytes_written = sum(int(r["bytes"]) for r in written if r["target_rate"] == report.sample_rate)
        report.failed = sorted(report.failed + [(r["path"], r["error"]) for r in written
                                                if r["target_rate"] == report.sample_rate and r["error"]])
    for target in targets:
        _measure(reports[target.sample_rate], job.storage, target, scan)
    used = {p for t in targets for p in (x.path for x in t.tracks)}
    unusable = [(p, reason) for p, reason in scan.skipped if p in used]
    return PrepareReport(cache_location(job.storage, pcm_cache.CACHE_KIND), list(reports.values()), unusable,
                         time.perf_counter() - started, removed)


def _plan(storage_root: str, targets: Sequence[PrepareTarget], scan: ScanResult) -> tuple[dict[int, RateReport], list[dict]]:
    """Per rate: the report so far, and the rows of the tracks still to prepare."""
    reports, rows = {}, []
    for target in targets:
        usable = [scan.usable[t.path] for t in target.tracks if t.path in scan.usable]
        found = lookup([u.path for u in usable], [u.frames for u in usable], [u.rate for u in usable],
                       storage_root=storage_root, sample_rate=target.sample_rate)
        report = RateReport(target.sample_rate, target.jobs, len(usable), already_cached=len(found.cached))
        reports[target.sample_rate] = report
        for track in usable:
            if track.path not in found.files:
                report.failed.append((track.path, "the file disappeared after its header was scanned"))
            elif track.path not in found.cached:
                rows.append({"path": track.path, "frames": track.frames, "rate": track.rate,
                             "target_rate": target.sample_rate, "location": found.files[track.path]})
        log.info("%d Hz: %d usable tracks, %d already cached, %d to prepare",
                 target.sample_rate, len(usable), len(found.cached), len(usable) - len(found.cached))
    return reports, rows


def _run(rows: list[dict], *, num_cpus: float, progress: bool, piece_seconds: float) -> list[dict]:
    """Decodes and writes ``rows`` on Ray Data tasks; one result per row, as tasks finish."""
    if not rows:
        return []
    # A few tracks per block, so tasks spread over the cluster and the bar moves track by track.
    blocks = math.ceil(len(rows) / TRACKS_PER_TASK)
    dataset = ray.data.from_items(rows, override_num_blocks=blocks).map_batches(
        write_cache_files, fn_kwargs={"piece_seconds": piece_seconds}, batch_size=TRACKS_PER_TASK,
        num_cpus=num_cpus, batch_format="numpy",
    )
    results, written, failed = [], 0, 0
    with tqdm(total=len(rows), unit="track", desc="prepare", disable=not progress, dynamic_ncols=True) as bar:
        for row in dataset.iter_rows():
            results.append({k: (v.item() if hasattr(v, "item") else v) for k, v in row.items()})
            written += int(row["bytes"])
            failed += bool(row["error"])
            bar.set_postfix_str(f"{human_bytes(written)} written, {failed} failed", refresh=False)
            bar.update(1)
    return results


def _measure(report: RateReport, storage_root: str, target: PrepareTarget, scan: ScanResult) -> None:
    """Fills in the sizes: the job's tracks' files, and the whole folder of the rate."""
    usable = [scan.usable[t.path] for t in target.tracks if t.path in scan.usable]
    found = lookup([u.path for u in usable], [u.frames for u in usable], [u.rate for u in usable],
                   storage_root=storage_root, sample_rate=target.sample_rate)
    report.bytes_of_tracks = sum(pcm_cache.file_bytes(found.samples[p]) for p in found.cached)
    report.folder_files, report.folder_bytes = folder_size(storage_root, target.sample_rate)
