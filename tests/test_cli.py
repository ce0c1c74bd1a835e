"""The raytag command: exit codes and output of each subcommand."""

from __future__ import annotations

import json

import pytest

from raytag.cli import main


def test_models_lists_presets_with_parameter_counts(capsys):
    assert main(["models"]) == 0
    out = capsys.readouterr().out
    assert "4,567,732" in out and "1,108,852" in out and "12,104,244" in out
    assert "5,926,200" in out and "5,379,126" in out and "6,157,172" in out  # Pons ×2, CNN-GRU
    assert "He et al. 2020 CNN-GRU" in out  # each preset's summary
    assert main(["models", "--tags", "10"]) == 0
    assert "4,567,732" not in capsys.readouterr().out


def test_synth_writes_a_corpus_and_rejects_bad_values(tmp_path, capsys):
    assert main(["synth", str(tmp_path / "c"), "--clips", "12", "--seconds", "1", "--sample-rate", "16000"]) == 0
    assert (tmp_path / "c" / "manifest.csv").is_file() and (tmp_path / "c" / "clean.csv").is_file()
    assert (tmp_path / "c" / "noise.csv").is_file()
    assert json.loads((tmp_path / "c" / "synth.json").read_text())["spec"]["noise_model"] == "audio"
    assert main(["synth", str(tmp_path / "i"), "--clips", "4", "--seconds", "0.5", "--noise-model", "independent"]) == 0
    assert json.loads((tmp_path / "i" / "synth.json").read_text())["spec"]["noise_model"] == "independent"
    assert main(["synth", str(tmp_path / "d"), "--clips", "0"]) == 2
    assert "argument --clips: must be at least 1; got 0" in capsys.readouterr().err
    assert main(["synth", str(tmp_path / "e"), "--noise-model", "random"]) == 2
    assert "argument --noise-model: invalid choice: 'random'" in capsys.readouterr().err


def test_train_refuses_a_pipeline_job(tmp_path, capsys):
    job = tmp_path / "p.yaml"
    job.write_text("name: p\ndata: {manifest: m.csv}\nstages:\n  - name: a\n")
    assert main(["train", str(job)]) == 2
    assert "raytag run" in capsys.readouterr().err


def test_sweep_rejects_a_bad_space_before_starting(tmp_path, capsys):
    job = tmp_path / "j.yaml"
    job.write_text("name: j\ndata: {manifest: m.csv}\nmodel: {name: mtt-tiny}\n")
    space = tmp_path / "s.yaml"
    space.write_text("params:\n  train.lrate: {uniform: [0.1, 0.2]}\n")
    assert main(["sweep", str(job), str(space)]) == 2
    assert "params.train.lrate" in capsys.readouterr().err


@pytest.mark.ray
def test_evaluate_scores_the_trained_model(ray_session, tiny_job, capsys):
    job = tiny_job("cli-eval")
    overrides = ["train.epochs=1", "scaling.num_workers=1"]
    assert main(["train", str(job), *overrides]) == 0
    out, err = capsys.readouterr()
    console = (out + err).splitlines()
    # A readable console: the data summary, the epoch line, the result table, where the run is;
    # none of Ray's own logging (that needs -v).
    assert len(console) < 40, "\n".join(console)
    assert not any("streaming_executor" in line or "(RayTrainWorker" in line for line in console)
    assert main(["evaluate", str(job), *overrides, "--split", "valid"]) == 0
    out = capsys.readouterr().out
    assert "macro" in out and "ROC-AUC" in out
    assert main(["evaluate", str(job), *overrides, "--model", "/nonexistent"]) == 2
