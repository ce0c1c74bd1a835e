"""Commands that read MLflow never create a store nor hang on a server that is not there, and
stores keep their artifacts beside them; against real SQLite stores in tmp_path."""

from __future__ import annotations

import functools
import http.server
import socket
import threading
import time

import pytest
from mlflow.tracking import MlflowClient
from review_store import fill_pipeline

from raytag.cli import main
from raytag.tracking import run_tags as tag_names
from raytag.tracking.client import StoreError, Tracker, artifact_location, existing_store


@pytest.fixture
def empty_folder(tmp_path, monkeypatch):
    """An empty cwd and no MLFLOW_TRACKING_URI: MLflow's default store would be ./mlflow.db."""
    folder = tmp_path / "empty"
    folder.mkdir()
    monkeypatch.chdir(folder)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    return folder


def free_port() -> int:
    """A loopback port with nothing listening on it."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_review_and_predict_never_create_a_store(empty_folder, capsys):
    wrong = empty_folder / "wrong" / "path.db"
    assert main(["review", "--uri", f"sqlite:///{wrong}", "--experiment", "x"]) == 2
    assert capsys.readouterr().err.strip() == f"raytag review: no MLflow store at {wrong}"
    assert main(["review", "--experiment", "x"]) == 2
    err = capsys.readouterr().err
    assert f"no MLflow store at {empty_folder / 'mlflow.db'}" in err and "--uri or MLFLOW_TRACKING_URI" in err
    assert main(["predict", "models:/m-0123", str(empty_folder / "a.wav")]) == 2
    assert "--tracking-uri or MLFLOW_TRACKING_URI" in capsys.readouterr().err
    assert main(["predict", "runs:/0123/tagger", "a.wav", "--tracking-uri", "sqlite:///relative.db"]) == 2
    assert f"no MLflow store at {empty_folder / 'relative.db'}" in capsys.readouterr().err
    assert sorted(p.name for p in empty_folder.iterdir()) == []


def test_a_server_that_is_not_there_is_one_line(empty_folder, capsys):
    port = free_port()
    assert main(["review", "--uri", f"http://127.0.0.1:{port}", "--experiment", "x"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"raytag review: no MLflow tracking server answers at 127.0.0.1:{port} (")
    assert "\n" not in err


def test_a_file_store_is_one_line_and_an_existing_sqlite_store_is_used(tmp_path, empty_folder, capsys, monkeypatch):
    (tmp_path / "mlruns" / "0").mkdir(parents=True)
    (tmp_path / "mlruns" / "0" / "meta.yaml").write_text("experiment_id: '0'\nname: Default\n")
    for uri in (str(tmp_path / "mlruns"), f"file://{tmp_path / 'mlruns'}"):
        assert main(["review", "--uri", uri, "--experiment", "x"]) == 2
        err = capsys.readouterr().err.strip()
        assert "is an MLflow file store" in err and "mlflow migrate-filestore" in err and "\n" not in err
    assert main(["review", "--uri", f"file://{tmp_path / 'none'}", "--experiment", "x"]) == 2
    assert f"no MLflow store at {tmp_path / 'none'}" in capsys.readouterr().err
    database = tmp_path / "mlflow.db"
    MlflowClient(f"sqlite:///{database}").search_experiments()  # a real store
    assert existing_store(f"sqlite:///{database}") == f"sqlite:///{database}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{database}")
    assert existing_store(None) == f"sqlite:///{database}"
    with pytest.raises(StoreError, match="no MLflow store at"):
        existing_store(f"sqlite:///{tmp_path / 'other.db'}")


def test_an_experiment_keeps_its_artifacts_beside_its_sqlite_store(tmp_path, empty_folder):
    """Not in ./mlruns of the cwd, MLflow's default (how tests once filled the checkout's)."""
    store = tmp_path / "store"
    store.mkdir()
    uri = f"sqlite:///{store / 'mlflow.db'}"
    tracker = Tracker.start(uri, "beside", "run")
    tracker.log_text("hello", "notes/a.txt")
    tracker.end()
    experiment = MlflowClient(uri).get_experiment_by_name("beside")
    assert experiment.artifact_location.removeprefix("file://") == str(store / "mlruns")
    assert (store / "mlruns" / tracker.run_id / "artifacts" / "notes" / "a.txt").is_file()
    assert not (empty_folder / "mlruns").exists()
    assert artifact_location("http://127.0.0.1:5000") is None
    assert artifact_location("sqlite:///relative/mlflow.db") == str(empty_folder / "relative" / "mlruns")


def test_review_lists_each_runs_mlflow_model(tmp_path, capsys):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = MlflowClient(uri)
    ids = fill_pipeline(client, client.create_experiment("pipelines", artifact_location=str(tmp_path / "artifacts")))
    client.set_tag(ids["student"], tag_names.LOGGED_MODEL_ID, "m-0123456789")
    args = ["review", ids["teacher"], ids["student"], "--uri", uri, "--html", str(tmp_path / "r.html")]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "MLflow models" in out and "student: models:/m-0123456789" in out and "teacher: models:/" not in out
    html = (tmp_path / "r.html").read_text()
    assert html.count("MLflow model <code>") == 1 and "<code>models:/m-0123456789</code>" in html


@pytest.fixture
def plain_web_server(tmp_path):
    """A real HTTP server on a free loopback port serving an HTML page (not MLflow)."""
    site = tmp_path / "site"
    site.mkdir()
    (site / "index.html").write_text("<html><body>hello</body></html>")
    class QuietHandler(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):  # the test reads the command's stderr
            pass

    handler = functools.partial(QuietHandler, directory=str(site))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.fixture
def silent_server():
    """A loopback socket that accepts connections (the kernel completes the handshake) but
    never answers."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(16)
        yield f"http://127.0.0.1:{listener.getsockname()[1]}"


def test_a_plain_web_server_is_named_not_mlflow_in_one_line(plain_web_server, empty_folder, capsys):
    where = plain_web_server.removeprefix("http://")
    for args in (["--experiment", "x"], ["0123456789abcdef0123456789abcdef"]):
        started = time.monotonic()
        assert main(["review", "--uri", plain_web_server, *args]) == 2
        assert time.monotonic() - started < 20
        err = capsys.readouterr().err.strip()
        assert err.startswith(f"raytag review: {where} is not an MLflow tracking server (HTTP 404")
        assert "\n" not in err and "no run" not in err


def test_a_server_that_never_answers_is_one_line_within_20_s(silent_server, empty_folder, capsys):
    started = time.monotonic()
    assert main(["review", "--uri", silent_server, "--experiment", "x"]) == 2
    assert time.monotonic() - started < 20
    err = capsys.readouterr().err.strip()
    where = silent_server.removeprefix("http://")
    assert err.startswith(f"raytag review: {where} accepts connections but does not answer within 5 s")
    assert "\n" not in err and "Read timed out" not in err


def test_a_plain_path_to_a_sqlite_store_is_that_store(tmp_path, empty_folder, capsys):
    database = tmp_path / "mlflow.db"
    client = MlflowClient(f"sqlite:///{database}")
    ids = fill_pipeline(client, client.create_experiment("pipelines", artifact_location=str(tmp_path / "artifacts")))
    assert existing_store(str(database)) == f"sqlite:///{database}"
    assert main(["review", "--uri", str(database), ids["teacher"], "--html", str(tmp_path / "r.html")]) == 0
    assert "demo-progressive-teacher" in capsys.readouterr().out
    text = tmp_path / "notes.db"
    text.write_text("not a database")
    for uri in (str(text), f"sqlite:///{text}"):
        with pytest.raises(StoreError, match="is not a SQLite database|is not an MLflow store"):
            existing_store(uri)


def test_a_folder_that_is_not_a_file_store_is_not_called_one(tmp_path, empty_folder, capsys):
    (tmp_path / "photos" / "2024").mkdir(parents=True)
    for uri in (str(tmp_path / "photos"), f"file://{tmp_path / 'photos'}"):
        assert main(["review", "--uri", uri, "--experiment", "x"]) == 2
        err = capsys.readouterr().err.strip()
        assert err == (f"raytag review: {tmp_path / 'photos'} is a folder but not an MLflow file store (no "
                       "experiment folder with meta.yaml); a SQLite store is named sqlite:///PATH/mlflow.db")


def test_tls_trouble_is_named_as_such(plain_web_server, empty_folder):
    """https:// to a server that speaks plain HTTP: a TLS failure, with the settings MLflow reads."""
    address = plain_web_server.replace("http://", "https://")
    with pytest.raises(StoreError, match="TLS with 127.0.0.1:[0-9]+ failed .*MLFLOW_TRACKING_SERVER_CERT_PATH"):
        existing_store(address)
