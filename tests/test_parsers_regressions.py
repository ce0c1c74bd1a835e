"""Plain regression tests of the parser bugs the property-based tests (tests/test_parsers_*.py)
found: each input once raised another exception than raytag's own InputError."""

from __future__ import annotations

import pytest
from parser_properties import time_bound

from raytag.config import ConfigError, apply_override, load_job
from raytag.data.corpora import CorpusError
from raytag.data.corpora.fsd_kaggle2019 import read_label_csv
from raytag.data.corpora.msd import read_artists, read_tag_list
from raytag.data.corpora.safe_pickle import load_pickle
from raytag.data.manifest import ManifestError, read_labels, read_manifest, read_paths
from raytag.models.export import ExportError, read_exported
from raytag.search_space import read_space
from raytag.thresholds import check_thresholds
from raytag.verify.decisions import DecisionsError, decode_decisions

ROW = b'{"path": "a.wav", "tags": "rock", "split": "train"}\n'


def test_a_jsonl_manifest_that_is_not_utf8_names_the_file(tmp_path):
    path = tmp_path / "m.jsonl"
    path.write_bytes(ROW + b'{"path": "b\xff.wav", "tags": "rock", "split": "train"}\n')
    with pytest.raises(ManifestError, match=r"m\.jsonl:2: not UTF-8 text"):
        read_manifest(path)


def test_a_jsonl_row_nested_too_deeply_names_file_and_line(tmp_path):
    path = tmp_path / "m.jsonl"
    path.write_bytes(ROW + b"[" * 100_000 + b"]" * 100_000 + b"\n")
    with pytest.raises(ManifestError, match=r"m\.jsonl:2: JSON nested too deeply"):
        read_manifest(path)


@pytest.mark.parametrize("name,data", [
    ("m.jsonl", b'{"path": "a\\u0000.wav", "tags": "rock", "split": "train"}\n'),
    ("m.jsonl", b'{"path": "a\\ud800.wav", "tags": "rock", "split": "train"}\n'),
    ("m.csv", b'path,tags,split\n"a\x00.wav",rock,train\n'),
])
@pytest.mark.parametrize("reader", [read_manifest, read_labels, read_paths])
def test_a_path_that_is_no_file_name_names_file_and_line(tmp_path, name, data, reader):
    path = tmp_path / name
    path.write_bytes(data)
    with pytest.raises(ManifestError, match=rf"{name}:\d+: 'path' .* not a file name"):
        reader(path)


JOB = "name: j\ndata: {manifest: m.csv}\nstages: [{name: s}]\n"


def write_job(tmp_path, text: str | bytes):
    path = tmp_path / "job.yaml"
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    return path


def test_a_job_file_that_is_not_utf8_names_the_file(tmp_path):
    with pytest.raises(ConfigError, match=r"job\.yaml: not UTF-8 text"):
        load_job(write_job(tmp_path, b"name: j\n\xff: 1\n"))


def test_yaml_nested_too_deeply_names_the_file_or_key(tmp_path):
    with pytest.raises(ConfigError, match=r"job\.yaml: YAML nested too deeply"):
        load_job(write_job(tmp_path, "x: " + "[" * 5000 + "]" * 5000 + "\n"))
    with pytest.raises(ConfigError, match=r"^train\.lr: YAML nested too deeply"):
        apply_override({}, "train.lr=" + "[" * 5000)


def test_an_alias_inside_its_own_anchor_names_the_key(tmp_path):
    with pytest.raises(ConfigError, match=r"job\.yaml: model\.args\.x\.0 contains itself"):
        load_job(write_job(tmp_path, JOB + "model: {args: {x: &a [*a]}}\n"))
    with pytest.raises(ConfigError, match=r"^model\.args\.x: 0 contains itself"):
        apply_override({}, "model.args.x=&a [*a]")


def test_nested_aliases_that_expand_to_a_billion_values_are_refused_at_once(tmp_path):
    """They used to make load_job copy the expansion (model_dump of every stage): a hang."""
    laughs = "".join(f"  l{i}: &l{i} [" + ", ".join([f"*l{i - 1}" if i else "1"] * 10) + "]\n" for i in range(9))
    with time_bound(10):
        with pytest.raises(ConfigError, match=r"job\.yaml: model\.args\.\S+ expands to more than 100,000 values"):
            load_job(write_job(tmp_path, JOB + "model:\n args:\n" + laughs.replace("  ", "   ")))


@pytest.mark.parametrize("text,message", [
    ("params: {train.lr: {uniform: [0.1, 1]}}\n1: 2\n", r"space\.yaml: unknown key\(s\) 1;"),
    ("params: {train.lr: {uniform: [0.1, 1]}}\nmetric: 5\n", r"space\.yaml: metric must be a name, got 5"),
    ("params: {train.lr: {uniform: [0.1, 1]}}\nstage: [a]\n", r"space\.yaml: stage must be a name"),
    ("params: {train.lr: {uniform: [0.1, .inf]}}\n", r"params\.train\.lr: uniform takes finite numbers"),
    ("params: {train.lr: {quniform: [0, 1.0e+300, 1.0e-100]}}\n", r"params\.train\.lr: quniform's q 1e-100 is too small"),
])
def test_search_space_values_that_broke_later_code_name_the_entry(tmp_path, text, message):
    """Each once raised TypeError (sorting an int key with names), AttributeError (a metric
    that is not text, at check time), OverflowError (quantizing past the float range) or let an
    infinite bound through."""
    path = tmp_path / "space.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=message):
        read_space(path)


@pytest.mark.parametrize("text,message", [
    ("[1, 2]", r"JSON object is expected, not list"),
    ("null", r"JSON object is expected, not NoneType"),
    ("[" * 100_000, r"JSON nested too deeply"),
    ('{"name": "mtt-tiny", "args": {}, "tags": ["a"], "sample_rate": 1e999, "crop_samples": 1}', r"OverflowError"),
])
def test_a_model_description_that_is_no_object_names_the_file(tmp_path, text, message):
    """Each once raised AttributeError ('list' has no 'pop'), RecursionError or OverflowError
    (int of an infinite sample rate)."""
    (tmp_path / "model.json").write_text(text)
    (tmp_path / "model.pt").write_bytes(b"")
    with pytest.raises(ExportError, match=rf"teacher: .*model\.json is not a raytag model description .*{message}"):
        read_exported(tmp_path, key="teacher")


def test_a_threshold_past_the_float_range_names_the_tag():
    """It once raised OverflowError (math.isfinite of a 400-digit integer)."""
    with pytest.raises(ValueError, match=r"threshold of 'rock' must be a finite number"):
        check_thresholds({"rock": 10**400}, ["rock"])


def test_a_decisions_file_that_is_not_utf8_names_file_and_line():
    """``raytag verify --apply`` once raised UnicodeDecodeError reading it."""
    with pytest.raises(DecisionsError, match=r"^d\.csv:2: not UTF-8 text"):
        decode_decisions(b"path,tags,decided\n/a.wav,\xff,true\n", source="d.csv")


def test_a_pickle_storing_to_a_huge_memo_index_is_read_without_allocating(tmp_path):
    """7 bytes once made the C unpickler size its memo table for a billion entries (gigabytes;
    the process was killed); such a pickle now goes to the pure-Python unpickler (a dict memo).
    Under the hard bound, so old code fails rather than hangs."""
    path = tmp_path / "filtered_list_train.cP"
    path.write_bytes(b"]r\xff\xff\xff\x3f.")
    with time_bound(10):
        assert load_pickle(path) == []  # an empty list, stored under index 2**30 - 1


@pytest.mark.parametrize("name,make", [
    ("50tagList.txt", lambda folder: (folder / "50tagList.txt").write_bytes(b"rock\n\xffpop\n")),
    ("unique_tracks.txt", lambda folder: (folder / "unique_tracks.txt").write_bytes(b"TR<SEP>S<SEP>A<SEP>T\n\xff\n")),
])
def test_msd_text_files_that_are_not_utf8_name_the_file(tmp_path, name, make):
    """They once raised UnicodeDecodeError."""
    make(tmp_path)
    reader = read_tag_list if name == "50tagList.txt" else read_artists
    with pytest.raises(CorpusError, match=rf"{name}(:2)?: not UTF-8 text"):
        reader(tmp_path / name)


def test_an_fsd_label_csv_that_is_not_utf8_names_the_file(tmp_path):
    """It once raised UnicodeDecodeError."""
    path = tmp_path / "train_curated.csv"
    path.write_bytes(b"fname,labels\na.wav,\xffBark\n")
    with pytest.raises(CorpusError, match=r"train_curated\.csv: not UTF-8 text"):
        read_label_csv(path)


@pytest.mark.parametrize("escape", ["\\U7fffffff", "\\UFFFFFFFF"])
def test_a_yaml_escape_past_unicode_names_the_file_or_key(tmp_path, escape):
    """Found by bench/fuzz_parsers.py: PyYAML let chr()'s ValueError / OverflowError out."""
    with pytest.raises(ConfigError, match=r"job\.yaml: not valid YAML"):
        load_job(write_job(tmp_path, f'name: "{escape}"\n'))
    with pytest.raises(ConfigError, match=r"^name: cannot parse value"):
        apply_override({}, f'name="{escape}"')


@pytest.mark.parametrize("tags", ['[["rock"], "pop"]', '"rock"', "[1, 2]"])
def test_model_tags_that_are_not_a_list_of_names_name_the_file(tmp_path, tags):
    """Found by bench/fuzz_parsers.py: list tags made reading the thresholds raise TypeError
    (unhashable); a string was read as one tag per character."""
    (tmp_path / "model.json").write_text('{"name": "mtt-tiny", "args": {}, "tags": ' + tags
                                         + ', "sample_rate": 16000, "crop_samples": 16000, "thresholds": {}}')
    (tmp_path / "model.pt").write_bytes(b"")
    with pytest.raises(ExportError, match=r"model\.json is not a raytag model description .*'tags' must be a list"):
        read_exported(tmp_path, key="teacher")
