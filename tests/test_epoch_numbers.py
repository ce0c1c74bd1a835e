"""Epochs are numbered from 1 in every record (raytag/engine/state.py); records written when
they were numbered from 0 are read renumbered: a checkpoint's state.json without a format,
model.json of format 1, a benchmark's cached result, an MLflow run without the
``raytag.epochs_from`` tag (which is not continued: its job goes on in a new run)."""

from __future__ import annotations

import json

import pytest
from mlflow.tracking import MlflowClient

from bench_modules import load_bench
from raytag.config import validate_job
from raytag.engine.state import STATE_FORMAT, TrainingState, parse_state, renumbered_epoch_metrics, state_text
from raytag.locations import RUN_ID_FILE
from raytag.models.export import META_FILE, ModelRecipe, read_exported, write_exported
from raytag.tracking import run_tags as T
from raytag.tracking.callback import epoch_line, log_missing_epochs
from raytag.tracking.runs import start_run

# A state.json as raytag wrote it before epochs were numbered from 1: three epochs done (0, 1, 2),
# the best was the second (1), resumed once after the first epoch's checkpoint.
FORMAT_1_STATE = {
    "state": {
        "next_epoch": 3, "best_epoch": 1, "best_value": 0.8, "select_metric": "roc_auc", "resumed_from_epoch": 1,
        "history": [
            {"epoch": 0, "best_epoch": 0, "valid/roc_auc": 0.7, "resumed_from_epoch": -1},
            {"epoch": 1, "best_epoch": 1, "valid/roc_auc": 0.8, "resumed_from_epoch": 1},
            {"epoch": 2, "best_epoch": 1, "valid/roc_auc": 0.75, "resumed_from_epoch": 1},
        ],
    },
    "job": {"name": "old"},
}


def test_a_format_1_state_is_renumbered_from_1():
    state = parse_state(json.dumps(FORMAT_1_STATE))
    assert (state.epochs_done, state.best_epoch, state.best_value) == (3, 2, 0.8)
    # It resumed from the checkpoint of the first epoch: 1 epoch done, so 1 in either numbering.
    assert state.resumed_from_epoch == 1
    assert [(h["epoch"], h["best_epoch"], h["resumed_from_epoch"]) for h in state.history] == [
        (1, 1, -1), (2, 2, 1), (3, 2, 1)]


def test_a_state_round_trips_in_the_current_format_and_a_later_one_is_refused():
    state = TrainingState(epochs_done=2, best_epoch=2, best_value=0.9, history=[{"epoch": 1}, {"epoch": 2}])
    text = state_text(state, {"name": "x"})
    assert json.loads(text)["format"] == STATE_FORMAT == 2
    assert parse_state(text) == state
    later = json.dumps({**json.loads(text), "format": 3})
    with pytest.raises(ValueError, match="format 3"):
        parse_state(later)
    with pytest.raises(ValueError, match="not a raytag checkpoint state"):
        parse_state(json.dumps({"format": 2, "state": {"next_epoch": 1}}))


def test_only_epoch_valued_metrics_are_renumbered():
    assert renumbered_epoch_metrics({"epoch": 0, "best_epoch": 4, "resumed_from_epoch": 2, "valid/loss": 0.5}) == {
        "epoch": 1, "best_epoch": 5, "resumed_from_epoch": 2, "valid/loss": 0.5}


def test_a_format_1_model_description_has_its_best_epoch_renumbered(tmp_path):
    recipe = ModelRecipe("mtt-tiny", {"crop_seconds": 0.5}, ("a", "b"))
    folder = write_exported(tmp_path / "m", recipe, recipe.build().state_dict(), sample_rate=16000, crop_samples=8000,
                            best_epoch=3)
    assert json.loads((folder / META_FILE).read_text())["format"] == 2
    assert read_exported(folder).info["best_epoch"] == 3
    meta = json.loads((folder / META_FILE).read_text())
    (folder / META_FILE).write_text(json.dumps({**meta, "format": 1}))  # as an older raytag exported it
    assert read_exported(folder).info["best_epoch"] == 4


def test_the_progress_line_numbers_the_epoch_as_the_records_do():
    line = epoch_line({"epoch": 3, "train/loss": 0.5, "best_epoch": 3, "epoch_seconds": 4.0, "workers": 2}, 12)
    assert line == "epoch 3/12  train loss 0.5000  (4 s, 2 workers, best so far)"
    assert "best so far" not in epoch_line({"epoch": 4, "best_epoch": 3}, 12)


def test_a_cached_benchmark_result_is_renumbered_once():
    run_cache = load_bench("run_cache")
    old = {"best_epoch": 0, "history": [{"epoch": 0, "best_epoch": 0}, {"epoch": 1, "best_epoch": 0}]}
    new = run_cache.result_numbered_from_1(old)
    assert new["best_epoch"] == 1 and [(h["epoch"], h["best_epoch"]) for h in new["history"]] == [(1, 1), (2, 1)]
    assert run_cache.result_numbered_from_1(new) == new


def _job(tmp_path):
    return validate_job({"name": "numbered", "storage": str(tmp_path / "runs"), "data": {"manifest": "m.csv"},
                         "model": {"name": "mtt-tiny"},
                         "tracking": {"uri": f"sqlite:///{tmp_path / 'mlflow.db'}", "experiment": "numbers"}})


def test_an_interrupted_run_is_continued_but_one_numbering_epochs_from_0_is_not(tmp_path):
    job = _job(tmp_path)
    first = start_run(job)
    client = MlflowClient(job.tracking.uri)
    assert client.get_run(first.run_id).data.tags[T.EPOCHS_FROM] == "1"
    assert start_run(job).run_id == first.run_id  # interrupted (still RUNNING): continued

    # A run an older raytag started: no epochs_from tag, epochs logged at steps 0 and 1.
    client.delete_tag(first.run_id, T.EPOCHS_FROM)
    for step in (0, 1):
        first.log_metrics({"epoch": step, "train/loss": 1.0 - step / 10}, step=step)
    again = start_run(job)
    assert again.run_id != first.run_id
    assert (tmp_path / "runs" / job.name / RUN_ID_FILE).read_text().strip() == again.run_id
    # The new run gets the epochs the (renumbered) checkpoint holds, each once.
    history = parse_state(json.dumps({"state": {"next_epoch": 2, "history": [
        {"epoch": 0, "train/loss": 1.0}, {"epoch": 1, "train/loss": 0.9}]}})).history
    assert log_missing_epochs(again, history) == 2
    assert log_missing_epochs(again, history) == 0
    steps = [(m.step, m.value) for m in client.get_metric_history(again.run_id, "train/loss")]
    assert sorted(steps) == [(1, 1.0), (2, 0.9)]
    assert [(m.step, m.value) for m in client.get_metric_history(first.run_id, "epoch")] == [(0, 0.0), (1, 1.0)]
