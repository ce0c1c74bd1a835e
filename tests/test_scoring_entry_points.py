"""The same recordings get the same probabilities and statuses from every entry point:
``raytag predict`` in process and on Ray Data, evaluation (the function ``raytag evaluate``
calls) in the driver's process and on an actor pool, and the MLflow model given the files'
paths and their samples as waveforms with their rates. Real Ray (the shared local instance),
a real MLflow store, real decoding."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from teachers import write_random_tagger

from raytag.audio.io import probe, read_frames
from raytag.cli import main
from requirements import REAL_AUDIO, needs_real_audio

TAGS = ("piano", "guitar", "voice", "bass")
THRESHOLDS = {"piano": 0.45, "bass": 0.5}
# Real recordings as float WAVs at their own rates (decoded by raytag, downmixed to mono), cut
# to a few seconds: a waveform of the file's samples is then exactly the file.
REAL_EXCERPTS = {"kevin-macleod-vibe-ace.ogg": 4.5, "openmic-000046_3840.ogg": 3.0, "robin-bird-call.ogg": 2.7,
                 "medley-solos-validation-3.wav": 3.0}
EXPECTED = {  # synthetic recordings and their status (1 s crops at 16 kHz)
    "tones-22k.wav": "ok", "noise-8k.wav": "ok", "almost-a-crop.wav": "ok",  # 0.97 s: padded, tagged
    "short.wav": "too short", "silent.wav": "silent", "dither.wav": "silent",
}


def synthetic(folder: Path) -> None:
    rng = np.random.default_rng(5)
    t = np.arange(int(22050 * 2.5)) / 22050
    tones = 0.3 * np.sin(2 * np.pi * 330 * t) + 0.2 * np.sin(2 * np.pi * 1250 * t)
    clips = {
        "tones-22k.wav": (tones, 22050),
        "noise-8k.wav": (rng.uniform(-0.4, 0.4, int(8000 * 1.7)), 8000),
        "almost-a-crop.wav": (rng.uniform(-0.4, 0.4, 22050 * 97 // 100), 22050),
        "short.wav": (rng.uniform(-0.4, 0.4, 16000 * 3 // 10), 16000),
        "silent.wav": (np.zeros(16000 * 2), 16000),
        "dither.wav": (rng.uniform(-3e-5, 3e-5, 44100 * 2), 44100),
    }
    for name, (samples, rate) in clips.items():
        sf.write(folder / name, np.asarray(samples, dtype=np.float32), rate, subtype="FLOAT")


@pytest.fixture(scope="module")
def recordings(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("recordings")
    for name, seconds in REAL_EXCERPTS.items():
        rate = probe(str(REAL_AUDIO / name)).sample_rate
        samples = read_frames(str(REAL_AUDIO / name), 0, int(seconds * rate))
        sf.write(folder / f"{Path(name).stem}.wav", samples, rate, subtype="FLOAT")
    synthetic(folder)
    (folder / "corrupt.wav").write_bytes(b"RIFF\x24\x00\x00\x00WAVEfmt " + bytes(range(200)))
    return folder


def evaluation_job(folder: Path, recordings: Path, ray_above: int) -> Path:
    """A job whose test split is every recording (train and valid: one clip each, as a job needs)."""
    manifest = folder / "manifest.csv"
    for split in ("train", "valid"):
        sf.write(folder / f"{split}.wav", np.random.default_rng(9).uniform(-0.4, 0.4, 16000).astype(np.float32), 16000)
    rows = [f"{folder / 'train.wav'},piano,train", f"{folder / 'valid.wav'},bass,valid"]
    for index, path in enumerate(sorted(recordings.iterdir())):
        rows.append(f"{path},{TAGS[index % len(TAGS)]},test")
    manifest.write_text("path,tags,split\n" + "\n".join(rows) + "\n")
    job = folder / f"eval-{ray_above}.yaml"
    job.write_text(
        f"name: entry-points\nstorage: {folder / 'ray_results'}\n"
        f"data: {{manifest: {manifest}, tags: [{', '.join(TAGS)}], decode_cpus: 0.5}}\n"
        "model: {name: mtt-tiny, args: {crop_seconds: 1.0}}\n"
        f"eval: {{split: test, batch_size: 3, ray_above: {ray_above}}}\ntracking: {{enabled: false}}\n"
    )
    return job


def read_jsonl(path: Path) -> dict[str, dict]:
    return {Path(row["path"]).name: row for row in map(json.loads, path.read_text().splitlines())}


@pytest.mark.ray
@needs_real_audio
def test_every_entry_point_gives_the_same_numbers_and_statuses(ray_session, recordings, tmp_path, monkeypatch):
    import mlflow
    from mlflow.tracking import MlflowClient

    from raytag.cluster.inference.evaluation import evaluate
    from raytag.config import load_job
    from raytag.tracking.mlflow_model import log_tagger

    model = write_random_tagger(tmp_path / "model", tags=TAGS, thresholds=THRESHOLDS)
    files = sorted(recordings.iterdir())
    names = [p.name for p in files]

    # raytag predict: in this process, and on Ray Data (forced with --ray-above 0), in 3-chunk batches.
    predicted = {}
    for how, flags in (("plain", []), ("ray", ["--ray-above", "0", "--batch-size", "3"])):
        out = tmp_path / f"{how}.jsonl"
        assert main(["predict", str(model), *map(str, files), str(tmp_path / "gone.wav"), "-o", str(out),
                     "--no-progress", *flags]) == 0
        predicted[how] = read_jsonl(out)

    # Evaluation (what `raytag evaluate` calls): in the driver's process and on an actor pool.
    evaluated = {}
    for how, ray_above in (("plain", 1000), ("ray", 0)):
        job = load_job(evaluation_job(tmp_path, recordings, ray_above))
        evaluation = evaluate(job, str(model), split="test")
        evaluated[how] = {Path(r.source).name: r for r in evaluation.results}
        assert [Path(p).name for p in evaluation.paths] == [n for n in names if evaluated[how][n].status == "ok"]

    # The MLflow model: by path, and by waveform + sample rate (each WAV's own samples and rate).
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = MlflowClient(uri)
    run = client.create_run(client.create_experiment("entry-points", artifact_location=str(tmp_path / "artifacts")))
    logged = log_tagger(tracking_uri=uri, run_id=run.info.run_id, model_dir=model)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    pyfunc = mlflow.pyfunc.load_model(logged.uri)
    by_path = pyfunc.predict(pd.DataFrame({"path": list(map(str, files))}))
    wavs = [p for p in files if p.name != "corrupt.wav"]
    decoded = [sf.read(p, dtype="float32") for p in wavs]
    by_waveform = pyfunc.predict(pd.DataFrame({"waveform": [samples for samples, _ in decoded],
                                               "sample_rate": [rate for _, rate in decoded]}))

    # Statuses: the same everywhere, and what each recording is.
    reference = evaluated["plain"]
    expected = {**{f"{Path(n).stem}.wav": "ok" for n in REAL_EXCERPTS}, **EXPECTED, "corrupt.wav": "unreadable"}
    assert {name: str(r.status) for name, r in reference.items()} == expected
    assert predicted["plain"]["gone.wav"]["status"] == predicted["ray"]["gone.wav"]["status"] == "unreadable"
    for name in names:
        status = expected[name]
        assert predicted["plain"][name]["status"] == predicted["ray"][name]["status"] == status, name
        assert predicted["plain"][name]["reason"] == predicted["ray"][name]["reason"] == reference[name].reason, name
        assert str(evaluated["ray"][name].status) == status and evaluated["ray"][name].reason == reference[name].reason
        row = names.index(name)
        assert by_path.loc[row, "status"].split(":")[0] == status, name
    assert list(by_waveform["status"].str.split(":").str[0]) == [expected[p.name] for p in wavs]

    # Probabilities: the same (<= 1e-6) everywhere; predict writes 6 decimals.
    for name in names:
        if expected[name] != "ok":
            assert predicted["plain"][name]["probabilities"] is None
            assert by_path.loc[names.index(name), list(TAGS)].isna().all()
            continue
        truth = reference[name].probabilities
        got = {
            "predict": [predicted["plain"][name]["probabilities"][t] for t in TAGS],
            "predict on Ray": [predicted["ray"][name]["probabilities"][t] for t in TAGS],
            "evaluation on Ray": evaluated["ray"][name].probabilities,
            "MLflow by path": by_path.loc[names.index(name), list(TAGS)].to_numpy(float),
            "MLflow by waveform": by_waveform.loc[[p.name for p in wavs].index(name), list(TAGS)].to_numpy(float),
        }
        for entry, values in got.items():
            np.testing.assert_allclose(values, truth, atol=1e-6, rtol=0, err_msg=f"{entry}: {name}")
        assert predicted["plain"][name]["tags"] == predicted["ray"][name]["tags"]
        assert by_path.loc[names.index(name), "tags"] == ";".join(predicted["plain"][name]["tags"])
