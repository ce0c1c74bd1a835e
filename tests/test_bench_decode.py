"""bench/bench_decode.py's arms on small files: the old seek path loses MP3 impulses that the
new path keeps, issue 16's fixed 4608-frame pre-roll loses them at a low bitrate, and every
arm times the same crops."""

from __future__ import annotations

import numpy as np

from audio_files import impulses, write
from bench_modules import load_bench


def test_the_old_arm_is_the_plain_seek_and_the_new_arm_is_exact(tmp_path):
    bench = load_bench("bench_decode")
    rate = 44100
    clicks = impulses(rate, 4.0, every=0.1)
    path = str(write(tmp_path / "clicks", np.stack([clicks, 0.5 * clicks], axis=1), rate, "mp3"))
    whole = bench.new_read(path, 0, 4 * rate)
    starts = [(0, int(s)) for s in np.random.default_rng(0).integers(1, 3 * rate, 40)]
    old_error, old_wrong = bench.worst_error([path], [whole], starts, 2048, bench.old_read)
    new_error, new_wrong = bench.worst_error([path], [whole], starts, 2048, bench.new_read)
    assert new_wrong == 0 and new_error <= 1e-6
    assert old_wrong > 0  # the seek without a pre-roll: clicks lost or wrong
    speeds = bench.rates_of([path], starts[:5], 2048, [bench.old_read, bench.new_read], 1)
    assert len(speeds) == 2 and min(speeds) > 0


def test_the_fixed_arm_loses_clicks_of_the_low_bitrate_file_that_the_new_arm_keeps(tmp_path):
    bench = load_bench("bench_decode")
    path = bench.lowbit_mp3(tmp_path / "lowbit.mp3", 8.0, 0)
    whole = bench.new_read(path, 0, 8 * bench.LOWBIT_RATE)
    clicks = [bench.LOWBIT_RATE // 2 + second * bench.LOWBIT_RATE for second in range(1, 7)]
    starts = [(0, click - before) for click in clicks for before in (500, 2500, 4000, 6000, 9000, 11000)]
    _, fixed_wrong = bench.worst_error([path], [whole], starts, 12_000, bench.fixed_read)
    new_error, new_wrong = bench.worst_error([path], [whole], starts, 12_000, bench.new_read)
    assert fixed_wrong > 0 and new_wrong == 0 and new_error <= 1e-6
