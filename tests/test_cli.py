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


def test_methods_lists_every_method_with_settings_wrappers_and_teacher_key(capsys):
    from raytag.methods import methods, wrappers

    assert main(["methods"]) == 0
    out = capsys.readouterr().out
    for name, cls in [*methods().items(), *wrappers().items()]:
        assert f"  {name}: {cls.summary}" in out
    assert "percentile=80, teacher=none" in out and "teacher   objective.teacher" in out
    assert "forget_rate=0.2, num_gradual=10, forget_exponent=1" in out
    assert "teacher   semi.teacher" in out and "switch    objective.mean_teacher.enabled" in out
    assert main(["methods", "--markdown"]) == 0
    out = capsys.readouterr().out
    assert "<!-- generated: methods " in out and "| `objective.k` | 10 | `staged_training` |" in out


def test_methods_update_readme_rewrites_only_the_generated_blocks(tmp_path, capsys):
    readme = tmp_path / "README.md"
    readme.write_text("# x\n\n<!-- generated: methods -->\nstale\n<!-- end generated: methods -->\n\nprose\n\n"
                      "<!-- generated: objective-settings -->\n<!-- end generated: objective-settings -->\n")
    assert main(["methods", "--update-readme", str(readme)]) == 0
    text = readme.read_text()
    assert "stale" not in text and "| `bce` |" in text and "| `objective.alpha` | 0.9 |" in text
    assert text.startswith("# x\n") and "\n\nprose\n\n" in text
    assert main(["methods", "--update-readme", str(readme)]) == 0
    assert capsys.readouterr().out.endswith("up to date\n") and readme.read_text() == text
    readme.write_text("# no markers\n")
    assert main(["methods", "--update-readme", str(readme)]) == 2
    assert "no generated block 'methods'" in capsys.readouterr().err


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
def test_train_prints_a_readable_console_and_evaluate_scores_the_trained_model(trained_run, capsys):
    """``raytag train`` of the session's shared run (tests/conftest.py), then ``raytag evaluate``
    of its model, which reads it only."""
    job, overrides = trained_run.job_file, trained_run.overrides
    console = (trained_run.out + trained_run.err).splitlines()
    # A readable console: the data summary, the epoch line, the result table, where the run is;
    # none of Ray's own logging (that needs -v).
    assert len(console) < 40, "\n".join(console)
    assert not any("streaming_executor" in line or "(RayTrainWorker" in line for line in console)
    assert f"MLflow run: {trained_run.outcome.run_id}" in trained_run.out  # what train printed is its run
    assert main(["evaluate", str(job), *overrides, "--split", "valid"]) == 0
    out = capsys.readouterr().out
    assert "macro" in out and "ROC-AUC" in out
    assert main(["evaluate", str(job), *overrides, "--model", "/nonexistent"]) == 2


def test_verbose_goes_before_or_after_the_command_and_version_prints(capsys):
    from raytag.cli import build_parser

    parser = build_parser()
    assert parser.parse_args(["-v", "models"]).verbose and parser.parse_args(["models", "-v"]).verbose
    assert parser.parse_args(["train", "job.yaml", "-v"]).verbose
    assert parser.parse_args(["corpus", "magnatagatune", "--from", "d", "-o", "m.csv", "-v"]).verbose
    assert not parser.parse_args(["models"]).verbose
    assert main(["--version"]) == 0
    assert capsys.readouterr().out.strip() == "raytag 0.1.0"


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["predict", "m", "a.wav", "--max-chunks", "0"], "argument --max-chunks: must be at least 1; got 0"),
        (["predict", "m", "a.wav", "--top-k", "-1"], "argument --top-k: must be at least 0; got -1"),
        (["predict", "m", "a.wav", "--batch-size", "x"], "argument --batch-size: an integer expected; got 'x'"),
        (["review", "--max-runs", "0"], "argument --max-runs: must be at least 1; got 0"),
        (["synth", "out", "--seconds", "0"], "argument --seconds: must be above 0; got 0"),
        (["sweep", "j.yaml", "s.yaml", "--samples", "0"], "argument --samples: must be at least 1; got 0"),
        (["audit", "j.yaml", "--show", "-2"], "argument --show: must be at least 0; got -2"),
    ],
)
def test_bad_arguments_name_their_flag_and_exit_2(argv, message, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1  # one line, not argparse's usage block


def test_a_missing_argument_or_unknown_flag_is_one_line_too(capsys):
    assert main(["train"]) == 2
    assert capsys.readouterr().err.strip() == ("raytag train: the following arguments are required: job, key=value "
                                               "(see raytag train --help)")
    assert main(["models", "--bogus"]) == 2
    assert capsys.readouterr().err.strip() == "raytag: unrecognized arguments: --bogus (see raytag --help)"


MISSING_STORE = ["review", "--uri", "sqlite:////missing/x.db", "--experiment", "x"]


def test_input_errors_exit_2_with_or_without_verbose_which_adds_the_traceback(capsys):
    assert main(MISSING_STORE) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["raytag review: no MLflow store at /missing/x.db"]
    assert main(["-v", *MISSING_STORE]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[0] == "Traceback (most recent call last):"
    assert err[-1] == "raytag review: no MLflow store at /missing/x.db"


def test_any_other_error_exits_1_in_one_line_and_verbose_adds_the_traceback(monkeypatch, capsys):
    import raytag.models
    from raytag.errors import JobError

    def broken():
        raise ValueError("widths must be positive\n(a second line)")  # a ValueError that is no input error

    monkeypatch.setattr(raytag.models, "list_models", broken)
    assert main(["models"]) == 1
    assert capsys.readouterr().err.strip().splitlines() == [
        "raytag models: ValueError: widths must be positive (run with -v for the traceback)"]
    assert main(["models", "-v"]) == 1
    err = capsys.readouterr().err
    assert "Traceback (most recent call last):" in err and "in broken" in err
    assert err.strip().splitlines()[-1] == "raytag models: ValueError: widths must be positive"

    def stopped():
        raise JobError("no readable audio in the train or valid split")

    monkeypatch.setattr(raytag.models, "list_models", stopped)
    assert main(["models"]) == 1
    assert capsys.readouterr().err.strip() == ("raytag models: no readable audio in the train or valid split "
                                               "(run with -v for the traceback)")


def test_run_and_train_load_the_job_once_and_name_the_missing_manifest(tmp_path, monkeypatch, capsys):
    import raytag.config

    job = tmp_path / "j.yaml"
    job.write_text(f"name: j\ndata: {{manifest: {tmp_path / 'missing.csv'}}}\nmodel: {{name: mtt-tiny}}\n")
    loads = []
    load_job = raytag.config.load_job

    def counted(*args, **kwargs):
        loads.append(args)
        return load_job(*args, **kwargs)

    monkeypatch.setattr(raytag.config, "load_job", counted)
    for command in ("run", "train"):
        loads.clear()
        assert main([command, str(job), "train.epochs=1"]) == 2
        assert len(loads) == 1, command
        assert "missing.csv" in capsys.readouterr().err


def test_synth_into_a_folder_that_is_not_its_own_or_of_no_sample_is_bad_input(tmp_path, capsys):
    (tmp_path / "mine.txt").write_text("mine")
    assert main(["synth", str(tmp_path), "--clips", "2", "--seconds", "0.1"]) == 2
    assert "is not empty and is not a synth corpus" in capsys.readouterr().err
    assert main(["synth", str(tmp_path / "new"), "--clips", "2", "--seconds", "0.00001"]) == 2
    assert "SynthSpec.seconds must be long enough for a sample at 22050 Hz" in capsys.readouterr().err


def test_plurals_and_the_format_warning():
    from raytag.predict.outputs import format_mismatch
    from raytag.text import plural

    assert [plural(n, "track") for n in (0, 1, 2, 1500)] == ["0 tracks", "1 track", "2 tracks", "1,500 tracks"]
    assert plural(1, "run") == "1 run" and plural(3, "match", "matches") == "3 matches"
    assert format_mismatch("x.jsonl", "csv") == "--format csv writes CSV into x.jsonl, whose suffix says JSONL"
    assert format_mismatch("x.csv", "csv") is None and format_mismatch("x.txt", "csv") is None
    assert format_mismatch(None, "jsonl") is None and format_mismatch("x.jsonl", None) is None


def test_clean_labels_that_miss_tracks_are_bad_input(tmp_path):
    from types import SimpleNamespace

    from raytag.cluster.inference.evaluation import evaluation_labels
    from raytag.data.manifest import ManifestError, Track

    clean = tmp_path / "clean.csv"
    clean.write_text(f"path,tags\n{tmp_path / 'a.wav'},rock\n")
    job = SimpleNamespace(data=SimpleNamespace(clean_labels=str(clean)))
    tracks = [Track(str(tmp_path / "a.wav"), ("rock",), "valid"), Track(str(tmp_path / "b.wav"), (), "valid")]
    with pytest.raises(ManifestError, match=r"\(data.clean_labels\): no clean labels for 1 track, e\.g\. .*b\.wav"):
        evaluation_labels(job, ["rock"], tracks)
