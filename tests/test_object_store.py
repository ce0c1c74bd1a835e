"""raytag on a real S3-compatible server (moto's, tests/object_store.py): manifests, label files,
audio, the prepared-audio cache, checkpoints, exported models and teacher scores all at
``s3://...``, reached through the AWS environment variables as a user would.

The first tests read through the server in this process (no Ray). The last one runs the
commands as a user would, each its own process with its own local Ray instance: ``prepare``,
then ``train`` with Lu et al.'s Balanced-Masking (its teacher, an exported model in the bucket,
scores the training set into the bucket's cache) on 2 workers, one of which is killed mid-run,
so the run resumes from its checkpoint in the bucket; then ``predict`` and ``review``. Nothing
but the MLflow store (the tracking store is not storage) and temporary files lands on the local
disk.
"""

from __future__ import annotations

import multiprocessing
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pytest
import yaml
from mlflow.tracking import MlflowClient

from audio_files import write
from object_store import S3Server, start_s3_server
from teachers import write_random_tagger
from raytag.audio.io import probe, read_frames
from raytag import storage
from raytag.cli import main
from raytag.cluster.training.stop import request_stop, stop_requested, take_stop_request
from raytag.data import header_cache
from raytag.data.header_cache import Header
from raytag.data.manifest import MANIFEST_COLUMNS, read_labels, read_manifest, read_paths, track_row, write_manifest
from test_session import stale_cluster_file

CORPUS = "s3://corpus/tiny"
STORAGE = "s3://runs/raytag"


@pytest.fixture(scope="module")
def s3(tmp_path_factory, tiny_corpus):
    """The server, with buckets ``corpus`` (the tiny corpus under ``tiny/``) and ``runs``."""
    server = start_s3_server(tmp_path_factory.mktemp("moto") / "server.log")
    try:
        server.create_bucket("corpus")
        server.create_bucket("runs")
        server.upload(tiny_corpus, CORPUS)
        yield server
    finally:
        server.stop()


@pytest.fixture
def s3_env(s3, monkeypatch) -> S3Server:
    for name, value in s3.env.items():
        monkeypatch.setenv(name, value)
    return s3


def test_a_manifest_in_a_bucket_names_audio_in_the_bucket(s3_env, tiny_corpus):
    manifest = read_manifest(f"{CORPUS}/manifest.csv")
    local = read_manifest(tiny_corpus / "manifest.csv")
    assert manifest.vocabulary == local.vocabulary and len(manifest.tracks) == len(local.tracks) == 40
    first = manifest.tracks[0].path
    assert first == f"{CORPUS}/audio/clip-000000.wav"  # relative paths resolve under the manifest's folder
    assert set(read_labels(f"{CORPUS}/clean.csv")) == {t.path for t in manifest.tracks}
    assert read_paths(f"{CORPUS}/manifest.csv") == [t.path for t in manifest.tracks]
    with pytest.raises(Exception, match="manifest not found: s3://corpus/nothing.csv"):
        read_manifest("s3://corpus/nothing.csv")


def test_audio_in_a_bucket_decodes_like_the_local_file(s3_env, tmp_path):
    """libsndfile (WAV, Ogg Vorbis, MP3) and FFmpeg (M4A, ADTS) read a crop through ranged requests."""
    from test_audio_codecs import encode

    encode(tmp_path / "chirp.m4a", "mp4", "aac", 22050)
    folder = tmp_path / "files"
    folder.mkdir()
    (folder / "chirp.m4a").write_bytes((tmp_path / "chirp.m4a").read_bytes())
    # MP3 (its frame headers walked for the bit reservoir) and ADTS (its frame chain checked)
    # read their bytes through the same remote file.
    clicks = np.zeros(3 * 22050, dtype=np.float32)
    clicks[::5000] = 0.9
    write(folder / "clicks", clicks, 22050, "mp3")
    write(folder / "clicks", clicks, 22050, "aac-adts")
    real = Path(__file__).resolve().parents[2] / "shared" / "data" / "real-audio"
    for name in ("medley-solos-validation-3.wav", "sorohanro-solo-trumpet.ogg"):
        if (real / name).is_file():
            (folder / name).write_bytes((real / name).read_bytes())
    s3_env.upload(folder, "s3://corpus/files")
    for local in sorted(folder.iterdir()):
        remote = f"s3://corpus/files/{local.name}"
        assert probe(remote) == probe(str(local))
        np.testing.assert_array_equal(read_frames(remote, 1000, 4000), read_frames(str(local), 1000, 4000))
    with pytest.raises(Exception, match="s3://corpus/files/missing.wav: cannot read audio"):
        probe("s3://corpus/files/missing.wav")


def test_storage_round_trip_on_the_server(s3_env):
    root = f"{STORAGE}/round-trip"
    storage.write_text(f"{root}/job/mlflow_run_id", "abc")
    assert storage.read_text(f"{root}/job/mlflow_run_id") == "abc" and storage.read_text(f"{root}/job/x") is None
    assert storage.write_stream(f"{root}/job/checkpoint_1/big.bin", iter([b"12", b"345"])) == 5
    assert storage.list_folders(f"{root}/job", prefix="checkpoint_") == [f"{root}/job/checkpoint_1"]
    with storage.local_folder(f"{root}/job/checkpoint_1") as local:
        assert (local / "big.bin").read_bytes() == b"12345"
    # `raytag stop`'s request, where the workers look for it and the driver takes it away.
    assert request_stop(f"{root}/job") == f"{root}/job/stop_requested" and stop_requested(f"{root}/job")
    assert take_stop_request(f"{root}/job") and not stop_requested(f"{root}/job")
    assert not storage.remove(f"{root}/job/stop_requested")


def test_storage_stats_lists_and_reads_ranges_on_the_server(s3_env, tiny_corpus):
    """file_stats, list_files, ranged reads; the header-scan cache and the manifest writer with
    everything in buckets."""
    from test_header_cache import Reader

    uris = [f"{CORPUS}/audio/clip-{i:06d}.wav" for i in range(3)]
    missing = f"{CORPUS}/audio/missing.wav"
    stats = storage.file_stats([*uris, missing])
    assert sorted(stats) == uris and all(stats[u].mtime_ns for u in uris)
    assert stats[uris[0]].size == (tiny_corpus / "audio" / "clip-000000.wav").stat().st_size
    assert [s.location for s in storage.list_files(f"{CORPUS}/audio")][:2] == uris[:2]
    assert storage.read_range(uris[0], 0, 4) == b"RIFF" and storage.read_range(uris[0], 8, 4) == b"WAVE"

    first = Reader()
    headers, counts = header_cache.scan([*uris, missing], f"{STORAGE}/scan", first)
    assert first.asked == [uris] and (counts.read, counts.missing) == (3, 1)
    info = probe(str(tiny_corpus / "audio" / "clip-000000.wav"))
    assert headers[uris[0]] == Header(info.frames, info.sample_rate, "")
    assert "No such file" in headers[missing].error
    second = Reader()
    assert header_cache.scan(uris, f"{STORAGE}/scan", second)[1].reused == 3 and second.asked == []

    # Two processes scanning disjoint files into one cache in the bucket at once (both read it
    # before either writes): every header is kept.
    from test_header_cache import scan_together

    more = [f"{CORPUS}/audio/clip-{i:06d}.wav" for i in range(3, 7)]
    spawn = multiprocessing.get_context("spawn")
    barrier = spawn.Barrier(2)
    scans = [spawn.Process(target=scan_together, args=(half, f"{STORAGE}/scan", barrier)) for half in (more[:2], more[2:])]
    for process in scans:
        process.start()
    for process in scans:
        process.join(timeout=300)
        if process.is_alive():
            process.kill()
    assert [process.exitcode for process in scans] == [0, 0]
    third = Reader()
    assert header_cache.scan([*uris, *more], f"{STORAGE}/scan", third)[1].reused == 7 and third.asked == []

    written = write_manifest(f"{STORAGE}/m/manifest.csv", MANIFEST_COLUMNS,
                             [track_row(u, ("x",), "train") for u in uris])
    assert [t.path for t in read_manifest(f"{STORAGE}/m/manifest.csv").tracks] == uris == [t.path for t in written.tracks]
    assert s3_env.keys(f"{STORAGE}/m") == [f"{STORAGE}/m/manifest.csv"]  # no partial file left


def _train_worker_pids(marker: str) -> list[int]:
    """Ray Train worker processes of the Ray instance whose processes carry ``marker`` in their
    environment (each command's own local instance inherits the command's environment)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes()
            if b"RayTrainWorker" in cmdline and marker.encode() in (entry / "environ").read_bytes():
                found.append(int(entry.name))
        except OSError:
            continue
    return found


def _checkpoints(s3: S3Server, run: str) -> set[str]:
    return {key.split("/checkpoint_")[1].split("/")[0] for key in s3.keys(f"{STORAGE}/{run}") if "/checkpoint_" in key}


def _command(env: dict, cwd: Path, *args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    proc = subprocess.run([sys.executable, "-m", "raytag.cli", *args], env=env, cwd=cwd, capture_output=True,
                          text=True, timeout=timeout)
    assert proc.returncode == 0, f"raytag {args[0]} failed ({proc.returncode}):\n{proc.stderr[-4000:]}"
    return proc


@pytest.mark.ray
def test_a_job_kept_in_object_storage_trains_resumes_and_serves(s3, s3_env, tmp_path, tiny_corpus):
    teacher = f"{STORAGE}/teachers/random"
    s3.upload(write_random_tagger(tmp_path / "teacher", tags=read_manifest(tiny_corpus / "manifest.csv").vocabulary),
              teacher)
    work = tmp_path / "work"  # the commands' working folder: it ends up holding the MLflow store only
    work.mkdir()
    ray_tmp = Path(tempfile.mkdtemp(prefix="rt-", dir="/tmp"))  # short: Ray's socket paths have a length limit
    stale_cluster_file(ray_tmp)  # a dead cluster Ray remembers: raytag starts its own instance anyway
    marker = f"raytag-s3-{os.getpid()}-{time.time_ns()}"
    env = {**os.environ, **s3.env, "RAY_TMPDIR": str(ray_tmp), "RAYTAG_TEST_MARKER": marker}
    tracking = f"sqlite:///{work / 'mlflow.db'}"
    job = work / "s3.yaml"
    job.write_text(yaml.safe_dump({
        "name": "s3", "seed": 0, "storage": STORAGE,
        "data": {"manifest": f"{CORPUS}/manifest.csv", "clean_labels": f"{CORPUS}/clean.csv", "decode_cpus": 0.25},
        "model": {"name": "mtt-tiny", "args": {"crop_seconds": 1.0}},
        "train": {"epochs": 4, "batch_size": 8, "lr": 0.003, "log_every": 100},
        "scaling": {"num_workers": 2, "cpus_per_worker": 0.5, "max_failures": 1},
        "eval": {"max_chunks": 2, "batch_size": 8},
        "objective": {"name": "balanced_masking", "teacher": teacher},
        "tracking": {"uri": tracking, "experiment": "s3"},
    }))
    try:
        _command(env, work, "prepare", str(job), "--no-progress")
        cached = [k for k in s3.keys(f"{STORAGE}/.raytag-cache/audio/16000hz") if k.endswith(".npy")]
        assert len(cached) == 40  # every clip of every split the job uses, in the bucket

        log = (tmp_path / "run.log").open("w")
        driver = subprocess.Popen([sys.executable, "-m", "raytag.cli", "train", str(job)], env=env, cwd=work,
                                  stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            deadline = time.time() + 400
            while len(_checkpoints(s3, "s3")) < 2:  # the first surely registered with Ray Train
                assert driver.poll() is None, (tmp_path / "run.log").read_text()[-4000:]
                assert time.time() < deadline, "no checkpoints appeared in the bucket"
                time.sleep(0.5)
            workers = _train_worker_pids(marker)
            assert workers, "no live Ray Train worker to kill"
            os.kill(workers[-1], signal.SIGKILL)
            assert driver.wait(timeout=600) == 0, (tmp_path / "run.log").read_text()[-4000:]
        finally:
            if driver.poll() is None:
                os.killpg(driver.pid, signal.SIGKILL)
    finally:
        # Each command's Ray instance stops with its command; nothing of it may survive.
        deadline = time.time() + 20  # worker processes exit shortly after their raylet
        while (leftovers := _train_worker_pids(marker)) and time.time() < deadline:
            time.sleep(0.5)
        for pid in leftovers:
            os.kill(pid, signal.SIGKILL)
        shutil.rmtree(ray_tmp, ignore_errors=True)
    assert not leftovers

    client = MlflowClient(tracking)
    experiment = client.get_experiment_by_name("s3")
    (run,) = client.search_runs([experiment.experiment_id])
    assert run.info.status == "FINISHED"
    resumed = [m.value for m in client.get_metric_history(run.info.run_id, "resumed_from_epoch")]
    assert max(resumed) >= 1  # restarted from a checkpoint in the bucket, not from scratch
    assert run.data.metrics["data/prepared_audio_tracks"] == 34  # train and valid read from the cache
    assert run.data.metrics["masking/masked_entries"] > 0  # the teacher's scores were used
    keys = s3.keys(STORAGE)
    assert f"{STORAGE}/s3/best_model/model.pt" in keys and f"{STORAGE}/s3/best_model/model.json" in keys
    assert [k for k in keys if "/.raytag-cache/teacher-scores/" in k and k.endswith(".parquet")]

    # predict reads the model and the audio from the bucket; review reads what MLflow kept of it.
    model = f"{STORAGE}/s3/best_model"
    out = tmp_path / "predictions.csv"
    assert main(["predict", model, f"{CORPUS}/audio/clip-000001.wav", "-o", str(out), "--no-progress"]) == 0
    lines = out.read_text().splitlines()
    assert len(lines) == 2 and lines[1].startswith(f"{CORPUS}/audio/clip-000001.wav,ok,")
    html = tmp_path / "review.html"
    assert main(["review", run.info.run_id, "--uri", tracking, "--html", str(html), "--no-log"]) == 0
    assert html.is_file()
    assert sorted(p.name for p in work.iterdir()) == ["mlflow.db", "mlruns", "s3.yaml"]
