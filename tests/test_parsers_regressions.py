"""Plain regression tests of the parser bugs the property-based tests (tests/test_parsers_*.py)
found: each input once raised another exception than raytag's own InputError."""

from __future__ import annotations

import pytest

from raytag.data.manifest import ManifestError, read_labels, read_manifest, read_paths

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
