"""Exported models as MLflow models, against a real SQLite store: log, load, predict, register."""

import mlflow
import numpy as np
import pytest
import torch
from mlflow.entities import LoggedModelStatus
from mlflow.tracking import MlflowClient

from raytag.audio.io import chunk_starts
from raytag.models.export import ExportError, ModelRecipe, write_exported
from raytag.tracking import tags as tag_names
from raytag.tracking.mlflow_model import log_tagger, register_tagger, tag_probabilities

TAGS = ("rock", "piano", "mood/theme---sad")
CROP = 8000


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
    write_exported(root / "best_model", recipe, model.state_dict(), sample_rate=16000, crop_samples=CROP, best_epoch=4)
    return {"uri": uri, "run_id": run.info.run_id, "model_dir": root / "best_model", "model": model}


@pytest.fixture
def tracking_uri(store, monkeypatch):
    """``mlflow.pyfunc.load_model("models:/...")`` resolves against MLFLOW_TRACKING_URI."""
    monkeypatch.setenv("MLFLOW_TRACKING_URI", store["uri"])
    return store["uri"]


def reference(model, crops: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        return torch.sigmoid(model(torch.from_numpy(crops))).numpy()


def test_a_logged_model_loads_with_pyfunc_and_predicts_like_the_exported_model(store, tracking_uri):
    logged = log_tagger(tracking_uri=tracking_uri, run_id=store["run_id"], model_dir=store["model_dir"])
    assert logged.uri == f"models:/{logged.model_id}"
    loaded = mlflow.pyfunc.load_model(logged.uri)
    crops = np.random.default_rng(0).standard_normal((5, CROP)).astype(np.float32)
    probabilities = loaded.predict(crops)
    assert probabilities.shape == (5, len(TAGS)) and probabilities.dtype == np.float32
    np.testing.assert_allclose(probabilities, reference(store["model"], crops), atol=1e-6, rtol=0)

    metadata = loaded.metadata.metadata
    assert metadata["tags"] == list(TAGS)
    assert metadata["sample_rate"] == 16000 and metadata["crop_samples"] == CROP
    assert metadata["model_name"] == "mtt-tiny" and metadata["training"] == {"best_epoch": 4}
    signature = loaded.metadata.signature
    assert signature.inputs.inputs[0].shape == (-1, -1) and signature.inputs.inputs[0].type == np.float32
    assert signature.outputs.inputs[0].shape == (-1, len(TAGS))

    client = MlflowClient(tracking_uri)
    run = client.get_run(store["run_id"])
    assert [output.model_id for output in run.outputs.model_outputs] == [logged.model_id]
    assert run.data.tags[tag_names.LOGGED_MODEL_ID] == logged.model_id
    assert client.get_logged_model(logged.model_id).status == LoggedModelStatus.READY


def test_rows_longer_or_shorter_than_a_crop_follow_the_evaluation_protocol(store):
    model = store["model"]
    rows = np.random.default_rng(1).standard_normal((2, 3 * CROP + 500)).astype(np.float32)
    starts = chunk_starts(rows.shape[1], CROP, 3)
    expected = np.mean([reference(model, rows[:, s : s + CROP]) for s in starts], axis=0)
    got = tag_probabilities(model, rows, crop_samples=CROP, max_chunks=3, batch_size=2)
    np.testing.assert_allclose(got, expected, atol=1e-6, rtol=0)
    short = rows[:, :3000]
    padded = np.pad(short, ((0, 0), (0, CROP - 3000)))
    np.testing.assert_allclose(tag_probabilities(model, short, crop_samples=CROP), reference(model, padded), atol=1e-6, rtol=0)
    with pytest.raises(ValueError, match="batch, samples"):
        tag_probabilities(model, rows[0], crop_samples=CROP)
    with pytest.raises(ValueError, match="NaN"):
        tag_probabilities(model, np.full((1, CROP), np.nan, dtype=np.float32), crop_samples=CROP)


def test_registering_creates_versions_that_carry_the_lineage(store, tracking_uri):
    logged = log_tagger(tracking_uri=tracking_uri, run_id=store["run_id"], model_dir=store["model_dir"])
    lineage = {tag_names.TEACHER_RUN_ID: "teacher-run", tag_names.TEACHER_MODEL: "/runs/teacher/best_model",
               tag_names.STAGE: "student"}
    first = register_tagger(tracking_uri=tracking_uri, logged=logged, registered_name="jamendo-tagger", lineage=lineage)
    second = register_tagger(tracking_uri=tracking_uri, logged=logged, registered_name="jamendo-tagger")
    assert (int(first.version), int(second.version)) == (1, 2)
    version = MlflowClient(tracking_uri).get_model_version("jamendo-tagger", first.version)
    assert version.tags == {**lineage, tag_names.SOURCE_RUN_ID: store["run_id"]}
    assert version.run_id == store["run_id"] and version.source == logged.uri
    loaded = mlflow.pyfunc.load_model("models:/jamendo-tagger/1")
    crops = np.random.default_rng(2).standard_normal((2, CROP)).astype(np.float32)
    np.testing.assert_allclose(loaded.predict(crops), reference(store["model"], crops), atol=1e-6, rtol=0)


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
    assert version.source == logged.uri and version.tags[tag_names.TEACHER_RUN_ID] == "t-run"
    assert client.get_logged_model(logged.model_id).tags[tag_names.TEACHER_RUN_ID] == "t-run"
    assert publish_model(Tracker.disabled(), store["model_dir"]) is None
    with caplog.at_level("WARNING", logger="raytag.tracking.mlflow_model"):
        assert publish_model(tracker, tmp_path / "missing") is None
    assert "could not log the model" in caplog.text
