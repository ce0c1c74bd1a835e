"""Integration: ``raytag prepare`` on a local Ray instance (Ray Data), and a job end to end on
real recordings listed in MTG-Jamendo's format: adapter → prepare → train one epoch → evaluate.

The prepare tests run Ray Data only; the end-to-end test trains (Ray Train)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from mlflow.tracking import MlflowClient

from requirements import needs_real_audio
from raytag.cli import main
from raytag.cluster.data.datasets import scan_tracks
from raytag.cluster.data.prepare import prepare_audio
from raytag.config import load_job
from raytag.data.corpora.mtg_jamendo import split_file
from raytag.data.manifest import read_manifest

REAL_AUDIO = Path(__file__).resolve().parents[2] / "shared" / "data" / "real-audio"
pytestmark = pytest.mark.ray


def cache_files(storage: Path, rate: int) -> dict[str, int]:
    folder = storage / ".raytag-cache" / "audio" / f"{rate}hz"
    return {p.name: p.stat().st_mtime_ns for p in folder.rglob("*.npy")} if folder.is_dir() else {}


@pytest.fixture
def damaged_manifest(tiny_corpus, tmp_path) -> Path:
    """The tiny corpus plus a FLAC damaged between the places the scan checks (it passes the
    scan, then fails to decode) and a file that is not audio (the scan skips it)."""
    bad = tmp_path / "bad"
    bad.mkdir()
    audio = 0.1 * np.random.default_rng(0).standard_normal(16000 * 10).astype(np.float32)
    sf.write(bad / "damaged.flac", audio, 16000)
    data = (bad / "damaged.flac").read_bytes()
    cut = len(data) // 4
    (bad / "damaged.flac").write_bytes(data[:cut] + os.urandom(len(data) // 10) + data[cut + len(data) // 10 :])
    (bad / "noise.wav").write_bytes(b"RIFF\x00\x00\x00\x00WAVEfmt " + os.urandom(200))
    rows = (tiny_corpus / "manifest.csv").read_text().splitlines()
    body = [r.replace("audio/", f"{tiny_corpus}/audio/", 1) for r in rows[1:]]
    extra = [f"{bad}/damaged.flac,piano,train,false,x", f"{bad}/noise.wav,bass,valid,false,x"]
    manifest = tmp_path / "manifest.csv"
    manifest.write_text("\n".join([rows[0], *body, *extra]) + "\n")
    return manifest


def test_prepare_is_resumable_counts_failures_and_follows_the_model_rate(ray_session, tiny_job, damaged_manifest,
                                                                          capsys):
    job = load_job(tiny_job("prep", manifest=damaged_manifest))
    storage = Path(job.storage)

    first = prepare_audio(job, progress=True)
    (rate,) = first.rates
    # 40 clips (train, valid, test) + the damaged FLAC pass the scan; the damaged one fails.
    assert (rate.sample_rate, rate.usable, rate.prepared, rate.already_cached) == (16000, 41, 40, 0)
    assert [path for path, _ in rate.failed] == [str(damaged_manifest.parent / "bad" / "damaged.flac")]
    assert "decoding failed" in rate.failed[0][1]
    assert [path for path, _ in first.unusable] == [str(damaged_manifest.parent / "bad" / "noise.wav")]
    files = cache_files(storage, 16000)
    assert len(files) == 40 and rate.folder_files == 40
    assert rate.bytes_of_tracks == rate.bytes_written == rate.folder_bytes == sum(
        p.stat().st_size for p in (storage / ".raytag-cache").rglob("*.npy"))
    assert not list(storage.rglob("*.partial"))
    text = first.format()
    assert "16000 Hz (prep): 41 usable tracks: 40 prepared now, 0 already cached, 1 failed" in text
    assert "damaged.flac" in text and "noise.wav" in text
    assert "prepare: 100%" in capsys.readouterr().err  # one progress bar

    # A rerun prepares nothing and leaves the files alone; a removed file is prepared again.
    second = prepare_audio(job, progress=False)
    assert (second.rates[0].prepared, second.rates[0].already_cached, len(second.rates[0].failed)) == (0, 40, 1)
    assert cache_files(storage, 16000) == files
    removed = next((storage / ".raytag-cache").rglob("*.npy"))
    removed.unlink()
    third = prepare_audio(job, progress=False)
    assert (third.rates[0].prepared, third.rates[0].already_cached) == (1, 39)

    # A model at another rate prepares anew, in its own folder; the 16 kHz files stay.
    other = load_job(tiny_job("prep", manifest=damaged_manifest), ["model.args.sample_rate=22050"])
    switched = prepare_audio(other, progress=False)
    assert (switched.rates[0].sample_rate, switched.rates[0].prepared, switched.rates[0].already_cached) == (22050, 40, 0)
    assert len(cache_files(storage, 22050)) == 40 and len(cache_files(storage, 16000)) == 40


def test_jobs_after_prepare_read_no_header_and_a_touched_file_only_it(ray_session, tiny_job, damaged_manifest):
    """prepare's scan fills the header cache under storage; a job's scan (train, evaluate, audit,
    each sweep trial and pipeline stage) then reads no header, and after a file changes, only
    that one."""
    job = load_job(tiny_job("scan", manifest=damaged_manifest))
    prepare_audio(job, progress=False)
    manifest = read_manifest(job.data.manifest)
    tracks = [t for split in ("train", "valid", "test") for t in manifest.split(split)]
    scan = scan_tracks(tracks, num_cpus=job.data.decode_cpus, storage_root=job.storage)
    assert (scan.counts.read, scan.counts.reused, scan.counts.missing) == (0, 42, 0)
    assert [path for path, _ in scan.skipped] == [str(damaged_manifest.parent / "bad" / "noise.wav")]
    assert "0 headers read, 42 reused from the scan cache" in scan.summary()
    touched = str(damaged_manifest.parent / "bad" / "damaged.flac")  # this test's own file
    os.utime(touched, ns=(os.stat(touched).st_atime_ns, os.stat(touched).st_mtime_ns + 10**9))
    again = scan_tracks(tracks, num_cpus=job.data.decode_cpus, storage_root=job.storage)
    assert (again.counts.read, again.counts.reused) == (1, 41) and again.usable == scan.usable


def test_the_prepare_command_prints_its_report(ray_session, tiny_job, capsys):
    path = tiny_job("prep-cli")
    assert main(["prepare", "--no-progress", str(path)]) == 0
    out = capsys.readouterr().out
    assert "prepared audio cache:" in out and "16000 Hz (prep-cli): 40 usable tracks: 40 prepared now" in out
    assert main(["prepare", "--no-progress", str(path)]) == 0
    assert "0 prepared now, 40 already cached, 0 failed" in capsys.readouterr().out


# MTG-Jamendo split files listing the real recordings (one tag per extra tab-separated field).
JAMENDO = {
    "train": [
        ("karissa-hobbs-lets-go-fishin.ogg", "artist_1", ["genre---music", "instrument---voice"]),
        ("brahms-hungarian-dance-5.ogg", "artist_2", ["genre---music", "instrument---strings"]),
        ("sorohanro-solo-trumpet.ogg", "artist_3", ["genre---music"]),
        ("medley-solos-validation-3.wav", "artist_4", ["genre---music"]),
        ("openmic-000046_3840.ogg", "artist_5", ["genre---music"]),
        ("robin-bird-call.ogg", "artist_6", ["genre---nature"]),
        ("glacier-bay-humpback.ogg", "artist_7", ["genre---nature"]),
        ("empty.wav", "artist_8", ["genre---music"]),
    ],
    "validation": [
        ("kevin-macleod-vibe-ace.ogg", "artist_9", ["genre---music"]),
        ("librispeech-198-209-0000.ogg", "artist_10", ["genre---speech", "instrument---voice"]),
    ],
    "test": [
        ("kevin-macleod-sugar-plum-fairy.ogg", "artist_11", ["genre---music", "instrument---strings"]),
        ("librispeech-3436-172162-0000.ogg", "artist_12", ["genre---speech", "instrument---voice"]),
    ],
}


def write_jamendo(folder: Path) -> tuple[Path, Path]:
    """Audio under ``NN/`` folders (copies of the real recordings) and split-0 top50 files."""
    audio, splits = folder / "audio", folder / "splits" / "split-0"
    splits.mkdir(parents=True)
    number = 0
    for part, rows in JAMENDO.items():
        lines = ["TRACK_ID\tARTIST_ID\tALBUM_ID\tPATH\tDURATION\tTAGS"]
        for name, artist, tags in rows:
            number += 1
            relative = f"{number:02d}/{number}{Path(name).suffix}"
            (audio / relative).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(REAL_AUDIO / name, audio / relative)
            lines.append("\t".join([f"track_{number:07d}", artist, f"album_{number}", relative, "60.0", *tags]))
        split_file(splits, "top50tags", part).write_bytes(("\r\n".join(lines) + "\r\n").encode())
    return audio, splits


@needs_real_audio
def test_end_to_end_on_real_recordings_reads_from_the_cache(ray_session, tiny_job, tmp_path, capsys, caplog):
    audio, splits = write_jamendo(tmp_path / "jamendo")
    manifest = tmp_path / "manifest.csv"
    assert main(["corpus", "mtg-jamendo", "--from", str(audio), "--split-dir", str(splits), "-o", str(manifest)]) == 0
    job_file = tiny_job("jamendo-e2e", manifest=manifest)
    overrides = ["data.clean_labels=null", "train.epochs=1", "scaling.num_workers=1", "eval.max_chunks=4"]

    assert main(["prepare", "--no-progress", str(job_file), *overrides]) == 0
    report = capsys.readouterr().out
    assert "16000 Hz (jamendo-e2e): 11 usable tracks: 11 prepared now, 0 already cached, 0 failed" in report
    empty = f"{audio}/08/8.wav"  # the copy of empty.wav: listed with its reason
    assert f"{empty}: the file has no audio frames" in report
    assert "unusable audio (skipped by the header scan, as training skips it): 1" in report

    caplog.set_level("INFO", logger="raytag")
    assert main(["train", str(job_file), *overrides]) == 0
    printed = capsys.readouterr().out
    assert "skipped files: 1" in printed and "best epoch 1" in printed
    assert "prepared audio at 16000 Hz: train 7/7, valid 2/2 tracks read from the cache; 0 decoded" in caplog.text
    # The exported model is scored once on the validation and the test split together.
    assert "prepared audio at 16000 Hz: valid 2/2, test 2/2 tracks read from the cache" in caplog.text

    job = load_job(job_file, overrides)
    client = MlflowClient(job.tracking.uri)
    experiment = client.get_experiment_by_name(job.tracking.experiment)
    (run,) = client.search_runs([experiment.experiment_id], filter_string="attributes.run_name = 'jamendo-e2e'")
    metrics = run.data.metrics
    assert metrics["data/prepared_audio_tracks"] == 9 and metrics["data/decoded_audio_tracks"] == 0
    assert metrics["data/skipped_files"] == 1 and metrics["test/unscored_tracks"] == 0
    for key in ("valid/roc_auc", "test/roc_auc", "test/pr_auc", "test/lwlrap"):
        assert np.isfinite(metrics[key]), key
    assert run.info.status == "FINISHED"
    skipped = client.download_artifacts(run.info.run_id, "data/skipped_files.csv", str(tmp_path / "dl"))
    assert empty in Path(skipped).read_text() and ".npy" not in Path(skipped).read_text()  # manifest paths

    caplog.clear()
    assert main(["evaluate", str(job_file), *overrides]) == 0
    assert "prepared audio at 16000 Hz: test 2/2 tracks read from the cache" in caplog.text
    assert "genre---speech" in capsys.readouterr().out


def test_cached_rows_decode_in_big_blocks_to_the_same_batches(ray_session, tmp_path):
    """Rows that all read the prepared cache are decoded a whole block per task (one block
    here), with the crops, order, values and columns of the 32-row pipeline; with
    augmentation, or one row from an audio file, the 32-row pipeline runs as before."""
    from raytag.audio import pcm_cache
    from raytag.audio.augment_spec import AugmentSpec
    from raytag.cluster.data.datasets import CACHE_BLOCK_BYTES, _cache_rows_per_block, decoded_chunks
    from raytag.data.rows import TrackTable, epoch_rows

    rng = np.random.default_rng(0)
    paths = []
    for i in range(5):
        samples = 16000 * (2 + i)
        path = tmp_path / f"t{i}.16000hz.npy"
        path.write_bytes(b"".join(pcm_cache.cache_stream([0.1 * rng.standard_normal(samples)], samples=samples)))
        paths.append(str(path))
    table = TrackTable(tuple(paths), np.array([16000 * (2 + i) for i in range(5)]), np.full(5, 16000),
                       np.eye(5, dtype=np.float32), columns={"keep": rng.random((5, 5)).astype(np.float32)})
    rows = [row for epoch in range(15) for row in epoch_rows(table, seed=3, epoch=epoch, rank=0, world_size=1)]
    assert len(rows) == 75
    ray_session.data.DataContext.get_current().execution_options.preserve_order = True
    big = decoded_chunks(rows, sample_rate=16000, crop_samples=8000, num_cpus=0.25)
    small = decoded_chunks(rows, sample_rate=16000, crop_samples=8000, num_cpus=0.25, cache_blocks=False)
    assert big.materialize().num_blocks() == 1 and small.materialize().num_blocks() == 3  # tasks of 32 rows
    for a, b in zip(big.iter_batches(batch_size=16, batch_format="numpy"),
                    small.iter_batches(batch_size=16, batch_format="numpy"), strict=True):
        assert a.keys() == b.keys() == {"audio", "labels", "track", "seed", "decoded", "keep"}
        for name in a:
            np.testing.assert_array_equal(a[name], b[name])
    assert _cache_rows_per_block(rows, 8000) == CACHE_BLOCK_BYTES // (4 * 8000)  # float32 crops
    mixed = [*rows, {**rows[0], "path": str(tmp_path / "t0.wav")}]
    assert _cache_rows_per_block(mixed, 8000) is None and _cache_rows_per_block([], 8000) is None
    augmented = decoded_chunks(rows, sample_rate=16000, crop_samples=8000, num_cpus=0.25, augment=AugmentSpec())
    assert augmented.materialize().num_blocks() == 3
