"""Shared fixtures: one local Ray instance, one tiny synthetic corpus and one model trained on it
through Ray per test session."""

from __future__ import annotations

import contextlib
import io
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from requirements import in_ci

REAL_AUDIO = Path(__file__).resolve().parents[2] / "shared" / "data" / "real-audio"
CHECKOUT = Path(__file__).resolve().parents[1]
# MLflow's defaults in the cwd: tests keep their stores and artifacts under tmp_path instead.
TRACKING_DEFAULTS = ("mlruns", "mlflow.db")


def pytest_configure(config):
    config.addinivalue_line("markers", "raytag_needs(ok, reason): see tests/requirements.py")


def pytest_runtest_setup(item):
    """A test marked with :func:`requirements.needs` whose need is unmet: skipped, or failed
    under ``CI=true`` (a missing real-audio folder or no root must not pass CI as skips)."""
    for mark in item.iter_markers("raytag_needs"):
        if not mark.kwargs["ok"]:
            reason = mark.kwargs["reason"]
            if in_ci():
                pytest.fail(f"CI=true and this test cannot run: {reason}", pytrace=False)
            pytest.skip(reason)

TINY_JOB = """
name: {name}
seed: 0
storage: {storage}
data:
  manifest: {manifest}
  clean_labels: {clean}
  decode_cpus: 0.25
model:
  name: mtt-tiny
  args: {{crop_seconds: 1.0}}
train:
  epochs: 2
  batch_size: 8
  lr: 0.003
  log_every: 100
scaling:
  num_workers: 2
  cpus_per_worker: 0.5
  max_failures: 0
eval:
  max_chunks: 2
  batch_size: 8
tracking:
  uri: sqlite:///{tracking}
  experiment: tests
"""


@pytest.fixture(scope="session", autouse=True)
def no_ambient_cluster():
    """Tests never join a cluster named by the environment they run in (``ray job submit`` and
    some CI images set ``RAY_ADDRESS``): every Ray they use is one they start themselves."""
    with pytest.MonkeyPatch.context() as patch:
        patch.delenv("RAY_ADDRESS", raising=False)
        yield


def tracking_files(folder: Path) -> set[tuple[str, int]]:
    """``(path, mtime)`` of MLflow's default store and artifact files in ``folder``."""
    found = set()
    for name in TRACKING_DEFAULTS:
        path = folder / name
        if path.is_file():
            found.add((name, path.stat().st_mtime_ns))
        elif path.is_dir():
            found |= {(str(p.relative_to(folder)), p.stat().st_mtime_ns) for p in path.rglob("*")}
    return found


@pytest.fixture(scope="session", autouse=True)
def no_tracking_files_in_the_checkout():
    """Fails the session if a test wrote ./mlruns or ./mlflow.db into the checkout or the cwd
    (an experiment made without an artifact location, a command run on MLflow's default store)."""
    folders = {CHECKOUT, Path.cwd().resolve()}
    before = {folder: tracking_files(folder) for folder in folders}
    yield
    written = sorted(f"{folder / name}" for folder in folders for name, _ in tracking_files(folder) - before[folder])
    assert not written, f"tests wrote MLflow files outside their tmp_path: {written[:10]}"


@pytest.fixture(scope="session")
def ray_session():
    """A local Ray instance sized like the CI machine (2 CPUs), shared by the integration tests."""
    import ray

    from raytag.cluster.session import init_ray

    init_ray(num_cpus=2)
    yield ray
    ray.shutdown()


@pytest.fixture(scope="session")
def tiny_corpus(tmp_path_factory) -> Path:
    """40 labelled 2 s clips at 16 kHz (28 train / 6 valid / 6 test) with noisy and clean labels."""
    from raytag.data.synth.corpus import SynthSpec, write_corpus

    out = tmp_path_factory.mktemp("tiny-corpus")
    write_corpus(out, SynthSpec(clips=40, seconds=2.0, sample_rate=16000, seed=7), overwrite=True)
    return out


def write_tiny_job(folder: Path, name: str, corpus: Path, manifest: Path | None = None) -> Path:
    """``folder/<name>.yaml``: the tiny job on ``corpus``, with its storage (``ray_results``) and
    SQLite store (``mlflow.db``) in ``folder``."""
    path = folder / f"{name}.yaml"
    path.write_text(
        TINY_JOB.format(
            name=name,
            storage=folder / "ray_results",
            manifest=manifest or corpus / "manifest.csv",
            clean=corpus / "clean.csv",
            tracking=folder / "mlflow.db",
        )
    )
    return path


@pytest.fixture
def tiny_job(tmp_path, tiny_corpus):
    """Writes a tiny job file; returns ``make(name, manifest=None) -> Path``."""

    def make(name: str = "tiny", manifest: Path | None = None) -> Path:
        return write_tiny_job(tmp_path, name, tiny_corpus, manifest)

    return make


# The shared run's job: the tiny job on 2 DDP workers for 3 epochs, with Lu et al.'s protocol
# (the best epoch chosen within the first two, the last two epochs' test metrics averaged).
TRAINED_RUN_OVERRIDES = ("train.epochs=3", "train.select_until_epoch=2", "eval.average_last=2")


@dataclass(frozen=True)
class TrainedRun:
    """A job trained by ``raytag train``: its job file and overrides, the loaded job, the outcome
    the driver returned to the command, what the command printed and raytag's log lines (the
    progress lines among them; pytest's log capture keeps them off stderr)."""

    job_file: Path
    overrides: tuple[str, ...]
    job: Any  # raytag.config.JobConfig
    outcome: Any  # raytag.cluster.training.driver.Outcome
    out: str
    err: str
    log: list[str]


@pytest.fixture(scope="session")
def trained_run(ray_session, tiny_corpus, tmp_path_factory) -> TrainedRun:
    """The tiny job trained once per session through ``raytag train`` (the real driver, on the
    shared Ray instance), into a folder of its own with its own SQLite store: for the tests that
    need a trained model or a finished MLflow run (tests/test_train_ray.py checks how it trained,
    tests/test_cli.py what the command printed and ``raytag evaluate`` on its model).

    Tests read it only: one that would change its run, model or storage works on a copy.
    """
    import raytag.cluster.training.driver as driver
    from raytag.cli import main
    from raytag.config import load_job

    folder = tmp_path_factory.mktemp("trained-run")
    job_file = write_tiny_job(folder, "ddp", tiny_corpus)
    outcomes = []
    train = driver.train

    def recorded(job, **kwargs):
        outcomes.append(train(job, **kwargs))
        return outcomes[-1]

    out, err = io.StringIO(), io.StringIO()
    lines = LogLines()
    raytag_log = logging.getLogger("raytag")
    level = raytag_log.level
    raytag_log.addHandler(lines)
    raytag_log.setLevel(logging.INFO)
    try:
        with pytest.MonkeyPatch.context() as patch, contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            patch.setattr(driver, "train", recorded)
            code = main(["train", str(job_file), *TRAINED_RUN_OVERRIDES])
    finally:
        raytag_log.removeHandler(lines)
        raytag_log.setLevel(level)
    assert code == 0, f"raytag train failed ({code}):\n{err.getvalue()[-4000:]}"
    assert len(outcomes) == 1, "raytag train did not train through raytag.cluster.training.driver.train"
    return TrainedRun(job_file, TRAINED_RUN_OVERRIDES, load_job(job_file, list(TRAINED_RUN_OVERRIDES)),
                      outcomes[0], out.getvalue(), err.getvalue(), lines.messages)


class LogLines(logging.Handler):
    """Keeps the messages of the records it handles, in order."""

    def __init__(self):
        super().__init__(logging.INFO)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())
