"""Exported models as MLflow models, against a real SQLite store: log, load, predict, register,
and load where raytag is not installed."""

import json
import os
import subprocess
import sys
import sysconfig
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
import torch
from mlflow.entities import LoggedModelStatus
from mlflow.tracking import MlflowClient

from raytag.audio.io import chunk_starts
from raytag.models.export import ExportError, ModelRecipe, write_exported
from raytag.tracking import run_tags as tag_names
from raytag.tracking.mlflow_model import log_tagger, model_requirements, register_tagger


TAGS = ("rock", "piano", "mood/theme---sad")
CROP = 8000
RATE = 16000
THRESHOLDS = {"rock": 0.5, "piano": 0.0}  # piano always listed, sad never (no threshold)


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """A SQLite store with one run, and an exported mtt-tiny model (random weights)."""
    root = tmp_path_factory.mktemp("mlflow-model")
    uri = f"sqlite:///{root / 'mlflow.db'}"
    client = MlflowClient(uri)
    experiment = client.create_experiment("models", artifact_location=str(root / "artifacts"))
    run = client.create_run(experiment, run_name="student")
    recipe = ModelRecipe("mtt-tiny", {"crop_seconds": 0.5}, TAGS)
    torch.manual_seed(0)
    model = recipe.build().eval()
    write_exported(root / "best_model", recipe, model.state_dict(), sample_rate=RATE, crop_samples=CROP, best_epoch=4,
                   thresholds=THRESHOLDS)
    return {"uri": uri, "run_id": run.info.run_id, "model_dir": root / "best_model", "model": model}


@pytest.fixture(scope="module")
def logged(store):
    return log_tagger(tracking_uri=store["uri"], run_id=store["run_id"], model_dir=store["model_dir"])


@pytest.fixture
def tracking_uri(store, monkeypatch):
    """``mlflow.pyfunc.load_model("models:/...")`` resolves against MLFLOW_TRACKING_URI."""
    monkeypatch.setenv("MLFLOW_TRACKING_URI", store["uri"])
    return store["uri"]


def reference(model, crops: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        return torch.sigmoid(model(torch.from_numpy(crops))).numpy()


def listed(probabilities) -> str:
    """What the ``tags`` column holds: tags at or above their threshold, most probable first."""
    above = [(p, tag) for tag, p in zip(TAGS, probabilities) if tag in THRESHOLDS and p >= THRESHOLDS[tag]]
    return ";".join(tag for _, tag in sorted(above, key=lambda item: -item[0]))


def waveforms(rows: np.ndarray, rate: int = RATE) -> pd.DataFrame:
    return pd.DataFrame({"waveform": list(rows), "sample_rate": [rate] * len(rows)})


def test_a_logged_model_loads_with_pyfunc_and_predicts_like_the_exported_model(store, tracking_uri, logged):
    assert logged.uri == f"models:/{logged.model_id}"
    loaded = mlflow.pyfunc.load_model(logged.uri)
    crops = np.random.default_rng(0).standard_normal((5, CROP)).astype(np.float32)
    out = loaded.predict(waveforms(crops))
    assert isinstance(out, pd.DataFrame) and list(out.columns) == [*TAGS, "tags", "status"]
    expected = reference(store["model"], crops)
    np.testing.assert_allclose(out[list(TAGS)].to_numpy(), expected, atol=1e-6, rtol=0)
    assert list(out["status"]) == ["ok"] * 5
    assert list(out["tags"]) == [listed(p) for p in expected]

    metadata = loaded.metadata.metadata
    assert metadata["tags"] == list(TAGS) and metadata["thresholds"] == THRESHOLDS
    assert metadata["sample_rate"] == RATE and metadata["crop_samples"] == CROP
    assert metadata["model_name"] == "mtt-tiny" and metadata["training"]["best_epoch"] == 4
    signature = loaded.metadata.signature
    assert signature.inputs.input_names() == ["path", "waveform", "sample_rate"]
    assert signature.outputs.input_names() == [*TAGS, "tags", "status"]

    client = MlflowClient(tracking_uri)
    run = client.get_run(store["run_id"])
    assert [output.model_id for output in run.outputs.model_outputs] == [logged.model_id]
    assert run.data.tags[tag_names.LOGGED_MODEL_ID] == logged.model_id
    assert client.get_logged_model(logged.model_id).status == LoggedModelStatus.READY


def chunk_mean(model, rows: np.ndarray, max_chunks: int | None = 16) -> np.ndarray:
    """What raytag's evaluation protocol gives rows at the model's rate: the mean over chunks
    spread from start to end (:func:`raytag.audio.io.chunk_starts`)."""
    starts = chunk_starts(rows.shape[1], CROP, max_chunks)
    return np.mean([reference(model, rows[:, s : s + CROP]) for s in starts], axis=0)


def test_rows_longer_or_shorter_than_a_crop_follow_the_evaluation_protocol(store):
    """The tensor-signature input: each row a waveform at the model's rate, scored like a file."""
    from mlflow.pyfunc import PythonModelContext

    from raytag.tracking.pyfunc_tagger import RaytagTagger

    tagger = RaytagTagger()
    tagger.load_context(PythonModelContext(artifacts={"exported_model": str(store["model_dir"])}, model_config={}))
    model = store["model"]
    crops = np.random.default_rng(3).standard_normal((2, CROP)).astype(np.float32)
    np.testing.assert_allclose(tagger.predict(None, crops), reference(model, crops), atol=1e-6, rtol=0)
    rows = np.random.default_rng(1).standard_normal((2, 3 * CROP + 500)).astype(np.float32)
    got = tagger.predict(None, rows, params={"max_chunks": 3, "batch_size": 2})
    np.testing.assert_allclose(got, chunk_mean(model, rows, 3), atol=1e-6, rtol=0)
    whole = tagger.predict(None, rows, params={"max_chunks": 0})  # 0: chunks covering the whole track
    np.testing.assert_allclose(whole, chunk_mean(model, rows, None), atol=1e-6, rtol=0)
    # Half a crop or more is padded at its end and tagged; less is too short: NaN, as a file's row.
    short = rows[:, : CROP // 2 + 100]
    padded = np.pad(short, ((0, 0), (0, CROP - short.shape[1])))
    np.testing.assert_allclose(tagger.predict(None, short), reference(model, padded), atol=1e-6, rtol=0)
    assert np.isnan(tagger.predict(None, rows[:, : CROP // 2 - 1])).all()
    assert np.isnan(tagger.predict(None, np.full((1, CROP), np.nan, dtype=np.float32))).all()  # unreadable
    with pytest.raises(ValueError, match="batch, samples"):
        tagger.predict(None, rows[0])


def test_registering_creates_versions_that_carry_the_lineage(store, tracking_uri):
    logged = log_tagger(tracking_uri=tracking_uri, run_id=store["run_id"], model_dir=store["model_dir"])
    lineage = {tag_names.TEACHER_RUN_ID: "teacher-run", tag_names.TEACHER_MODEL: "/runs/teacher/best_model",
               tag_names.STAGE: "student"}
    first = register_tagger(tracking_uri=tracking_uri, logged=logged, registered_name="jamendo-tagger", lineage=lineage)
    second = register_tagger(tracking_uri=tracking_uri, logged=logged, registered_name="jamendo-tagger")
    assert (int(first.version), int(second.version)) == (1, 2)
    version = MlflowClient(tracking_uri).get_model_version("jamendo-tagger", first.version)
    assert version.tags == {**lineage, tag_names.SOURCE_RUN_ID: store["run_id"], tag_names.LOGGED_MODEL_ID: logged.model_id}
    assert version.run_id == store["run_id"]
    loaded = mlflow.pyfunc.load_model("models:/jamendo-tagger/1")
    crops = np.random.default_rng(2).standard_normal((2, CROP)).astype(np.float32)
    out = loaded.predict(waveforms(crops))[list(TAGS)].to_numpy()
    np.testing.assert_allclose(out, reference(store["model"], crops), atol=1e-6, rtol=0)


def test_registering_and_loading_use_the_given_store_only(store, logged, tmp_path, monkeypatch):
    """No MLFLOW_TRACKING_URI and an empty cwd: nothing may fall back to MLflow's default store."""
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.chdir(tmp_path)
    version = register_tagger(tracking_uri=store["uri"], logged=logged, registered_name="no-global-uri")
    from raytag.predict.loading import load_model

    for uri in (f"models:/no-global-uri/{version.version}", logged.uri, f"runs:/{store['run_id']}/tagger"):
        assert load_model(uri, tracking_uri=store["uri"]).tags == TAGS
    assert list(tmp_path.iterdir()) == []


def test_a_folder_that_is_not_an_exported_model_is_refused(store, tmp_path):
    with pytest.raises(ExportError, match="model_dir: .* not an exported raytag model"):
        log_tagger(tracking_uri=store["uri"], run_id=store["run_id"], model_dir=tmp_path)


def test_publish_model_logs_and_registers_and_never_raises(store, tracking_uri, tmp_path, caplog):
    from raytag.tracking.client import Tracker
    from raytag.tracking.mlflow_model import publish_model

    tracker = Tracker(tracking_uri, store["run_id"])
    lineage = {tag_names.TEACHER_RUN_ID: "t-run"}
    logged = publish_model(tracker, store["model_dir"], register_as="published", lineage=lineage)
    client = MlflowClient(tracking_uri)
    (version,) = client.search_model_versions("name = 'published'")
    assert version.tags[tag_names.LOGGED_MODEL_ID] == logged.model_id and version.tags[tag_names.TEACHER_RUN_ID] == "t-run"
    assert client.get_logged_model(logged.model_id).tags[tag_names.TEACHER_RUN_ID] == "t-run"
    assert publish_model(Tracker.disabled(), store["model_dir"]) is None
    with caplog.at_level("WARNING", logger="raytag.tracking.mlflow_model"):
        assert publish_model(tracker, tmp_path / "missing") is None
    assert "could not log the model" in caplog.text


def tones(rate: int, seconds: float = 1.5) -> np.ndarray:
    """The same sound sampled at ``rate``: tones under 8 kHz, so 16 kHz holds all of it."""
    t = np.arange(int(rate * seconds)) / rate
    sound = sum(a * np.sin(2 * np.pi * f * t) for a, f in ((0.4, 220.0), (0.3, 660.0), (0.2, 1500.0), (0.1, 4000.0)))
    return (sound * (0.6 + 0.4 * np.sin(2 * np.pi * 3.0 * t))).astype(np.float32)


def test_a_waveform_at_44100_hz_scores_like_the_same_sound_at_the_model_rate(logged, tracking_uri):
    loaded = mlflow.pyfunc.load_model(logged.uri)
    frame = pd.DataFrame({"waveform": [tones(RATE), tones(44100), tones(44100)], "sample_rate": [RATE, 44100, RATE]})
    out = loaded.predict(frame)[list(TAGS)].to_numpy()
    resampled, mislabelled = np.abs(out[1] - out[0]).max(), np.abs(out[2] - out[0]).max()
    assert resampled < 0.01, out  # resampling error only
    assert mislabelled > 10 * resampled, out  # the rate matters: 44.1 kHz read as 16 kHz is another sound
    with pytest.raises(ValueError, match="needs its 'sample_rate'"):
        loaded.predict(pd.DataFrame({"waveform": [tones(RATE)]}))
    with pytest.raises(ValueError, match="'path' column or 'waveform'"):
        loaded.predict(pd.DataFrame({"sample_rate": [RATE]}))


def test_predict_takes_a_runs_uri(store, logged, tmp_path, capsys):
    from raytag.cli import main

    audio = tmp_path / "tones.wav"
    import soundfile as sf

    sf.write(audio, tones(44100), 44100)
    args = [str(audio), "--tracking-uri", store["uri"], "--format", "jsonl", "--no-progress"]
    assert main(["predict", f"runs:/{store['run_id']}/tagger", *args]) == 0
    by_run = json.loads(capsys.readouterr().out)
    assert main(["predict", logged.uri, *args]) == 0
    assert json.loads(capsys.readouterr().out) == by_run and by_run["status"] == "ok"


ISOLATED_SCRIPT = """
import ast, importlib.metadata as md, importlib.util, json, re, sys
assert importlib.util.find_spec("raytag") is None, "raytag is importable"
import mlflow, numpy as np, pandas as pd
model = mlflow.pyfunc.load_model(sys.argv[1])
t = np.arange(16000) / 16000
out = model.predict(pd.DataFrame({"waveform": [np.sin(2 * np.pi * 440 * t).astype(np.float32)], "sample_rate": [16000]}))
import raytag

def closure(names):
    seen, todo = set(), [n for n in names]
    while todo:
        name = re.split(r"[ ;<>=!~\\[(]", todo.pop(), maxsplit=1)[0].lower().replace("_", "-")
        if name in seen:
            continue
        seen.add(name)
        try:
            todo += [r for r in md.requires(name) or [] if "extra ==" not in r]
        except md.PackageNotFoundError:
            pass
    return seen

allowed = closure(json.loads(sys.argv[2]) + ["mlflow"])
imported = set()  # top-level names the raytag modules that ran import, anywhere in their code
for name, module in list(sys.modules.items()):
    if name.split(".")[0] == "raytag" and (getattr(module, "__file__", None) or "").endswith(".py"):
        for node in ast.walk(ast.parse(open(module.__file__).read())):
            if isinstance(node, ast.Import):
                imported |= {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                imported.add(node.module.split(".")[0])
owners = md.packages_distributions()
used = {d.lower().replace("_", "-") for m in imported - {"raytag"} for d in owners.get(m, [])}
print(json.dumps({"columns": list(out.columns), "row": [getattr(v, "item", lambda: v)() for v in out.iloc[0]], "raytag": raytag.__file__,
                  "not_required": sorted(used - allowed), "ray": "ray" in sys.modules}))
"""


def test_the_model_loads_and_predicts_where_raytag_is_not_installed(store, logged, tmp_path):
    """A fresh venv that sees the project's packages but not raytag (a site-packages path in a
    .pth file adds the folder only: the editable install's finder there is not run)."""
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    site_packages = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                                   check=True, capture_output=True, text=True).stdout.strip()
    (Path(site_packages) / "project-packages.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env.update(MLFLOW_TRACKING_URI=store["uri"], MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR="false")
    result = subprocess.run(
        [str(python), "-c", ISOLATED_SCRIPT, logged.uri, json.dumps([r.split("==")[0] for r in model_requirements()])],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["columns"] == [*TAGS, "tags", "status"] and report["row"][-1] == "ok"
    assert "raytag_code" in report["raytag"]  # the copy logged with the model
    assert report["not_required"] == [], report  # the model's requirements cover what its code imports
    assert not report["ray"]
    t = np.arange(16000) / 16000
    tone = np.sin(2 * np.pi * 440 * t).astype(np.float32)
    np.testing.assert_allclose(report["row"][: len(TAGS)], chunk_mean(store["model"], tone[None, :])[0], atol=1e-5)
