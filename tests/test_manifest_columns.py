"""Manifest reading a column at a time (issue 27 item 4): pyarrow parses the plain files, the
csv/json modules the rest, and both give the same rows, lines and errors."""

from __future__ import annotations

import csv
import json

import pyarrow as pa
import pytest

from raytag.data.manifest import ManifestError, read_labels, read_manifest, read_paths
from raytag.data.manifest_text import parse_columns, parse_rows

ROWS = [
    ("a.wav", "rock;pop", "train", "true", "x"),
    ("/abs/b.wav", "", "unlabeled", "", ""),
    ("sub/ü.wav", " jazz ;;rock", " valid ", "NO", " y "),
]
HEADER = ("path", "tags", "split", "verified", "artist")


def delimited(rows, sep=",", header=HEADER) -> bytes:
    return "".join(sep.join(r) + "\n" for r in [header, *rows]).encode()


def jsonl(rows, header=HEADER) -> bytes:
    return "".join(json.dumps(dict(zip(header, r)), ensure_ascii=False) + "\n" for r in rows).encode()


def parsed_by_pyarrow(columns) -> bool:
    return all(isinstance(column, pa.ChunkedArray) for column in columns.data.values())


@pytest.mark.parametrize("name,data,by_pyarrow", [
    ("m.csv", delimited(ROWS), True),
    ("m.tsv", delimited(ROWS, "\t"), True),
    ("m.csv", b"\xef\xbb\xbf" + delimited(ROWS), True),
    ("m.csv", delimited(ROWS).replace(b"\n", b"\n\n", 2), True),  # blank lines
    ("m.csv", delimited(ROWS, header=("path", "tags", "path", "split", "artist")), True),  # a repeated column
    ("m.csv", delimited(ROWS).replace(b"x\n", b'"x"\n'), False),  # a quoted field
    ("m.csv", delimited(ROWS).replace(b"\n", b"\r\n"), False),
    ("m.jsonl", jsonl(ROWS), True),
    ("m.jsonl", jsonl(ROWS).replace(b"\n", b"\n \n", 1), True),  # a blank line
    ("m.jsonl", b'{"tags": ["a", null], "path": "a.wav", "split": null, "verified": true}\n'
                b'{"path": "b.wav", "split": "train", "verified": false}\n{}\n', True),
    ("m.jsonl", b'{"tags": ["a"], "path": "a.wav"}\n{"split": "train"}\n', False),  # a key the first line lacks
    ("m.jsonl", b'{"tags": null, "path": "a.wav"}\n{"tags": ["x"]}\n', False),  # a type the first line's is not
    ("m.jsonl", b'{"path": "a.wav", "tags": 1}\n', False),  # a number: the json module's reading
    ("m.jsonl", b'{"path": "a.wav", "tags": {"a": "b"}}\n', False),
])
def test_columns_hold_what_the_rows_hold(name, data, by_pyarrow):
    columns = parse_columns(name, data)
    names, lines, rows = parse_rows(name, data)
    assert columns.names == names and list(columns.lines) == lines
    for column in set(names) | {"missing"}:
        assert columns.values(column) == [row.get(column) for row in rows]
        encoded = columns.encoded(column)
        if encoded is not None:  # distinct strings and each row's index into them
            distinct, codes = encoded
            assert len(set(distinct)) == len(distinct) and [distinct[i] for i in codes] == columns.values(column)
    assert parsed_by_pyarrow(columns) == by_pyarrow


def test_a_plain_and_a_quoted_file_read_the_same(tmp_path):
    rows = [(f"d{i % 7}/t{i}.wav", f"tag{i % 5};tag{i % 3}", ("train", "valid", "test")[i % 3], "false", f"ar{i % 11}")
            for i in range(2_000)]
    (tmp_path / "plain.csv").write_bytes(delimited(rows))
    with open(tmp_path / "quoted.csv", "w", newline="") as f:
        csv.writer(f, quoting=csv.QUOTE_ALL, lineterminator="\n").writerows([HEADER, *rows])
    (tmp_path / "rows.jsonl").write_bytes(jsonl(rows))
    read = [read_manifest(tmp_path / name, ["tag0", "tag1", "tag9"]) for name in ("plain.csv", "quoted.csv", "rows.jsonl")]
    assert read[0].tracks == read[1].tracks == read[2].tracks
    dropped = sum(len({f"tag{i % 5}", f"tag{i % 3}"} - {"tag0", "tag1", "tag9"}) for i in range(2_000))
    assert read[0].dropped_tags == read[1].dropped_tags == read[2].dropped_tags == dropped
    assert read[0].tracks[4].tags == ("tag1",) and read[0].tracks[4].path == str(tmp_path / "d4" / "t4.wav")


def write(tmp_path, name, data: bytes):
    (tmp_path / name).write_bytes(data)
    return tmp_path / name


@pytest.mark.parametrize("rows,message", [
    # The earliest row's problem wins, whichever column it is in...
    ([ROWS[0], ("c.wav", "x", "trian", "true", ""), ("a.wav", "x", "train", "maybe", "")], r":{2}: unknown split 'trian'"),
    ([ROWS[0], ("c.wav", "x", "train", "maybe", ""), ("d.wav", "x", "trian", "true", "")], r":{2}: 'verified' must be"),
    # ...and within a row, the path comes first, then the split, then ``verified``.
    ([ROWS[0], ("a.wav", "x", "trian", "maybe", "")], r":{2}: duplicate path 'a.wav' \(first on line {1}\)"),
    ([ROWS[0], (" ", "x", "trian", "maybe", "")], r":{2}: empty 'path'"),
    ([ROWS[0], ("c.wav", "x", "trian", "maybe", "")], r":{2}: unknown split 'trian'"),
])
@pytest.mark.parametrize("name", ["m.csv", "m.jsonl"])
def test_the_first_problem_in_file_order_is_the_one_named(tmp_path, rows, message, name):
    header_lines = 1 if name.endswith(".csv") else 0
    data = delimited(rows) if header_lines else jsonl(rows)
    message = message.replace("{1}", str(1 + header_lines)).replace("{2}", str(2 + header_lines))
    with pytest.raises(ManifestError, match=rf"{name}{message}"):
        read_manifest(write(tmp_path, name, data))


def test_labels_name_a_bad_path_before_bad_tags(tmp_path):
    path = write(tmp_path, "l.jsonl", b'{"path": "a.wav", "tags": 1}\n{"path": "a.wav", "tags": "x"}\n')
    with pytest.raises(ManifestError, match=r"l.jsonl:2: duplicate path"):
        read_labels(path)
    assert read_paths(write(tmp_path, "p.csv", delimited(ROWS))) == [
        str(tmp_path / "a.wav"), "/abs/b.wav", str(tmp_path / "sub" / "ü.wav")]


def test_a_field_over_the_csv_modules_limit_is_refused_in_an_unquoted_file(tmp_path):
    path = write(tmp_path, "m.csv", delimited([ROWS[0], ("b.wav", "x" * (csv.field_size_limit() + 1), "train", "", "")]))
    with pytest.raises(ManifestError, match=r"m.csv:3: malformed CSV \(field larger than field limit"):
        read_manifest(path)


@pytest.mark.parametrize("lines,message", [
    # Two objects on a line and one over two lines: as many objects as lines, read as rows by pyarrow.
    (b'{"path": "b.wav", "tags": "x", "split": "train"} {"path": "c.wav", "tags": "x", "split": "train"}\n'
     b'{"path": "d.wav", "tags": "x",\n"split": "train"}\n', "not valid JSON"),
    (b'{"path": "b.wav", "tags": "x",\n"split": "train"}\n', "not valid JSON"),
    # A value nested 100,000 deep, under a new key or a known one: pyarrow's schema inference
    # crashes the process on it.
    (b'{"path": "b.wav", "deep": ' + b"[" * 100_000 + b"]" * 100_000 + b"}\n", "JSON nested too deeply"),
    (b'{"path": "b.wav", "tags": ' + b"[" * 100_000 + b"]" * 100_000 + b"}\n", "JSON nested too deeply"),
])
def test_a_jsonl_line_that_is_not_one_object_is_named(tmp_path, lines, message):
    path = write(tmp_path, "m.jsonl", jsonl(ROWS[:1]) + lines)
    with pytest.raises(ManifestError, match=rf"m.jsonl:2: {message}"):
        read_manifest(path)
    with pytest.raises(ManifestError, match=rf"first.jsonl:1: {message}"):
        read_manifest(write(tmp_path, "first.jsonl", lines + jsonl(ROWS[:1])))


def test_row_locations_resolve_a_column_and_name_its_first_bad_row(tmp_path):
    from raytag.data.manifest_paths import row_locations

    folder = str(tmp_path)
    raws = ["a.wav", " sub/b.wav ", "/abs/c.wav", "s3://bucket/d.wav", "ü.wav"]
    assert row_locations(folder, raws, range(2, 7)) == (
        [f"{folder}/a.wav", f"{folder}/sub/b.wav", "/abs/c.wav", "s3://bucket/d.wav", f"{folder}/ü.wav"], None)
    assert row_locations("s3://bucket/corpus", ["x/e.wav", "../f.wav"], [1, 2]) == (
        ["s3://bucket/corpus/x/e.wav", "s3://bucket/f.wav"], None)
    # The same file under another spelling is a repeat, named by the line of its first row.
    assert row_locations(folder, ["a.wav", "b.wav", "./a.wav"], [10, 12, 13])[1] == (
        2, "duplicate path './a.wav' (first on line 10)")
    assert row_locations(folder, ["a.wav", " ", "a.wav"], [1, 2, 3])[1] == (1, "empty 'path'")
    assert row_locations(folder, ["a.wav", "b\x00.wav", ""], [1, 2, 3])[1] == (
        1, "'path' 'b\\x00.wav' holds a NUL character, not a file name")
    assert row_locations(folder, ["a.wav", "b\udcff.wav"], [1, 2])[1] == (
        1, "'path' 'b\\udcff.wav' holds a lone surrogate, not a file name")
    assert row_locations(folder, ["a.wav", None, 7], [1, 2, 3])[1] == (1, "empty 'path'")


def test_tag_strings_split_in_bulk_as_one_by_one():
    from raytag.data.manifest_values import tag_tuple, tag_tuples

    clean = ["rock;pop", "jazz", "a;b;c", ""]
    assert tag_tuples(clean) == [("rock", "pop"), ("jazz",), ("a", "b", "c"), ()]
    # Each of these needs stripping or dropping: the whole list is converted one by one.
    for odd in [" rock", "a;;b", ";a", "a;", "a;a", "x\u3000", "\x1cy", "a;\x85", ";"]:
        texts = [*clean, odd]
        assert tag_tuples(texts) == [tag_tuple(text) for text in texts]


def test_the_garbage_collector_is_as_it_was_after_a_read(tmp_path):
    import gc

    path = write(tmp_path, "m.csv", delimited(ROWS))
    bad = write(tmp_path, "bad.csv", delimited([ROWS[0], ROWS[0]]))
    assert gc.isenabled()
    read_manifest(path)
    with pytest.raises(ManifestError):
        read_manifest(bad)
    assert gc.isenabled()
    gc.disable()
    try:
        read_manifest(path)
        assert not gc.isenabled()
    finally:
        gc.enable()


@pytest.mark.parametrize("as_arrow", [False, True])
def test_convert_column_converts_each_distinct_value_and_names_the_first_refused_row(as_arrow):
    from raytag.data.manifest_text import Columns
    from raytag.data.manifest_values import convert_column, split_value

    def table(values):
        return Columns(["split"], range(len(values)), {"split": pa.chunked_array([values]) if as_arrow else values})

    assert convert_column(table(["train", " test ", "train"]), "split", split_value) == (["train", "test", "train"], None)
    assert convert_column(table(["train", "tset", "valid", "trian"]), "split", split_value)[1] == (
        1, "unknown split 'tset'; expected one of train, valid, test, unlabeled")
    assert convert_column(table([]), "split", split_value) == ([], None)
