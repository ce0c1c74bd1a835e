"""Decisions from a verification page: parsing (raytag.verify.decisions), applying them to a
manifest's rows (raytag.verify.apply) and writing the new manifest (raytag.data.manifest)."""

from __future__ import annotations

import json

import pytest

from raytag.data.manifest import ManifestError, read_manifest, read_manifest_rows, write_manifest
from raytag.verify.apply import apply_decisions
from raytag.verify.decisions import DecisionsError, parse_decisions

VOCABULARY = ("bass", "guitar", "piano", "voice")
HEADER = "path,tags,decided,note,shown_tags\n"


def parse(text: str):
    return parse_decisions(text, source="d.csv", vocabulary=VOCABULARY)


def test_a_page_export_parses_with_quoted_notes_crlf_and_a_bom():
    text = ("\ufeff" + HEADER + '/a.wav,piano;voice,true,"sounds live, ""raw""\nsecond line",piano\r\n'
            "/b.wav,,false,,guitar\r\n\n")
    first, second = parse(text)
    assert (first.path, first.tags, first.decided, first.shown_tags, first.line) == (
        "/a.wav", ("piano", "voice"), True, ("piano",), 2)
    assert first.note == 'sounds live, "raw"\nsecond line'
    assert (second.tags, second.decided, second.line) == ((), False, 4)  # the note spanned line 3
    # shown_tags is optional
    assert parse("path,tags,decided\n/a.wav,bass,yes\n")[0].shown_tags is None


@pytest.mark.parametrize("text, message", [
    ("path,tags\n/a.wav,bass\n", "d.csv:1: the header must name"),
    (HEADER.replace("note", "comment"), "d.csv:1: the header must name"),
    (HEADER, "no decisions"),
    (HEADER + "/a.wav,bass,true,,\n/b.wav,bass,maybe,,\n", "d.csv:3: 'decided' must be true or false; got 'maybe'"),
    (HEADER + "/a.wav,drums,true,,\n", "d.csv:2: tag 'drums' is not in the job's vocabulary"),
    (HEADER + "/a.wav,bass,true,,drums\n", "d.csv:2: tag 'drums'"),
    (HEADER + "/a.wav,bass,true\n", "d.csv:2: 3 fields, the header has 5"),
    (HEADER + ",bass,true,,\n", "d.csv:2: empty path"),
    (HEADER + "/a.wav,bass,true,,\n/b.wav,,false,,\n/a.wav,,true,,\n", "d.csv:4: /a.wav again (first on line 2)"),
])
def test_a_bad_decisions_file_names_its_line(text, message):
    with pytest.raises(DecisionsError, match=message.replace("(", r"\(").replace(")", r"\)")):
        parse(text)


def corpus(tmp_path, text: str, name: str = "manifest.csv"):
    (tmp_path / "audio").mkdir(exist_ok=True)
    path = tmp_path / name
    path.write_text(text)
    return path


MANIFEST = (
    "path,tags,split,artist,extra\n"
    "audio/a.wav,piano;guitar;harp,valid,x,1\n"
    "audio/b.wav,voice,valid,y,2\n"
    "audio/c.wav,,train,z,3\n"
    "audio/d.wav,bass,valid,,4\n"
)


def applied(tmp_path, decisions: str, *, manifest: str = MANIFEST, vocabulary=VOCABULARY, **kwargs):
    source = corpus(tmp_path, manifest)
    tracks = read_manifest(source, vocabulary).tracks
    columns, rows = read_manifest_rows(source)
    parsed = parse_decisions(decisions.format(root=tmp_path), source="d.csv", vocabulary=vocabulary)
    return columns, rows, apply_decisions(columns, rows, tracks, parsed, vocabulary=vocabulary, source="d.csv",
                                          **kwargs)


def test_checked_rows_get_the_new_tags_and_verified_and_nothing_else_changes(tmp_path):
    decisions = (HEADER + "{root}/audio/a.wav,piano;voice,true,,piano;guitar\n"
                 "{root}/audio/b.wav,bass,false,,voice\n"
                 "{root}/audio/c.wav,,true,,\n")
    columns, rows, result = applied(tmp_path, decisions)
    assert result.columns == columns + ["verified"]
    new = result.rows
    # a: guitar removed, voice added, harp (outside the job's vocabulary, never shown) kept.
    assert new[0] == {**rows[0], "tags": "piano;harp;voice", "verified": "true"}
    assert new[1] == {**rows[1], "verified": "false"}  # not checked: as it was
    assert new[2] == {**rows[2], "verified": "true"}  # checked, rightly untagged
    assert new[3] == {**rows[3], "verified": "false"}  # no decision
    assert (result.verified, result.undecided, result.changed, result.reverified) == (2, 1, 1, 0)
    assert dict(result.added) == {"voice": 1} and dict(result.removed) == {"guitar": 1}
    assert result.outside_vocabulary == 1
    report = result.format()
    assert "3 decisions: 2 checked, now verified (0 of them verified before); 1 not checked" in report
    assert "1 tag outside the job's vocabulary kept" in report
    assert "guitar" in report and "voice" in report


def test_an_unknown_track_or_a_manifest_changed_since_the_page_is_an_error(tmp_path):
    with pytest.raises(DecisionsError, match=r"d.csv:2: no track .*/audio/zz.wav in the manifest"):
        applied(tmp_path, HEADER + "{root}/audio/zz.wav,bass,true,,\n")
    with pytest.raises(DecisionsError, match=r"d.csv:2: the manifest's tags of .*a.wav are piano;guitar but the page "
                                             r"showed voice: the manifest changed"):
        applied(tmp_path, HEADER + "{root}/audio/a.wav,bass,true,,voice\n")


def test_relative_paths_become_absolute_only_when_asked_and_jsonl_keeps_its_types(tmp_path):
    _, rows, result = applied(tmp_path, HEADER + "{root}/audio/b.wav,voice,true,,voice\n", absolute_paths=True)
    assert [r["path"] for r in result.rows] == [str(tmp_path / "audio" / f"{n}.wav") for n in "abcd"]
    assert result.absolute_paths == 4 and "4 relative paths written as absolute" in result.format()
    lines = [{"path": "audio/a.wav", "tags": ["piano"], "split": "valid", "verified": False},
             {"path": str(tmp_path / "audio/b.wav"), "tags": ["voice"], "split": "valid", "verified": False}]
    jsonl = corpus(tmp_path, "".join(json.dumps(r) + "\n" for r in lines), "m.jsonl")
    columns, rows = read_manifest_rows(jsonl)
    parsed = parse(HEADER + f"{tmp_path}/audio/a.wav,bass;piano,true,,piano\n")
    result = apply_decisions(columns, rows, read_manifest(jsonl, VOCABULARY).tracks, parsed, vocabulary=VOCABULARY,
                             source="d.csv", absolute_paths=True)
    assert result.rows[0] == {**lines[0], "path": str(tmp_path / "audio/a.wav"), "tags": ["piano", "bass"],
                              "verified": True}
    assert result.rows[1] == lines[1] and result.absolute_paths == 1  # an absolute path stays as written


def test_the_writer_checks_the_manifest_before_it_is_in_place(tmp_path):
    source = corpus(tmp_path, MANIFEST)
    columns, rows = read_manifest_rows(source)
    out = tmp_path / "new.csv"
    written = write_manifest(out, columns, rows)
    assert read_manifest_rows(out) == (columns, rows)
    assert [t.path for t in written.tracks] == [t.path for t in read_manifest(source).tracks]
    with pytest.raises(ManifestError, match="exists; pass --overwrite"):
        write_manifest(out, columns, rows)
    bad = [dict(rows[0]), dict(rows[0])]  # a duplicate path does not read back
    with pytest.raises(ManifestError, match="duplicate path"):
        write_manifest(tmp_path / "bad.csv", columns, bad)
    assert not (tmp_path / "bad.csv").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["audio", "manifest.csv", "new.csv"]  # no partial file left
    tsv = write_manifest(tmp_path / "new.tsv", columns, rows)
    assert tsv.tracks == written.tracks
    with pytest.raises(ManifestError, match="written as .csv, .tsv or .jsonl"):
        write_manifest(tmp_path / "new.txt", columns, rows)
