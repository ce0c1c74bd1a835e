"""Reading and writing under ``storage`` through pyarrow's file systems.

``storage`` (see :mod:`raytag.locations`) is the only thing nodes share: a local path, a shared
file system, or an object store URI (``s3://``, ``gs://``, ...). Every file a job keeps (run ids,
stage records, checkpoints found for resuming, exported models, caches) goes through these
functions, so no code path depends on a worker seeing the driver's disk.
"""

from __future__ import annotations

import contextlib
import tempfile
import uuid
from collections.abc import Iterable, Iterator
from pathlib import Path

import pyarrow.fs as pafs

from raytag.locations import is_uri

PARTIAL_SUFFIX = ".partial"
"""Suffix of a file being written (see :func:`write_stream`); left behind only by a killed writer."""
_UPLOAD_BLOCK = 8 << 20


def filesystem(location: str) -> tuple[pafs.FileSystem, str]:
    """``(file system, path inside it)`` for a storage location."""
    if is_uri(location):
        return pafs.FileSystem.from_uri(location)
    return pafs.LocalFileSystem(), str(Path(location).resolve())


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


def upload(local_dir: str | Path, location: str) -> str:
    """Copies a local folder to ``location`` (replacing files of the same name); returns it."""
    fs, path = filesystem(location)
    fs.create_dir(path, recursive=True)
    pafs.copy_files(str(Path(local_dir).resolve()), path, source_filesystem=pafs.LocalFileSystem(), destination_filesystem=fs)
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
