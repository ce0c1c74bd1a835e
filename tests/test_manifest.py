"""Manifest parsing and validation: every error names the problem before Ray starts."""

import json
from pathlib import Path

import numpy as np
import pytest

from raytag.data.manifest import ManifestError, multi_hot, read_labels, read_manifest


def write(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(text)
    return path


def test_csv_manifest_resolves_paths_and_vocabulary(tmp_path):
    path = write(
        tmp_path,
        "m.csv",
        "path,tags,split,verified,artist\n"
        "a.wav,rock;guitar,train,true,x\n"
        "/abs/b.wav,,unlabeled,,\n"
        "sub/c.wav,jazz,test,false,y\n",
    )
    m = read_manifest(path)
    assert m.vocabulary == ("guitar", "jazz", "rock")
    a, b, c = m.tracks
    assert a.path == str(tmp_path / "a.wav") and a.tags == ("rock", "guitar") and a.verified
    assert b.path == "/abs/b.wav" and b.tags == () and b.split == "unlabeled" and not b.verified
    assert c.path == str(tmp_path / "sub" / "c.wav") and c.artist == "y"
    assert m.counts() == {"train": 1, "valid": 0, "test": 1, "unlabeled": 1}
    np.testing.assert_array_equal(m.label_matrix([a, c]), [[1, 0, 1], [0, 1, 0]])


def test_tsv_and_jsonl(tmp_path):
    tsv = write(tmp_path, "m.tsv", "path\ttags\tsplit\na.wav\tpop\tvalid\n")
    assert read_manifest(tsv).tracks[0].split == "valid"
    rows = [{"path": "a.wav", "tags": ["pop", "sad"], "split": "train", "verified": True}]
    jsonl = write(tmp_path, "m.jsonl", "\n".join(json.dumps(r) for r in rows) + "\n")
    track = read_manifest(jsonl).tracks[0]
    assert track.tags == ("pop", "sad") and track.verified


def test_given_vocabulary_drops_and_counts_other_tags(tmp_path):
    path = write(tmp_path, "m.csv", "path,tags,split\na.wav,rock;polka,train\nb.wav,polka,train\n")
    m = read_manifest(path, vocabulary=["rock", "jazz"])
    assert m.vocabulary == ("rock", "jazz")
    assert m.tracks[0].tags == ("rock",) and m.tracks[1].tags == ()
    assert m.dropped_tags == 2


@pytest.mark.parametrize(
    "text, message",
    [
        ("path,split\na.wav,train\n", "missing column.*tags"),
        ("path,tags,split\na.wav,x,training\n", r"m.csv:2: unknown split 'training'"),
        ("path,tags,split\na.wav,x,train\na.wav,y,test\n", r"m.csv:3: duplicate path 'a.wav' \(first on line 2\)"),
        ("path,tags,split\n,x,train\n", "empty 'path'"),
        ("path,tags,split,verified\na.wav,x,train,maybe\n", "'verified' must be true or false"),
        ("path,tags,split\n", "no rows"),
        ("path,tags,split\na.wav,,unlabeled\n", "no tags found"),
    ],
)
def test_invalid_manifests_name_the_problem(tmp_path, text, message):
    with pytest.raises(ManifestError, match=message):
        read_manifest(write(tmp_path, "m.csv", text))


def test_missing_file_and_unknown_format(tmp_path):
    with pytest.raises(ManifestError, match="manifest not found"):
        read_manifest(tmp_path / "nope.csv")
    with pytest.raises(ManifestError, match="unsupported manifest format '.xlsx'"):
        read_manifest(write(tmp_path, "m.xlsx", "x"))
    with pytest.raises(ManifestError, match=r"m.jsonl:1: not valid JSON"):
        read_manifest(write(tmp_path, "m.jsonl", "{oops\n"))


def test_read_labels_and_multi_hot(tmp_path):
    path = write(tmp_path, "clean.csv", "path,tags\na.wav,rock;jazz\nb.wav,\n")
    labels = read_labels(path)
    assert labels == {str(tmp_path / "a.wav"): ("rock", "jazz"), str(tmp_path / "b.wav"): ()}
    np.testing.assert_array_equal(multi_hot(labels.values(), ["jazz", "rock"]), [[1, 1], [0, 0]])


def test_a_row_with_more_fields_than_the_header_is_an_error(tmp_path):
    # MTG-Jamendo style: the second tag sits in an extra tab-separated field.
    path = write(tmp_path, "m.tsv", "path\ttags\tsplit\na.wav\trock\ttrain\nb.wav\tgenre---rock\ttrain\tinstrument---piano\n")
    with pytest.raises(ManifestError, match=r"m.tsv:3: 4 fields, more than the header's 3 \(path, tags, split\)"):
        read_manifest(path)
    with pytest.raises(ManifestError, match=r"clean.csv:2: 3 fields, more than"):
        read_labels(write(tmp_path, "clean.csv", "path,tags\na.wav,rock,jazz\n"))


def test_a_row_with_fewer_fields_than_the_header_is_an_error(tmp_path):
    path = write(tmp_path, "m.csv", "path,tags,split,artist\na.wav,rock,train,x\nb.wav,jazz,test\n")
    with pytest.raises(ManifestError, match=r"m.csv:3: 3 fields, fewer than the header's 4"):
        read_manifest(path)


def test_crlf_line_ends_byte_order_mark_and_quoted_fields(tmp_path):
    path = tmp_path / "m.csv"
    path.write_bytes(
        "\ufeffpath,tags,split,verified\r\n"
        'a.wav,"rock;jazz",train,true\r\n'
        "\r\n"
        '"b,c.wav",pop,valid,false\r\n'.encode("utf-8")
    )
    m = read_manifest(path)
    assert [t.path for t in m.tracks] == [str(tmp_path / "a.wav"), str(tmp_path / "b,c.wav")]
    assert m.tracks[0].tags == ("rock", "jazz") and m.tracks[0].verified and m.tracks[1].split == "valid"
    # Line numbers still count physical lines with CRLF ends (the blank line 3 included).
    path.write_bytes(b"path,tags,split\r\na.wav,x,train\r\n\r\nb.wav,y,train,extra\r\n")
    with pytest.raises(ManifestError, match=r"m.csv:4: 4 fields"):
        read_manifest(path)


def test_one_writer_knows_the_manifest_columns():
    """Corpora, synth and verify write through data/manifest.py; no other module spells the
    column tuple (issue 24 item 5)."""
    import raytag

    package = Path(raytag.__file__).parent
    spelled = sorted(str(p.relative_to(package)) for p in package.rglob("*.py")
                     if '"path", "tags", "split"' in p.read_text())
    assert spelled == ["data/manifest.py"]


def test_write_labels_reads_back_before_it_is_in_place(tmp_path):
    from raytag.data.manifest import label_row, track_row, write_labels

    assert track_row("a.wav", ("x", "y"), "train", True, None) == {
        "path": "a.wav", "tags": "x;y", "split": "train", "verified": "true", "artist": ""}
    labels = write_labels(tmp_path / "clean.csv", [label_row("a.wav", ("x",)), label_row("b.wav", ())])
    assert labels == {str(tmp_path / "a.wav"): ("x",), str(tmp_path / "b.wav"): ()}
    assert (tmp_path / "clean.csv").read_text() == "path,tags\na.wav,x\nb.wav,\n"
    with pytest.raises(ManifestError, match=r"\.clean2\.csv\.partial\.csv:3: duplicate path 'a.wav' \(first on line 2\)"):
        write_labels(tmp_path / "clean2.csv", [label_row("a.wav", ("x",)), label_row("a.wav", ("y",))])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["clean.csv"]  # nothing else left behind


def test_errors_name_their_line_in_every_format(tmp_path):
    rows = ["path,tags,split"] + [f"a{i}.wav,x,train" for i in range(5)]
    (tmp_path / "m.csv").write_text("\n".join(rows[:4] + ["a9.wav,x,trian"] + rows[4:]) + "\n")
    with pytest.raises(ManifestError, match=r"m.csv:5: unknown split 'trian'"):
        read_manifest(tmp_path / "m.csv")
    # A quoted field over two lines: the rows after it keep their own line numbers.
    (tmp_path / "q.csv").write_text('path,tags,split\n"a.wav","x;\ny",train\nb.wav,x,valid\nc.wav,x,tset\n')
    with pytest.raises(ManifestError, match=r"q.csv:5: unknown split 'tset'"):
        read_manifest(tmp_path / "q.csv")
    (tmp_path / "m.tsv").write_text("path\ttags\tsplit\na.wav\tx\ttrain\n\nb.wav\tx\n")
    with pytest.raises(ManifestError, match=r"m.tsv:4: 2 fields, fewer than the header's 3"):
        read_manifest(tmp_path / "m.tsv")
    (tmp_path / "m.jsonl").write_text('{"path": "a.wav", "tags": "x", "split": "train"}\n\n{"path": "a.wav", '
                                      '"tags": ["x"], "split": "test"}\n')
    with pytest.raises(ManifestError, match=r"m.jsonl:3: duplicate path 'a.wav' \(first on line 1\)"):
        read_manifest(tmp_path / "m.jsonl")
    (tmp_path / "u.csv").write_bytes(b"path,tags,split\na.wav,x,train\nb\xff.wav,x,train\n")
    with pytest.raises(ManifestError, match=r"u.csv:3: not UTF-8 text"):
        read_manifest(tmp_path / "u.csv")


def test_a_linked_folder_is_resolved_and_a_linked_file_keeps_its_name(tmp_path):
    (tmp_path / "real").mkdir()
    (tmp_path / "real" / "a.wav").write_bytes(b"")
    (tmp_path / "linked").symlink_to(tmp_path / "real")
    (tmp_path / "real" / "b.wav").symlink_to(tmp_path / "real" / "a.wav")
    (tmp_path / "m.csv").write_text("path,tags,split\nlinked/a.wav,x,train\nreal/../real/b.wav,x,train\n")
    assert [t.path for t in read_manifest(tmp_path / "m.csv").tracks] == [
        str(tmp_path / "real" / "a.wav"), str(tmp_path / "real" / "b.wav")]


@pytest.mark.parametrize("name", ["u.csv", "u.tsv", "u.jsonl"])
@pytest.mark.parametrize("bom", [b"", b"\xef\xbb\xbf"])
def test_a_byte_that_is_not_utf8_is_named_by_its_offset_in_the_file_and_its_line(tmp_path, name, bom):
    # The bad byte opens line 3: an offset counted after the byte-order mark (3 bytes short)
    # put it on line 2.
    if name.endswith(".jsonl"):
        good = '{"path": "a.wav", "tags": "x", "split": "train"}\n'
        data = bom + (good * 2).encode() + b'\xff{"path": "b.wav"}\n'
    else:
        sep = "\t" if name.endswith(".tsv") else ","
        data = bom + sep.join(["path", "tags", "split"]).encode() + b"\n" + sep.join(["a.wav", "x", "train"]).encode() \
            + b"\n\xffb.wav" + sep.encode() + b"x" + sep.encode() + b"train\n"
    offset = data.index(b"\xff")
    (tmp_path / name).write_bytes(data)
    with pytest.raises(ManifestError, match=rf"{name}:3: not UTF-8 text \(invalid start byte at byte {offset}\)$"):
        read_manifest(tmp_path / name)
