"""The clips a verification page plays (raytag.verify.clips): where they are, and that the
encoded Opus is the track's audio at that place: not shifted, not silent, not clipped."""

from __future__ import annotations

import io

import av
import numpy as np
import pytest
import soundfile as sf

from raytag.audio.io import load_crop
from raytag.verify.clips import CLIP_RATE, clip_window, make_clip, relevant_segment

RATE = 44_100


def decode(data: bytes) -> np.ndarray:
    """An Ogg Opus file's samples (mono float32 at 48 kHz), decoded by FFmpeg."""
    with av.open(io.BytesIO(data)) as container:
        stream = container.streams.audio[0]
        assert (stream.codec_context.name, stream.rate, stream.channels) == ("opus", CLIP_RATE, 1)
        return np.concatenate([frame.to_ndarray().reshape(-1) for frame in container.decode(stream)])


def test_the_window_is_centred_and_kept_inside_the_track():
    assert clip_window(100.0, 20.0) == (40.0, 60.0)  # the middle
    assert clip_window(100.0, 20.0, 30.0) == (20.0, 40.0)
    assert clip_window(100.0, 20.0, 3.0) == (0.0, 20.0)  # moved in, never padded
    assert clip_window(100.0, 20.0, 99.0) == (80.0, 100.0)
    assert clip_window(12.5, 20.0, 5.0) == (0.0, 12.5)  # a short track: all of it
    with pytest.raises(ValueError):
        clip_window(10.0, 0.0)


def test_the_relevant_segment_is_where_the_tracks_tags_score_highest():
    probabilities = np.array([[0.9, 0.1, 0.1], [0.2, 0.6, 0.7], [0.1, 0.8, 0.3], [0.2, 0.2, 0.99]])
    assert relevant_segment(probabilities, [1, 2]) == (1, pytest.approx(0.65))
    assert relevant_segment(probabilities, [1]) == (2, pytest.approx(0.8))
    assert relevant_segment(probabilities, []) == (3, pytest.approx(0.99))  # no tags: surest of any
    with pytest.raises(ValueError):
        relevant_segment(np.zeros((0, 3)), [0])


def test_a_clip_is_the_tracks_audio_at_its_place(tmp_path):
    # 30 s stereo at 44.1 kHz: a tone whose pitch rises with time, plus clicks at known times, so
    # a shift, a wrong window or silence would show.
    t = np.arange(30 * RATE) / RATE
    music = 0.3 * np.sin(2 * np.pi * (200 * t + 10 * t**2))
    for second in (12.25, 15.5, 18.75):
        music[int(second * RATE) : int(second * RATE) + 40] += 0.4
    path = tmp_path / "track.wav"
    sf.write(path, np.stack([music, music], axis=1).astype(np.float32), RATE, subtype="FLOAT")

    clip = make_clip(str(path), source_rate=RATE, start_s=10.0, end_s=20.0)
    assert (clip.start_s, clip.end_s, clip.gain_db, clip.silent) == (10.0, 20.0, 0.0, False)
    assert len(clip.data) < 35_000  # 10 s at 24 kbit/s (30 kB), with the container
    audio = decode(clip.data)
    assert len(audio) == 10 * CLIP_RATE
    reference = load_crop(str(path), 10 * RATE, 10 * CLIP_RATE, CLIP_RATE, RATE)
    lags = np.arange(-480, 481)
    middle = slice(CLIP_RATE, 9 * CLIP_RATE)
    correlation = [np.dot(audio[middle], np.roll(reference, lag)[middle]) for lag in lags]
    assert lags[int(np.argmax(correlation))] == 0  # not shifted (to the sample)
    snr = 10 * np.log10(np.sum(reference**2) / np.sum((reference - audio) ** 2))
    assert snr > 15, snr
    clicks = [round((s - 10.0) * CLIP_RATE) for s in (12.25, 15.5, 18.75)]
    for click in clicks:
        window = np.abs(audio[click - 2400 : click + 2400])
        assert abs(int(np.argmax(window)) - 2400) < 48  # each click within 1 ms of its place


def test_a_loud_clip_is_scaled_not_clipped_and_a_silent_one_is_reported(tmp_path):
    t = np.arange(4 * RATE) / RATE
    loud = tmp_path / "loud.wav"
    sf.write(loud, (1.6 * np.sin(2 * np.pi * 440 * t)).astype(np.float32), RATE, subtype="FLOAT")
    clip = make_clip(str(loud), source_rate=RATE, start_s=0.0, end_s=4.0)
    assert clip.peak == pytest.approx(1.6, rel=0.01)
    assert clip.gain_db == pytest.approx(20 * np.log10(10 ** (-1 / 20) / clip.peak))
    audio = decode(clip.data)
    assert np.abs(audio).max() < 1.0  # with the codec's overshoot; the source would clip by 4 dB
    assert np.abs(audio[CLIP_RATE:3 * CLIP_RATE]).max() > 0.8  # and it is still loud
    quiet = tmp_path / "quiet.wav"
    sf.write(quiet, np.zeros(4 * RATE, dtype=np.float32), RATE)
    assert make_clip(str(quiet), source_rate=RATE, start_s=1.0, end_s=3.0).silent
