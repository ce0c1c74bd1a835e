"""Codecs libsndfile cannot open (AAC/M4A, Opus in WebM and Ogg), decoded by FFmpeg with the same
crop-on-read contract, and the decode check that rejects files corrupt past their header.

Every file is written here with PyAV's own encoders from a known signal: a stereo linear chirp
(left x, right x / 2, so the mono mix is 0.75 x), whose instantaneous frequency tells where in
the file a crop came from and whose shape gives an unambiguous cross-correlation peak.
"""

import re
from pathlib import Path

import av
import numpy as np
import pytest
import soundfile as sf

import raytag.audio.decoders as decoders
import raytag.audio.ffmpeg_decoder as ffmpeg_decoder
from audio_files import music_like, write
from requirements import needs_real_audio
from raytag.audio.io import AudioError, load_crop, probe, read_frames

REAL = Path(__file__).resolve().parents[2] / "shared" / "data" / "real-audio"
needs_real = needs_real_audio

SECONDS = 6.0
F0, F1 = 300.0, 3300.0  # chirp from F0 to F1 Hz over SECONDS


def chirp(rate: int) -> np.ndarray:
    t = np.arange(int(SECONDS * rate)) / rate
    return (0.3 * np.sin(2 * np.pi * (F0 * t + (F1 - F0) / (2 * SECONDS) * t**2))).astype(np.float32)


def encode(path: Path, container: str, codec: str, rate: int) -> np.ndarray:
    """Writes the stereo chirp with PyAV; returns the mono mix the decoder should give back."""
    signal = chirp(rate)
    stereo = np.stack([signal, 0.5 * signal])
    with av.open(str(path), "w", format=container) as out:
        stream = out.add_stream(codec, rate=rate)
        stream.layout = "stereo"
        stream.bit_rate = 192_000
        for i in range(0, stereo.shape[1], 1024):
            frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(stereo[:, i : i + 1024]), format="fltp", layout="stereo")
            frame.sample_rate, frame.pts = rate, i
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    return 0.75 * signal


def lag(crop: np.ndarray, source: np.ndarray, start: int, search: int = 400) -> int:
    """Offset k at which crop best matches source[start + k:], by cross-correlation."""
    lo = start - search
    window = source[lo : start + len(crop) + search]
    scores = np.correlate(window, crop, mode="valid")
    return int(np.argmax(scores)) - search


def dominant_hz(audio: np.ndarray, rate: int) -> float:
    spectrum = np.abs(np.fft.rfft(audio * np.hanning(len(audio))))
    return float(np.argmax(spectrum) * rate / len(audio))


def chirp_hz(seconds: float) -> float:
    return F0 + (F1 - F0) * seconds / SECONDS


# container, codec, rate, suffix, exact length?, alignment tolerance (frames)
CASES = {
    "aac-m4a": ("mp4", "aac", 44100, ".m4a", True, 1),
    "opus-webm": ("webm", "libopus", 48000, ".webm", False, 49),  # millisecond timestamps
    "opus-ogg": ("ogg", "libopus", 48000, ".opus", True, 1),
}


@pytest.fixture(scope="module")
def encoded(tmp_path_factory):
    folder = tmp_path_factory.mktemp("codecs")
    files = {}
    for name, (container, codec, rate, suffix, _, _) in CASES.items():
        path = folder / f"chirp{suffix}"
        files[name] = (path, encode(path, container, codec, rate))
    return files


@pytest.mark.parametrize("name", list(CASES))
def test_ffmpeg_codec_probes_and_decodes_a_crop_from_the_middle(encoded, name):
    path, source = encoded[name]
    _, _, rate, _, exact, tolerance = CASES[name]
    with decoders.open_decoder(str(path)) as decoder:
        assert decoder.backend == "ffmpeg"
    info = probe(str(path))
    assert (info.sample_rate, info.channels) == (rate, 2)
    if exact:
        assert info.frames == len(source)
    else:
        assert abs(info.frames - len(source)) <= rate // 500  # within 2 ms
    start, frames = int(2.9 * rate), rate // 2
    crop = read_frames(str(path), start, frames)
    assert crop.shape == (frames,) and crop.dtype == np.float32
    assert abs(lag(crop, source, start)) <= tolerance
    assert dominant_hz(crop, rate) == pytest.approx(chirp_hz(3.15), abs=80)
    rms, expected = np.sqrt(np.mean(crop**2)), np.sqrt(np.mean(source[start : start + frames] ** 2))
    assert rms == pytest.approx(expected, rel=0.05)


@pytest.mark.parametrize("name", ["aac-m4a", "opus-ogg"])
def test_a_seeked_crop_equals_the_same_frames_of_a_decode_from_the_start(encoded, name):
    path, _ = encoded[name]
    full = read_frames(str(path), 0, 10**9)
    for start in (1, 44_000, 150_001):
        crop = read_frames(str(path), start, 20_000)
        # AAC decodes bit-identically after the pre-roll; Opus converges to within -60 dB.
        np.testing.assert_allclose(crop, full[start : start + 20_000], atol=1e-6 if name == "aac-m4a" else 1e-3)


def test_a_crop_decodes_only_the_packets_near_it(encoded, monkeypatch):
    path, _ = encoded["opus-webm"]
    decoded = []
    real = ffmpeg_decoder.frame_to_mono
    monkeypatch.setattr(ffmpeg_decoder, "frame_to_mono", lambda frame: decoded.append(frame.samples) or real(frame))
    read_frames(str(path), int(5.0 * 48000), 4800)
    # 0.1 s crop + 0.5 s pre-roll + one 20 ms Opus frame either side, not the 5 s before it.
    assert sum(decoded) <= int(0.64 * 48000)


def test_raw_adts_aac_length_is_counted_from_packets_and_keeps_the_priming(tmp_path):
    path = tmp_path / "chirp.aac"
    source = encode(path, "adts", "aac", 44100)
    info = probe(str(path))
    with av.open(str(path)) as container:
        decoded = sum(frame.samples for frame in container.decode(audio=0))
    # ADTS has no duration and no edit list: frames are exact and include 1024 priming frames.
    assert info.frames == decoded and decoded >= len(source) + 1024
    full = read_frames(str(path), 0, 10**9)
    crop = read_frames(str(path), 100_000, 10_000)
    assert lag(crop, source, 100_000 - 1024) == 0
    np.testing.assert_allclose(crop, full[100_000:110_000], atol=1e-6)


def test_load_crop_resamples_an_m4a_to_the_model_rate(encoded):
    path, _ = encoded["aac-m4a"]
    crop = load_crop(str(path), start=2 * 44100, num_samples=8000, target_rate=16000, source_rate=44100)
    assert crop.shape == (8000,) and crop.dtype == np.float32
    assert dominant_hz(crop, 16000) == pytest.approx(chirp_hz(2.25), abs=80)


def test_a_crop_past_the_end_is_short_then_empty(encoded):
    path, source = encoded["aac-m4a"]
    tail = read_frames(str(path), len(source) - 1000, 5000)
    assert len(tail) == 1000
    assert len(read_frames(str(path), len(source) + 50_000, 100)) == 0


def test_truncated_webm_is_rejected_by_probe(encoded, tmp_path):
    path, _ = encoded["opus-webm"]
    data = path.read_bytes()
    cut = tmp_path / "cut.webm"
    cut.write_bytes(data[: len(data) // 3])
    # The header still promises 6 s; the middle of the file is gone.
    with pytest.raises(AudioError, match="middle of the file"):
        probe(str(cut))


def test_flac_corrupt_past_its_header_is_rejected_by_probe(tmp_path):
    rate = 22050
    tone = (0.3 * np.sin(2 * np.pi * 440 * np.arange(20 * rate) / rate)).astype(np.float32)
    good = tmp_path / "good.flac"
    sf.write(good, tone, rate)
    data = bytearray(good.read_bytes())
    middle = len(data) // 2
    data[middle - 2000 : middle + 2000] = np.random.default_rng(0).integers(0, 256, 4000, dtype=np.uint8).tobytes()
    bad = tmp_path / "bad.flac"
    bad.write_bytes(bytes(data))
    assert sf.info(str(bad)).frames == len(tone)  # the header is intact
    assert probe(str(good)).frames == len(tone)
    with pytest.raises(AudioError, match=r"bad.flac: decoding failed near frame"):
        probe(str(bad))


def test_files_neither_library_decodes_are_rejected(tmp_path):
    junk = tmp_path / "junk.m4a"
    junk.write_bytes(bytes(range(256)) * 64)
    with pytest.raises(AudioError, match=r"junk.m4a: cannot read audio \(not a format libsndfile or FFmpeg decodes "
                                         r"\(libsndfile: format not recognised; FFmpeg: invalid data found when "
                                         r"processing input\)\)$"):
        probe(str(junk))
    video = tmp_path / "video.mp4"
    with av.open(str(video), "w") as out:
        stream = out.add_stream("mpeg4", rate=5)
        stream.width, stream.height, stream.pix_fmt = 32, 32, "yuv420p"
        for i in range(5):
            frame = av.VideoFrame.from_ndarray(np.full((32, 32, 3), i * 40, dtype=np.uint8), format="rgb24")
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    with pytest.raises(AudioError, match="no audio stream"):
        probe(str(video))


@pytest.mark.parametrize("name, content, reason", [
    ("notes.mp3", b"track 1: intro\ntrack 2: verse\n", "not an audio file (its bytes are text)"),
    ("page.wav", b"<!DOCTYPE html>\n<html><body>404 Not Found</body></html>", "not an audio file (it is a web page: HTML)"),
    ("utf8.ogg", "\ufeffchanson d'automne, été\n".encode(), "not an audio file (its bytes are text)"),
    ("empty.flac", b"", "the file is empty: 0 bytes"),
    ("noise.mp3", bytes(range(1, 255)) * 40,
     "not a format libsndfile or FFmpeg decodes (libsndfile: not an MP3 it can open; FFmpeg: invalid data found when "
     "processing input)"),
])
def test_a_file_that_is_not_audio_is_named_for_what_it_is(tmp_path, name, content, reason):
    """Issue 26: a text file renamed .mp3 got libsndfile's "File does not exist or is not a
    regular file (possibly a pipe?)", and FFmpeg's reasons read "[Errno 1094995529] Invalid data
    found when processing input: '<path>'"."""
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(AudioError) as caught:
        probe(str(path))
    assert str(caught.value) == f"{path}: cannot read audio ({reason})"


def test_a_format_ffmpeg_guesses_from_bytes_that_are_not_audio_is_refused(tmp_path):
    """Bytes of 0xdd read to FFmpeg as raw GSM (a headerless format: each frame starts with the
    nibble 0xd), whose crops after a seek differ from the whole decode; raytag decodes only the
    formats it lists (found by bench/fuzz_audio.py)."""
    path = tmp_path / "overwritten.m4a"
    path.write_bytes(b"\xdd" * 5000)
    with pytest.raises(AudioError, match=r"overwritten.m4a: cannot read audio \(libsndfile: format not recognised; "
                                         r"FFmpeg reads it as raw GSM, not a format raytag decodes\)$"):
        probe(str(path))


def test_ffmpeg_decoding_errors_are_in_words(tmp_path):
    """ADTS frames whose headers are intact and whose payload is noise: FFmpeg's decoder
    refuses them, and its error reads without the error number and function name."""
    rate = 22050
    good = write(tmp_path / "good", music_like(rate, 6.0, noise=False), rate, "aac-adts")
    data = bytearray(good.read_bytes())
    noise = np.random.default_rng(0)
    at = 0
    for index in range(100):  # scramble the payload of frames 60 to 99, keep their headers
        length = (data[at + 3] & 0x03) << 11 | data[at + 4] << 3 | data[at + 5] >> 5
        if index >= 60:
            data[at + 7 : at + length] = noise.integers(0, 256, length - 7, dtype=np.uint8).tobytes()
        at += length
    bad = tmp_path / "bad.aac"
    bad.write_bytes(bytes(data))
    with pytest.raises(AudioError) as caught:
        read_frames(str(bad), 0, 6 * rate)
    assert "Errno" not in str(caught.value) and "avcodec" not in str(caught.value)
    assert re.search(r"bad.aac: decoding failed near frame (\d+) \(FFmpeg: [a-z]", str(caught.value)), str(caught.value)
    frame = int(re.search(r"near frame (\d+)", str(caught.value)).group(1))
    assert 58 * 1024 <= frame <= 100 * 1024  # where the damage is, not "frame 0"


@needs_real
def test_real_files_still_probe_and_decode_with_libsndfile():
    for path in sorted(REAL.glob("*.ogg")) + [REAL / "medley-solos-validation-3.wav"]:
        info = probe(str(path))
        with decoders.open_decoder(str(path)) as decoder:
            assert decoder.backend == "libsndfile" and decoder.info == info
        middle = read_frames(str(path), info.frames // 2, 1000)
        assert len(middle) == 1000 and np.all(np.isfinite(middle))
    with pytest.raises(AudioError, match="no audio frames"):
        probe(str(REAL / "empty.wav"))


@pytest.mark.parametrize("codec, sample_format, dtype", [("pcm_s16le", "s16", np.int16), ("pcm_u8", "u8", np.uint8)])
def test_integer_pcm_decoded_by_ffmpeg_matches_libsndfile(tmp_path, codec, sample_format, dtype):
    # Packed integer PCM in Matroska (libsndfile cannot open .mka) takes the generic conversion.
    rate = 16000
    left = chirp(rate)[:rate]
    subtype = {"pcm_s16le": "PCM_16", "pcm_u8": "PCM_U8"}[codec]
    sf.write(tmp_path / "ref.wav", np.stack([left, -0.5 * left], axis=1), rate, subtype=subtype)
    ints, _ = sf.read(tmp_path / "ref.wav", dtype="int16")
    packed = (ints.astype(np.int32) // 256 + 128).astype(np.uint8) if dtype is np.uint8 else ints
    with av.open(str(tmp_path / "pcm.mka"), "w") as out:
        stream = out.add_stream(codec, rate=rate)
        stream.layout = "stereo"
        for i in range(0, len(packed), 800):
            block = np.ascontiguousarray(packed[i : i + 800]).reshape(1, -1)
            frame = av.AudioFrame.from_ndarray(block, format=sample_format, layout="stereo")
            frame.sample_rate, frame.pts = rate, i
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    assert probe(str(tmp_path / "pcm.mka")).channels == 2
    expected = read_frames(str(tmp_path / "ref.wav"), 4000, 6000)
    np.testing.assert_allclose(read_frames(str(tmp_path / "pcm.mka"), 4000, 6000), expected, atol=1e-6)
