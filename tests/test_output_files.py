"""Output files a user names (-o, --html) are checked before any work: a missing folder is an
error (never created), an unwritable place fails at once."""

from __future__ import annotations

import pytest
from mlflow.tracking import MlflowClient

from raytag.cli import main
from raytag.output_files import OutputPathError, check_output_file, check_output_folder

UNWRITABLE = "/proc/raytag-review-test.html"  # procfs takes no new files, whoever runs the test


def test_a_missing_folder_is_named_and_not_created(tmp_path):
    missing = tmp_path / "missing-dir" / "out.csv"
    with pytest.raises(OutputPathError, match=f"-o {missing}: the folder {missing.parent} does not exist"):
        check_output_file(missing, "-o")
    with pytest.raises(OutputPathError, match="does not exist"):
        check_output_folder(tmp_path / "missing-dir" / "audit", "-o")
    assert not missing.parent.exists()
    with pytest.raises(OutputPathError, match="cannot write there"):
        check_output_file(UNWRITABLE, "--html")
    with pytest.raises(OutputPathError, match="is a folder"):
        check_output_file(tmp_path, "-o")
    existing = tmp_path / "kept.csv"
    existing.write_text("a,b\n")
    assert check_output_file(existing, "-o") == existing and existing.read_text() == "a,b\n"
    assert check_output_file(tmp_path / "new.csv", "-o") == tmp_path / "new.csv"
    assert not (tmp_path / "new.csv").exists()  # the probe leaves nothing behind
    assert check_output_folder(tmp_path / "audit", "-o") == tmp_path / "audit"


def test_commands_refuse_a_missing_output_folder_before_any_work(tmp_path, capsys):
    missing = tmp_path / "missing-dir" / "out.csv"
    # predict: the model does not exist either; the output is checked first, before loading it.
    assert main(["predict", str(tmp_path / "no-model"), str(tmp_path / "a.wav"), "-o", str(missing)]) == 2
    assert f"-o {missing}: the folder {missing.parent} does not exist" in capsys.readouterr().err
    assert main(["corpus", "magnatagatune", "--from", str(tmp_path), "-o", str(missing)]) == 2
    assert f"-o {missing}: the folder {missing.parent} does not exist" in capsys.readouterr().err
    audit = tmp_path / "missing-dir" / "audit"
    assert main(["audit", "jobs/demo-teacher.yaml", "-o", str(audit)]) == 2  # before Ray starts
    assert f"-o {audit}: the folder {audit.parent} does not exist" in capsys.readouterr().err
    assert not missing.parent.exists()


def test_review_html_into_an_unwritable_place_fails_before_the_report_is_built(tmp_path, capsys):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    MlflowClient(uri).search_experiments()  # a real, empty store
    # The run does not exist: the --html error comes first, before any run is read.
    run_id = "0123456789abcdef0123456789abcdef"
    assert main(["review", run_id, "--uri", uri, "--html", UNWRITABLE]) == 2
    assert capsys.readouterr().err.strip().startswith(f"raytag review: --html {UNWRITABLE}: cannot write there (")
    missing = tmp_path / "missing-dir" / "r.html"
    assert main(["review", run_id, "--uri", uri, "--html", str(missing)]) == 2
    assert "does not exist (raytag does not create it)" in capsys.readouterr().err
    assert not missing.parent.exists()


def test_predict_segment_outputs_refuse_a_missing_folder_before_the_model_is_loaded(tmp_path, capsys):
    missing = tmp_path / "missing-dir"
    base = ["predict", str(tmp_path / "no-model"), str(tmp_path / "a.wav")]
    # The model does not exist: each output is checked first, before loading it.
    for flag, name in (("--taggram", "t.csv"), ("--embeddings", "e.jsonl"), ("--embeddings", "e.npy")):
        assert main([*base, flag, str(missing / name)]) == 2
        assert f"{flag} {missing / name}: the folder {missing} does not exist" in capsys.readouterr().err
    assert main([*base, "--taggram-png", str(missing / "maps")]) == 2
    assert f"--taggram-png {missing / 'maps'}: the folder {missing} does not exist" in capsys.readouterr().err
    assert not missing.exists()
    # A .npy's rows file beside it is checked too: here a folder stands where it would go.
    (tmp_path / "e.rows.csv").mkdir()
    assert main([*base, "--embeddings", str(tmp_path / "e.npy")]) == 2
    assert f"--embeddings {tmp_path / 'e.rows.csv'}: is a folder" in capsys.readouterr().err
    # Writable places pass the check and get to the model, which is missing.
    assert main([*base, "--taggram", str(tmp_path / "t.csv"), "--taggram-png", str(tmp_path / "maps")]) == 2
    assert "no-model" in capsys.readouterr().err
    assert not (tmp_path / "t.csv").exists() and not (tmp_path / "maps").exists()
