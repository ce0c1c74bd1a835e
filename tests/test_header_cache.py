"""The header-scan cache without Ray: a second scan reads no header, a touched file is read
again (and only it), a deleted file is reported missing, an unreadable file's reason is kept,
storage as a ``file://`` URI works like a path, two processes updating the cache at once lose
nothing, and parts are compacted. Headers are read by the real decoders
(:func:`raytag.data.batches.scan_batch`), here in this process instead of Ray Data tasks."""

from __future__ import annotations

import multiprocessing
import os
from pathlib import Path

import numpy as np
import pytest

from audio_files import music_like, write
from raytag.data import header_cache
from raytag.data.batches import scan_batch
from raytag.data.header_cache import Header


class Reader:
    """Reads headers with the decoders and remembers which locations it was asked for."""

    def __init__(self):
        self.asked: list[list[str]] = []

    def __call__(self, paths: list[str]) -> dict[str, Header]:
        self.asked.append(list(paths))
        column = np.empty(len(paths), dtype=object)
        column[:] = paths
        out = scan_batch({"path": column})
        return {p: Header(int(f), int(r), str(e)) for p, f, r, e in zip(paths, out["frames"], out["rate"], out["error"])}


def parts(storage_root: str) -> list[str]:
    """The cache's part files (tables of rows)."""
    return sorted(str(p) for p in Path(header_cache.cache_folder(storage_root)).glob("*.parquet"))


@pytest.fixture
def corpus(tmp_path):
    folder = tmp_path / "audio"
    folder.mkdir()
    paths = [str(write(folder / f"clip{i}", music_like(8000, 0.5 + 0.25 * i, seed=i), 8000, "wav")) for i in range(4)]
    (folder / "broken.wav").write_bytes(b"RIFF not really a wave file")
    return paths + [str(folder / "broken.wav")]


def test_a_second_scan_reads_no_header_and_a_touched_file_only_it(tmp_path, corpus):
    storage_root = str(tmp_path / "runs")
    first = Reader()
    headers, counts = header_cache.scan(corpus, storage_root, first)
    assert first.asked == [corpus] and (counts.read, counts.reused, counts.missing) == (5, 0, 0)
    assert headers[corpus[1]] == Header(6000, 8000, "")
    assert "cannot read audio" in headers[corpus[4]].error and headers[corpus[4]].frames == 0
    assert len(parts(storage_root)) == 1

    second = Reader()
    again, counts = header_cache.scan(corpus, storage_root, second)
    assert second.asked == [] and again == headers  # the unreadable file's reason is reused too
    assert (counts.read, counts.reused, counts.missing) == (0, 5, 0)

    stat = os.stat(corpus[2])
    os.utime(corpus[2], ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
    write(tmp_path / "audio" / "clip0", music_like(8000, 2.0), 8000, "wav")  # new content, same name
    third = Reader()
    changed, counts = header_cache.scan(corpus, storage_root, third)
    assert third.asked == [[corpus[0], corpus[2]]] and (counts.read, counts.reused) == (2, 3)
    assert changed[corpus[0]] == Header(16000, 8000, "") and changed[corpus[2]] == headers[corpus[2]]


def test_a_deleted_file_is_reported_missing_not_dropped(tmp_path, corpus):
    storage_root = str(tmp_path / "runs")
    header_cache.scan(corpus, storage_root, Reader())
    os.remove(corpus[3])
    reader = Reader()
    headers, counts = header_cache.scan(corpus, storage_root, reader)
    assert reader.asked == [] and counts.missing == 1 and counts.reused == 4
    assert set(headers) == set(corpus)
    assert headers[corpus[3]].error == f"{corpus[3]}: cannot read audio (No such file or directory)"
    # A new file among known ones: only it is read.
    extra = str(write(tmp_path / "audio" / "new", music_like(8000, 1.0), 8000, "wav"))
    reader = Reader()
    header_cache.scan([*corpus, extra], storage_root, reader)
    assert reader.asked == [[extra]]


def test_storage_as_a_uri_and_no_storage(tmp_path, corpus):
    uri = f"file://{tmp_path}/runs"
    header_cache.scan(corpus, uri, Reader())
    reader = Reader()
    _, counts = header_cache.scan(corpus, uri, reader)
    assert reader.asked == [] and counts.reused == 5
    reader = Reader()
    _, counts = header_cache.scan(corpus, None, reader)  # no storage: every header read, nothing kept
    assert reader.asked == [corpus] and counts.read == 5
    reader = Reader()  # storage that cannot be reached: a warning, and every header read
    headers, counts = header_cache.scan(corpus, "nosuchscheme://bucket/runs", reader)
    assert reader.asked == [corpus] and counts.read == 5 and headers[corpus[0]].rate == 8000


def test_a_table_of_another_format_or_a_damaged_one_is_read_again(tmp_path, corpus):
    storage_root = str(tmp_path / "runs")
    header_cache.scan(corpus, storage_root, Reader())
    damaged, = parts(storage_root)
    with open(damaged, "r+b") as table:
        table.write(b"garbage!")
    reader = Reader()
    _, counts = header_cache.scan(corpus, storage_root, reader)
    assert reader.asked == [corpus] and counts.read == 5
    assert len(parts(storage_root)) == 1  # the damaged part is replaced by the headers read again
    reader = Reader()
    header_cache.scan(corpus, storage_root, reader)
    assert reader.asked == []


def scan_together(locations: list[str], storage_root: str, barrier) -> None:
    """A scan (in a process of its own) whose header reading waits for the other scan's: both
    have read the cache before either writes to it."""
    def read(paths: list[str]) -> dict[str, Header]:
        barrier.wait(timeout=120)
        return Reader()(paths)

    header_cache.scan(locations, storage_root, read)


def test_two_processes_updating_the_cache_at_once_lose_nothing(tmp_path, corpus):
    storage_root = str(tmp_path / "runs")
    spawn = multiprocessing.get_context("spawn")
    barrier = spawn.Barrier(2)
    scans = [spawn.Process(target=scan_together, args=(half, storage_root, barrier))
             for half in (corpus[:2], corpus[2:])]
    for process in scans:
        process.start()
    try:
        for process in scans:
            process.join(timeout=300)
            assert process.exitcode == 0
    finally:
        for process in scans:
            if process.is_alive():
                process.kill()
    reader = Reader()
    _, counts = header_cache.scan(corpus, storage_root, reader)
    assert reader.asked == [] and counts.reused == 5


def test_many_parts_are_compacted_into_one_and_nothing_is_lost(tmp_path, corpus, monkeypatch):
    monkeypatch.setattr(header_cache, "COMPACT_AFTER_PARTS", 2)
    storage_root = str(tmp_path / "runs")
    for count in range(1, 4):  # one new file per scan: a part each
        header_cache.scan(corpus[:count], storage_root, Reader())
    assert len(parts(storage_root)) == 3
    header_cache.scan(corpus[:4], storage_root, Reader())  # read 3 parts: writes their union and its row
    assert len(parts(storage_root)) == 1
    reader = Reader()
    _, counts = header_cache.scan(corpus, storage_root, reader)
    assert reader.asked == [[corpus[4]]] and counts.reused == 4


def test_parts_compacted_away_while_being_listed_are_found_in_the_part_that_replaced_them(tmp_path, corpus,
                                                                                           monkeypatch):
    """Another run compacts between this reader's listing and its reads: the parts it listed are
    gone; it lists again and reads their rows from the union part, losing none."""
    storage_root = str(tmp_path / "runs")
    for count in range(1, 4):  # one new file per scan: a part each
        header_cache.scan(corpus[:count], storage_root, Reader())
    listed = parts(storage_root)
    union = header_cache.load(storage_root).rows
    assert len(listed) == 3 and len(union) == 3
    read_bytes, failed = header_cache.storage.read_bytes, []

    def compacted_by_another_run_first(location):
        if not failed:  # the other run's compaction lands between this listing and this read
            header_cache.write_part(storage_root, union)
            for part in listed:
                os.remove(part)
        try:
            return read_bytes(location)
        except OSError:
            failed.append(location)
            raise

    monkeypatch.setattr(header_cache.storage, "read_bytes", compacted_by_another_run_first)
    cached = header_cache.load(storage_root)
    assert failed and set(failed) <= set(listed)  # the listed parts did vanish under it
    assert cached.rows == union and cached.parts == parts(storage_root) and len(cached.parts) == 1
