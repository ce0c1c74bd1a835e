"""The exported-model format: written, read and checked by one module, without Ray."""

import json
import subprocess
import sys

import pytest
import torch

from raytag.models.export import (
    META_FILE,
    ExportError,
    ModelRecipe,
    best_model_location,
    check_fits,
    read_exported,
    read_weights,
    write_exported,
)


def _export(folder, tags=("a", "b")):
    recipe = ModelRecipe("mtt-tiny", {"crop_seconds": 0.5}, tuple(tags))
    model = recipe.build()
    write_exported(folder, recipe, model.state_dict(), sample_rate=16000, crop_samples=8000, best_epoch=3)
    return recipe, model


def test_an_exported_model_round_trips(tmp_path):
    recipe, model = _export(tmp_path / "m")
    exported = read_exported(tmp_path / "m")
    assert exported.recipe == recipe and exported.sample_rate == 16000 and exported.crop_samples == 8000
    assert exported.info == {"best_epoch": 3}
    rebuilt = exported.recipe.build()
    rebuilt.load_state_dict(read_weights(tmp_path / "m"))
    audio = torch.randn(2, 8000)
    model.eval(), rebuilt.eval()
    assert torch.equal(model(audio), rebuilt(audio))


def test_misfits_and_missing_folders_name_the_config_key(tmp_path):
    _export(tmp_path / "m")
    exported = read_exported(tmp_path / "m", "semi.teacher")
    assert check_fits(exported, key="semi.teacher", tags=("a", "b"), sample_rate=16000) is exported
    with pytest.raises(ExportError, match="semi.teacher: .* other tags"):
        check_fits(exported, key="semi.teacher", tags=("a", "c"))
    with pytest.raises(ExportError, match="semi.teacher: .* runs at 16000 Hz .* 22050 Hz"):
        check_fits(exported, key="semi.teacher", sample_rate=22050)
    with pytest.raises(ExportError, match="model: .* not an exported raytag model"):
        read_exported(tmp_path / "nothing", "model")
    with pytest.raises(ExportError, match="objective.teacher is required"):
        read_exported(None, "objective.teacher")
    (tmp_path / "m" / META_FILE).write_text(json.dumps({"name": "mtt-tiny"}))
    with pytest.raises(ExportError, match="not a raytag model description"):
        read_exported(tmp_path / "m")


def test_weights_are_never_unpickled_as_arbitrary_objects(tmp_path):
    _export(tmp_path / "m")
    torch.save({"w": torch.ones(1), "evil": object()}, tmp_path / "m" / "model.pt")
    with pytest.raises(Exception, match="[Ww]eights only"):
        read_weights(tmp_path / "m")


def test_locations_are_strings_that_keep_uris():
    assert best_model_location("s3://bucket/runs/", "job") == "s3://bucket/runs/job/best_model"
    assert best_model_location("/abs/runs", "job") == "/abs/runs/job/best_model"


def test_reading_a_description_does_not_import_torch(tmp_path):
    _export(tmp_path / "m")
    code = (
        "import sys; from raytag.models.export import read_exported; "
        f"print(read_exported({str(tmp_path / 'm')!r}).recipe.name); print('torch' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out == ["mtt-tiny", "False"]


def test_the_head_is_part_of_the_recipe_and_a_starting_model_must_match(tmp_path):
    recipe = ModelRecipe("mtt-tiny", {"crop_seconds": 0.5}, ("a", "b"), "sigmoid_sparsemax")
    model = recipe.build()
    write_exported(tmp_path / "m", recipe, model.state_dict(), sample_rate=16000, crop_samples=8000)
    exported = read_exported(tmp_path / "m")
    assert exported.recipe.head == "sigmoid_sparsemax"
    exported.recipe.build().load_state_dict(read_weights(tmp_path / "m"))  # the head's weights fit
    assert check_fits(exported, key="model.init", recipe=recipe) is exported
    with pytest.raises(ExportError, match="model.init: .* sigmoid head"):
        check_fits(exported, key="model.init", recipe=ModelRecipe("mtt-tiny", {"crop_seconds": 0.5}, ("a", "b")))
