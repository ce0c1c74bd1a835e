"""The header-scan cache: what each audio file's header said, kept under ``storage`` so a
catalogue is scanned once, not once per run.

Before training, evaluating, auditing or preparing, every track's header is read (its length
in frames and its sample rate, or why it cannot be read). At 55,000 MP3s that is minutes on
two CPUs, paid again by each sweep trial and each pipeline stage. This module keeps the answers
in one table::

    <storage>/.raytag-cache/headers/headers.parquet

with one row per audio location: ``location``, ``size`` (bytes), ``mtime_ns`` (null where the
file system keeps none), ``frames``, ``rate`` (Hz) and ``error`` ("" when usable). A run asks
the file systems for every file's size and modification time in one call per file system
(:func:`raytag.storage.file_stats`), reuses the rows of unchanged files, reads only the headers
of new or changed files, and writes the table back with them. A file that is gone is reported
as missing (never silently dropped) and not recorded. ``raytag prepare`` scans through the same
cache, so a job run after it reads no header at all.

Runs sharing ``storage`` (the trials of a sweep, the stages of a pipeline, ``evaluate``,
``audit``) share the table. Two runs writing at once each write the table as they read it plus
their own rows; the loser's rows are read again by a later run, never wrong (a row is only
used while the file's size and modification time are the ones it was read at).

An unreadable file's reason is kept like a header: the same bytes give the same verdict, and a
repaired file has another size or modification time. :data:`HEADER_FORMAT` is part of every row's
identity: a raytag whose decoders read headers differently must change it.

Ray-free: the caller passes the function that reads headers (Ray Data tasks on a cluster).
"""

from __future__ import annotations

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
"""Stored with the table; a table of another format is ignored (every header is read again)."""
TABLE_NAME = "headers.parquet"
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


def table_location(storage_root: str) -> str:
    """Where the header table of ``storage_root`` lies."""
    return f"{cache_location(storage_root, CACHE_KIND)}/{TABLE_NAME}"


def load(storage_root: str) -> dict[str, tuple[int, int | None, Header]]:
    """The cached rows: location -> ``(size, mtime_ns, header)``; empty when there is no table
    or it is of another format or unreadable (then every header is read again, and the table
    is replaced)."""
    location = table_location(storage_root)
    data = storage.read_bytes(location) if storage.is_file(location) else None
    if data is None:
        return {}
    try:
        table = pq.read_table(io.BytesIO(data))
    except (pa.ArrowException, OSError) as exc:
        log.warning("the header-scan cache %s is unreadable (%s); reading every header again", location, exc)
        return {}
    if (table.schema.metadata or {}).get(b"format") != HEADER_FORMAT.encode() or not table.schema.equals(
        _SCHEMA, check_metadata=False
    ):
        return {}
    columns = [table.column(name).to_pylist() for name in _SCHEMA.names]
    return {
        loc: (size, mtime, Header(frames, rate, error))
        for loc, size, mtime, frames, rate, error in zip(*columns)
    }


def save(storage_root: str, rows: dict[str, tuple[int, int | None, Header]]) -> None:
    """Writes the whole table (readers never see it half-written: :func:`raytag.storage.write_bytes`)."""
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
    storage.write_bytes(table_location(storage_root), buffer.getvalue())


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
    missing = 0
    for location in locations:
        stat = stats.get(location)
        if stat is None:
            headers[location] = Header(0, 0, f"{location}: cannot read audio ({MISSING})")
            missing += 1
            continue
        row = cached.get(location)
        if row is not None and row[0] == stat.size and row[1] == stat.mtime_ns:
            headers[location] = row[2]
        else:
            to_read.append(location)
    if to_read:
        fresh = read(to_read)
        headers.update(fresh)
        for location in to_read:
            header = fresh[location]
            if MISSING not in header.error:  # gone between the listing and the read
                cached[location] = (stats[location].size, stats[location].mtime_ns, header)
        try:
            save(storage_root, cached)
        except (OSError, ValueError) as exc:  # this run has its headers; a later one reads them again
            log.warning("the header-scan cache could not be written (%s)", exc)
    return headers, ScanCounts(len(to_read), len(locations) - len(to_read) - missing, missing)
