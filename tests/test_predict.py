"""``raytag predict`` in one process (no Ray): unreadable files listed with their reason, whole
tracks averaged, thresholds applied when the model has them, MLflow model URIs, file lists."""

from __future__ import annotations

import csv
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from teachers import write_random_tagger

from requirements import needs
from raytag.audio.io import chunk_starts, load_crop, source_frames
from raytag.cli import main
from raytag.predict.loading import load_model
from raytag.predict.workflow import PredictOptions, predict_files
from raytag.data.manifest import ManifestError
from raytag.models.export import read_exported, read_weights
from raytag.predict.inputs import collect_audio
from raytag.predict.outputs import csv_columns, output_format, write_predictions
from raytag.scoring.status import TrackResult, TrackStatus

TAGS = ("piano", "guitar", "voice")
REAL_AUDIO = Path(__file__).resolve().parents[2] / "shared" / "data" / "real-audio"
REAL_FILES = sorted(p.name for p in REAL_AUDIO.glob("*") if p.suffix in (".ogg", ".wav") and p.name != "empty.wav")
needs_real = needs(len(REAL_FILES) >= 4, "shared/data/real-audio not present")


@pytest.fixture(scope="module")
def model(tmp_path_factory) -> Path:
    return write_random_tagger(tmp_path_factory.mktemp("model") / "tagger", tags=TAGS)


@pytest.fixture(scope="module")
def audio_folder(tmp_path_factory) -> Path:
    """The real recordings (one in a sub-folder), an empty WAV, a corrupt one and a text file."""
    folder = tmp_path_factory.mktemp("audio")
    (folder / "sub").mkdir()
    for name in REAL_FILES:
        shutil.copy(REAL_AUDIO / name, placed(folder, name))
    shutil.copy(REAL_AUDIO / "empty.wav", folder / "empty.wav")
    (folder / "corrupt.wav").write_bytes(b"RIFF\x24\x00\x00\x00WAVEfmt " + bytes(range(200)))
    (folder / "notes.txt").write_text("not audio")
    return folder


def placed(folder: Path, name: str) -> Path:
    """Where :func:`audio_folder` put the real recording ``name``."""
    return folder / ("sub" if name.startswith("kevin") else "") / name


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


@needs_real
def test_a_folder_with_corrupt_and_empty_files_lists_them_and_tags_the_rest(model, audio_folder, tmp_path, caplog):
    caplog.set_level("INFO", logger="raytag")
    out = tmp_path / "tags.jsonl"
    missing = tmp_path / "gone.ogg"
    code = main(["predict", str(model), str(audio_folder), str(missing), "-o", str(out), "--max-chunks", "2",
                 "--no-progress"])
    assert code == 0
    rows = {Path(r["path"]).name: r for r in read_jsonl(out)}
    assert set(rows) == {*REAL_FILES, "empty.wav", "corrupt.wav", "gone.ogg"}  # notes.txt is not audio
    assert "no audio frames" in rows["empty.wav"]["reason"]
    assert "cannot read audio" in rows["corrupt.wav"]["reason"]
    assert "No such file" in rows["gone.ogg"]["reason"]
    for name in ("empty.wav", "corrupt.wav", "gone.ogg"):
        assert rows[name]["status"] == "unreadable"
        assert rows[name]["probabilities"] is None and rows[name]["top"] == []
    for name in REAL_FILES:
        row = rows[name]
        assert row["status"] == "ok" and row["reason"] == "" and set(row["probabilities"]) == set(TAGS)
        top = [item["probability"] for item in row["top"]]
        assert len(top) == 3 and top == sorted(top, reverse=True)
        assert "tags" not in row  # the model has no thresholds: top-k only
    assert "no per-tag thresholds" in caplog.text
    assert f"tagged {len(REAL_FILES)} of {len(REAL_FILES) + 3} files" in caplog.text


def test_a_whole_track_is_the_mean_of_the_chunks_that_cover_it(model, tmp_path):
    rng = np.random.default_rng(0)
    path = tmp_path / "long.wav"
    sf.write(path, rng.uniform(-0.5, 0.5, int(22050 * 3.4)).astype(np.float32), 22050)
    loaded = load_model(str(model))
    result = predict_files(loaded, [str(path)], PredictOptions(progress=False))
    (prediction,) = result.predictions
    exported = read_exported(model)
    network = exported.recipe.build()
    network.load_state_dict(read_weights(model))
    network.eval()
    crop = exported.crop_samples
    starts = chunk_starts(int(22050 * 3.4), source_frames(crop, 22050, 16000), None)
    assert len(starts) == 4  # 3.4 s in 1 s chunks, the last ending at the end of the track
    crops = np.stack([load_crop(str(path), s, crop, 16000, 22050) for s in starts])
    with torch.no_grad():
        expected = torch.sigmoid(network(torch.from_numpy(crops))).mean(dim=0).numpy()
    np.testing.assert_allclose(prediction.probabilities, expected, atol=1e-6)
    capped = predict_files(loaded, [str(path)], PredictOptions(max_chunks=1, progress=False)).predictions[0]
    assert not np.allclose(capped.probabilities, expected, atol=1e-4)


@needs_real
def test_thresholds_saved_with_the_model_pick_the_tags(audio_folder, tmp_path):
    files = [str(placed(audio_folder, name)) for name in REAL_FILES[:4]]
    plain = predict_files(load_model(str(write_random_tagger(tmp_path / "m0", tags=TAGS))), files,
                          PredictOptions(max_chunks=1, progress=False))
    probabilities = np.array([p.probabilities for p in plain.predictions])
    # piano: between the scores, so some files get it; voice: above them all; guitar: none.
    thresholds = {"piano": float(np.median(probabilities[:, 0])), "voice": float(probabilities[:, 2].max() + 0.01)}
    model = write_random_tagger(tmp_path / "m1", tags=TAGS, thresholds=thresholds)
    out = tmp_path / "tags.csv"
    assert main(["predict", str(model), *files, "-o", str(out), "--max-chunks", "1", "--top-k", "2", "--no-progress"]) == 0
    with out.open() as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == ["path", "status", "reason", "top_tags", "top_probabilities", "tags", *TAGS]
    for row, p in zip(rows, probabilities):
        assert row["tags"] == ("piano" if p[0] >= thresholds["piano"] else "")
        assert len(row["top_tags"].split(";")) == 2 and len(row["top_probabilities"].split(";")) == 2
        np.testing.assert_allclose([float(row[t]) for t in TAGS], p, atol=1e-6)
    assert sum(row["tags"] == "piano" for row in rows) == 2


@needs_real
def test_an_mlflow_model_uri_predicts_like_the_exported_folder(model, audio_folder, tmp_path, monkeypatch):
    from mlflow.tracking import MlflowClient

    from raytag.tracking.mlflow_model import log_tagger, register_tagger

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = MlflowClient(uri)
    run = client.create_run(client.create_experiment("predict", artifact_location=str(tmp_path / "artifacts")))
    logged = log_tagger(tracking_uri=uri, run_id=run.info.run_id, model_dir=model)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)  # only for registering; predict is given --tracking-uri
    register_tagger(tracking_uri=uri, logged=logged, registered_name="tagger")
    monkeypatch.delenv("MLFLOW_TRACKING_URI")
    monkeypatch.chdir(tmp_path)
    files = [str(placed(audio_folder, REAL_FILES[0])), str(audio_folder / "corrupt.wav")]
    outputs = {}
    for name, source in (("folder", str(model)), ("logged", logged.uri), ("registered", "models:/tagger/1")):
        outputs[name] = tmp_path / f"{name}.jsonl"
        args = ["predict", source, *files, "-o", str(outputs[name]), "--max-chunks", "2", "--no-progress"]
        assert main([*args, "--tracking-uri", uri]) == 0
    assert read_jsonl(outputs["logged"]) == read_jsonl(outputs["folder"]) == read_jsonl(outputs["registered"])
    assert main(["predict", "models:/no-such-model", *files, "--tracking-uri", uri]) == 2


@needs_real
def test_a_manifest_names_the_files_and_paths_are_relative_to_it(model, audio_folder, tmp_path, capsys):
    (tmp_path / "clips").mkdir()
    (tmp_path / "lists").mkdir()
    shutil.copy(placed(audio_folder, REAL_FILES[1]), tmp_path / "clips" / REAL_FILES[1])
    manifest = tmp_path / "lists" / "list.csv"
    manifest.write_text(f"path,tags,split\n../clips/{REAL_FILES[1]},piano,test\n{audio_folder / 'empty.wav'},,test\n")
    assert main(["predict", str(model), str(manifest), "--max-chunks", "1", "--no-progress"]) == 0
    rows = list(csv.DictReader(capsys.readouterr().out.splitlines()))
    assert [Path(r["path"]).name for r in rows] == [REAL_FILES[1], "empty.wav"]
    assert rows[0]["status"] == "ok" and rows[1]["status"] == "unreadable" and "no audio frames" in rows[1]["reason"]
    bad = tmp_path / "bad.csv"
    bad.write_text("file\nx.wav\n")
    assert main(["predict", str(model), str(bad)]) == 2
    assert "no 'path' column" in capsys.readouterr().err
    assert main(["predict", str(model), str(tmp_path / "nothing-here"), str(audio_folder / "corrupt.wav")]) == 1
    assert main(["predict", str(tmp_path / "no-model"), str(audio_folder)]) == 2


@needs_real
def test_inputs_and_outputs(audio_folder, tmp_path):
    inputs = collect_audio([str(audio_folder), str(audio_folder / "sub"), str(tmp_path)])
    assert len(inputs.paths) == len(REAL_FILES) + 2 and inputs.repeated == 2  # sub/ holds two kevin-* files
    assert inputs.empty_folders == [str(tmp_path)] and all(Path(p).is_absolute() for p in inputs.paths)
    (tmp_path / "dup.jsonl").write_text('{"path": "a.wav"}\n{"path": "a.wav"}\n')
    with pytest.raises(ManifestError, match="dup.jsonl:2: duplicate path"):
        collect_audio([str(tmp_path / "dup.jsonl")])
    assert output_format(None, None) == "csv" and output_format("x.JSONL", None) == "jsonl"
    assert output_format("x.txt", "jsonl") == "jsonl"
    with pytest.raises(ValueError, match="--format"):
        output_format("x.txt", None)
    with pytest.raises(ValueError, match="fixed output columns"):
        csv_columns(["status", "rock"], with_thresholds=False)


def test_csv_and_jsonl_hold_the_same_rows(tmp_path):
    predictions = [TrackResult("/x.wav", TrackStatus.OK, np.array([0.1, 0.7])),
                   TrackResult("/y.wav", TrackStatus.UNREADABLE, reason="empty")]
    with (tmp_path / "o.csv").open("w") as f:
        write_predictions(predictions, f, fmt="csv", tags=["a", "b"], top_k=1, thresholds={"a": 0.05})
    with (tmp_path / "o.jsonl").open("w") as f:
        write_predictions(predictions, f, fmt="jsonl", tags=["a", "b"], top_k=1, thresholds={"a": 0.05})
    assert (tmp_path / "o.csv").read_text().splitlines() == [
        "path,status,reason,top_tags,top_probabilities,tags,a,b",
        "/x.wav,ok,,b,0.700000,a,0.100000,0.700000",
        "/y.wav,unreadable,empty,,,,,",
    ]
    assert read_jsonl(tmp_path / "o.jsonl") == [
        {"path": "/x.wav", "status": "ok", "reason": "", "top": [{"tag": "b", "probability": 0.7}], "tags": ["a"],
         "probabilities": {"a": 0.1, "b": 0.7}},
        {"path": "/y.wav", "status": "unreadable", "reason": "empty", "top": [], "tags": None, "probabilities": None},
    ]


@needs_real
def test_up_to_ray_above_files_nothing_imports_ray(model, audio_folder, tmp_path):
    code = (
        "import sys\nfrom raytag.cli import main\n"
        f"assert main(['predict', {str(model)!r}, {str(placed(audio_folder, REAL_FILES[0]))!r}, '--max-chunks', '1',"
        f" '--no-progress', '-o', {str(tmp_path / 'o.csv')!r}]) == 0\n"
        "print(sorted({m.split('.')[0] for m in sys.modules} & {'ray', 'mlflow'}))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip().splitlines()[-1] == "[]"
    assert (tmp_path / "o.csv").read_text().count("\n") == 2


def test_silence_a_file_shorter_than_a_crop_and_a_metadata_only_mp3_get_a_status_not_tags(model, tmp_path):
    """Each file that holds nothing to tag gets its status and a reason, and no tags; the loud
    file beside them is tagged."""
    rate = 16000
    sf.write(tmp_path / "silence.wav", np.zeros(3 * rate, dtype=np.float32), rate)
    sf.write(tmp_path / "dither.flac", np.random.default_rng(0).uniform(-3e-5, 3e-5, 3 * rate).astype(np.float32), rate)
    sf.write(tmp_path / "short.wav", np.random.default_rng(1).uniform(-0.5, 0.5, rate * 2 // 5).astype(np.float32), rate)
    # 0.97 s for a 1 s crop: 3 % padding, tagged (too short means under half a crop)
    sf.write(tmp_path / "almost.wav", np.random.default_rng(3).uniform(-0.5, 0.5, rate * 97 // 100).astype(np.float32),
             rate)
    sf.write(tmp_path / "music.wav", np.random.default_rng(2).uniform(-0.5, 0.5, 3 * rate).astype(np.float32), rate)
    # An ID3v2 tag and nothing else: what a download that stopped after the metadata leaves.
    (tmp_path / "tag-only.mp3").write_bytes(b"ID3\x03\x00\x00\x00\x00\x00\x20" + bytes(32))
    out = tmp_path / "out.csv"
    assert main(["predict", str(model), str(tmp_path), "-o", str(out), "--no-progress"]) == 0
    rows = {Path(r["path"]).name: r for r in csv.DictReader(out.open())}
    statuses = {name: row["status"] for name, row in rows.items()}
    assert statuses == {"silence.wav": "silent", "dither.flac": "silent", "short.wav": "too short",
                        "almost.wav": "ok", "music.wav": "ok", "tag-only.mp3": "unreadable"}
    assert "dBFS" in rows["silence.wav"]["reason"] and "0.40 s of audio" in rows["short.wav"]["reason"]
    assert "at least half of one" in rows["short.wav"]["reason"]
    for name, row in rows.items():
        tagged = name in ("music.wav", "almost.wav")
        assert bool(row["top_tags"]) == tagged and bool(row["piano"]) == tagged


def test_predict_scores_on_one_actor_per_cpu_unless_told_and_never_more_than_batches():
    from raytag.cluster.inference.predict_ray import default_actors

    assert PredictOptions().actors is None
    assert default_actors(2.0, batches=125) == 2  # 1,000 files on 2 CPUs: both CPUs score
    assert default_actors(16.0, batches=3) == 3  # no idle actor
    assert default_actors(0.5, batches=10) == 1  # a fractional cluster still gets one
    with pytest.raises(ValueError, match="actors must be at least 1"):
        PredictOptions(actors=0)


def test_an_output_file_that_cannot_be_written_is_bad_input_naming_the_flag(model, tmp_path, capsys):
    audio = tmp_path / "a.wav"
    sf.write(audio, np.random.default_rng(4).uniform(-0.5, 0.5, 16000).astype(np.float32), 16000)
    (tmp_path / "a-file").write_text("not a folder")
    assert main(["predict", str(model), str(audio), "-o", str(tmp_path / "a-file" / "out.csv"), "--no-progress"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"raytag predict: -o {tmp_path / 'a-file'}") and "cannot write" in err
    assert len(err.splitlines()) == 1
