"""Row plans and seeds: every draw follows (seed, epoch, rank or row), nothing else."""

import numpy as np
import pytest

from raytag.data.rows import RANDOM_START, TrackTable, batch_sizes, chunk_rows, epoch_rows
from raytag.engine.seeding import derive_seed, epoch_order, rank_generator_seed, shard


def table(n=7, tags=2, **columns):
    return TrackTable(
        paths=tuple(f"/audio/{i}.wav" for i in range(n)),
        frames=np.full(n, 32000), rates=np.full(n, 16000), labels=np.zeros((n, tags), np.float32), columns=columns,
    )


def test_ranks_share_an_epoch_equally_and_see_every_track():
    t = table(7)
    shares = [epoch_rows(t, seed=3, epoch=0, rank=r, world_size=2) for r in range(2)]
    assert [len(s) for s in shares] == [4, 4]  # equal steps for DDP: one track seen twice
    seen = [row["track"] for share in shares for row in share]
    assert sorted(set(seen)) == list(range(7)) and len(seen) == 8
    assert all(row["start"] == RANDOM_START for share in shares for row in share)


def test_the_same_job_gives_the_same_rows_and_other_epochs_or_seeds_others():
    t = table(20)
    rows = lambda **kw: [(r["track"], r["seed"]) for r in epoch_rows(t, **{"seed": 0, "epoch": 0, "rank": 0, "world_size": 2, **kw})]
    assert rows() == rows()
    assert rows(epoch=1) != rows()
    assert rows(seed=1) != rows()
    assert rows(rank=1) != rows()


def test_a_tracks_draws_do_not_depend_on_which_rank_or_world_size_takes_it():
    t = table(9)
    seeds = {}
    for world in (1, 2, 3):
        for rank in range(world):
            for row in epoch_rows(t, seed=5, epoch=2, rank=rank, world_size=world):
                seeds.setdefault(row["track"], set()).add(row["seed"])
    assert all(len(s) == 1 for s in seeds.values())


def test_unshuffled_order_and_per_track_columns_ride_along():
    keep = np.arange(10, dtype=np.float32).reshape(5, 2)
    rows = epoch_rows(table(5, keep=keep), seed=0, epoch=0, rank=0, world_size=1, shuffle=False)
    assert [r["track"] for r in rows] == [0, 1, 2, 3, 4]
    np.testing.assert_array_equal(rows[3]["keep"], keep[3])
    with pytest.raises(ValueError, match="clash"):
        table(2, labels=np.zeros(2))


def test_evaluation_chunks_cover_each_track_once_across_ranks():
    t = table(5)
    all_rows = chunk_rows(t, sample_rate=16000, crop_samples=8000, max_chunks=None)
    assert len(all_rows) == 5 * 4 and {r["start"] for r in all_rows} == {0, 8000, 16000, 24000}
    split = [chunk_rows(t, sample_rate=16000, crop_samples=8000, max_chunks=2, rank=r, world_size=2) for r in range(2)]
    tracks = [sorted({r["track"] for r in rows}) for rows in split]
    assert tracks == [[0, 2, 4], [1, 3]]  # a track's chunks stay on one rank


def test_seeds_separate_streams_and_ranks():
    assert derive_seed(0, "crop", 1) != derive_seed(0, "unlabeled", 1)
    assert rank_generator_seed(0, 1, 0) != rank_generator_seed(0, 1, 1) != rank_generator_seed(0, 2, 1)
    assert sorted(epoch_order(6, seed=0, epoch=0, shuffle=True)) == list(range(6))
    with pytest.raises(ValueError, match="rank"):
        shard(np.arange(4), rank=2, world_size=2)


@pytest.mark.parametrize(("rows", "batch", "expected"), [
    (64, 32, [32, 32]), (65, 32, [32, 33]), (66, 32, [32, 32, 2]), (1, 32, [1]), (0, 32, []), (5, 1, [1] * 5),
])
def test_training_batches_never_end_with_a_single_row_and_lose_none(rows, batch, expected):
    # Batch normalisation cannot train on one example: the last single row joins the batch before.
    sizes = batch_sizes(rows, batch, join_single_tail=True)
    assert sizes == expected and sum(sizes) == rows


def test_evaluation_batches_keep_the_plain_cut():
    assert batch_sizes(65, 32) == [32, 32, 1]
    with pytest.raises(ValueError, match="batch_size"):
        batch_sizes(3, 0)
