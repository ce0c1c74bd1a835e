"""The text of a manifest-like file (CSV, TSV or JSONL): bytes to rows, rows to text.

Knows formats, not columns: :mod:`raytag.data.manifest` says which columns a manifest or a label
file has and what their values mean. The file is read whole through :mod:`raytag.storage` (a
path or any URI), so a 250,000-row manifest (about 20 MB) is one read, decoded once.

A CSV/TSV row must have exactly as many fields as the header: extra fields (say, tags in their
own tab-separated fields) are an error, never silently dropped. Every error names the file and
line.

:func:`parse_columns` gives a file as columns, which is how a manifest is validated (a column at
a time). pyarrow's CSV and JSON readers parse the files whose meaning they cannot change: CSV/TSV
with nothing quoted and LF line ends, JSONL with one object per line whose values are strings,
booleans, nulls or lists of strings, its keys and types those of the first line. Anything else, and any file pyarrow refuses, goes to the csv/json modules,
whose reading is the definition (and whose errors name the line). At 250,000 rows pyarrow parses
a CSV in 40-60 ms and a JSONL in 0.2-0.25 s of CPU, the csv module 0.3 s and ``json.loads`` per
line 1 s (2 shared CPUs).
"""

from __future__ import annotations

import codecs
import csv
import io
import json
import posixpath
import re
from collections.abc import Sequence
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv
import pyarrow.json as pa_json

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


@dataclass(frozen=True)
class Columns:
    """A manifest-like file as columns (what :func:`parse_columns` returns).

    Attributes:
        names: the header's names, stripped, in order, a repeated one kept (CSV/TSV), or every
            key in order of first appearance (JSONL).
        lines: ``lines[i]`` is the line row ``i`` starts on (1-based; blank lines have no row).
        data: name -> the column, one value per row: a list, or a pyarrow array that
            :meth:`values` turns into one (a repeated name: its last column, as in a row dict).
    """

    names: list[str]
    lines: Sequence[int]
    data: dict[str, list | pa.ChunkedArray]

    def __len__(self) -> int:
        return len(self.lines)

    def values(self, name: str) -> list:
        """The column's values, one per row: strings (CSV/TSV) or as parsed (JSONL); None
        where a JSONL row has no such key, and in every row when no row has it."""
        column = self.data.get(name)
        if column is None:
            return [None] * len(self.lines)
        return column if isinstance(column, list) else column.to_pylist()

    def encoded(self, name: str) -> tuple[list[str], list[int]] | None:
        """A column of strings pyarrow parsed, as its distinct values and each row's index into
        them (dictionary-encoded in C: a split column is 4 strings, not 250,000); None for any
        other column (a list, a null in it, or parsed by the csv/json modules)."""
        column = self.data.get(name)
        if not isinstance(column, pa.ChunkedArray) or column.type != pa.string() or column.null_count:
            return None
        encoded = column.combine_chunks().dictionary_encode()
        return encoded.dictionary.to_pylist(), encoded.indices.to_numpy().tolist()


def parse_columns(location: str, data: bytes) -> Columns:
    """A file's bytes as :class:`Columns`: the same values, lines and errors as
    :func:`parse_rows`, without a dict per row.

    Args:
        location: the file (its suffix picks the format; named in errors).
        data: the whole file; UTF-8, with or without a byte-order mark.

    Raises:
        ManifestError: as :func:`parse_rows`.
    """
    suffix = suffix_of(location)
    text = decode_text(location, data)
    body = memoryview(data)[len(codecs.BOM_UTF8) if data.startswith(codecs.BOM_UTF8) else 0:]
    if suffix == ".jsonl":
        columns = _arrow_jsonl(text, body)
    else:
        columns = _arrow_delimited(text, body, "\t" if suffix == ".tsv" else ",")
    if columns is not None:
        return columns
    names, lines, rows = (_parse_jsonl(location, text) if suffix == ".jsonl"
                          else _parse_delimited(location, text, "\t" if suffix == ".tsv" else ","))
    return Columns(names, lines, {name: [row.get(name) for row in rows] for name in names})


def _arrow_delimited(text: str, body: memoryview, delimiter: str) -> Columns | None:
    """The columns of a CSV/TSV file that splitting at line ends and delimiters reads as the
    csv module does, parsed by pyarrow: no quote character, no CR, a header on line 1, no
    field over the csv module's size limit. None for any other file, or one pyarrow refuses
    (a row of another width than the header's): :func:`_parse_delimited` reads those."""
    header_end = text.find("\n")
    if header_end <= 0 or '"' in text or "\r" in text:
        return None
    names = [name.strip() for name in text[:header_end].split(delimiter)]
    keys = [str(i) for i in range(len(names))]
    try:
        table = pa_csv.read_csv(
            pa.BufferReader(body),
            read_options=pa_csv.ReadOptions(use_threads=False, skip_rows=1, column_names=keys),
            parse_options=pa_csv.ParseOptions(delimiter=delimiter, quote_char=False, newlines_in_values=False,
                                              ignore_empty_lines=True),
            convert_options=pa_csv.ConvertOptions(column_types=dict.fromkeys(keys, pa.string()),
                                                  strings_can_be_null=False, check_utf8=False),
        )
    except pa.ArrowInvalid:
        return None
    limit = csv.field_size_limit()
    if any((pc.max(pc.utf8_length(column)).as_py() or 0) > limit for column in table.columns):
        return None
    if table.num_rows == text.count("\n") - text.endswith("\n"):  # a row on every line after the header
        lines = range(2, 2 + table.num_rows)
    else:  # blank lines: no row of their own
        lines = [number for number, line in enumerate(text.split("\n"), start=1) if line][1:]
        if len(lines) != table.num_rows:
            return None
    return Columns(names, lines, {name: table.column(i) for i, name in enumerate(names)})


_TWO_OBJECTS = re.compile(r"\}[^\S\n]*\{")
"""A ``}`` and a ``{`` on one line: two objects there (or, rarely, text inside a string)."""


def _json_schema(line: str) -> pa.Schema | None:
    """The schema every row must have: the first line's keys in order, typed by its values
    (a string, a boolean, a list of strings; a null is a string that no row has yet), or
    None when the line is not such an object."""
    try:
        row = json.loads(line)
    except (ValueError, RecursionError):
        return None
    if not isinstance(row, dict):
        return None
    fields = []
    for key, value in row.items():
        if isinstance(value, list) and all(isinstance(item, str) or item is None for item in value):
            fields.append((key, pa.list_(pa.string())))
        elif value is None or isinstance(value, (str, bool)):
            fields.append((key, pa.bool_() if isinstance(value, bool) else pa.string()))
        else:
            return None
    return pa.schema(fields)


def _arrow_jsonl(text: str, body: memoryview) -> Columns | None:
    """The columns of a JSONL file whose every line is one object with the first line's keys
    (or some of them) and their types, parsed by pyarrow with that schema. None for any other
    file (a new key or type, a number or a deeper value, a line of two objects or none, an
    object over two lines): :func:`_parse_jsonl` reads those. The schema is given, never
    inferred: pyarrow's inference crashes the process on a value nested 20,000 deep."""
    schema = _json_schema(text[:text.find("\n")] if "\n" in text else text)
    if schema is None or _TWO_OBJECTS.search(text):
        return None
    try:
        table = pa_json.read_json(pa.BufferReader(body), read_options=pa_json.ReadOptions(use_threads=False),
                                  parse_options=pa_json.ParseOptions(explicit_schema=schema,
                                                                     unexpected_field_behavior="error"))
    except pa.ArrowInvalid:
        return None
    if table.num_rows == text.count("\n") + (not text.endswith("\n")):  # every line one object
        lines = range(1, 1 + table.num_rows)
    else:
        lines = [number for number, line in enumerate(text.split("\n"), start=1) if line.strip()]
        if len(lines) != table.num_rows:
            return None
    return Columns(schema.names, lines, {name: table.column(name) for name in schema.names})


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
