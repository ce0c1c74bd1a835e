"""Storage: every shared file goes through pyarrow's file systems (local paths and URIs alike).

No Ray instance is started: finding a checkpoint only reads storage.
"""

from pathlib import Path

import torch

from raytag import storage
from raytag.cluster.training.checkpoints import latest_checkpoint
from raytag.engine import checkpoint as ckpt
from raytag.locations import cache_location, resolve_storage, run_location
from raytag.methods.bce import PlainBCE
from raytag.models import create_model


def test_text_round_trip_and_listing_through_a_uri(tmp_path):
    root = f"file://{tmp_path}"
    storage.write_text(f"{root}/job/mlflow_run_id", "abc")
    assert storage.read_text(f"{root}/job/mlflow_run_id") == "abc"
    assert storage.read_text(f"{root}/job/nothing") is None
    storage.write_text(f"{root}/job/checkpoint_2/state.json", "{}")
    storage.write_text(f"{root}/job/checkpoint_1/state.json", "{}")
    storage.write_text(f"{root}/job/other/x", "{}")
    assert storage.list_folders(f"{root}/job", prefix="checkpoint_") == [
        f"{root}/job/checkpoint_1", f"{root}/job/checkpoint_2"]
    assert not list(tmp_path.rglob("*.partial"))  # writes land whole
    with storage.local_folder(f"{root}/job/checkpoint_1") as local:
        assert (local / "state.json").read_text() == "{}" and local != tmp_path / "job" / "checkpoint_1"


def test_upload_and_download_a_folder(tmp_path):
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "a.txt").write_text("x")
    storage.upload(tmp_path / "src", f"file://{tmp_path}/dst")
    assert (tmp_path / "dst" / "a.txt").read_text() == "x"
    storage.download(f"file://{tmp_path}/dst", tmp_path / "back")
    assert (tmp_path / "back" / "a.txt").read_text() == "x"


def test_locations_keep_uris_and_make_paths_absolute(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert resolve_storage("runs") == str(tmp_path / "runs")
    assert run_location("s3://bucket/runs/", "job") == "s3://bucket/runs/job"
    assert cache_location("runs", "audio") == f"{tmp_path}/runs/.raytag-cache/audio"


def test_latest_checkpoint_is_found_through_storage_and_skips_incomplete_folders(tmp_path):
    model = create_model("mtt-tiny", num_tags=2)
    snapshot = ckpt.Snapshot.capture(model, torch.optim.Adam(model.parameters()), PlainBCE())
    for name, epoch in (("checkpoint_a", 1), ("checkpoint_b", 2), ("checkpoint_c", 3)):
        ckpt.save(tmp_path / "run" / name, latest=snapshot, best=snapshot, state=ckpt.TrainingState(epochs_done=epoch),
                  job={})
    (tmp_path / "run" / "checkpoint_c" / ckpt.BEST_MODEL_FILE).unlink()  # cut short by a crash
    (tmp_path / "run" / "checkpoint_d").mkdir()
    (tmp_path / "run" / "checkpoint_d" / ckpt.STATE_FILE).write_text("{not json")
    for root in (str(tmp_path), f"file://{tmp_path}"):
        location, state = latest_checkpoint(f"{root}/run")
        assert location == f"{root}/run/checkpoint_b" and state.epochs_done == 2
        assert latest_checkpoint(f"{root}/nothing-here") is None


def test_file_stats_list_files_and_ranged_reads_for_paths_and_uris(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "x.bin").write_bytes(b"0123456789")
    (tmp_path / "a" / "deep").mkdir()
    (tmp_path / "a" / "deep" / "y.bin").write_bytes(b"abc")
    local, uri = str(tmp_path / "a" / "x.bin"), f"file://{tmp_path}/a/deep/y.bin"
    mtime = (tmp_path / "a" / "x.bin").stat().st_mtime_ns
    stats = storage.file_stats([local, uri, str(tmp_path / "nothing"), f"file://{tmp_path}/nothing", str(tmp_path / "a")])
    assert stats == {local: storage.FileStat(local, 10, mtime),
                     uri: storage.FileStat(uri, 3, (tmp_path / "a" / "deep" / "y.bin").stat().st_mtime_ns)}
    for root in (str(tmp_path / "a"), f"file://{tmp_path}/a"):
        listed = storage.list_files(root)
        assert [(s.location, s.size) for s in listed] == [(f"{root}/deep/y.bin", 3), (f"{root}/x.bin", 10)]
    assert storage.list_files(str(tmp_path / "no-folder")) == []
    for location in (local, f"file://{local}"):
        assert storage.read_range(location, 3, 4) == b"3456" and storage.read_range(location, 8, 10) == b"89"
        with storage.open_random_access(location) as file:
            assert file.size() == 10 and file.read_at(2, 0) == b"01"
    storage.move(local, str(tmp_path / "moved.bin"))
    assert (tmp_path / "moved.bin").read_bytes() == b"0123456789" and not (tmp_path / "a" / "x.bin").exists()


def test_only_storage_opens_uris():
    """storage.py is the one module that calls pyarrow's file systems (issue 24 item 5)."""
    import raytag

    package = Path(raytag.__file__).parent
    callers = sorted(str(p.relative_to(package)) for p in package.rglob("*.py")
                     if "pyarrow.fs" in p.read_text() or "from_uri(" in p.read_text())
    assert callers == ["storage.py"]
