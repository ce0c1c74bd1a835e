"""Integration: a rank's training and evaluation batches from plain Ray tasks (issue 27).

The task stream replaced Ray Data's pipeline for the per-epoch, per-rank streams; it must give
the same crops in the same order, and the same augmentation for the same rows.
"""

from __future__ import annotations

import numpy as np
import pytest

from raytag.audio.augment_spec import AugmentSpec
from raytag.cluster.data.datasets import decoded_chunks, scan_tracks, track_table
from raytag.cluster.data.task_stream import decoded_batches
from raytag.data.manifest import read_manifest
from raytag.data.rows import chunk_rows, epoch_rows

pytestmark = pytest.mark.ray

RATE, CROP = 16000, 8000  # 0.5 s crops of the tiny corpus's 2 s clips


@pytest.fixture(scope="module")
def table(ray_session, tiny_corpus):
    manifest = read_manifest(tiny_corpus / "manifest.csv")
    tracks = manifest.split("train")
    labels = np.eye(len(tracks), 3, dtype=np.float32)
    scanned, _ = track_table(tracks, labels, scan_tracks(tracks, num_cpus=0.25))
    return scanned


def _joined(batches) -> dict[str, np.ndarray]:
    batches = list(batches)
    return {name: np.concatenate([np.asarray(b[name]) for b in batches]) for name in batches[0]}


def test_training_batches_match_the_ray_data_pipeline_in_order(table):
    # 2 ranks: 14 rows each, not a multiple of the 32-row blocks or the batch size.
    rows = epoch_rows(table, seed=3, epoch=1, rank=1, world_size=2)
    batches = list(decoded_batches(rows, batch_size=4, sample_rate=RATE, crop_samples=CROP, num_cpus=0.25, ahead=2))
    assert [len(b["seed"]) for b in batches] == [4, 4, 4, 2]
    ours = _joined(batches)
    theirs = _joined(decoded_chunks(rows, sample_rate=RATE, crop_samples=CROP, num_cpus=0.25)
                     .iter_batches(batch_size=4, batch_format="numpy"))
    assert list(ours["track"]) == [row["track"] for row in rows]  # the rows' order
    for name in ("audio", "labels", "track", "seed", "decoded"):
        np.testing.assert_array_equal(ours[name], theirs[name], err_msg=name)
    assert ours["decoded"].all() and np.abs(ours["audio"]).max() > 0


def test_a_training_stream_joins_a_single_last_row_to_the_batch_before(table):
    # 14 rows in batches of 13: the last row would be a batch of one, which batch normalisation
    # cannot train on; it joins the batch before, in order, and no row is lost.
    rows = epoch_rows(table, seed=3, epoch=1, rank=1, world_size=2)
    common = dict(sample_rate=RATE, crop_samples=CROP, num_cpus=0.25, ahead=2)
    training = list(decoded_batches(rows, batch_size=13, training=True, **common))
    assert [len(b["seed"]) for b in training] == [14]
    plain = list(decoded_batches(rows, batch_size=13, **common))
    assert [len(b["seed"]) for b in plain] == [13, 1]
    np.testing.assert_array_equal(_joined(training)["audio"], _joined(plain)["audio"])


def test_evaluation_chunks_cover_the_ranks_tracks_in_order(table):
    rows = chunk_rows(table, sample_rate=RATE, crop_samples=CROP, max_chunks=None, rank=0, world_size=2)
    ours = _joined(decoded_batches(rows, batch_size=5, sample_rate=RATE, crop_samples=CROP, num_cpus=0.25))
    assert list(ours["track"]) == [row["track"] for row in rows] and len(rows) > 32  # several blocks
    # every chunk is the file's audio at its start: the first chunk of each track starts at 0
    theirs = _joined(decoded_chunks(rows, sample_rate=RATE, crop_samples=CROP, num_cpus=0.25)
                     .iter_batches(batch_size=5, batch_format="numpy"))
    np.testing.assert_array_equal(ours["audio"], theirs["audio"])


def test_augmentation_is_seeded_by_the_rows(table):
    spec = AugmentSpec.from_settings(probability=0.0, gain_p=1.0)
    rows = epoch_rows(table, seed=0, epoch=0, rank=0, world_size=1)

    def stream(rows, augment):
        return _joined(decoded_batches(rows, batch_size=8, sample_rate=RATE, crop_samples=CROP, num_cpus=0.25,
                                       augment=augment))

    first, again, plain = stream(rows, spec), stream(rows, spec), stream(rows, None)
    # One block of 28 rows: both paths augment it in batches of 16 + 12 rows, seeded alike.
    assert len(rows) == 28
    theirs = _joined(decoded_chunks(rows, sample_rate=RATE, crop_samples=CROP, num_cpus=0.25, augment=spec)
                     .iter_batches(batch_size=8, batch_format="numpy"))
    np.testing.assert_array_equal(first["audio"], theirs["audio"])
    np.testing.assert_array_equal(first["audio"], again["audio"])  # same rows, same draws
    assert not np.allclose(first["audio"], plain["audio"])  # the gain was applied
    other = stream(epoch_rows(table, seed=0, epoch=1, rank=0, world_size=1), spec)
    assert not np.array_equal(np.sort(other["seed"]), np.sort(first["seed"]))  # another epoch, other draws


def test_bad_sizes_are_refused():
    with pytest.raises(ValueError, match="at least 1"):
        next(decoded_batches([], batch_size=0, sample_rate=RATE, crop_samples=CROP, num_cpus=0.25))
