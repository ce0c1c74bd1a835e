"""Property-based tests of the manifest readers (raytag.data.manifest): any CSV, TSV or JSONL
file, well-formed or damaged, either reads or raises ManifestError naming the file; never
another exception or a hang. See tests/parser_properties.py for the profiles and the bound.

The files are drawn near the real format: the manifest's columns (sometimes missing, repeated,
extra or reordered), values a real catalogue has (relative, absolute, unicode and URI paths,
``;``-joined tags, every split, every ``verified`` spelling) mixed with odd ones (quotes,
delimiters, NUL, BOMs, line breaks, huge fields), written with any quoting and line end, with
blank lines and rows one field short or long, then with byte-level damage. The same files are
read as label files (clean labels) and as lists of files to tag.
"""

from __future__ import annotations

import csv
import io
import json

import pytest
from hypothesis import example, given
from hypothesis import strategies as st
from parser_properties import PROFILE, damaged, edit_columns, odd_text, parses_or_refuses

from raytag.data.manifest import SPLITS, read_labels, read_manifest, read_manifest_rows, read_paths

COLUMNS = ["path", "tags", "split", "verified", "artist"]
HUGE = st.sampled_from([131_071, 131_073, 300_000]).map(lambda n: "x" * n)


def field_values(column: str) -> st.SearchStrategy[str]:
    """Values of one column: the kinds a real manifest holds, or odd text."""
    real = {
        "path": st.one_of(st.sampled_from(["a.wav", "sub/b.flac", "/abs/c.mp3", "s3://bucket/d.ogg", "./e.wav",
                                           "../f.wav", "ü/日本.mp3"]), st.text(min_size=1, max_size=12)
                          .map(lambda s: s.replace("\x00", "") + ".wav")),
        "tags": st.lists(st.sampled_from(["rock", "pop", "piano", "voice", " jazz ", "a;b", ""]), max_size=4)
        .map(";".join),
        "split": st.sampled_from(SPLITS),
        "verified": st.sampled_from(["true", "false", "1", "0", "yes", "no", "", "TRUE", " false "]),
        "artist": st.sampled_from(["", "ABBA", "Sigur Rós"]),
    }.get(column, st.just(""))
    return st.one_of(real, real, real, odd_text())


@st.composite
def table(draw) -> tuple[list[str], list[list[str]]]:
    """A header and rows of fields: the manifest's columns, sometimes with a column missing,
    repeated or unknown, and rows sometimes a field short or long, or with a huge field."""
    columns = draw(st.permutations(COLUMNS).map(lambda c: list(c[: 3 + len(c) % 3])))
    edit = draw(st.sampled_from(["none", "none", "drop", "repeat", "unknown", "odd"]))
    edit_columns(draw, columns, edit)
    if edit == "odd":
        columns[draw(st.integers(0, len(columns) - 1))] = draw(odd_text())
    rows = []
    for _ in range(draw(st.integers(0, 6))):
        fields = [draw(field_values(c)) for c in columns]
        shape = draw(st.sampled_from(["ok"] * 8 + ["short", "long", "huge"]))
        if shape == "short" and fields:
            fields.pop()
        elif shape == "long":
            fields.append(draw(odd_text()))
        elif shape == "huge" and fields:
            fields[draw(st.integers(0, len(fields) - 1))] = draw(HUGE)
        rows.append(fields)
    return columns, rows


@st.composite
def delimited_file(draw, delimiter: str) -> bytes:
    """A CSV/TSV file of a drawn table, written with any quoting, line end, BOM and blank lines."""
    columns, rows = draw(table())
    line_end = draw(st.sampled_from(["\n", "\r\n", "\r"]))
    writer_kind = draw(st.sampled_from(["minimal", "all", "plain"]))
    buffer = io.StringIO(newline="")
    if writer_kind == "plain":  # joined by hand, no quoting: what a careless script writes
        buffer.write(line_end.join(delimiter.join(r) for r in [columns, *rows]) + line_end)
    else:
        quoting = csv.QUOTE_ALL if writer_kind == "all" else csv.QUOTE_MINIMAL
        writer = csv.writer(buffer, delimiter=delimiter, lineterminator=line_end, quoting=quoting)
        writer.writerow(columns)
        for fields in rows:
            if draw(st.integers(0, 5)) == 0:
                buffer.write(line_end)  # a blank line
            writer.writerow(fields)
    text = buffer.getvalue()
    bom = "\ufeff" if draw(st.booleans()) else ""
    return draw(damaged((bom + text).encode("utf-8")))


JSON_VALUES = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=10),
              st.text(alphabet=st.characters(categories=["Cs"]), min_size=1, max_size=2)),  # lone surrogates
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=5), inner, max_size=3)),
    max_leaves=8,
)


@st.composite
def jsonl_file(draw) -> bytes:
    """A JSONL file: one object per line, values strings or any JSON value, some lines not
    objects, not JSON, blank, or nested very deeply; then byte-level damage."""
    columns, rows = draw(table())
    lines = []
    for fields in rows:
        row = {c: draw(st.one_of(st.just(v), st.just(v), JSON_VALUES)) for c, v in zip(columns, fields)}
        if "tags" in row and draw(st.booleans()):
            row["tags"] = draw(st.lists(st.one_of(st.sampled_from(["rock", "pop"]), JSON_VALUES), max_size=3))
        kind = draw(st.sampled_from(["object"] * 6 + ["value", "text", "blank", "deep"]))
        if kind == "object":
            lines.append(json.dumps(row, ensure_ascii=draw(st.booleans())))
        elif kind == "value":
            lines.append(json.dumps(draw(JSON_VALUES)))
        elif kind == "text":
            lines.append(draw(odd_text()).replace("\n", " "))
        elif kind == "blank":
            lines.append(draw(st.sampled_from(["", " ", "\t"])))
        else:
            depth = draw(st.sampled_from([10, 1_000, 100_000]))
            lines.append("[" * depth + "]" * depth)
    text = "".join(line + draw(st.sampled_from(["\n", "\r\n"])) for line in lines)
    return draw(damaged(text.encode("utf-8", "surrogatepass")))


def check_readers(folder, name: str, data: bytes, vocabulary) -> None:
    """Every reader of the file either reads it or names it in a ManifestError."""
    path = folder / name
    path.write_bytes(data)
    names = [str(path.resolve())]
    prop = f"manifest-{name.rsplit('.', 1)[1]}"
    manifest = parses_or_refuses(prop, lambda: read_manifest(path, vocabulary), names)
    if not isinstance(manifest, Exception):
        assert manifest.tracks and all(t.split in SPLITS for t in manifest.tracks)
    parses_or_refuses(prop, lambda: read_labels(path), names)
    parses_or_refuses(prop, lambda: read_paths(path), names)
    parses_or_refuses(prop, lambda: read_manifest_rows(path), names)


VOCABULARIES = st.one_of(st.none(), st.lists(st.sampled_from(["rock", "pop", "piano", "voice"]), unique=True))


@pytest.mark.parametrize("suffix,delimiter", [("csv", ","), ("tsv", "\t")])
@PROFILE
@given(data=st.data(), vocabulary=VOCABULARIES)
def test_any_delimited_manifest_reads_or_is_refused(tmp_path, suffix, delimiter, data, vocabulary):
    check_readers(tmp_path, f"manifest.{suffix}", data.draw(delimited_file(delimiter)), vocabulary)


@PROFILE
@given(data=jsonl_file(), vocabulary=VOCABULARIES)
def test_any_jsonl_manifest_reads_or_is_refused(tmp_path, data, vocabulary):
    check_readers(tmp_path, "manifest.jsonl", data, vocabulary)
