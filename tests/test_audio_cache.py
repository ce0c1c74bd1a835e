"""Using the prepared-audio cache without Ray: whole-file streaming writes, which tracks a cache
holds (identity, rate, complete files), tables that decode from it, the prepare task's function
and the job's targets. The Ray Data job itself is in test_prepare_ray.py."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pyarrow.fs as pafs
import pytest
import soundfile as sf

from raytag.audio import pcm_cache
from raytag.audio.io import probe
from raytag import storage
from raytag.cluster.data.audio_cache import cached_tables, file_identities, folder_size, lookup
from raytag.cluster.data.prepare import PrepareReport, RateReport, human_bytes, prepare_targets, write_cache_files
from raytag.config import validate_job
from raytag.data.rows import TrackTable
from raytag.data.batches import decode_batch


def test_write_stream_lands_whole_or_not_at_all(tmp_path):
    target = f"{tmp_path}/a/b/file.bin"
    assert storage.write_stream(target, iter([b"ab", b"cd"])) == 4
    assert Path(target).read_bytes() == b"abcd"

    def failing():
        yield b"xy"
        raise OSError("disk on fire")

    with pytest.raises(OSError, match="disk on fire"):
        storage.write_stream(f"{tmp_path}/a/b/other.bin", failing())
    assert sorted(p.name for p in (tmp_path / "a" / "b").iterdir()) == ["file.bin"]  # no partial, no file


def test_write_stream_to_an_object_store_uploads_only_complete_files(tmp_path, monkeypatch):
    # A file system that is not a LocalFileSystem takes the object-store path (local temp, upload).
    remote = pafs.SubTreeFileSystem(str(tmp_path), pafs.LocalFileSystem())
    monkeypatch.setattr(storage, "filesystem", lambda location: (remote, location.removeprefix("mem://")))
    assert storage.write_stream("mem://x/y.bin", iter([b"12", b"345"])) == 5
    assert (tmp_path / "x" / "y.bin").read_bytes() == b"12345"

    def failing():
        yield b"1"
        raise ValueError("bad piece")

    with pytest.raises(ValueError, match="bad piece"):
        storage.write_stream("mem://x/z.bin", failing())
    assert not (tmp_path / "x" / "z.bin").exists()


def write_wav(path: Path, seconds: float, rate: int, seed: int) -> str:
    audio = 0.2 * np.random.default_rng(seed).standard_normal(int(seconds * rate)).astype(np.float32)
    sf.write(path, audio, rate, subtype="PCM_16")
    return str(path)


@pytest.fixture
def tracks(tmp_path):
    """Three short WAVs (22.05 and 44.1 kHz) and their table."""
    audio = tmp_path / "audio"
    audio.mkdir()
    paths = [write_wav(audio / f"t{i}.wav", 1.0 + 0.25 * i, rate, i) for i, rate in enumerate([22050, 44100, 22050])]
    infos = [probe(p) for p in paths]
    table = TrackTable(
        paths=tuple(paths),
        frames=np.array([i.frames for i in infos]), rates=np.array([i.sample_rate for i in infos]),
        labels=np.eye(3, dtype=np.float32), columns={"keep": np.arange(6, dtype=np.float32).reshape(3, 2)},
    )
    return table, str(tmp_path / "storage")


def prepare_rows(table: TrackTable, storage_root: str, rate: int, indices) -> dict:
    found = lookup(table.paths, table.frames, table.rates, storage_root=storage_root, sample_rate=rate)
    rows = [(table.paths[i], table.frames[i], table.rates[i], rate, found.files[table.paths[i]]) for i in indices]
    names = ("path", "frames", "rate", "target_rate", "location")
    return {name: np.array([row[k] for row in rows], dtype=object if k in (0, 4) else np.int64) for k, name in enumerate(names)}


def test_the_prepare_task_writes_cache_files_and_reports_failures(tracks):
    table, root = tracks
    batch = prepare_rows(table, root, 16000, [0, 1])
    out = write_cache_files(batch, piece_seconds=0.3)
    assert list(out["error"]) == ["", ""]
    for location, size, frames, rate in zip(batch["location"], out["bytes"], batch["frames"], batch["rate"]):
        assert os.path.getsize(location) == size == pcm_cache.file_bytes(pcm_cache.cached_samples(frames, rate, 16000))
    # A file that changed after the scan, and one that cannot be decoded: reasons, no files.
    bad = prepare_rows(table, root, 16000, [2])
    bad["frames"][0] += 5
    changed = write_cache_files(bad)
    assert changed["bytes"][0] == 0 and "changed since its header was scanned" in changed["error"][0]
    assert not os.path.exists(bad["location"][0])
    Path(table.paths[2]).write_bytes(b"RIFF\x00\x00\x00\x00WAVEfmt " + os.urandom(64))
    broken = write_cache_files(bad)
    assert broken["bytes"][0] == 0 and broken["error"][0].startswith(f"{table.paths[2]}: cannot read audio")
    assert not os.path.exists(bad["location"][0])


def test_tables_read_cached_tracks_from_the_cache_and_keep_everything_else(tracks, caplog):
    table, root = tracks
    write_cache_files(prepare_rows(table, root, 16000, [0, 2]))
    caplog.set_level("INFO", logger="raytag")
    tables, use = cached_tables({"train": table, "test": None}, storage_root=root, sample_rate=16000)
    cached = tables["train"]
    assert tables["test"] is None and (use.cached, use.decoded) == (2, 1)
    assert use.metrics() == {"data/prepared_audio_tracks": 2, "data/decoded_audio_tracks": 1}
    assert "prepared audio at 16000 Hz: train 2/3 tracks read from the cache; 1 decoded" in caplog.text
    assert cached.paths[1] == table.paths[1] and cached.rates[1] == 44100
    for i in (0, 2):
        assert cached.paths[i].endswith(".16000hz.npy") and cached.rates[i] == 16000
        assert cached.frames[i] == probe(cached.paths[i]).frames
    np.testing.assert_array_equal(cached.labels, table.labels)
    np.testing.assert_array_equal(cached.columns["keep"], table.columns["keep"])
    # The rows decode: cached crops and on-the-fly crops alike.
    rows = [cached.row(i, start=0, seed=0) for i in range(3)]
    batch = {k: np.array([r[k] for r in rows], dtype=object if k == "path" else None) for k in rows[0]}
    out = decode_batch(batch, sample_rate=16000, crop_samples=8000)
    assert out["decoded"].all() and np.all(np.abs(out["audio"]).max(axis=1) > 0)
    # Another rate finds nothing.
    assert cached_tables({"train": table}, storage_root=root, sample_rate=22050)[1].cached == 0


def test_an_edited_audio_file_or_a_damaged_cache_file_is_not_read(tracks, caplog):
    table, root = tracks
    write_cache_files(prepare_rows(table, root, 16000, [0, 1, 2]))
    found = lookup(table.paths, table.frames, table.rates, storage_root=root, sample_rate=16000)
    assert found.cached == set(table.paths)
    os.utime(table.paths[0], ns=(1, 1))  # touched: another identity, another key
    cache_file = found.files[table.paths[1]]
    Path(cache_file).write_bytes(Path(cache_file).read_bytes()[:-2])  # cut short
    caplog.set_level("INFO", logger="raytag")
    again = lookup(table.paths, table.frames, table.rates, storage_root=root, sample_rate=16000)
    assert again.cached == {table.paths[2]} and again.stale == {table.paths[1]}
    assert again.files[table.paths[0]] != found.files[table.paths[0]]
    cached_tables({"valid": table}, storage_root=root, sample_rate=16000)
    assert "1 cache files at 16000 Hz have the wrong size and are not used" in caplog.text
    files, size = folder_size(root, 16000)
    assert files == 3 and size == sum(os.path.getsize(p) for p in found.files.values())


def test_identities_come_from_the_file_system_for_paths_and_uris(tracks):
    table, _ = tracks
    path = table.paths[0]
    stat = os.stat(path)
    ids = file_identities([path, f"file://{table.paths[1]}", "/no/such/file.wav"])
    assert ids[path].size == stat.st_size and ids[path].mtime_ns == stat.st_mtime_ns and ids[path].location == path
    assert ids[f"file://{table.paths[1]}"].size == os.stat(table.paths[1]).st_size
    assert "/no/such/file.wav" not in ids


def job_tree(tmp_path: Path, **extra) -> dict:
    manifest = tmp_path / "manifest.csv"
    rows = ["path,tags,split", "a.wav,rock,train", "b.wav,pop,train", "c.wav,rock,valid", "d.wav,pop,test",
            "e.wav,,unlabeled"]
    manifest.write_text("\n".join(rows) + "\n")
    return {"name": "j", "storage": str(tmp_path / "s"), "data": {"manifest": str(manifest)},
            "model": {"name": "mtt-tiny"}, **extra}


def test_targets_cover_the_splits_a_job_decodes_and_every_stage_rate(tmp_path):
    (target,) = prepare_targets(validate_job(job_tree(tmp_path)))
    assert target.sample_rate == 16000 and target.jobs == ("j",)
    assert sorted(Path(t.path).name for t in target.tracks) == ["a.wav", "b.wav", "c.wav", "d.wav"]
    (semi,) = prepare_targets(validate_job(job_tree(tmp_path, semi={"enabled": True})))
    assert sorted(Path(t.path).name for t in semi.tracks) == ["a.wav", "b.wav", "c.wav", "d.wav", "e.wav"]
    stages = [{"name": "a"}, {"name": "b", "overrides": {"model": {"args": {"sample_rate": 22050}}}},
              {"name": "c", "overrides": {"eval": {"split": "valid"}}}]
    low, high = prepare_targets(validate_job(job_tree(tmp_path, stages=stages)))
    assert (low.sample_rate, low.jobs, high.sample_rate, high.jobs) == (16000, ("j-a", "j-c"), 22050, ("j-b",))
    assert len(low.tracks) == 4


def test_report_names_counts_sizes_and_reasons():
    report = PrepareReport(
        cache="/s/.raytag-cache/audio",
        rates=[RateReport(16000, ("j",), usable=5, already_cached=2, prepared=2, failed=[("/a/x.mp3", "/a/x.mp3: boom")],
                          bytes_written=3 << 20, bytes_of_tracks=5 << 20, folder_files=9, folder_bytes=9 << 20)],
        unusable=[("/a/empty.wav", "/a/empty.wav: the file has no audio frames")], seconds=1.25,
    )
    text = report.format()
    assert "16000 Hz (j): 5 usable tracks: 2 prepared now, 2 already cached, 1 failed" in text
    assert "5.0 MiB (5,242,880 bytes; 3.0 MiB written now); the 16000hz folder: 9 files, 9.0 MiB" in text
    assert "[16000 Hz] /a/x.mp3: boom" in text and "/a/empty.wav: the file has no audio frames" in text
    assert report.failed == 1 and human_bytes(512) == "512 B" and human_bytes(1536) == "1.5 KiB"


def test_the_plan_prepares_what_is_missing_and_names_files_gone_since_the_scan(tracks):
    from raytag.cluster.data.datasets import ScannedTrack, ScanResult
    from raytag.cluster.data.prepare import PrepareTarget, _plan
    from raytag.data.manifest import Track

    table, root = tracks
    write_cache_files(prepare_rows(table, root, 16000, [0]))
    gone = str(Path(table.paths[0]).parent / "gone.wav")
    paths = [*table.paths, gone]
    scan = ScanResult({p: ScannedTrack(p, int(f), int(r)) for p, f, r in
                       zip(paths, [*table.frames, 100], [*table.rates, 16000])}, [])
    target = PrepareTarget(16000, ("j",), tuple(Track(p, ("rock",), "train") for p in paths))
    reports, rows = _plan(root, [target], scan)
    report = reports[16000]
    assert (report.usable, report.already_cached) == (4, 1)
    assert report.failed == [(gone, "the file disappeared after its header was scanned")]
    assert [row["path"] for row in rows] == list(table.paths[1:])
    assert all(row["target_rate"] == 16000 and row["location"].endswith(".16000hz.npy") for row in rows)
