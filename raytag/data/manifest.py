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

A manifest or label file may itself live in object storage (``s3://bucket/corpus/manifest.csv``,
any URI pyarrow's file systems open): it is read through pyarrow, and its relative paths become
URIs under its folder, which the audio decoders read the same way.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import posixpath
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

import numpy as np

from raytag.errors import InputError
from raytag.locations import is_uri

SPLITS = ("train", "valid", "test", "unlabeled")
REQUIRED_COLUMNS = ("path", "tags", "split")
_TRUE = {"true", "1", "yes"}
_FALSE = {"false", "0", "no", ""}


class ManifestError(InputError):
    """A manifest or label file that cannot be used, with the place of the problem."""


@dataclass(frozen=True)
class Track:
    """One manifest row. ``path`` is absolute; ``tags`` keeps the manifest's order."""

    path: str
    tags: tuple[str, ...]
    split: str
    verified: bool = False
    artist: str | None = None


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


def _is_file(location: str) -> bool:
    if not is_uri(location):
        return Path(location).is_file()
    import pyarrow.fs as pafs

    try:
        filesystem, inner = pafs.FileSystem.from_uri(location)
        return filesystem.get_file_info(inner).type == pafs.FileType.File
    except (OSError, ValueError):
        return False


@contextlib.contextmanager
def _open_text(location: str, encoding: str, errors: str = "strict") -> Iterator[TextIO]:
    """The file as text (universal newlines left to the csv module), local or through pyarrow."""
    if not is_uri(location):
        with open(location, encoding=encoding, errors=errors, newline="") as f:
            yield f
        return
    import pyarrow.fs as pafs

    filesystem, inner = pafs.FileSystem.from_uri(location)
    with filesystem.open_input_stream(inner) as stream:
        data = stream.read()
    yield io.TextIOWrapper(io.BytesIO(data), encoding=encoding, errors=errors, newline="")


def _folder(location: str) -> str:
    return location.rsplit("/", 1)[0] if is_uri(location) else str(Path(location).parent)


def _read_rows(path: str) -> tuple[list[str], list[tuple[int, dict]]]:
    """Returns (columns, [(line number, row)]) for a CSV, TSV or JSONL file (path or URI)."""
    suffix = posixpath.splitext(path)[1].lower()
    if suffix == ".jsonl":
        rows, columns = [], []
        # Undecodable bytes become lone surrogates, so the line that holds them can be named.
        with _open_text(path, "utf-8", errors="surrogateescape") as f:
            for line_no, line in enumerate(f, start=1):
                try:
                    line.encode("utf-8")
                except UnicodeEncodeError:
                    raise ManifestError(f"{path}:{line_no}: not UTF-8 text") from None
                if not line.strip():
                    continue
                try:
                    row = json.loads(line)
                except json.JSONDecodeError as exc:
                    raise ManifestError(f"{path}:{line_no}: not valid JSON ({exc.msg})") from None
                except RecursionError:
                    raise ManifestError(f"{path}:{line_no}: JSON nested too deeply for a manifest row") from None
                if not isinstance(row, dict):
                    raise ManifestError(f"{path}:{line_no}: expected a JSON object per line")
                columns.extend(k for k in row if k not in columns)
                rows.append((line_no, row))
        return columns, rows
    if suffix not in (".csv", ".tsv"):
        raise ManifestError(f"{path}: unsupported manifest format {suffix!r}; use .csv, .tsv or .jsonl")
    return _read_delimited(path, "\t" if suffix == ".tsv" else ",")


def _read_delimited(path: str, delimiter: str) -> tuple[list[str], list[tuple[int, dict]]]:
    """Strict CSV/TSV: every row has exactly the header's number of fields.

    A row with more fields than the header (e.g. tags in extra tab-separated fields) or fewer
    is an error naming the file and line, never silently dropped or padded data. Blank lines
    are skipped; LF and CRLF line ends and a UTF-8 byte-order mark are accepted.
    """
    kind, separator = ("TSV", "tab") if delimiter == "\t" else ("CSV", "comma")
    with _open_text(path, "utf-8-sig") as f:
        reader = csv.reader(f, delimiter=delimiter)
        try:
            columns = [c.strip() for c in next(reader, [])]
            rows, next_line = [], reader.line_num + 1
            for fields in reader:
                # A quoted field may span lines: report the line the row starts on.
                line_no, next_line = next_line, reader.line_num + 1
                if not fields:
                    continue
                if len(fields) > len(columns):
                    raise ManifestError(
                        f"{path}:{line_no}: {len(fields)} fields, more than the header's {len(columns)} "
                        f"({', '.join(columns)}); put all tags in the one 'tags' field, separated by ';', "
                        f"and quote a field that contains a {separator}"
                    )
                if len(fields) < len(columns):
                    raise ManifestError(
                        f"{path}:{line_no}: {len(fields)} fields, fewer than the header's {len(columns)} "
                        f"({', '.join(columns)})"
                    )
                rows.append((line_no, dict(zip(columns, fields))))
        except csv.Error as exc:
            raise ManifestError(f"{path}:{reader.line_num}: malformed {kind} ({exc})") from None
        except UnicodeDecodeError as exc:
            raise ManifestError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    return columns, rows


def _parse_tags(value, where: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, list):
        items = value
    elif isinstance(value, str):
        items = value.split(";")
    else:
        raise ManifestError(f"{where}: 'tags' must be a ';'-separated string or a list")
    return tuple(dict.fromkeys(str(t).strip() for t in items if str(t).strip()))


def _parse_bool(value, where: str) -> bool:
    if isinstance(value, bool):
        return value
    text = "" if value is None else str(value).strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise ManifestError(f"{where}: 'verified' must be true or false, got {value!r}")


def _audio_path(row: dict, root: str, where: str) -> tuple[str, str]:
    """``(absolute path or URI, path as written)`` of a row; relative paths are under ``root``
    (a folder or a URI)."""
    raw_path = str(row.get("path") or "").strip()
    if not raw_path:
        raise ManifestError(f"{where}: empty 'path'")
    try:
        raw_path.encode("utf-8")
    except UnicodeEncodeError:
        raise ManifestError(f"{where}: 'path' {raw_path!r} holds a lone surrogate, not a file name") from None
    if "\x00" in raw_path:
        raise ManifestError(f"{where}: 'path' {raw_path!r} holds a NUL character, not a file name")
    if is_uri(raw_path) or Path(raw_path).is_absolute():
        return raw_path if is_uri(raw_path) else str(Path(raw_path).resolve()), raw_path
    if is_uri(root):
        scheme, inner = root.split("://", 1)
        return f"{scheme}://{posixpath.normpath(posixpath.join(inner, raw_path))}", raw_path
    return str((Path(root) / raw_path).resolve()), raw_path


def read_manifest(path: str | Path, vocabulary: Sequence[str] | None = None) -> Manifest:
    """Reads and validates a manifest.

    Args:
        path: CSV, TSV or JSONL manifest.
        vocabulary: the tag vocabulary (model output order). If None, it is every tag that
            appears in the manifest, sorted. If given, tags outside it are dropped and counted.

    Raises:
        ManifestError: a missing file or column, an unknown split, a duplicate path, an empty
            path or manifest, or a bad ``verified`` value; the message names file and line.
    """
    path = _location(path)
    if not _is_file(path):
        raise ManifestError(f"manifest not found: {path}")
    columns, rows = _read_rows(path)
    missing = [c for c in REQUIRED_COLUMNS if c not in columns]
    if missing:
        raise ManifestError(
            f"{path}: missing column(s) {', '.join(missing)}; a manifest needs {', '.join(REQUIRED_COLUMNS)}"
        )
    if not rows:
        raise ManifestError(f"{path}: the manifest has no rows")
    root = _folder(path)
    tracks, seen = [], {}
    for line_no, row in rows:
        where = f"{path}:{line_no}"
        audio, raw_path = _audio_path(row, root, where)
        if audio in seen:
            raise ManifestError(f"{where}: duplicate path {raw_path!r} (first on line {seen[audio]})")
        seen[audio] = line_no
        split = str(row.get("split") or "").strip()
        if split not in SPLITS:
            raise ManifestError(f"{where}: unknown split {split!r}; expected one of {', '.join(SPLITS)}")
        artist = str(row.get("artist") or "").strip() or None
        tracks.append(
            Track(
                path=audio,
                tags=_parse_tags(row.get("tags"), where),
                split=split,
                verified=_parse_bool(row.get("verified"), where),
                artist=artist,
            )
        )
    if vocabulary is None:
        vocabulary = sorted({tag for t in tracks for tag in t.tags})
        dropped = 0
    else:
        vocabulary = list(vocabulary)
        if len(set(vocabulary)) != len(vocabulary):
            raise ManifestError("the tag vocabulary has duplicate tags")
        known = set(vocabulary)
        dropped = sum(tag not in known for t in tracks for tag in t.tags)
        tracks = [
            Track(t.path, tuple(g for g in t.tags if g in known), t.split, t.verified, t.artist)
            for t in tracks
        ]
    if not vocabulary:
        raise ManifestError(f"{path}: no tags found; a labelled manifest needs at least one tag")
    return Manifest(str(path), tuple(tracks), tuple(vocabulary), dropped)


def read_labels(path: str | Path) -> dict[str, tuple[str, ...]]:
    """Reads a label file (``path`` and ``tags`` columns, any manifest format).

    Used for clean labels that replace a manifest's noisy ones at evaluation time.
    Returns absolute audio path -> tags.
    """
    path = _location(path)
    if not _is_file(path):
        raise ManifestError(f"label file not found: {path}")
    columns, rows = _read_rows(path)
    missing = [c for c in ("path", "tags") if c not in columns]
    if missing:
        raise ManifestError(f"{path}: missing column(s) {', '.join(missing)}")
    root = _folder(path)
    labels = {}
    for line_no, row in rows:
        audio, raw_path = _audio_path(row, root, f"{path}:{line_no}")
        if audio in labels:
            raise ManifestError(f"{path}:{line_no}: duplicate path {raw_path!r}")
        labels[audio] = _parse_tags(row.get("tags"), f"{path}:{line_no}")
    return labels


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
    if not _is_file(path):
        raise ManifestError(f"list of audio files not found: {path}")
    columns, rows = _read_rows(path)
    if "path" not in columns:
        raise ManifestError(f"{path}: no 'path' column (columns: {', '.join(columns) or 'none'})")
    if not rows:
        raise ManifestError(f"{path}: no rows")
    root = _folder(path)
    seen: dict[str, int] = {}
    for line_no, row in rows:
        audio, raw_path = _audio_path(row, root, f"{path}:{line_no}")
        if audio in seen:
            raise ManifestError(f"{path}:{line_no}: duplicate path {raw_path!r} (first on line {seen[audio]})")
        seen[audio] = line_no
    return list(seen)


def read_manifest_rows(path: str | Path) -> tuple[list[str], list[dict]]:
    """A manifest's columns and rows as written, in file order: what :func:`write_manifest`
    writes back unchanged (CSV/TSV values are strings, JSONL values as parsed). No checks
    beyond the format's: call :func:`read_manifest` for the validated records (one per row, in
    the same order).

    Raises:
        ManifestError: a missing file or a malformed one, naming the line.
    """
    path = _location(path)
    if not _is_file(path):
        raise ManifestError(f"manifest not found: {path}")
    columns, rows = _read_rows(path)
    return columns, [row for _, row in rows]


def write_manifest(location: str | Path, columns: Sequence[str], rows: Sequence[dict], *, overwrite: bool = False) -> Manifest:
    """Writes a manifest (CSV, TSV or JSONL by ``location``'s suffix), checked before it is
    in place: the rows are written to a partial file next to ``location`` (so relative paths
    resolve the same), read back with :func:`read_manifest`, then moved over ``location``.
    A manifest that does not read back is not written.

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
    import pyarrow.fs as pafs

    from raytag import storage

    location = _location(location)
    suffix = posixpath.splitext(location)[1].lower()
    if suffix not in (".csv", ".tsv", ".jsonl"):
        raise ManifestError(f"{location}: a manifest is written as .csv, .tsv or .jsonl")
    if storage.exists(location) and not overwrite:
        raise ManifestError(f"{location} exists; pass --overwrite to replace it")
    if suffix == ".jsonl":
        text = "".join(json.dumps({c: row.get(c) for c in columns}, ensure_ascii=False) + "\n" for row in rows)
    else:
        buffer = io.StringIO()
        writer = csv.writer(buffer, delimiter="\t" if suffix == ".tsv" else ",", lineterminator="\n")
        writer.writerow(columns)
        writer.writerows([["" if row.get(c) is None else row.get(c) for c in columns] for row in rows])
        text = buffer.getvalue()
    folder, name = location.rsplit("/", 1) if is_uri(location) else (str(Path(location).parent), Path(location).name)
    partial = f"{folder}/.{name}.partial{suffix}"
    storage.write_text(partial, text)
    filesystem, inner = storage.filesystem(partial)
    try:
        manifest = read_manifest(partial)
        filesystem.move(inner, storage.filesystem(location)[1])
    except BaseException:
        if filesystem.get_file_info(inner).type != pafs.FileType.NotFound:
            filesystem.delete_file(inner)
        raise
    return Manifest(location, manifest.tracks, manifest.vocabulary, manifest.dropped_tags)
