"""``raytag predict`` through the Ray Data actor pool gives the rows of the in-process loop."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from teachers import write_random_tagger

from raytag.cli import main

TAGS = ("piano", "guitar", "voice", "bass")
REAL_AUDIO = Path(__file__).resolve().parents[2] / "shared" / "data" / "real-audio"


def audio_folder(folder: Path) -> Path:
    """Clips of several lengths and rates (one shorter than a crop, one of several chunks), the
    shared empty WAV and two short real recordings when present, and a corrupt file."""
    rng = np.random.default_rng(3)
    folder.mkdir()
    for index, (seconds, rate) in enumerate([(0.4, 16000), (1.0, 16000), (2.7, 22050), (1.6, 44100), (3.2, 8000)]):
        sf.write(folder / f"clip-{index}.wav", rng.uniform(-0.3, 0.3, int(seconds * rate)).astype(np.float32), rate)
    for name in ("empty.wav", "sorohanro-solo-trumpet.ogg", "medley-solos-validation-3.wav"):
        if (REAL_AUDIO / name).is_file():
            shutil.copy(REAL_AUDIO / name, folder / name)
    (folder / "corrupt.flac").write_bytes(b"fLaC" + bytes(300))
    sf.write(folder / "silent.wav", np.zeros(2 * 16000, dtype=np.float32), 16000)
    return folder


@pytest.mark.ray
def test_the_ray_data_path_and_the_plain_loop_give_the_same_rows(ray_session, tmp_path):
    model = write_random_tagger(tmp_path / "model", tags=TAGS, thresholds={"piano": 0.5, "bass": 0.3})
    folder = audio_folder(tmp_path / "audio")
    outputs = {}
    for name, ray_above in (("plain", "1000"), ("ray", "0")):
        outputs[name] = tmp_path / f"{name}.jsonl"
        args = ["predict", str(model), str(folder), str(tmp_path / "missing.wav"), "-o", str(outputs[name]),
                "--ray-above", ray_above, "--batch-size", "3", "--no-progress"]
        assert main(args) == 0
    plain = [json.loads(line) for line in outputs["plain"].read_text().splitlines()]
    ray = [json.loads(line) for line in outputs["ray"].read_text().splitlines()]
    assert [(r["path"], r["status"]) for r in ray] == [(r["path"], r["status"]) for r in plain]
    assert [r["reason"] for r in ray] == [r["reason"] for r in plain]
    statuses = {Path(r["path"]).name: r["status"] for r in plain}
    reasons = {Path(r["path"]).name: r["reason"] for r in plain}
    assert statuses["corrupt.flac"] == statuses["missing.wav"] == "unreadable"
    assert "cannot read audio" in reasons["corrupt.flac"] and "No such file" in reasons["missing.wav"]
    assert statuses["silent.wav"] == "silent" and statuses["clip-0.wav"] == "too short"  # 0.4 s, 1 s crops
    real = sum((folder / name).is_file() for name in ("sorohanro-solo-trumpet.ogg", "medley-solos-validation-3.wav"))
    assert sum(status == "ok" for status in statuses.values()) == 4 + real  # clip-1..4 and the real recordings
    for mine, theirs in zip(plain, ray):
        if mine["status"] != "ok":
            assert theirs["probabilities"] is None
            continue
        np.testing.assert_allclose([theirs["probabilities"][t] for t in TAGS],
                                   [mine["probabilities"][t] for t in TAGS], atol=2e-6)
        assert [item["tag"] for item in theirs["top"]] == [item["tag"] for item in mine["top"]]
        assert theirs["tags"] == mine["tags"]
