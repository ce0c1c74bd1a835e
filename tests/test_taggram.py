"""``raytag predict``'s tags over time (taggrams, heat maps) and embeddings, in one process."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from teachers import write_random_tagger

from raytag.audio.io import load_crop, source_frames
from raytag.cli import main
from raytag.scoring.segments import segment_starts
from raytag.models.export import read_exported, read_weights

TAGS = ("piano", "guitar", "voice")


@pytest.fixture(scope="module")
def model(tmp_path_factory) -> Path:
    return write_random_tagger(tmp_path_factory.mktemp("model") / "tagger", tags=TAGS)


@pytest.fixture(scope="module")
def network(model):
    exported = read_exported(model)
    built = exported.recipe.build()
    built.load_state_dict(read_weights(model))
    return built.eval()


def noise_file(path: Path, seconds: float, rate: int, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    sf.write(path, rng.uniform(-0.5, 0.5, int(round(rate * seconds))).astype(np.float32), rate)
    return path


def read_csv(path: Path) -> list[dict]:
    with open(path, newline="") as stream:
        return list(csv.DictReader(stream))


def crops_at(path: Path, starts_s: list[float], *, rate: int, samples: int, model_rate: int = 16000) -> np.ndarray:
    return np.stack([load_crop(str(path), round(s * rate), samples, model_rate, rate) for s in starts_s])


def test_segments_start_every_hop_and_the_last_one_ends_at_the_end():
    assert segment_starts(100, 30, 20) == [0, 20, 40, 60, 70]
    assert segment_starts(90, 30, 30) == [0, 30, 60]
    assert segment_starts(20, 30, 10) == [0]  # shorter than a segment: one, padded
    with pytest.raises(ValueError, match="at least one frame"):
        segment_starts(100, 30, 0)


def test_a_taggram_covers_the_file_every_hop_with_the_models_scores_on_those_crops(model, network, tmp_path):
    audio = noise_file(tmp_path / "long.wav", 3.4, 22050)
    out = tmp_path / "taggram.csv"
    code = main(["predict", str(model), str(audio), "-o", str(tmp_path / "tags.csv"), "--taggram", str(out),
                 "--hop-s", "0.5", "--no-progress"])
    assert code == 0
    rows = read_csv(out)
    assert list(rows[0]) == ["path", "start_s", "end_s", *TAGS]
    starts = [float(r["start_s"]) for r in rows]
    ends = [float(r["end_s"]) for r in rows]
    assert starts == [0.0, 0.5, 1.0, 1.5, 2.0, 2.4]  # every 0.5 s, then one ending at 3.4 s
    assert ends == pytest.approx([s + 1.0 for s in starts], abs=1e-3) and ends[-1] == pytest.approx(3.4, abs=1e-3)
    crops = crops_at(audio, starts, rate=22050, samples=16000)
    with torch.no_grad():
        expected = torch.sigmoid(network(torch.from_numpy(crops))).numpy()
    got = np.array([[float(r[t]) for t in TAGS] for r in rows])
    np.testing.assert_allclose(got, expected, atol=2e-6)


def test_the_mean_of_non_overlapping_segments_is_the_track_prediction(model, tmp_path):
    audio = noise_file(tmp_path / "three.wav", 3.0, 16000, seed=1)
    taggram = tmp_path / "taggram.jsonl"
    tags = tmp_path / "tags.jsonl"
    assert main(["predict", str(model), str(audio), "-o", str(tags), "--taggram", str(taggram),
                 "--no-progress"]) == 0
    segments = [json.loads(line) for line in taggram.read_text().splitlines()]
    assert [(s["start_s"], s["end_s"]) for s in segments] == [(0.0, 1.0), (1.0, 2.0), (2.0, 3.0)]
    mean = np.mean([[s["probabilities"][t] for t in TAGS] for s in segments], axis=0)
    (track,) = [json.loads(line) for line in tags.read_text().splitlines()]
    np.testing.assert_allclose(mean, [track["probabilities"][t] for t in TAGS], atol=2e-6)


def test_embeddings_per_file_and_per_segment_have_the_models_size(model, network, tmp_path):
    first = noise_file(tmp_path / "a.wav", 2.5, 16000, seed=2)
    second = noise_file(tmp_path / "b.wav", 1.5, 16000, seed=3)
    per_file = tmp_path / "emb.npy"
    per_segment = tmp_path / "segments.csv"
    args = ["predict", str(model), str(first), str(second), "-o", str(tmp_path / "t.csv"), "--no-progress"]
    assert main([*args, "--embeddings", str(per_file)]) == 0
    assert main([*args, "--embeddings", str(per_segment), "--embeddings-per", "segment", "--hop-s", "0.5"]) == 0
    matrix = np.load(per_file)
    assert matrix.shape == (2, network.num_features) and matrix.dtype == np.float32
    assert [Path(r["path"]).name for r in read_csv(tmp_path / "emb.rows.csv")] == ["a.wav", "b.wav"]
    with torch.no_grad():
        expected_a = network.embed(torch.from_numpy(crops_at(first, [0.0, 1.0, 1.5], rate=16000, samples=16000)))
    np.testing.assert_allclose(matrix[0], expected_a.mean(dim=0).numpy(), atol=1e-5)
    rows = read_csv(per_segment)
    assert [(Path(r["path"]).name, float(r["start_s"])) for r in rows] == [
        ("a.wav", 0.0), ("a.wav", 0.5), ("a.wav", 1.0), ("a.wav", 1.5), ("b.wav", 0.0), ("b.wav", 0.5)]
    assert len(rows[0]) == 3 + network.num_features


def test_a_heat_map_per_file(model, tmp_path):
    audio = [noise_file(tmp_path / name, 2.0, 16000, seed=i) for i, name in enumerate(["x.wav", "y.flac"])]
    (tmp_path / "other").mkdir()
    twin = noise_file(tmp_path / "other" / "x.wav", 1.2, 16000, seed=5)
    maps = tmp_path / "maps"
    assert main(["predict", str(model), *map(str, audio), str(twin), "-o", str(tmp_path / "t.csv"),
                 "--taggram-png", str(maps), "--hop-s", "0.25", "--no-progress"]) == 0
    assert sorted(p.name for p in maps.iterdir()) == ["x-2.png", "x.png", "y.png"]
    from PIL import Image

    with Image.open(maps / "x.png") as image:
        assert image.width >= 400 and image.height >= 200


@pytest.mark.parametrize(("extra", "message"), [
    (["--taggram", "t.txt"], "--taggram"),
    (["--embeddings", "e.parquet"], "--embeddings"),
    (["--taggram", "t.csv", "--segment-s", "0.001"], "does not fit the model"),
    (["--taggram", "t.csv", "--hop-s", "0"], "--hop-s must be a positive"),
    (["--hop-s", "0.5"], "--hop-s sets the segments"),
    (["--embeddings-per", "segment"], "give --embeddings"),
])
def test_bad_segment_options_are_one_line_and_exit_2(model, tmp_path, capsys, extra, message):
    audio = noise_file(tmp_path / "a.wav", 1.0, 16000)
    code = main(["predict", str(model), str(audio), "--no-progress",
                 *[str(tmp_path / e) if e.endswith((".txt", ".parquet", ".csv")) else e for e in extra]])
    assert code == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1


def test_unreadable_files_have_no_segments_and_many_files_stay_in_process(model, tmp_path, caplog):
    caplog.set_level("INFO", logger="raytag")
    good = noise_file(tmp_path / "good.wav", 2.0, 16000)
    (tmp_path / "corrupt.wav").write_bytes(b"RIFF\x24\x00\x00\x00WAVEfmt " + bytes(range(200)))
    out = tmp_path / "taggram.csv"
    code = main(["predict", str(model), str(good), str(tmp_path / "corrupt.wav"), str(tmp_path / "gone.wav"),
                 "-o", str(tmp_path / "tags.csv"), "--taggram", str(out), "--no-progress"])
    assert code == 0
    assert [Path(r["path"]).name for r in read_csv(out)] == ["good.wav", "good.wav"]
    statuses = {Path(r["path"]).name: r["status"] for r in read_csv(tmp_path / "tags.csv")}
    assert statuses["good.wav"] == "ok" and statuses["corrupt.wav"] != "ok" and statuses["gone.wav"] != "ok"
    assert "wrote " + str(out) + ": 2 segments of 1 file" in caplog.text

    from raytag.predict.loading import load_model
    from raytag.predict.workflow import PredictOptions, predict_segments, segment_plan

    loaded = load_model(str(model))
    samples, hop = segment_plan(loaded, None, 0.25)
    result = predict_segments(loaded, [str(good)], PredictOptions(ray_above=0, progress=False),
                              segment_samples=samples, hop_seconds=hop)
    assert len(result.scores.track) == 5 and result.scores.failed == 0  # 0, 0.25, ..., 1.0 s
    assert "computed in this process, not on Ray Data" in caplog.text
