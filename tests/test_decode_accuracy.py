"""A crop equals the same frames of a whole-file decode, in every codec raytag decodes.

Generated files in wav, flac, aiff, Ogg Vorbis, MP3, AAC (MP4 and ADTS) and Opus, music-like and
impulse signals (an MP3 crop that loses the bit reservoir, or a Vorbis crop placed a few samples
off, fails here), and every real recording in ../shared/data/real-audio: at 24 evenly spaced and
12 random offsets, ``read_frames(path, start, n)`` equals ``read_frames(path, 0, frames)[start:
start + n]`` within the codec's tolerance:

- PCM (wav, aiff) and FLAC: exactly.
- MP3: 1e-6 (libsndfile, from as far back as the bit reservoir reaches; measured 6e-8).
- Ogg Vorbis: 1e-5 (a crop is libvorbis' decode checked against FFmpeg's; the whole decode is
  FFmpeg's; the two decoders differ by at most 4e-7 on these files).
- AAC: 1e-6 on signals without noise-like bands (see :mod:`raytag.audio.decoders` on perceptual
  noise substitution); Opus: 1e-6 (after a 0.5 s pre-roll).
"""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

from audio_files import CODECS, impulses, music_like, write
from requirements import REAL_AUDIO, needs_real_audio
from raytag.audio.decoders import open_decoder
from raytag.audio.io import probe, read_frames

TOLERANCE = {
    "wav": 0.0, "flac": 0.0, "aiff": 0.0, "mp3": 1e-6, "vorbis": 1e-5,
    "aac-m4a": 1e-6, "aac-adts": 1e-6, "opus": 1e-6,
}
CROP_SECONDS = 0.3
SECONDS = 6.0


def crop_offsets(frames: int, crop: int, *, seed: int = 0) -> list[int]:
    """24 evenly spaced first frames (from 1, so none is the plain start) and 12 random ones."""
    spaced = np.linspace(1, frames - crop - 1, 24).astype(int)
    drawn = np.random.default_rng(seed).integers(1, frames - crop, 12)
    return [int(x) for x in np.concatenate([spaced, drawn])]


def assert_crops_match_whole(path: str, tolerance: float) -> None:
    info = probe(path)
    whole = read_frames(path, 0, info.frames)
    assert len(whole) == info.frames
    crop = int(CROP_SECONDS * info.sample_rate)
    worst = []
    for start in crop_offsets(info.frames, crop):
        got = read_frames(path, start, crop)
        assert len(got) == crop
        error = float(np.max(np.abs(got - whole[start : start + crop])))
        if error > tolerance:
            worst.append((start, error))
    assert not worst, f"{path}: crops differ from the whole decode at (start, max error) {worst[:5]}"


def rate_of(codec: str) -> int:
    return 48000 if codec == "opus" else 22050


@pytest.mark.parametrize("codec", sorted(CODECS))
@pytest.mark.parametrize("signal", ["music", "impulses"])
def test_a_crop_equals_the_whole_decode_in_every_codec(tmp_path, codec, signal):
    rate = rate_of(codec)
    audio = music_like(rate, SECONDS, noise=not codec.startswith("aac")) if signal == "music" else impulses(rate, SECONDS)
    path = write(tmp_path / f"{signal}", audio, rate, codec)
    assert_crops_match_whole(str(path), TOLERANCE[codec])


@pytest.mark.parametrize("codec", ["mp3", "vorbis"])
def test_stereo_44k_impulse_crops_are_exact_not_silent(tmp_path, codec):
    """The cases the issue found: MP3 crops after a seek came back all zeros on impulses, Ogg
    Vorbis crops at 44.1 kHz were shifted by 236 or 664 samples."""
    rate = 44100
    mono = impulses(rate, SECONDS, every=0.1)
    path = write(tmp_path / "clicks", np.stack([mono, 0.5 * mono], axis=1), rate, codec)
    assert_crops_match_whole(str(path), TOLERANCE[codec])
    info = probe(str(path))
    crop = int(0.1 * rate)
    for start in crop_offsets(info.frames, crop, seed=1):
        assert np.max(np.abs(read_frames(str(path), start, crop))) > 0.3  # every 0.1 s holds a click


def test_low_bitrate_mp3_crops_keep_the_click_their_bit_reservoir_holds(tmp_path):
    """Issue 26: a 22.05 kHz VBR MP3 (libsndfile's LAME) whose silence is coded at 8 kbit/s
    (26-byte frames, 13 bytes of main data each), with a click every second: a frame's data may
    begin 255 bytes back, 20 frames, further than the fixed 4608-frame pre-roll reached (35 of
    80 such crops lost their click). Every crop starting 50 to 12,000 frames before a click
    equals the whole decode and holds the click."""
    rate, seconds = 22050, 12
    audio = impulses(rate, seconds, every=1.0)
    path = tmp_path / "clicks.mp3"
    with sf.SoundFile(path, "w", rate, 1, format="MP3", subtype="MPEG_LAYER_III", bitrate_mode="VARIABLE",
                      compression_level=0.5) as out:
        out.write(audio)
    info = probe(str(path))
    whole = read_frames(str(path), 0, info.frames)
    clicks = np.flatnonzero(np.abs(audio) > 0.5)[::2]
    assert np.abs(whole[clicks]).min() > 0.5  # the whole decode holds every click
    wrong = []
    for click in clicks[1:-1]:
        for before in (50, 600, 1500, 3000, 4700, 6100, 8000, 9300, 10500, 12000):
            start = int(click) - before
            got = read_frames(str(path), start, before + 64)
            error = float(np.max(np.abs(got - whole[start : start + before + 64])))
            if error > TOLERANCE["mp3"] or np.abs(got[before]) < 0.5:
                wrong.append((start, round(error, 3)))
    assert not wrong, f"{len(wrong)} of {10 * (len(clicks) - 2)} crops differ from the whole decode: {wrong[:5]}"


REAL_FILES = sorted(p.name for p in REAL_AUDIO.glob("*") if p.suffix in (".ogg", ".wav") and p.name != "empty.wav")


@needs_real_audio
@pytest.mark.parametrize("name", REAL_FILES or ["missing"])
def test_real_recordings_crops_equal_their_whole_decode(name):
    path = REAL_AUDIO / name
    assert_crops_match_whole(str(path), 0.0 if path.suffix == ".wav" else TOLERANCE["vorbis"])


def test_more_than_two_channels_are_averaged_to_mono(tmp_path):
    """A 4-channel file: the decoders give the mean of all channels (documented in README)."""
    rate = 16000
    channels = np.stack([music_like(rate, 2.0, seed=i) * (i + 1) / 4 for i in range(4)], axis=1)
    for codec in ("wav", "flac"):
        path = write(tmp_path / f"quad-{codec}", channels, rate, codec)
        info = probe(str(path))
        assert info.channels == 4
        mono = read_frames(str(path), 0, info.frames)
        np.testing.assert_allclose(mono, channels.mean(axis=1), atol=2 / 32768)
        with open_decoder(str(path)) as decoder:
            np.testing.assert_allclose(decoder.read(8000, 100), mono[8000:8100], atol=0)
