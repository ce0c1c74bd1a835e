"""Reading and writing under ``storage`` through pyarrow's file systems.

``storage`` (see :mod:`raytag.locations`) is the only thing nodes share: a local path, a shared
file system, or an object store URI (``s3://``, ``gs://``, ...). Every file a job keeps (run ids,
stage records, checkpoints found for resuming, exported models, caches) goes through these
functions, so no code path depends on a worker seeing the driver's disk.

This module is also the one place that opens a URI: manifests and label files are read with
:func:`read_bytes`, the audio decoders get seekable files (:func:`open_random_access`) whose reads
become ranged requests, and the caches ask for the size and modification time of many files in
one call (:func:`file_stats`) or list a folder (:func:`list_files`). Local paths go through the
same functions (pyarrow's local file system), so both kinds of location give the same answers.

An object store that stops answering for a while (a restart, a network blip, a paused server)
costs time, not the job: the S3 file system retries each request with the AWS SDK's standard
backoff for :data:`S3_MAX_ATTEMPTS` attempts (measured against moto's server: a connection
refused fails after 0.6 s with pyarrow's default 3 attempts, after ~52 s with 10), and a whole
folder's upload (:func:`upload`: checkpoints, exported models) is tried again, with backoff, for
up to :data:`UPLOAD_RETRY_S` seconds. A stalled request (the server accepts but does not
answer) waits for it; the AWS SDK gives one up after ~33 s.
"""

from __future__ import annotations

import contextlib
import logging
import tempfile
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import pyarrow.fs as pafs

from raytag.locations import is_uri

PARTIAL_SUFFIX = ".partial"
"""Suffix of a file being written (see :func:`write_stream`); left behind only by a killed writer."""
_UPLOAD_BLOCK = 8 << 20
S3_MAX_ATTEMPTS = 10
"""Attempts per S3 request (the AWS SDK's standard retry strategy; pyarrow's default is 3)."""
UPLOAD_RETRY_S = 300.0
"""How long :func:`upload` keeps trying a remote folder's upload before giving up."""
_FIRST_BACKOFF_S, _MAX_BACKOFF_S = 1.0, 30.0

log = logging.getLogger(__name__)
T = TypeVar("T")


@dataclass(frozen=True)
class FileStat:
    """What a file system says of one file without reading it.

    Attributes:
        location: absolute path or URI, as asked for (or as listed).
        size: length in bytes.
        mtime_ns: modification time in nanoseconds since the epoch; None where the file system
            keeps none.
    """

    location: str
    size: int
    mtime_ns: int | None


def filesystem(location: str) -> tuple[pafs.FileSystem, str]:
    """``(file system, path inside it)`` for a storage location; an S3 one retries each
    request :data:`S3_MAX_ATTEMPTS` times."""
    if is_uri(location):
        fs, path = pafs.FileSystem.from_uri(location)
        if isinstance(fs, pafs.S3FileSystem):
            fs = _s3_with_retries(fs)
        return fs, path
    return pafs.LocalFileSystem(), str(Path(location).resolve())


def _stat(location: str, info: pafs.FileInfo) -> FileStat:
    return FileStat(location, int(info.size), None if info.mtime_ns is None else int(info.mtime_ns))


def _uri_groups(locations: Sequence[str]) -> list[tuple[pafs.FileSystem, list[tuple[str, str]]]]:
    """URIs grouped by file system: ``[(file system, [(uri, path inside it)])]``. One
    ``from_uri`` per scheme and bucket (or host), not per URI: it costs ~0.1 ms locally and
    can mean a request (an S3 region lookup)."""
    groups: dict[str, tuple[pafs.FileSystem, int | None, list[tuple[str, str]]]] = {}
    out = []
    for location in locations:
        head = "/".join(location.split("/", 3)[:3])
        group = groups.get(head)
        if group is not None and group[1] is not None:
            group[2].append((location, location[group[1]:]))
            continue
        fs, inner = pafs.FileSystem.from_uri(location)
        if isinstance(fs, pafs.S3FileSystem):
            fs = _s3_with_retries(fs)
        # The path inside is the URI's tail for s3://, gs://, file:// ...; where it is not
        # (a query string, say), every URI of that group asks from_uri itself.
        cut = len(location) - len(inner) if location.endswith(inner) and inner else None
        if group is None:
            groups[head] = (fs, cut, [(location, inner)])
            out.append(groups[head])
        else:
            group[2].append((location, inner))
    return [(fs, pairs) for fs, _, pairs in out]


def file_stats(locations: Sequence[str]) -> dict[str, FileStat]:
    """Size and modification time of each existing file among ``locations`` (paths or URIs),
    asked for in one call per file system (local paths all at once); missing locations and
    folders are left out.

    Raises:
        OSError, ValueError: a URI whose file system cannot be reached or is unknown.
    """
    out: dict[str, FileStat] = {}
    local = [loc for loc in locations if not is_uri(loc)]
    groups = _uri_groups([loc for loc in locations if is_uri(loc)])
    if local:
        groups.append((pafs.LocalFileSystem(), [(loc, loc) for loc in local]))
    for fs, pairs in groups:
        for (location, _), info in zip(pairs, fs.get_file_info([inner for _, inner in pairs])):
            if info.type == pafs.FileType.File:
                out[location] = _stat(location, info)
    return out


def list_files(location: str) -> list[FileStat]:
    """Every file under the folder ``location``, recursively, named by location (its URI
    scheme kept); empty when there is no such folder."""
    fs, path = filesystem(location)
    infos = fs.get_file_info(pafs.FileSelector(path, recursive=True, allow_not_found=True))
    base = location.rstrip("/")
    return sorted(
        (_stat(base + info.path[len(path.rstrip("/")):], info) for info in infos if info.type == pafs.FileType.File),
        key=lambda stat: stat.location,
    )


def open_random_access(location: str):
    """A seekable binary file (pyarrow ``RandomAccessFile``: ``read``, ``seek``, ``read_at``,
    ``size``, ``close``) of a path or URI; on an object store each read is a ranged request.

    Raises:
        OSError, ValueError: no such file, or an unreachable or unknown file system.
    """
    fs, path = filesystem(location)
    return fs.open_input_file(path)


def read_range(location: str, offset: int, size: int) -> bytes:
    """``size`` bytes from ``offset`` (fewer at the end of the file), one ranged request."""
    with open_random_access(location) as file:
        return file.read_at(size, offset)


def _s3_with_retries(fs: pafs.S3FileSystem) -> pafs.S3FileSystem:
    """The same S3 file system (region, endpoint, credentials as the URI and environment gave
    them) with :data:`S3_MAX_ATTEMPTS` attempts per request. (Pickling an S3 file system drops
    its retry strategy, so each process builds its own here.)"""
    options = dict(fs.__reduce__()[1][0])
    unset = {"": None, -1.0: None}
    options = {k: (unset.get(v, v) if isinstance(v, (str, float)) else v) for k, v in options.items()}
    if not (options.get("proxy_options") or {}).get("host"):
        options.pop("proxy_options", None)
    return pafs.S3FileSystem(**options, retry_strategy=pafs.AwsStandardS3RetryStrategy(max_attempts=S3_MAX_ATTEMPTS))


def retrying(action: Callable[[], T], what: str, *, window_s: float = UPLOAD_RETRY_S) -> T:
    """``action()``, tried again after an ``OSError`` with backoff (1, 2, 4 ... 30 s) until
    ``window_s`` seconds have passed; each failure is a warning naming ``what``. The last
    error propagates."""
    deadline = time.monotonic() + window_s
    backoff = _FIRST_BACKOFF_S
    while True:
        try:
            return action()
        except OSError as exc:
            if time.monotonic() + backoff > deadline:
                raise
            log.warning("%s failed (%s); trying again in %.0f s", what, str(exc).splitlines()[0][:200], backoff)
            time.sleep(backoff)
            backoff = min(2 * backoff, _MAX_BACKOFF_S)


def exists(location: str) -> bool:
    fs, path = filesystem(location)
    return fs.get_file_info(path).type != pafs.FileType.NotFound


def is_file(location: str) -> bool:
    fs, path = filesystem(location)
    return fs.get_file_info(path).type == pafs.FileType.File


def read_bytes(location: str) -> bytes:
    fs, path = filesystem(location)
    with fs.open_input_stream(path) as stream:
        return stream.read()


def read_text(location: str) -> str | None:
    """The file's text, or None when there is no such file."""
    return read_bytes(location).decode() if is_file(location) else None


def write_bytes(location: str, data: bytes) -> None:
    """Writes a whole file; readers never see it half-written (a local or shared file system
    gets a temporary name first and a rename; object stores publish on close)."""
    fs, path = filesystem(location)
    parent = path.rsplit("/", 1)[0]
    fs.create_dir(parent, recursive=True)
    if isinstance(fs, pafs.LocalFileSystem):
        partial = f"{path}.{uuid.uuid4().hex}{PARTIAL_SUFFIX}"
        with fs.open_output_stream(partial) as stream:
            stream.write(data)
        fs.move(partial, path)
    else:
        with fs.open_output_stream(path) as stream:
            stream.write(data)


def move(source: str, destination: str) -> None:
    """Renames a file within one file system (an object store copies it, then deletes it)."""
    fs, path = filesystem(source)
    fs.move(path, filesystem(destination)[1])


def remove(location: str) -> bool:
    """Deletes a file; returns whether there was one."""
    fs, path = filesystem(location)
    if fs.get_file_info(path).type != pafs.FileType.File:
        return False
    fs.delete_file(path)
    return True


def write_stream(location: str, chunks: Iterable[bytes]) -> int:
    """Writes a file from ``chunks``, taken one at a time (memory stays that of one chunk), with
    :func:`write_bytes`' guarantee: readers never see it half-written. When producing a chunk
    raises, no file is left (the partial one is removed) and the exception propagates. A local
    or shared file system gets a temporary name next to the file and a rename; for an object
    store the bytes go to a local temporary file first and are uploaded once complete.

    Returns:
        the file's size in bytes.
    """
    fs, path = filesystem(location)
    fs.create_dir(path.rsplit("/", 1)[0], recursive=True)
    size = 0
    if isinstance(fs, pafs.LocalFileSystem):
        partial = f"{path}.{uuid.uuid4().hex}{PARTIAL_SUFFIX}"
        try:
            with fs.open_output_stream(partial) as stream:
                for chunk in chunks:
                    stream.write(chunk)
                    size += len(chunk)
            fs.move(partial, path)
        except BaseException:
            if fs.get_file_info(partial).type != pafs.FileType.NotFound:
                fs.delete_file(partial)
            raise
        return size
    with tempfile.TemporaryFile(prefix="raytag-") as local:
        for chunk in chunks:
            local.write(chunk)
            size += len(chunk)
        local.seek(0)
        with fs.open_output_stream(path) as stream:
            while block := local.read(_UPLOAD_BLOCK):
                stream.write(block)
    return size


def write_text(location: str, text: str) -> None:
    write_bytes(location, text.encode())


def list_folders(location: str, prefix: str = "") -> list[str]:
    """Locations of the folders directly under ``location`` whose names start with ``prefix``."""
    fs, path = filesystem(location)
    if fs.get_file_info(path).type != pafs.FileType.Directory:
        return []
    infos = fs.get_file_info(pafs.FileSelector(path, recursive=False))
    names = sorted(info.base_name for info in infos if info.type == pafs.FileType.Directory)
    return [f"{location.rstrip('/')}/{name}" for name in names if name.startswith(prefix)]


def download(location: str, local_dir: str | Path) -> Path:
    """Copies the folder at ``location`` into ``local_dir``; returns ``local_dir``."""
    fs, path = filesystem(location)
    local_dir = Path(local_dir)
    local_dir.mkdir(parents=True, exist_ok=True)
    pafs.copy_files(path, str(local_dir.resolve()), source_filesystem=fs, destination_filesystem=pafs.LocalFileSystem())
    return local_dir


def upload(local_dir: str | Path, location: str, *, retry_s: float = UPLOAD_RETRY_S) -> str:
    """Copies a local folder to ``location`` (replacing files of the same name); returns it.
    To a remote store the copy is tried again (:func:`retrying`) for up to ``retry_s`` seconds
    (a retry rewrites the folder's files; readers of checkpoints take a folder only once all
    its files are there)."""
    fs, path = filesystem(location)
    source = str(Path(local_dir).resolve())

    def copy() -> None:
        fs.create_dir(path, recursive=True)
        pafs.copy_files(source, path, source_filesystem=pafs.LocalFileSystem(), destination_filesystem=fs)

    if is_uri(location):
        retrying(copy, f"upload of {local_dir} to {location}", window_s=retry_s)
    else:
        copy()
    return location


@contextlib.contextmanager
def local_folder(location: str) -> Iterator[Path]:
    """A local path with the folder's files: the folder itself when it is on a local or shared
    file system, else a temporary copy removed on exit."""
    if not is_uri(location):
        yield Path(location)
        return
    with tempfile.TemporaryDirectory(prefix="raytag-") as tmp:
        yield download(location, tmp)
