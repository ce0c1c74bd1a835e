"""Per-batch transforms, without Ray: scanning headers and decoding crops."""

import numpy as np
import soundfile as sf

from raytag.data.batches import RANDOM_START, decode_batch, scan_batch


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


def batch_for(paths, frames, rate, starts, tags=2):
    n = len(paths)
    return {
        "path": np.array(paths, dtype=object),
        "track": np.arange(n),
        "frames": np.array(frames),
        "rate": np.full(n, rate),
        "start": np.array(starts),
        "labels": np.eye(n, tags, dtype=np.float32),
    }


def test_decode_random_and_fixed_crops(tmp_path):
    path = tone(tmp_path / "a.wav", 3.0, 8000)
    batch = batch_for([path, path], [24000, 24000], 8000, [RANDOM_START, 8000])
    out = decode_batch(batch, sample_rate=16000, crop_samples=16000, rng=np.random.default_rng(0))
    assert out["audio"].shape == (2, 16000) and out["audio"].dtype == np.float32
    assert out["valid"].all() and list(out["track"]) == [0, 1]
    np.testing.assert_array_equal(out["labels"], batch["labels"])
    assert np.abs(out["audio"]).max() > 0.2


def test_random_crops_differ_between_draws(tmp_path):
    rng = np.random.default_rng(1)
    t = np.arange(80000) / 8000
    sf.write(tmp_path / "sweep.wav", 0.3 * np.sin(2 * np.pi * (100 + 30 * t) * t), 8000)
    batch = batch_for([str(tmp_path / "sweep.wav")], [80000], 8000, [RANDOM_START])
    a = decode_batch(batch, sample_rate=8000, crop_samples=4000, rng=rng)["audio"]
    b = decode_batch(batch, sample_rate=8000, crop_samples=4000, rng=rng)["audio"]
    assert not np.allclose(a, b)


def test_file_that_fails_mid_decode_is_flagged_not_raised(tmp_path):
    path = tone(tmp_path / "a.wav", 1.0, 8000)
    gone = tmp_path / "vanished.wav"
    batch = batch_for([path, str(gone)], [8000, 8000], 8000, [0, 0])
    out = decode_batch(batch, sample_rate=8000, crop_samples=4000, rng=np.random.default_rng(0))
    assert list(out["valid"]) == [True, False]
    assert np.all(out["audio"][1] == 0)
