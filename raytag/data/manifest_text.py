"""The text of a manifest-like file (CSV, TSV or JSONL): bytes to rows, rows to text.

Knows formats, not columns: :mod:`raytag.data.manifest` says which columns a manifest or a label
file has and what their values mean. The file is read whole through :mod:`raytag.storage` (a
path or any URI), so a 250,000-row manifest (about 20 MB) is one read, decoded once.

A CSV/TSV row must have exactly as many fields as the header: extra fields (say, tags in their
own tab-separated fields) are an error, never silently dropped. Every error names the file and
line.
"""

from __future__ import annotations

import codecs
import csv
import io
import json
import posixpath
from collections.abc import Sequence

from raytag.errors import InputError

FORMATS = (".csv", ".tsv", ".jsonl")


class ManifestError(InputError):
    """A manifest or label file that cannot be used, with the place of the problem."""


def suffix_of(location: str) -> str:
    """The file's format by its suffix, lower case (``.csv``, ``.tsv`` or ``.jsonl``).

    Raises:
        ManifestError: any other suffix.
    """
    suffix = posixpath.splitext(location)[1].lower()
    if suffix not in FORMATS:
        raise ManifestError(f"{location}: unsupported manifest format {suffix!r}; use .csv, .tsv or .jsonl")
    return suffix


def parse_rows(location: str, data: bytes) -> tuple[list[str], list[int], list[dict]]:
    """``(columns, line numbers, rows)`` of a file's bytes, rows in file order (blank lines
    skipped; ``line numbers[i]`` is where ``rows[i]`` starts). CSV/TSV values are strings;
    JSONL values as parsed (``columns``: every key, in order of first appearance).

    Args:
        location: the file (its suffix picks the format; named in errors).
        data: the whole file; UTF-8, with or without a byte-order mark.

    Raises:
        ManifestError: not UTF-8, malformed CSV/TSV/JSON, a row with more or fewer fields than
            the header, a JSONL line that is not an object; naming the file and line.
    """
    suffix = suffix_of(location)
    text = decode_text(location, data)
    if suffix == ".jsonl":
        return _parse_jsonl(location, text)
    return _parse_delimited(location, text, "\t" if suffix == ".tsv" else ",")


def decode_text(location: str, data: bytes) -> str:
    """``data`` as text: UTF-8, a leading byte-order mark dropped.

    Raises:
        ManifestError: bytes that are not UTF-8, named by their line and their offset in the
            file (the mark counted: Python's ``utf-8-sig`` codec counts from after it).
    """
    start = len(codecs.BOM_UTF8) if data.startswith(codecs.BOM_UTF8) else 0
    try:
        return str(memoryview(data)[start:], "utf-8")
    except UnicodeDecodeError as exc:
        offset = start + exc.start
        line = data.count(b"\n", 0, offset) + 1
        raise ManifestError(f"{location}:{line}: not UTF-8 text ({exc.reason} at byte {offset})") from None


def _parse_jsonl(location: str, text: str) -> tuple[list[str], list[int], list[dict]]:
    lines, rows, columns = [], [], {}
    for line_no, line in enumerate(text.split("\n"), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise ManifestError(f"{location}:{line_no}: not valid JSON ({exc.msg})") from None
        except RecursionError:
            raise ManifestError(f"{location}:{line_no}: JSON nested too deeply for a manifest row") from None
        if not isinstance(row, dict):
            raise ManifestError(f"{location}:{line_no}: expected a JSON object per line")
        columns.update(dict.fromkeys(row))  # order of first appearance
        lines.append(line_no)
        rows.append(row)
    return list(columns), lines, rows


def _parse_delimited(location: str, text: str, delimiter: str) -> tuple[list[str], list[int], list[dict]]:
    """Strict CSV/TSV: every row has exactly the header's number of fields. LF and CRLF line
    ends are accepted; a quoted field may span lines (the row's first line is reported)."""
    kind = "TSV" if delimiter == "\t" else "CSV"
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    try:
        columns = [c.strip() for c in next(reader, [])]
        width, first = len(columns), reader.line_num + 1
        if '"' not in text:  # nothing quoted: row i is on line first + i
            # One pass, no list of field lists kept beside the dicts; a row of the wrong width
            # (or a blank line) stays a list, found below.
            rows = [dict(zip(columns, fields)) if len(fields) == width else fields for fields in reader]
            lines = range(first, first + len(rows))
        else:
            rows, lines, next_line = [], [], first
            for fields in reader:
                lines.append(next_line)
                rows.append(dict(zip(columns, fields)) if len(fields) == width else fields)
                next_line = reader.line_num + 1
    except csv.Error as exc:
        raise ManifestError(f"{location}:{reader.line_num}: malformed {kind} ({exc})") from None
    odd = [i for i, row in enumerate(rows) if type(row) is list]
    for i in odd:
        if rows[i]:
            _wrong_width(location, lines[i], rows[i], columns, delimiter)
    if odd:  # blank lines
        keep = [i for i, row in enumerate(rows) if type(row) is not list]
        rows, lines = [rows[i] for i in keep], [lines[i] for i in keep]
    return columns, list(lines), rows


def _wrong_width(location: str, line_no: int, fields: list[str], columns: list[str], delimiter: str) -> None:
    more = len(fields) > len(columns)
    separator = "tab" if delimiter == "\t" else "comma"
    raise ManifestError(
        f"{location}:{line_no}: {len(fields)} fields, {'more' if more else 'fewer'} than the header's "
        f"{len(columns)} ({', '.join(columns)})"
        + (f"; put all tags in the one 'tags' field, separated by ';', and quote a field that "
           f"contains a {separator}" if more else "")
    )


def format_rows(location: str, columns: Sequence[str], rows: Sequence[dict]) -> str:
    """The text of a file with ``columns`` (CSV/TSV header; JSONL keys) and ``rows`` (missing
    values written empty, or null in JSONL), in the format of ``location``'s suffix."""
    suffix = suffix_of(location)
    if suffix == ".jsonl":
        return "".join(json.dumps({c: row.get(c) for c in columns}, ensure_ascii=False) + "\n" for row in rows)
    buffer = io.StringIO()
    writer = csv.writer(buffer, delimiter="\t" if suffix == ".tsv" else ",", lineterminator="\n")
    writer.writerow(columns)
    writer.writerows([["" if row.get(c) is None else row.get(c) for c in columns] for row in rows])
    return buffer.getvalue()
