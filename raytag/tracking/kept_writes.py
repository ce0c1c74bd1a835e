"""Writes to a tracking store that failed, kept in order and sent again when it answers.

:class:`KeptWrites` is the part of :class:`raytag.tracking.client.Tracker` that rides out a
backend outage (a tracking server restarting, a store briefly locked): a write that fails is
kept and sent again before the next write once :data:`RETRY_INTERVAL_S` has passed;
:meth:`KeptWrites.flush` waits for what is still kept. Reads (:data:`READ_METHODS`) are never
kept: their answer is needed now. Records carry the timestamp they were first logged with, so a
resend is idempotent (MLflow's SQL store drops a metric identical in key, step, value and
timestamp).
"""

from __future__ import annotations

import logging
import shutil
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

log = logging.getLogger("raytag.tracking.client")

RETRY_INTERVAL_S = 5.0
"""Seconds between tries to reach a backend that failed (writes made meanwhile are kept)."""
FLUSH_TIMEOUT_S = 60.0
"""How long :meth:`raytag.tracking.client.Tracker.end` waits for a failed backend to take the
kept records."""
READ_METHODS = frozenset({"get_metric_history", "get_run"})
"""Client methods whose answer is needed now: a failure gives None, nothing is kept."""


class KeptWrites:
    """Calls ``self.client.<method>`` for a subclass that has ``client``, ``run_id`` and ``uri``
    (:class:`raytag.tracking.client.Tracker`), keeping the writes that fail.

    Args:
        retry_interval_s: seconds between tries while the backend fails.
        flush_timeout_s: how long :meth:`flush` waits by default.
    """

    run_id: str | None
    uri: str | None

    def __init__(self, *, retry_interval_s: float = RETRY_INTERVAL_S, flush_timeout_s: float = FLUSH_TIMEOUT_S):
        self.retry_interval_s = retry_interval_s
        self.flush_timeout_s = flush_timeout_s
        self.pending: list[tuple[str, tuple, dict]] = []  # failed writes, oldest first
        self.lost = 0  # writes given up (the backend never came back)
        self.delayed = 0  # writes that arrived late, after an outage
        self._next_try = 0.0
        self._outage_since: float | None = None
        self._lock = threading.RLock()  # the driver's record writer thread logs too

    def __getstate__(self) -> dict:
        """Pickled without its lock and client (a callback's tracker travels to Ray Train's
        controller); kept records travel with it."""
        state = dict(self.__dict__)
        state["_lock"], state["_client"] = None, None
        return state

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._lock = threading.RLock()

    @property
    def failed(self) -> bool:
        """No run, records given up, or an outage now (kept records not yet sent)."""
        return self.run_id is None or self.lost > 0 or bool(self.pending)

    @property
    def failed(self) -> bool:
        """No run, records given up, or an outage now (kept records not yet sent)."""
        return self.run_id is None or self.lost > 0 or bool(self.pending)

    def _call(self, method: str, *args, **kwargs) -> Any:
        """Calls ``MlflowClient.<method>`` (the client is made inside, so its failure is caught
        too). A failed write is kept and sent again later (see the module's docstring); while
        earlier writes are kept, a new one queues behind them, so the run gets them in order."""
        if self.run_id is None:
            return None
        with self._lock:
            if method in READ_METHODS:
                return self._try(method, args, kwargs, keep=False)
            if self.pending and not self._flush_pending():
                self.pending.append((method, args, kwargs))
                return None
            return self._try(method, args, kwargs, keep=True)

    def _try(self, method: str, args: tuple, kwargs: dict, *, keep: bool) -> Any:
        try:
            return getattr(self.client, method)(*args, **kwargs)
        except Exception as exc:  # noqa: BLE001 - a backend failure must never stop training
            self._failed(method, exc)
            if keep:
                try:
                    self.pending.append((method, self._kept_args(method, args), kwargs))
                except OSError as copy_error:  # the folder to log is unreadable: nothing to keep
                    self.lost += 1
                    log.warning("MLflow %s of run %s not kept (%s)", method, self.run_id, _short(copy_error))
            return None

    def _failed(self, method: str, exc: Exception) -> None:
        self._next_try = time.monotonic() + self.retry_interval_s
        if self._outage_since is None:
            self._outage_since = time.monotonic()
            log.warning("MLflow %s failed (%s); training continues, the records of run %s are kept and sent "
                        "again when the tracking store answers", method, _short(exc), self.run_id)

    @staticmethod
    def _kept_args(method: str, args: tuple) -> tuple:
        """Arguments safe to use later: a folder to log is copied now (the caller's may be a
        temporary folder gone by the time the backend answers)."""
        if method != "log_artifacts":
            return args
        run_id, local_dir, artifact_path = args
        copy = Path(tempfile.mkdtemp(prefix="raytag-kept-")) / "files"
        shutil.copytree(local_dir, copy)
        return (run_id, str(copy), artifact_path)

    def _flush_pending(self, *, force: bool = False) -> bool:
        """Sends the kept writes, oldest first, unless the last try was under
        ``retry_interval_s`` ago (``force``: try anyway); returns whether none is left."""
        if not force and time.monotonic() < self._next_try:
            return not self.pending
        while self.pending:
            method, args, kwargs = self.pending[0]
            try:
                getattr(self.client, method)(*args, **kwargs)
            except Exception as exc:  # noqa: BLE001
                self._failed(method, exc)
                return False
            self.pending.pop(0)
            self.delayed += 1
            if method == "log_artifacts":
                shutil.rmtree(Path(args[1]).parent, ignore_errors=True)
        if self._outage_since is not None:
            log.info("MLflow run %s got the %s kept during an outage of %.0f s", self.run_id,
                     records(self.delayed), time.monotonic() - self._outage_since)
            self._outage_since = None
        return True

    def flush(self, timeout_s: float | None = None) -> bool:
        """Waits up to ``timeout_s`` (default ``flush_timeout_s``) for the backend to take the
        kept writes; returns whether all were sent. What is left stays kept."""
        deadline = time.monotonic() + (self.flush_timeout_s if timeout_s is None else timeout_s)
        with self._lock:
            if self.pending:
                log.info("waiting up to %.0f s for MLflow at %s to take %s", deadline - time.monotonic(),
                         self.uri, records(len(self.pending)))
            while not self._flush_pending(force=True):
                if time.monotonic() + self.retry_interval_s > deadline:
                    return False
                time.sleep(self.retry_interval_s)
            return True

    def give_up(self) -> None:
        """Counts the kept writes as lost and forgets them (and their copied folders)."""
        with self._lock:
            self.lost += len(self.pending)
            for method, args, _ in self.pending:
                if method == "log_artifacts":
                    shutil.rmtree(Path(args[1]).parent, ignore_errors=True)
            self.pending.clear()


def records(count: int) -> str:
    """``"1 record"``, ``"3 records"``."""
    return f"{count} record" + ("" if count == 1 else "s")


def _short(exc: Exception) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}"[:300]
