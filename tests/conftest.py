"""Shared fixtures: one local Ray instance and one tiny synthetic corpus per test session."""

from __future__ import annotations

from pathlib import Path

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
    from raytag.data.synth import SynthSpec, write_corpus

    out = tmp_path_factory.mktemp("tiny-corpus")
    write_corpus(out, SynthSpec(clips=40, seconds=2.0, sample_rate=16000, seed=7), overwrite=True)
    return out


@pytest.fixture
def tiny_job(tmp_path, tiny_corpus):
    """Writes a tiny job file; returns ``make(name, manifest=None) -> Path``."""

    def make(name: str = "tiny", manifest: Path | None = None) -> Path:
        path = tmp_path / f"{name}.yaml"
        path.write_text(
            TINY_JOB.format(
                name=name,
                storage=tmp_path / "ray_results",
                manifest=manifest or tiny_corpus / "manifest.csv",
                clean=tiny_corpus / "clean.csv",
                tracking=tmp_path / "mlflow.db",
            )
        )
        return path

    return make
