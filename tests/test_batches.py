"""Per-batch transforms, without Ray: scanning headers and decoding crops."""

import numpy as np
import soundfile as sf

from raytag.data.batches import batch_seed, decode_batch, scan_batch
from raytag.data.rows import RANDOM_START


def tone(path, seconds, rate, freq=440.0):
    t = np.arange(int(seconds * rate)) / rate
    sf.write(path, 0.3 * np.sin(2 * np.pi * freq * t), rate)
    return str(path)


def test_scan_marks_bad_files(tmp_path):
    good = tone(tmp_path / "good.wav", 1.0, 8000)
    (tmp_path / "bad.wav").write_bytes(b"not audio at all")
    out = scan_batch({"path": np.array([good, str(tmp_path / "bad.wav"), str(tmp_path / "gone.wav")], dtype=object)})
    assert list(out["frames"]) == [8000, 0, 0]
    assert list(out["rate"]) == [8000, 0, 0]
    assert out["error"][0] == "" and "bad.wav" in out["error"][1] and "gone.wav" in out["error"][2]


def batch_for(paths, frames, rate, starts, tags=2, seeds=None):
    n = len(paths)
    return {
        "path": np.array(paths, dtype=object),
        "track": np.arange(n),
        "frames": np.array(frames),
        "rate": np.full(n, rate),
        "start": np.array(starts),
        "seed": np.array(seeds if seeds is not None else range(n), dtype=np.int64),
        "labels": np.eye(n, tags, dtype=np.float32),
    }


def test_decode_random_and_fixed_crops(tmp_path):
    path = tone(tmp_path / "a.wav", 3.0, 8000)
    batch = batch_for([path, path], [24000, 24000], 8000, [RANDOM_START, 8000])
    out = decode_batch(batch, sample_rate=16000, crop_samples=16000)
    assert out["audio"].shape == (2, 16000) and out["audio"].dtype == np.float32
    assert out["decoded"].all() and list(out["track"]) == [0, 1]
    np.testing.assert_array_equal(out["labels"], batch["labels"])
    assert np.abs(out["audio"]).max() > 0.2


def test_a_random_crop_is_a_function_of_the_row_seed(tmp_path):
    """The crop depends on the row's seed, not on which task decodes it or with which rows."""
    t = np.arange(80000) / 8000
    sf.write(tmp_path / "sweep.wav", 0.3 * np.sin(2 * np.pi * (100 + 30 * t) * t), 8000)
    path = str(tmp_path / "sweep.wav")

    def crop(seed, batch_mates=0):
        batch = batch_for([path] * (batch_mates + 1), [80000] * (batch_mates + 1), 8000,
                          [RANDOM_START] * (batch_mates + 1), seeds=[seed] + list(range(100, 100 + batch_mates)))
        return decode_batch(batch, sample_rate=8000, crop_samples=4000)["audio"][0]

    np.testing.assert_array_equal(crop(7), crop(7, batch_mates=3))  # same seed, other batch: same crop
    assert not np.allclose(crop(7), crop(8))  # another seed (another epoch): another crop


def test_extra_columns_pass_through_and_the_batch_seed_is_stable(tmp_path):
    path = tone(tmp_path / "a.wav", 1.0, 8000)
    batch = batch_for([path, path], [8000, 8000], 8000, [0, 0])
    batch["keep"] = np.array([[1, 0], [0, 1]], dtype=np.float32)
    batch["verified"] = np.array([1.0, 0.0], dtype=np.float32)
    out = decode_batch(batch, sample_rate=8000, crop_samples=4000)
    np.testing.assert_array_equal(out["keep"], batch["keep"])
    np.testing.assert_array_equal(out["verified"], [1.0, 0.0])
    assert "path" not in out and list(out["seed"]) == [0, 1]
    assert batch_seed(np.array([3, 4])) == batch_seed(np.array([3, 4])) != batch_seed(np.array([4, 3]))


def test_file_that_fails_mid_decode_is_flagged_not_raised(tmp_path):
    path = tone(tmp_path / "a.wav", 1.0, 8000)
    gone = tmp_path / "vanished.wav"
    batch = batch_for([path, str(gone)], [8000, 8000], 8000, [0, 0])
    out = decode_batch(batch, sample_rate=8000, crop_samples=4000)
    assert list(out["decoded"]) == [True, False]
    assert np.all(out["audio"][1] == 0)
