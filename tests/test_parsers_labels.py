"""Property-based tests of label files: the verification decisions CSV
(raytag.verify.decisions) and an exported model's description with its per-tag thresholds
(raytag.models.export: ``model.json``, read by predict, evaluation and the MLflow model). Any
file either reads or raises raytag's own error naming it; never another exception or a hang.
Clean-label files are read by the manifest reader (tests/test_parsers_manifest.py).
"""

from __future__ import annotations

import csv
import io
import json

from hypothesis import given
from hypothesis import strategies as st
from parser_properties import PROFILE, damaged, edit_columns, odd_text, parses_or_refuses
from test_parsers_manifest import JSON_VALUES

from raytag.models.export import (
    ExportError,
    read_exported,
    read_thresholds,
    recorded_scoring,
    thresholds_labels,
)
from raytag.verify.decisions import DECISION_COLUMNS, decode_decisions, parse_decisions

VOCABULARY = ("rock", "pop", "piano", "voice")


@st.composite
def decisions_file(draw) -> bytes:
    """A decisions CSV as the verification page writes it (header, one row per track), with
    columns missing, repeated or unknown, odd values, rows a field short or long; then damage."""
    columns = list(DECISION_COLUMNS[: draw(st.integers(3, 5))])
    edit = draw(st.sampled_from(["none", "none", "drop", "repeat", "unknown"]))
    edit_columns(draw, columns, edit)
    values = {
        "path": st.one_of(st.sampled_from(["/a/b.wav", "c.mp3", "s3://x/y.ogg"]), odd_text()),
        "tags": st.one_of(st.lists(st.sampled_from(VOCABULARY), max_size=3).map(";".join), odd_text()),
        "decided": st.one_of(st.sampled_from(["true", "false", "1", "0", "yes", "no", " TRUE "]), odd_text()),
        "note": odd_text(40),
        "shown_tags": st.one_of(st.lists(st.sampled_from(VOCABULARY), max_size=3).map(";".join), odd_text()),
    }
    rows = []
    for _ in range(draw(st.integers(0, 5))):
        fields = [draw(values.get(c, odd_text())) for c in columns]
        shape = draw(st.sampled_from(["ok"] * 6 + ["short", "long"]))
        if shape == "short":
            fields.pop()
        elif shape == "long":
            fields.append(draw(odd_text()))
        rows.append(fields)
    buffer = io.StringIO(newline="")
    writer = csv.writer(buffer, lineterminator=draw(st.sampled_from(["\n", "\r\n"])))
    writer.writerow(columns)
    writer.writerows(rows)
    bom = "\ufeff" if draw(st.booleans()) else ""
    return draw(damaged((bom + buffer.getvalue()).encode("utf-8")))


@PROFILE
@given(data=decisions_file())
def test_any_decisions_file_reads_or_is_refused(data):
    source = "decisions.csv"
    parses_or_refuses("decisions-csv", lambda: parse_decisions(decode_decisions(data, source=source), source=source,
                                                               vocabulary=VOCABULARY), [source])


GOOD_MODEL = {
    "format": 2, "name": "mtt-tiny", "args": {}, "tags": list(VOCABULARY), "head": "sigmoid", "sample_rate": 16000,
    "crop_samples": 16000, "thresholds": {"rock": 0.4, "pop": 0.55}, "thresholds_labels": {"labels": "noisy",
                                                                                          "tracks": 12},
    "scoring": {"max_chunks": 8}, "best_epoch": 3,
}
NUMBERS = st.one_of(st.floats(), st.integers(), st.integers(min_value=10**300, max_value=10**400), st.booleans(),
                    st.none(), st.text(max_size=4))


@st.composite
def model_description(draw) -> bytes:
    """A ``model.json``: the real format with entries replaced by any JSON value (thresholds
    of any number, tag lists of any kind), removed, or the whole file another JSON value;
    then byte-level damage."""
    meta = json.loads(json.dumps(GOOD_MODEL))
    for _ in range(draw(st.integers(0, 3))):
        if not isinstance(meta, dict):
            break
        key = draw(st.sampled_from(sorted(GOOD_MODEL)))
        action = draw(st.sampled_from(["value", "remove", "threshold", "whole"]))
        if action == "value":
            meta[key] = draw(JSON_VALUES)
        elif action == "remove":
            meta.pop(key, None)
        elif action == "threshold":
            meta["thresholds"] = draw(st.dictionaries(st.one_of(st.sampled_from(VOCABULARY), odd_text()), NUMBERS,
                                                      max_size=3))
        else:
            meta = draw(JSON_VALUES)
    text = json.dumps(meta, indent=draw(st.sampled_from([None, 1])))
    if draw(st.integers(0, 5)) == 0:
        text = "[" * draw(st.sampled_from([10, 100_000])) + text
    return draw(damaged(text.encode("utf-8", "surrogatepass")))


@PROFILE
@given(data=model_description())
def test_any_model_description_reads_or_is_refused(tmp_path, data):
    (tmp_path / "model.json").write_bytes(data)
    (tmp_path / "model.pt").write_bytes(b"weights are not read here")
    names = [str(tmp_path / "model.json"), "teacher"]
    model = parses_or_refuses("model-json", lambda: read_exported(tmp_path, key="teacher"), names)
    if isinstance(model, ExportError):
        return
    parses_or_refuses("model-json", lambda: read_thresholds(model), names)
    parses_or_refuses("model-json", lambda: recorded_scoring(model), names)
    parses_or_refuses("model-json", lambda: thresholds_labels(model), names)
