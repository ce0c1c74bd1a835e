"""MLflow tracking that never stops training.

:class:`Tracker` wraps one MLflow run through ``MlflowClient`` (no global active run, so it
works the same on the driver and inside a Ray Train worker). If the backend fails, the first
failure is logged as a warning and the tracker goes quiet for the rest of the run: a lost
tracking server costs the remaining records, not the training.
"""

from __future__ import annotations

import logging
import math
import os
import socket
import ssl
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from raytag.errors import InputError

log = logging.getLogger(__name__)

HTTP_LIMITS = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "2", "MLFLOW_HTTP_REQUEST_TIMEOUT": "15",
               "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1"}
SERVER_PROBE_TIMEOUT_S = 5.0
ARTIFACTS_DIR = "mlruns"  # a SQLite store's artifacts: this folder beside the database file
MAX_PARAMS_PER_CALL = 100
MAX_PARAM_LENGTH = 6000
SQLITE_MAGIC = b"SQLite format 3\x00"  # the first 16 bytes of every SQLite 3 database
FILE_STORE_MARKER = "meta.yaml"  # in each experiment folder of an MLflow file store


class StoreError(InputError):
    """A tracking store that a reading command cannot use: missing, a file store, or a server
    that does not answer."""


def default_uri() -> str:
    """MLflow's own default store: ``sqlite:///<cwd>/mlflow.db`` (absolute, for workers)."""
    return f"sqlite:///{Path.cwd().resolve() / 'mlflow.db'}"


def resolve_uri(uri: str | None) -> str:
    """An explicit URI, else ``MLFLOW_TRACKING_URI``, else :func:`default_uri`."""
    return uri or os.environ.get("MLFLOW_TRACKING_URI") or default_uri()


def limit_http_retries() -> None:
    """A tracking server that goes away must cost an error within seconds, not minutes of
    retries (MLflow's defaults: 7 retries with backoff, 120 s timeouts). Values already in the
    environment win."""
    for variable, value in HTTP_LIMITS.items():
        os.environ.setdefault(variable, value)


def sqlite_path(uri: str) -> Path | None:
    """The database file of a ``sqlite:///`` URI (relative to the cwd unless it starts with
    ``sqlite:////``), or None for other URIs and in-memory databases."""
    if not uri.startswith("sqlite:///"):
        return None
    path = uri[len("sqlite:///"):].split("?", 1)[0]
    return Path(path) if path and path != ":memory:" else None


def is_sqlite_file(path: Path) -> bool:
    """Whether ``path`` is a SQLite 3 database (by its 16-byte header; an empty file is not)."""
    try:
        with path.open("rb") as handle:
            return handle.read(len(SQLITE_MAGIC)) == SQLITE_MAGIC
    except OSError:
        return False


def artifact_location(uri: str) -> str | None:
    """Where a new experiment in store ``uri`` keeps its artifacts: beside a SQLite database
    (``<db folder>/mlruns``, which is MLflow's ``./mlruns`` when the database is the default
    one in the cwd), so a store and its artifacts stay together whatever the cwd; None (the
    server's or backend's own default) for other stores."""
    path = sqlite_path(uri)
    return str(path.resolve().parent / ARTIFACTS_DIR) if path is not None else None


def existing_store(uri: str | None, *, option: str = "--uri") -> str:
    """The resolved tracking URI (see :func:`resolve_uri`) of a store that exists, for
    commands that only read: they must never create a store, nor wait minutes on a server.

    Args:
        uri: the URI given on the command line, or None for the default.
        option: the command-line flag that names a store, for the error message.

    Returns:
        The resolved URI. HTTP retries are limited (:func:`limit_http_retries`).

    A plain path to an existing SQLite file is that SQLite store (``sqlite:///<absolute path>``).

    Raises:
        StoreError: a SQLite file or file-store folder that does not exist, a file that is not
            a SQLite database, a folder that is not an MLflow file store (no experiment folder
            with ``meta.yaml``), a file store (MLflow refuses them unless
            ``MLFLOW_ALLOW_FILE_STORE`` is set), or an ``http(s)://`` address that is not a
            working MLflow server (:func:`probe_server`, at most about 10 s).
    """
    from urllib.parse import urlsplit

    resolved = resolve_uri(uri)
    hint = "" if uri or os.environ.get("MLFLOW_TRACKING_URI") else (
        f" (MLflow's default store in the current folder; name one with {option} or MLFLOW_TRACKING_URI)"
    )
    parts = urlsplit(resolved)
    database = sqlite_path(resolved)
    if database is not None:
        if not database.is_file():
            raise StoreError(f"no MLflow store at {database.absolute()}{hint}")
        if not is_sqlite_file(database):
            raise StoreError(f"{database.absolute()} is not a SQLite database, so not an MLflow store")
    elif parts.scheme in ("", "file"):
        folder = Path(parts.path if parts.scheme else resolved)
        if not parts.scheme and folder.is_file() and is_sqlite_file(folder):
            return f"sqlite:///{folder.resolve()}"  # a plain path to a SQLite store
        if folder.is_file():
            raise StoreError(f"{folder.absolute()} is not an MLflow store (neither a SQLite database nor a folder); "
                             "name a SQLite store as sqlite:///PATH or PATH to its .db file")
        if not folder.is_dir():
            raise StoreError(f"no MLflow store at {folder.absolute()}{hint}")
        if not any(folder.glob(f"*/{FILE_STORE_MARKER}")):
            raise StoreError(f"{folder.absolute()} is a folder but not an MLflow file store (no experiment folder "
                             f"with {FILE_STORE_MARKER}); a SQLite store is named sqlite:///PATH/mlflow.db")
        if os.environ.get("MLFLOW_ALLOW_FILE_STORE", "").lower() not in ("1", "true"):
            raise StoreError(
                f"{resolved} is an MLflow file store, which MLflow no longer opens: convert it with "
                "`mlflow migrate-filestore` and name the SQLite file (sqlite:///PATH/mlflow.db), or set "
                "MLFLOW_ALLOW_FILE_STORE=true"
            )
    elif parts.scheme in ("http", "https"):
        limit_http_retries()
        probe_server(resolved)
    return resolved


def probe_server(uri: str, *, timeout_s: float = SERVER_PROBE_TIMEOUT_S) -> None:
    """Checks that ``uri`` is an MLflow tracking server, in at most about ``2 * timeout_s``
    seconds: it must accept a connection within ``timeout_s`` and answer one small REST call
    (``GET <uri>/api/2.0/mlflow/experiments/search?max_results=1``) with a JSON object within
    ``timeout_s`` more. Credentials in ``MLFLOW_TRACKING_TOKEN`` or
    ``MLFLOW_TRACKING_USERNAME``/``PASSWORD`` are sent as MLflow's client sends them.

    Raises:
        StoreError: nothing accepts the connection, the connection is accepted but nothing
            answers, or the answer is not MLflow's (a plain web server, another service).
    """
    import base64
    import json
    import urllib.error
    import urllib.request
    from urllib.parse import urlsplit

    parts = urlsplit(uri)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    where = f"{parts.hostname}:{port}"
    try:
        socket.create_connection((parts.hostname or "localhost", port), timeout=timeout_s).close()
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise StoreError(f"no MLflow tracking server answers at {where} ({reason})") from None
    netloc = f"[{parts.hostname}]" if ":" in (parts.hostname or "") else (parts.hostname or "localhost")
    base = f"{parts.scheme}://{netloc}:{port}{parts.path.rstrip('/')}"  # without user:password@
    request = urllib.request.Request(f"{base}/api/2.0/mlflow/experiments/search?max_results=1",
                                     headers={"Accept": "application/json"})
    if parts.username:
        pair = f"{parts.username}:{parts.password or ''}"
        request.add_header("Authorization", "Basic " + base64.b64encode(pair.encode()).decode())
    elif os.environ.get("MLFLOW_TRACKING_TOKEN"):
        request.add_header("Authorization", f"Bearer {os.environ['MLFLOW_TRACKING_TOKEN']}")
    elif os.environ.get("MLFLOW_TRACKING_USERNAME"):
        pair = f"{os.environ['MLFLOW_TRACKING_USERNAME']}:{os.environ.get('MLFLOW_TRACKING_PASSWORD', '')}"
        request.add_header("Authorization", "Basic " + base64.b64encode(pair.encode()).decode())
    not_mlflow = f"{where} is not an MLflow tracking server"
    try:
        with urllib.request.urlopen(request, timeout=timeout_s, context=_tls_context()) as response:
            body = response.read(1 << 20)
    except urllib.error.HTTPError as exc:
        if exc.code in (401, 403):
            raise StoreError(f"the MLflow tracking server at {where} refuses access (HTTP {exc.code}): set "
                             "MLFLOW_TRACKING_USERNAME/MLFLOW_TRACKING_PASSWORD or MLFLOW_TRACKING_TOKEN") from None
        raise StoreError(f"{not_mlflow} (HTTP {exc.code} for MLflow's REST API at {request.full_url})") from None
    except (TimeoutError, socket.timeout):
        raise StoreError(f"{where} accepts connections but does not answer within {timeout_s:g} s: "
                         "not a working MLflow tracking server") from None
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", None) or exc
        if isinstance(reason, ssl.SSLError):
            raise StoreError(f"TLS with {where} failed ({reason}); set MLFLOW_TRACKING_SERVER_CERT_PATH to its "
                             "certificate, or MLFLOW_TRACKING_INSECURE_TLS=true") from None
        if isinstance(reason, (TimeoutError, socket.timeout)):
            raise StoreError(f"{where} accepts connections but does not answer within {timeout_s:g} s: "
                             "not a working MLflow tracking server") from None
        raise StoreError(f"{not_mlflow} ({reason})") from None
    try:
        answer = json.loads(body)
    except ValueError:
        answer = None
    if not isinstance(answer, dict):
        raise StoreError(f"{not_mlflow} (its answer to MLflow's REST API is not JSON)")


def _tls_context():
    """The TLS settings MLflow's own client takes from the environment
    (``MLFLOW_TRACKING_INSECURE_TLS``, ``MLFLOW_TRACKING_SERVER_CERT_PATH``), for the probe."""
    if os.environ.get("MLFLOW_TRACKING_INSECURE_TLS", "").lower() in ("1", "true"):
        return ssl._create_unverified_context()  # noqa: S323 - the user asked for it, as MLflow does
    cafile = os.environ.get("MLFLOW_TRACKING_SERVER_CERT_PATH")
    return ssl.create_default_context(cafile=cafile) if cafile else None


class Tracker:
    """Best-effort logging into one MLflow run; every method is a no-op once disabled."""

    def __init__(self, uri: str | None, run_id: str | None):
        self.uri = uri
        self.run_id = run_id
        self._client = None
        self.failed = run_id is None

    @classmethod
    def disabled(cls) -> Tracker:
        return cls(None, None)

    @classmethod
    def start(
        cls,
        uri: str,
        experiment: str,
        run_name: str,
        *,
        tags: dict[str, str] | None = None,
        parent_run_id: str | None = None,
        resume_run_id: str | None = None,
        resume_requires: dict[str, str] | None = None,
    ) -> Tracker:
        """Creates a run with ``tags``, or resumes ``resume_run_id`` when it exists, is not
        finished and has the tags ``resume_requires`` (e.g. how its records are numbered); a
        failing backend gives a disabled tracker and a warning."""
        tracker = cls(uri, None)
        try:
            client = tracker.client
            if resume_run_id and _resumable(client, resume_run_id, resume_requires or {}):
                tracker.run_id = resume_run_id
                client.update_run(resume_run_id, status="RUNNING")
            else:
                found = client.get_experiment_by_name(experiment)
                experiment_id = found.experiment_id if found else client.create_experiment(
                    experiment, artifact_location=artifact_location(uri)
                )
                run_tags = dict(tags or {})
                if parent_run_id:
                    run_tags["mlflow.parentRunId"] = parent_run_id
                run = client.create_run(experiment_id, run_name=run_name, tags=run_tags)
                tracker.run_id = run.info.run_id
            tracker.failed = False
        except Exception as exc:  # noqa: BLE001 - any backend failure must not stop training
            log.warning("MLflow tracking at %s is unavailable (%s); training continues without it", uri, _short(exc))
        return tracker

    @property
    def client(self):
        if self._client is None:
            from mlflow.tracking import MlflowClient

            limit_http_retries()
            self._client = MlflowClient(tracking_uri=self.uri)
        return self._client

    def _call(self, method: str, *args, **kwargs) -> Any:
        """Calls ``MlflowClient.<method>``; the client is made inside, so its failure is caught too."""
        if self.failed:
            return None
        try:
            return getattr(self.client, method)(*args, **kwargs)
        except Exception as exc:  # noqa: BLE001
            self.failed = True
            log.warning(
                "MLflow %s failed (%s); training continues, no more records go to run %s",
                method, _short(exc), self.run_id,
            )
            return None

    def log_params(self, params: dict[str, Any]) -> None:
        from mlflow.entities import Param

        items = [Param(k, _param_value(v)) for k, v in sorted(params.items())]
        for i in range(0, len(items), MAX_PARAMS_PER_CALL):
            self._call("log_batch", self.run_id, params=items[i : i + MAX_PARAMS_PER_CALL])

    def log_metrics(self, metrics: dict[str, float], step: int | None = None) -> None:
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        items = [
            Metric(metric_key(k), float(v), now, step or 0)
            for k, v in sorted(metrics.items())
            if isinstance(v, (int, float)) and math.isfinite(v)
        ]
        if items:
            self._call("log_batch", self.run_id, metrics=items)

    def logged_steps(self, key: str) -> set[int]:
        """The steps at which metric ``key`` is already in the run (e.g. epochs, on resume)."""
        history = self._call("get_metric_history", self.run_id, key) or []
        return {int(m.step) for m in history}

    def set_tags(self, tags: dict[str, str]) -> None:
        for key, value in tags.items():
            self._call("set_tag", self.run_id, key, str(value))

    def log_text(self, text: str, artifact_file: str) -> None:
        self._call("log_text", self.run_id, text, artifact_file)

    def log_dict(self, data: dict, artifact_file: str) -> None:
        self._call("log_dict", self.run_id, data, artifact_file)

    def log_artifacts(self, local_dir: str | Path, artifact_path: str | None = None) -> None:
        self._call("log_artifacts", self.run_id, str(local_dir), artifact_path)

    def log_table(self, rows: Iterable[dict], artifact_file: str) -> None:
        """A per-row table as CSV (readable anywhere) and as an MLflow table (for the UI)."""
        import pandas as pd

        frame = pd.DataFrame(list(rows))
        self.log_text(frame.to_csv(index=False), artifact_file)
        self._call("log_table", self.run_id, frame, artifact_file.rsplit(".", 1)[0] + ".json")

    def end(self, status: str = "FINISHED") -> None:
        self._call("set_terminated", self.run_id, status=status)

    def handle(self) -> dict[str, str | None]:
        """What a worker needs to log into the same run."""
        return {"uri": self.uri, "run_id": None if self.failed else self.run_id}


def _resumable(client, run_id: str, tags: dict[str, str]) -> bool:
    try:
        run = client.get_run(run_id)
    except Exception:  # noqa: BLE001 - a deleted or unknown run is simply not resumed
        return False
    return run.info.status != "FINISHED" and all(run.data.tags.get(k) == str(v) for k, v in tags.items())


def _param_value(value: Any) -> str:
    text = str(value)
    return text if len(text) <= MAX_PARAM_LENGTH else text[: MAX_PARAM_LENGTH - 3] + "..."


def metric_key(key: str) -> str:
    """The MLflow metric key raytag logs for ``key``: letters, digits, ``_ - . space /`` kept,
    anything else mapped to ``_`` (so ``mask/masked/r&b`` is logged as ``mask/masked/r_b``)."""
    return "".join(c if c.isalnum() or c in "_-. /" else "_" for c in key)


def _short(exc: Exception) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}"[:300]
