"""Decoding real recordings: Ogg Vorbis, float WAV, stereo 44.1 kHz, an empty file, bad files."""

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from requirements import needs_real_audio
from raytag.audio.io import (
    AudioError,
    chunk_starts,
    load_crop,
    probe,
    random_start,
    read_frames,
)

REAL = Path(__file__).resolve().parents[2] / "shared" / "data" / "real-audio"
needs_real = needs_real_audio


@needs_real
def test_probe_reads_headers_of_real_files():
    ogg = probe(str(REAL / "kevin-macleod-vibe-ace.ogg"))
    assert ogg.sample_rate == 22050 and ogg.channels == 1 and ogg.seconds == pytest.approx(61.5, abs=0.2)
    stereo = probe(str(REAL / "openmic-000046_3840.ogg"))
    assert (stereo.sample_rate, stereo.channels) == (44100, 2)
    wav = probe(str(REAL / "medley-solos-validation-3.wav"))
    assert wav.sample_rate == 44100 and wav.seconds == pytest.approx(3.0, abs=0.05)


@needs_real
def test_crop_from_the_middle_of_an_ogg_matches_full_decode():
    path = str(REAL / "kevin-macleod-vibe-ace.ogg")
    full, sr = sf.read(path, dtype="float32")
    start = 30 * sr
    crop = read_frames(path, start, 22050)
    np.testing.assert_allclose(crop, full[start : start + 22050], atol=1e-6)


@needs_real
def test_stereo_44k_is_downmixed_and_resampled():
    path = str(REAL / "openmic-000046_3840.ogg")
    crop = load_crop(path, start=44100, num_samples=16000, target_rate=16000, source_rate=44100)
    assert crop.shape == (16000,) and crop.dtype == np.float32
    stereo, _ = sf.read(path, start=44100, frames=44100, dtype="float32")
    # Resampling preserves level: RMS of the mono mix within a few percent.
    assert np.sqrt(np.mean(crop**2)) == pytest.approx(np.sqrt(np.mean(stereo.mean(1) ** 2)), rel=0.05)


def test_resampling_keeps_a_tone_at_its_frequency(tmp_path):
    sr = 44100
    t = np.arange(sr) / sr
    path = tmp_path / "tone.wav"
    sf.write(path, 0.5 * np.sin(2 * np.pi * 440 * t), sr, subtype="FLOAT")
    crop = load_crop(str(path), 0, 16000, target_rate=16000, source_rate=sr)
    peak_hz = np.argmax(np.abs(np.fft.rfft(crop))) * 16000 / len(crop)
    assert peak_hz == pytest.approx(440, abs=2)


@needs_real
def test_float_wav_short_clip_is_padded():
    path = str(REAL / "medley-solos-validation-3.wav")
    crop = load_crop(path, 0, 5 * 22050, target_rate=22050, source_rate=44100)
    assert crop.shape == (5 * 22050,)
    assert np.abs(crop[: 2 * 22050]).max() > 0.01 and np.all(crop[int(3.1 * 22050) :] == 0)


@needs_real
def test_empty_file_is_rejected():
    with pytest.raises(AudioError, match="no audio frames"):
        probe(str(REAL / "empty.wav"))


def test_missing_corrupt_and_zero_byte_files_are_rejected(tmp_path):
    with pytest.raises(AudioError, match="cannot read audio"):
        probe(str(tmp_path / "missing.wav"))
    corrupt = tmp_path / "corrupt.wav"
    corrupt.write_bytes(b"RIFF" + bytes(range(256)) * 4)
    with pytest.raises(AudioError):
        probe(str(corrupt))
    zero = tmp_path / "zero.ogg"
    zero.write_bytes(b"")
    with pytest.raises(AudioError):
        probe(str(zero))


@needs_real
def test_truncated_ogg_fails_cleanly_or_returns_short(tmp_path):
    data = (REAL / "brahms-hungarian-dance-5.ogg").read_bytes()
    cut = tmp_path / "cut.ogg"
    cut.write_bytes(data[: len(data) // 2])
    try:
        info = probe(str(cut))
    except AudioError:
        return
    # If the header survives, reading past the cut must give a short read or an AudioError.
    try:
        tail = read_frames(str(cut), info.frames - 22050, 22050)
    except AudioError:
        return
    assert len(tail) <= 22050 and np.all(np.isfinite(tail))


def test_chunk_starts_cover_the_track():
    assert chunk_starts(100, 200) == [0]
    assert chunk_starts(1000, 300) == [0, 233, 467, 700]
    starts = chunk_starts(10_000, 300, max_chunks=16)
    assert len(starts) == 16 and starts[0] == 0 and starts[-1] == 9700
    assert chunk_starts(400, 300, max_chunks=1) == [50]


def test_random_start_stays_inside():
    rng = np.random.default_rng(0)
    starts = [random_start(1000, 300, rng) for _ in range(500)]
    assert min(starts) == 0 or min(starts) < 20
    assert max(starts) <= 700 and max(starts) > 680
    assert random_start(100, 300, rng) == 0
