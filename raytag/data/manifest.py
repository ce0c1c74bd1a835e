"""The manifest: one row per audio file, the contract between any corpus and raytag.

A manifest is a CSV, TSV or JSONL file with the columns

- ``path``: the audio file, relative to the manifest's folder or absolute, or a URI;
- ``tags``: ``;``-separated tags (a list is accepted in JSONL); empty for unlabeled rows;
- ``split``: ``train``, ``valid``, ``test`` or ``unlabeled``;
- ``verified`` (optional): ``true``/``false``, whether a person checked the row's tags;
- ``artist`` (optional): used to keep an artist within one split.

Reading validates everything up front and raises :class:`ManifestError` with the file and
line of the first problem, so a bad corpus fails before any cluster work starts. A CSV/TSV row
must have exactly as many fields as the header: extra fields (say, tags in their own
tab-separated fields) are an error, never silently dropped.

Rows are validated a column at a time (:mod:`raytag.data.manifest_text` parses the file into
columns, :mod:`raytag.data.manifest_values` checks them, :mod:`raytag.data.manifest_paths`
resolves the ``path`` column): each distinct split, tag string, ``verified`` value and artist
is checked once, and the message names the earliest bad row, with a row's path checked before
its split, tags and ``verified``. 250,000 rows (the
Million Song Dataset's size) read and validate in 1.1-1.5 s on 2 shared CPUs, adding ~260 MiB
to the process (``bench/results/manifest-cpu.txt``).

A manifest or label file may itself live in object storage (``s3://bucket/corpus/manifest.csv``,
any URI pyarrow's file systems open): it is read through :mod:`raytag.storage`, and its relative
paths become URIs under its folder, which the audio decoders read the same way. Local paths are
made absolute with their folders' symbolic links resolved (a file's own link keeps its name).

This module is the one owner of the manifest's columns: it reads manifests and label files
and writes them (:func:`write_manifest`, :func:`write_labels`, rows made by :func:`track_row`
and :func:`label_row`); the text formats are :mod:`raytag.data.manifest_text`'s.
"""

from __future__ import annotations

import contextlib
import gc
import posixpath
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from itertools import chain
from pathlib import Path

import numpy as np

from raytag import storage
from raytag.data.manifest_paths import row_locations
from raytag.data.manifest_text import Columns, ManifestError, format_rows, parse_columns, parse_rows
from raytag.data.manifest_values import (
    SPLITS, artist_value, convert_column, split_value, tag_tuple, tag_tuples, verified_value,
)
from raytag.locations import is_uri

__all__ = [
    "LABEL_COLUMNS", "MANIFEST_COLUMNS", "Manifest", "ManifestError", "REQUIRED_COLUMNS", "SPLITS", "Track",
    "label_row", "multi_hot", "read_labels", "read_manifest", "read_manifest_rows", "read_paths", "track_row",
    "write_labels", "write_manifest",
]

MANIFEST_COLUMNS = ("path", "tags", "split", "verified", "artist")
"""The columns every manifest raytag writes has, in this order (corpora, synth)."""
REQUIRED_COLUMNS = ("path", "tags", "split")
LABEL_COLUMNS = ("path", "tags")
"""The columns of a label file (clean labels that replace a manifest's at evaluation time)."""


@dataclass(frozen=True, init=False)
class Track:
    """One manifest row. ``path`` is absolute; ``tags`` keeps the manifest's order."""

    path: str
    tags: tuple[str, ...]
    split: str
    verified: bool = False
    artist: str | None = None

    def __init__(self, path: str, tags: tuple[str, ...], split: str, verified: bool = False,
                 artist: str | None = None):
        # The generated frozen __init__ sets each field through object.__setattr__: 2 us a row,
        # a quarter of reading a 250,000-row manifest. Filling __dict__ at once is the same
        # record (still frozen: assigning a field raises).
        self.__dict__.update(path=path, tags=tags, split=split, verified=verified, artist=artist)


@dataclass(frozen=True)
class Manifest:
    """A validated manifest and its tag vocabulary (the model's output order)."""

    source: str
    tracks: tuple[Track, ...]
    vocabulary: tuple[str, ...]
    dropped_tags: int = 0

    def split(self, name: str) -> list[Track]:
        """The rows of one split, in manifest order."""
        if name not in SPLITS:
            raise ManifestError(f"unknown split {name!r}; expected one of {', '.join(SPLITS)}")
        return [t for t in self.tracks if t.split == name]

    def counts(self) -> dict[str, int]:
        """Rows per split."""
        return {name: sum(t.split == name for t in self.tracks) for name in SPLITS}

    def label_matrix(self, tracks: Sequence[Track]) -> np.ndarray:
        """Multi-hot labels, shape (len(tracks), len(vocabulary)), float32."""
        return multi_hot([t.tags for t in tracks], self.vocabulary)


def multi_hot(tag_lists: Iterable[Sequence[str]], vocabulary: Sequence[str]) -> np.ndarray:
    """Multi-hot float32 matrix of ``tag_lists`` over ``vocabulary``; unknown tags are ignored."""
    index = {tag: j for j, tag in enumerate(vocabulary)}
    rows = list(tag_lists)
    out = np.zeros((len(rows), len(vocabulary)), dtype=np.float32)
    for i, tags in enumerate(rows):
        for tag in tags:
            j = index.get(tag)
            if j is not None:
                out[i, j] = 1.0
    return out


def _location(path: str | Path) -> str:
    """A URI as given, a path made absolute (the name every message and relative path uses)."""
    return str(path) if is_uri(str(path)) else str(Path(path).resolve())


def _read_bytes(location: str, what: str) -> bytes:
    """A manifest-like file's bytes, read through storage."""
    try:
        data = storage.read_bytes(location) if storage.is_file(location) else None
    except (OSError, ValueError):  # an unreachable or unknown file system
        data = None
    if data is None:
        raise ManifestError(f"{what} not found: {location}")
    return data


def _read(location: str, what: str) -> Columns:
    """A manifest-like file's columns, read through storage."""
    return parse_columns(location, _read_bytes(location, what))


def _first_problem(path: str, lines, problems) -> None:
    """Raises the problem of the earliest row among ``problems`` (``(row index, message)`` or
    None, one per column in the order a row is checked), naming its line."""
    found = [problem for problem in problems if problem is not None]
    if found:
        row, message = min(found, key=lambda problem: problem[0])  # the first of a row's problems
        raise ManifestError(f"{path}:{lines[row]}: {message}")


def read_manifest(path: str | Path, vocabulary: Sequence[str] | None = None) -> Manifest:
    """Reads and validates a manifest.

    Args:
        path: CSV, TSV or JSONL manifest (a path or a URI).
        vocabulary: the tag vocabulary (model output order). If None, it is every tag that
            appears in the manifest, sorted. If given, tags outside it are dropped and counted.

    Raises:
        ManifestError: a missing file or column, an unknown split, a duplicate path, an empty
            path or manifest, or a bad ``verified`` value; the message names file and line.
    """
    with _collector_paused():
        return _read_manifest(_location(path), vocabulary)


@contextlib.contextmanager
def _collector_paused():
    """Python's cyclic garbage collector off for the block, and on again after it if it was on.

    Reading a manifest makes a few objects per row and no reference cycles; at 250,000 rows the
    collector's passes over them while they were made (six full ones) took a third of the
    read. The next collection after the block visits them once.
    """
    was_on = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_on:
            gc.enable()


def _read_manifest(path: str, vocabulary: Sequence[str] | None) -> Manifest:
    """:func:`read_manifest` of an absolute path or a URI."""
    table = _read(path, "manifest")
    missing = [c for c in REQUIRED_COLUMNS if c not in table.names]
    if missing:
        raise ManifestError(
            f"{path}: missing column(s) {', '.join(missing)}; a manifest needs {', '.join(REQUIRED_COLUMNS)}"
        )
    if not len(table):
        raise ManifestError(f"{path}: the manifest has no rows")
    locations, path_problem = row_locations(_folder(path), table.values("path"), table.lines)
    splits, split_problem = convert_column(table, "split", split_value)
    tags, tags_problem = convert_column(table, "tags", tag_tuple, tag_tuples)
    verified, verified_problem = convert_column(table, "verified", verified_value)
    _first_problem(path, table.lines, [path_problem, split_problem, tags_problem, verified_problem])
    artists, _ = convert_column(table, "artist", artist_value)
    if vocabulary is None:
        vocabulary = sorted(set(chain.from_iterable(tags)))
        dropped = 0
    else:
        vocabulary = list(vocabulary)
        if len(set(vocabulary)) != len(vocabulary):
            raise ManifestError("the tag vocabulary has duplicate tags")
        known = set(vocabulary)
        counts = Counter(tags)
        kept = {row_tags: tuple(tag for tag in row_tags if tag in known) for row_tags in counts}
        dropped = sum((len(row_tags) - len(kept[row_tags])) * n for row_tags, n in counts.items())
        tags = list(map(kept.__getitem__, tags))
    if not vocabulary:
        raise ManifestError(f"{path}: no tags found; a labelled manifest needs at least one tag")
    tracks = tuple(map(Track, locations, tags, splits, verified, artists))
    return Manifest(str(path), tracks, tuple(vocabulary), dropped)


def _folder(location: str) -> str:
    return location.rsplit("/", 1)[0] if is_uri(location) else str(Path(location).parent)


def read_labels(path: str | Path) -> dict[str, tuple[str, ...]]:
    """Reads a label file (``path`` and ``tags`` columns, any manifest format).

    Used for clean labels that replace a manifest's noisy ones at evaluation time.
    Returns absolute audio path -> tags.
    """
    path = _location(path)
    table = _read(path, "label file")
    missing = [c for c in LABEL_COLUMNS if c not in table.names]
    if missing:
        raise ManifestError(f"{path}: missing column(s) {', '.join(missing)}")
    locations, path_problem = row_locations(_folder(path), table.values("path"), table.lines)
    _first_problem(path, table.lines, [path_problem])  # every path before any tags
    tags, tags_problem = convert_column(table, "tags", tag_tuple, tag_tuples)
    _first_problem(path, table.lines, [tags_problem])
    return dict(zip(locations, tags))


def read_paths(path: str | Path) -> list[str]:
    """Reads the ``path`` column of a manifest or any CSV, TSV or JSONL list of audio files
    (other columns are ignored), e.g. the files to tag with ``raytag predict``.

    Returns:
        Absolute audio paths in file order; relative paths are under the file's folder.

    Raises:
        ManifestError: a missing file or ``path`` column, an empty path or a duplicate path,
            naming the file and line; a file with no rows.
    """
    path = _location(path)
    table = _read(path, "list of audio files")
    if "path" not in table.names:
        raise ManifestError(f"{path}: no 'path' column (columns: {', '.join(table.names) or 'none'})")
    if not len(table):
        raise ManifestError(f"{path}: no rows")
    locations, problem = row_locations(_folder(path), table.values("path"), table.lines)
    _first_problem(path, table.lines, [problem])
    return locations


def read_manifest_rows(path: str | Path) -> tuple[list[str], list[dict]]:
    """A manifest's columns and rows as written, in file order: what :func:`write_manifest`
    writes back unchanged (CSV/TSV values are strings, JSONL values as parsed). No checks
    beyond the format's: call :func:`read_manifest` for the validated records (one per row, in
    the same order).

    Raises:
        ManifestError: a missing file or a malformed one, naming the line.
    """
    path = _location(path)
    columns, _, rows = parse_rows(path, _read_bytes(path, "manifest"))
    return columns, rows


def track_row(path: str, tags: Sequence[str], split: str, verified: bool = False, artist: str | None = None) -> dict:
    """One manifest row of :data:`MANIFEST_COLUMNS` as :func:`write_manifest` takes it: tags
    joined by ``;``, ``verified`` as ``true``/``false``, no artist as an empty value.

    Args:
        path: the audio file: absolute, a URI, or relative to the manifest's folder.
    """
    return {"path": path, "tags": ";".join(tags), "split": split, "verified": "true" if verified else "false",
            "artist": artist or ""}


def label_row(path: str, tags: Sequence[str]) -> dict:
    """One label-file row of :data:`LABEL_COLUMNS` (see :func:`track_row`)."""
    return {"path": path, "tags": ";".join(tags)}


def write_manifest(location: str | Path, columns: Sequence[str], rows: Sequence[dict], *, overwrite: bool = False) -> Manifest:
    """Writes a manifest (CSV, TSV or JSONL by ``location``'s suffix), checked before it is
    in place: the rows are written to a partial file next to ``location`` (so relative paths
    resolve the same), read back with :func:`read_manifest`, then moved over ``location``.
    A manifest that does not read back is not written. The one writer of manifests: corpora
    and synth pass :func:`track_row` rows with :data:`MANIFEST_COLUMNS`; ``raytag verify``
    writes a manifest's own columns back.

    Args:
        location: the file to write, a path or a URI.
        columns: the columns, in order (CSV/TSV header; JSONL keys).
        rows: one dict per row with those columns (missing values are written empty).
        overwrite: replace an existing file (otherwise an error).

    Returns:
        The manifest as read back.

    Raises:
        ManifestError: an unsupported suffix, an existing file without ``overwrite``, or rows
            that do not make a valid manifest (naming the line).
    """
    location = _location(location)
    manifest = _write_checked(location, columns, rows, overwrite=overwrite, check=read_manifest)
    return Manifest(location, manifest.tracks, manifest.vocabulary, manifest.dropped_tags)


def write_labels(location: str | Path, rows: Sequence[dict], *, overwrite: bool = False) -> dict[str, tuple[str, ...]]:
    """Writes a label file (:data:`LABEL_COLUMNS`; rows from :func:`label_row`) the way
    :func:`write_manifest` writes a manifest: read back with :func:`read_labels` before it is
    in place. Returns the labels as read back."""
    return _write_checked(_location(location), LABEL_COLUMNS, rows, overwrite=overwrite, check=read_labels)


def _write_checked(location: str, columns: Sequence[str], rows: Sequence[dict], *, overwrite: bool, check):
    suffix = posixpath.splitext(location)[1].lower()
    if suffix not in (".csv", ".tsv", ".jsonl"):
        raise ManifestError(f"{location}: a manifest is written as .csv, .tsv or .jsonl")
    if storage.exists(location) and not overwrite:
        raise ManifestError(f"{location} exists; pass --overwrite to replace it")
    folder, name = location.rsplit("/", 1)
    partial = f"{folder}/.{name}.partial{suffix}"
    storage.write_text(partial, format_rows(location, columns, rows))
    try:
        written = check(partial)
        storage.move(partial, location)
    except BaseException:
        storage.remove(partial)
        raise
    return written
