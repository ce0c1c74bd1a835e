"""The header-scan cache: what each audio file's header said, kept under ``storage`` so a
catalogue is scanned once, not once per run.

Before training, evaluating, auditing or preparing, every track's header is read (its length
in frames and its sample rate, or why it cannot be read). At 55,000 MP3s that is minutes on
two CPUs, paid again by each sweep trial and each pipeline stage. This module keeps the answers
in a folder of tables::

    <storage>/.raytag-cache/headers/part-<sha256 of its bytes>.parquet

with one row per audio location: ``location``, ``size`` (bytes), ``mtime_ns`` (null where the
file system keeps none), ``frames``, ``rate`` (Hz) and ``error`` ("" when usable). A run asks
the file systems for every file's size and modification time in one call per file system
(:func:`raytag.storage.file_stats`), reuses the rows of unchanged files, reads only the headers
of new or changed files, and adds them as a new part. A file that is gone is reported as
missing (never silently dropped) and not recorded. ``raytag prepare`` scans through the same
cache, so a job run after it reads no header at all.

Runs sharing ``storage`` (the trials of a sweep, the stages of a pipeline, ``evaluate``,
``audit``) share the folder, at the same time too, on object stores as well, with no lock:
parts are never changed once written (each appears whole, :func:`raytag.storage.write_bytes`),
a writer adds only its own new rows as a part of its own, and readers take the union of every
part. Where two parts hold a location, the row of the part written last is used (a row is
only used while the file's size and modification time are the ones it was read at). A
writer that read more than :data:`COMPACT_AFTER_PARTS` parts writes their union as one part
and then removes the parts it read (never one it did not read, so a part another run adds
meanwhile stays); a reader that finds a listed part gone lists again and reads the part that
replaced it. The single ``headers.parquet`` of raytag before parts is read as one more part.

An unreadable file's reason is kept like a header: the same bytes give the same verdict, and a
repaired file has another size or modification time. :data:`HEADER_FORMAT` is part of every row's
identity: a raytag whose decoders read headers differently must change it.

Ray-free: the caller passes the function that reads headers (Ray Data tasks on a cluster).
"""

from __future__ import annotations

import hashlib
import io
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.parquet as pq

from raytag import storage
from raytag.locations import cache_location

log = logging.getLogger("raytag")

CACHE_KIND = "headers"
HEADER_FORMAT = "raytag-headers-v1"
"""Stored with each part; a part of another format is ignored (its headers are read again) and
left alone (another raytag's)."""
PART_PREFIX = "part-"
COMPACT_AFTER_PARTS = 16
"""A writer that read more parts than this writes their union as one part and removes them."""
MAX_LISTINGS = 3
"""Listings of the folder while listed parts vanish (other runs compacting) before giving up on them."""
MISSING = "No such file or directory"
"""The reason given for a location with no file (the decoders' words for a missing path)."""
_SCHEMA = pa.schema([
    ("location", pa.string()), ("size", pa.int64()), ("mtime_ns", pa.int64()),
    ("frames", pa.int64()), ("rate", pa.int64()), ("error", pa.string()),
])


@dataclass(frozen=True)
class Header:
    """What a file's header said: its length in frames and sample rate (Hz), or ``error``, the
    reason it cannot be read ("" when it can; frames and rate are 0 then)."""

    frames: int
    rate: int
    error: str = ""


@dataclass(frozen=True)
class ScanCounts:
    """How a scan got its headers: ``read`` from the files now, ``reused`` from the cache,
    ``missing`` files that were not there."""

    read: int
    reused: int
    missing: int

    def summary(self) -> str:
        return f"{self.read} headers read, {self.reused} reused from the scan cache, {self.missing} files missing"


def cache_folder(storage_root: str) -> str:
    """The folder of the header tables (parts) of ``storage_root``."""
    return cache_location(storage_root, CACHE_KIND)


@dataclass
class CachedRows:
    """The union of the parts: ``rows``, location -> ``(size, mtime_ns, header)``; ``parts``,
    the locations of the parts read (what a compaction replaces); ``damaged``, those of parts
    that could not be parsed (removed by the next writer)."""

    rows: dict[str, tuple[int, int | None, Header]]
    parts: list[str]
    damaged: list[str]


def load(storage_root: str) -> CachedRows:
    """Every part's rows; a part of another format is left out (and left alone), a damaged one
    is left out with a warning (its headers are read again).

    Raises:
        OSError, ValueError: the folder cannot be listed or a part read.
    """
    folder = cache_folder(storage_root)
    cached = CachedRows({}, [], [])
    seen: set[str] = set()
    for _ in range(MAX_LISTINGS):
        vanished = False
        listed = sorted(storage.list_files(folder), key=lambda stat: (stat.mtime_ns or 0, stat.location))
        for stat in listed:  # oldest first: a later part's row of a location replaces an earlier one's
            if not stat.location.endswith(".parquet") or stat.location in seen:
                continue  # a part being written (.partial), or one read already
            seen.add(stat.location)
            try:
                data = storage.read_bytes(stat.location)
            except OSError:
                if storage.is_file(stat.location):
                    raise
                vanished = True  # compacted away: its rows are in a part the next listing shows
                continue
            table = _parsed(stat.location, data)
            if table is None:
                cached.damaged.append(stat.location)
            elif (table.schema.metadata or {}).get(b"format") == HEADER_FORMAT.encode() and table.schema.equals(
                _SCHEMA, check_metadata=False
            ):
                cached.parts.append(stat.location)
                cached.rows.update(_rows(table))
        if not vanished:
            break
    return cached


def _parsed(location: str, data: bytes) -> pa.Table | None:
    """A part's table; None (and a warning) when it is damaged."""
    try:
        return pq.read_table(io.BytesIO(data))
    except (pa.ArrowException, OSError) as exc:
        log.warning("the header-scan cache part %s is unreadable (%s); reading its headers again", location, exc)
        return None


def _rows(table: pa.Table) -> dict[str, tuple[int, int | None, Header]]:
    columns = [table.column(name).to_pylist() for name in _SCHEMA.names]
    return {
        loc: (size, mtime, Header(frames, rate, error))
        for loc, size, mtime, frames, rate, error in zip(*columns)
    }


def write_part(storage_root: str, rows: dict[str, tuple[int, int | None, Header]]) -> str:
    """Writes ``rows`` as a new part named by the hash of its bytes (readers never see it
    half-written: :func:`raytag.storage.write_bytes`); returns its location."""
    locations = sorted(rows)
    table = pa.table(
        {
            "location": locations,
            "size": [rows[loc][0] for loc in locations],
            "mtime_ns": [rows[loc][1] for loc in locations],
            "frames": [rows[loc][2].frames for loc in locations],
            "rate": [rows[loc][2].rate for loc in locations],
            "error": [rows[loc][2].error for loc in locations],
        },
        schema=_SCHEMA.with_metadata({"format": HEADER_FORMAT}),
    )
    buffer = io.BytesIO()
    pq.write_table(table, buffer)
    data = buffer.getvalue()
    location = f"{cache_folder(storage_root)}/{PART_PREFIX}{hashlib.sha256(data).hexdigest()[:32]}.parquet"
    storage.write_bytes(location, data)
    return location


def _update(storage_root: str, cached: CachedRows, new: dict[str, tuple[int, int | None, Header]]) -> None:
    """Adds ``new`` as a part; after more than :data:`COMPACT_AFTER_PARTS` parts were read,
    writes the union of them and ``new`` as one part instead and removes the parts read. Damaged
    parts are removed."""
    cached.rows.update(new)
    replaced, written = list(cached.damaged), None
    if len(cached.parts) > COMPACT_AFTER_PARTS:
        written = write_part(storage_root, cached.rows)
        replaced += cached.parts
    elif new:
        written = write_part(storage_root, new)
    for part in replaced:
        if part == written:  # the same rows, so the same name: this is the part just written
            continue
        try:
            storage.remove(part)
        except OSError:  # removed by another run at the same time
            pass


def scan(
    locations: Sequence[str],
    storage_root: str | None,
    read: Callable[[list[str]], dict[str, Header]],
) -> tuple[dict[str, Header], ScanCounts]:
    """Every location's header, read only where the cache has none for the file as it is now.

    Args:
        locations: audio files (absolute paths or URIs), each once.
        storage_root: the job's ``storage``; None reads every header and caches nothing.
        read: reads the headers of the locations it is given (a file that cannot be read gets
            a :class:`Header` with its reason); called once, and not at all when nothing is new.

    Returns:
        location -> header for every location (a missing file: ``error`` says so), and the
        counts.
    """
    if storage_root is not None:
        try:
            stats = storage.file_stats(locations)
            cached = load(storage_root)
        except (OSError, ValueError) as exc:  # a file system that does not answer: the decoders say why, per file
            log.warning("the header-scan cache is not used (%s); reading every header", exc)
            storage_root = None
    if storage_root is None:
        return read(list(locations)), ScanCounts(len(locations), 0, 0)
    headers: dict[str, Header] = {}
    to_read: list[str] = []
    new: dict[str, tuple[int, int | None, Header]] = {}
    missing = 0
    for location in locations:
        stat = stats.get(location)
        if stat is None:
            headers[location] = Header(0, 0, f"{location}: cannot read audio ({MISSING})")
            missing += 1
            continue
        row = cached.rows.get(location)
        if row is not None and row[0] == stat.size and row[1] == stat.mtime_ns:
            headers[location] = row[2]
        else:
            to_read.append(location)
    if to_read:
        fresh = read(to_read)
        headers.update(fresh)
        new = {location: (stats[location].size, stats[location].mtime_ns, fresh[location]) for location in to_read
               if MISSING not in fresh[location].error}  # not gone between the listing and the read
    if to_read or cached.damaged:
        try:
            _update(storage_root, cached, new)
        except (OSError, ValueError) as exc:  # this run has its headers; a later one reads them again
            log.warning("the header-scan cache could not be written (%s)", exc)
    return headers, ScanCounts(len(to_read), len(locations) - len(to_read) - missing, missing)
