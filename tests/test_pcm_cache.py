"""The prepared-audio cache format and its decoder: keys, names, crops read from a cache file
as from the audio file, whole-track resampling in bounded pieces."""

from __future__ import annotations

import tracemalloc
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from requirements import needs_real_audio
from raytag.audio import pcm_cache
from raytag.audio.decoders import AudioInfo, Decoder, open_decoder
from raytag.audio.io import AudioError, load_crop, probe, read_frames, resample, resampled_pieces
from raytag.audio.pcm_cache import FileIdentity, cache_key

REAL = Path(__file__).resolve().parents[2] / "shared" / "data" / "real-audio"
needs_real = needs_real_audio
# float16 keeps 11 significant bits: a sample is within 2**-11 of its value (relative), and
# within 6e-8 near zero (the subnormal step).
RTOL, ATOL = 2.0 ** -11, 6e-8


def write_cache(source: Path, folder: Path, target_rate: int, piece_seconds: float = 0.5) -> Path:
    """Prepares ``source`` into ``folder`` as raytag prepare does (pieces, header, float16)."""
    with open_decoder(str(source)) as decoder:
        info = decoder.info
        pieces = resampled_pieces(decoder, target_rate=target_rate, piece_frames=int(piece_seconds * info.sample_rate))
        samples = pcm_cache.cached_samples(info.frames, info.sample_rate, target_rate)
        data = b"".join(pcm_cache.cache_stream(pieces, samples=samples))
    path = folder / f"{source.stem}.{target_rate}hz.npy"
    path.write_bytes(data)
    return path


@pytest.fixture
def stereo_wav(tmp_path) -> Path:
    """3.3 s of a tone plus noise at 44.1 kHz, stereo, float: the channels differ."""
    rate = 44100
    t = np.arange(int(3.3 * rate)) / rate
    rng = np.random.default_rng(0)
    left = 0.5 * np.sin(2 * np.pi * 440 * t) + 0.1 * rng.standard_normal(len(t))
    right = 0.3 * np.sin(2 * np.pi * 1000 * t) + 0.1 * rng.standard_normal(len(t))
    path = tmp_path / "tone.wav"
    sf.write(path, np.stack([left, right], axis=1).astype(np.float32), rate, subtype="FLOAT")
    return path


def test_key_changes_with_path_size_mtime_and_rate():
    base = FileIdentity("/music/a.mp3", 1000, 1_700_000_000_000_000_000)
    key = cache_key(base, sample_rate=16000)
    assert key == cache_key(FileIdentity("/music/a.mp3", 1000, 1_700_000_000_000_000_000), sample_rate=16000)
    assert len(key) == 32 and int(key, 16) >= 0
    others = [
        cache_key(FileIdentity("/music/b.mp3", 1000, base.mtime_ns), sample_rate=16000),
        cache_key(FileIdentity("s3://bucket/music/a.mp3", 1000, base.mtime_ns), sample_rate=16000),
        cache_key(FileIdentity(base.location, 1001, base.mtime_ns), sample_rate=16000),
        cache_key(FileIdentity(base.location, 1000, base.mtime_ns + 1), sample_rate=16000),
        cache_key(FileIdentity(base.location, 1000, None), sample_rate=16000),
        cache_key(base, sample_rate=22050),
    ]
    assert len({key, *others}) == 7


def test_names_carry_the_rate_and_live_in_one_folder_per_rate(tmp_path):
    key = cache_key(FileIdentity("/a.wav", 1, 2), sample_rate=16000)
    location = pcm_cache.cache_file(str(tmp_path), key, 16000)
    assert location == f"{tmp_path}/.raytag-cache/audio/16000hz/{key[:2]}/{key}.16000hz.npy"
    assert location.startswith(pcm_cache.rate_folder(str(tmp_path), 16000) + "/")
    assert pcm_cache.rate_of(location) == 16000 and pcm_cache.is_cache_file(location)
    assert pcm_cache.rate_of("s3://b/x/abc.22050hz.npy") == 22050
    with pytest.raises(pcm_cache.PcmCacheError, match=r"x\.npy: not a raytag audio cache file \(its name must end"):
        pcm_cache.rate_of("/tmp/x.npy")


def test_cached_samples_is_the_length_of_the_resampled_track():
    rng = np.random.default_rng(1)
    for source_rate, target_rate, frames in [(44100, 16000, 44100 + 7), (22050, 16000, 9999), (16000, 22050, 123), (8000, 8000, 5)]:
        audio = rng.standard_normal(frames).astype(np.float32)
        assert pcm_cache.cached_samples(frames, source_rate, target_rate) == len(resample(audio, source_rate, target_rate))


def test_float16_round_trip_keeps_loud_and_quiet_samples_unclipped():
    audio = np.array([0.0, 0.5, -0.5, 1.0, -1.0, 2.0, -2.0, 1e-5, 1e6], dtype=np.float32)
    back = pcm_cache.from_cache_samples(pcm_cache.to_cache_samples(audio))
    assert back.dtype == np.float32
    np.testing.assert_array_equal(back[:7], audio[:7])  # past full scale: kept, not clipped
    assert abs(back[7] - audio[7]) <= RTOL * 1e-5 + ATOL
    assert back[8] == pcm_cache.FLOAT16_MAX


def test_a_loud_master_round_trips_through_the_cache_without_clipping(tmp_path):
    """A master at 0 dBFS whose resampling overshoots full scale (inter-sample peaks): int16
    clipped these samples; the float16 cache keeps them within float16's precision."""
    rate = 44100
    t = np.arange(3 * rate) / rate
    rng = np.random.default_rng(3)
    square = np.sign(np.sin(2 * np.pi * 997 * t)) + 0.05 * rng.standard_normal(len(t))
    master = (square / np.max(np.abs(square))).astype(np.float32)  # peak exactly 1.0, clipped-square loud
    source = tmp_path / "loud.wav"
    sf.write(source, master, rate, subtype="FLOAT")
    whole = resample(read_frames(str(source), 0, len(master)), rate, 16000)
    over = np.abs(whole) > 32767 / 32768
    assert over.sum() > 50  # the resampled master goes past int16's range
    cache = write_cache(source, tmp_path, 16000)
    back = read_frames(str(cache), 0, len(whole))
    np.testing.assert_allclose(back, whole, rtol=RTOL, atol=ATOL)
    assert np.max(np.abs(back)) > 1.0


def test_an_int16_cache_of_an_older_raytag_is_refused_with_a_way_out(tmp_path):
    old = tmp_path / "old.16000hz.npy"
    np.save(old, np.zeros(10, dtype=np.int16))
    with pytest.raises(AudioError, match="older raytag .*raytag-pcm16-v1.*run raytag prepare again"):
        probe(str(old))
    assert pcm_cache.CACHE_FORMAT != "raytag-pcm16-v1"  # so every key differs from an old cache's


def test_a_cache_file_is_a_plain_npy_and_probes_at_its_rate(stereo_wav, tmp_path):
    cache = write_cache(stereo_wav, tmp_path, 16000)
    source = probe(str(stereo_wav))
    info = probe(str(cache))
    expected = pcm_cache.cached_samples(source.frames, source.sample_rate, 16000)
    assert info == AudioInfo(expected, 16000, 1)
    array = np.load(cache)
    assert array.dtype == np.float16 and array.shape == (expected,)
    assert cache.stat().st_size == pcm_cache.file_bytes(expected)
    with open_decoder(str(cache)) as decoder:
        assert decoder.backend == "pcm-cache"


@pytest.mark.parametrize("piece_seconds", [0.05, 0.5, 100.0])
def test_a_crop_equals_the_crop_of_the_whole_resampled_source(stereo_wav, tmp_path, piece_seconds):
    cache = write_cache(stereo_wav, tmp_path, 16000, piece_seconds=piece_seconds)
    source = probe(str(stereo_wav))
    whole = resample(read_frames(str(stereo_wav), 0, source.frames), source.sample_rate, 16000)
    for start in (0, 1, 7919, 16000, len(whole) - 16000):
        crop = load_crop(str(cache), start, 16000, 16000, 16000)
        np.testing.assert_allclose(crop, whole[start : start + 16000], rtol=RTOL, atol=ATOL)


@needs_real
def test_a_real_ogg_prepared_at_16k_matches_its_whole_decode(tmp_path):
    path = REAL / "openmic-000046_3840.ogg"  # 44.1 kHz stereo
    cache = write_cache(path, tmp_path, 16000, piece_seconds=3.0)
    info = probe(str(path))
    whole = resample(read_frames(str(path), 0, info.frames), info.sample_rate, 16000)
    assert probe(str(cache)).frames == len(whole)
    crop = read_frames(str(cache), 5 * 16000, 3 * 16000)
    np.testing.assert_allclose(crop, whole[5 * 16000 : 8 * 16000], rtol=RTOL, atol=ATOL)


def test_crops_past_the_end_are_zero_padded_and_reads_past_it_empty(stereo_wav, tmp_path):
    cache = write_cache(stereo_wav, tmp_path, 16000)
    frames = probe(str(cache)).frames
    tail = load_crop(str(cache), frames - 100, 1000, 16000, 16000)
    assert tail.shape == (1000,) and np.any(tail[:100]) and not np.any(tail[100:])
    assert read_frames(str(cache), frames, 10).shape == (0,)
    assert read_frames(str(cache), frames + 50, 10).shape == (0,)
    assert read_frames(str(cache), -5, 10).shape == (10,)


def test_a_cache_file_is_read_through_a_uri_too(stereo_wav, tmp_path):
    cache = write_cache(stereo_wav, tmp_path, 16000)
    uri = f"file://{cache}"
    assert probe(uri) == probe(str(cache))
    np.testing.assert_array_equal(read_frames(uri, 300, 4000), read_frames(str(cache), 300, 4000))


def test_truncated_and_malformed_cache_files_are_audio_errors(stereo_wav, tmp_path):
    cache = write_cache(stereo_wav, tmp_path, 16000)
    data = cache.read_bytes()
    cut = tmp_path / "cut.16000hz.npy"
    cut.write_bytes(data[: len(data) - 3])
    with pytest.raises(AudioError, match=r"cut\.16000hz\.npy: truncated audio cache file \(\d+ bytes; its header promises"):
        probe(str(cut))
    with pytest.raises(AudioError, match="truncated audio cache file"):
        read_frames(str(cut), 0, 10)
    header_only = tmp_path / "header.16000hz.npy"
    header_only.write_bytes(data[:60])
    with pytest.raises(AudioError, match=r"header\.16000hz\.npy: cannot read audio \(.*bad \.npy header"):
        probe(str(header_only))
    floats = tmp_path / "floats.16000hz.npy"
    np.save(floats, np.zeros(10, dtype=np.float32))
    with pytest.raises(AudioError, match=r"holds float32 of shape \(10,\); expected mono float16"):
        probe(str(floats))
    unnamed = tmp_path / "plain.npy"
    unnamed.write_bytes(data)
    with pytest.raises(AudioError, match=r"plain\.npy: cannot read audio \(.*name must end in \.<rate>hz\.npy"):
        probe(str(unnamed))
    with pytest.raises(AudioError, match="No such file or directory"):
        probe(str(tmp_path / "missing.16000hz.npy"))


def test_cache_stream_refuses_a_length_other_than_its_header():
    pieces = [np.zeros(5, np.float32), np.zeros(5, np.float32)]
    assert len(b"".join(pcm_cache.cache_stream(pieces, samples=10))) == pcm_cache.file_bytes(10)
    with pytest.raises(pcm_cache.PcmCacheError, match="has 10 samples; its cache header promises 11"):
        b"".join(pcm_cache.cache_stream(pieces, samples=11))
    with pytest.raises(pcm_cache.PcmCacheError, match="more than the 9 samples"):
        b"".join(pcm_cache.cache_stream(pieces, samples=9))


class SyntheticTrack(Decoder):
    """A long track generated on demand (nothing held), recording what is read."""

    backend = "synthetic"

    def __init__(self, frames: int, rate: int, *, ends_at: int | None = None):
        self.path, self.info = "synthetic", AudioInfo(frames, rate, 1)
        self.ends_at = frames if ends_at is None else ends_at
        self.reads: list[tuple[int, int]] = []

    def read(self, start: int, frames: int) -> np.ndarray:
        self.reads.append((start, frames))
        stop = min(start + frames, self.ends_at)
        n = np.arange(start, max(stop, start), dtype=np.float64)
        return (0.3 * np.sin(2 * np.pi * 440 * n / self.info.sample_rate)).astype(np.float32)

    def close(self) -> None:
        pass


@pytest.mark.parametrize("rates", [(44100, 16000), (22050, 16000), (16000, 22050), (48000, 16000), (16000, 16000)])
def test_resampling_in_pieces_equals_resampling_the_whole_track(rates):
    source_rate, target_rate = rates
    track = SyntheticTrack(2 * source_rate + 1234, source_rate)
    whole = resample(track.read(0, track.info.frames), source_rate, target_rate)
    pieces = list(resampled_pieces(track, target_rate=target_rate, piece_frames=source_rate // 3))
    assert len(pieces) > 3
    np.testing.assert_allclose(np.concatenate(pieces), whole, atol=2e-7)


def test_a_long_track_is_prepared_in_bounded_memory():
    rate, piece = 44100, 30 * 44100
    track = SyntheticTrack(10 * 60 * rate, rate)  # 10 minutes: 106 MB as float32
    tracemalloc.start()
    total = 0
    for chunk in pcm_cache.cache_stream(resampled_pieces(track, target_rate=16000, piece_frames=piece),
                                        samples=pcm_cache.cached_samples(track.info.frames, rate, 16000)):
        total += len(chunk)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert total == pcm_cache.file_bytes(10 * 60 * 16000)
    assert peak < 40e6, f"peak {peak / 1e6:.0f} MB"  # a few pieces, not the 106 MB track
    assert max(frames for _, frames in track.reads) <= piece + 4096
    # Reads move forward through the file: each starts where the last one ended.
    assert all(a + n == b for (a, n), (b, _) in zip(track.reads, track.reads[1:]))


def test_a_track_that_ends_early_is_an_error_unless_within_a_packet():
    rate = 16000
    short = SyntheticTrack(10 * rate, rate, ends_at=6 * rate)
    with pytest.raises(AudioError, match="ends at frame 96000 although the header promises 160000 frames"):
        list(resampled_pieces(short, target_rate=8000, piece_frames=rate))
    nearly = SyntheticTrack(10 * rate, rate, ends_at=10 * rate - 200)  # 12.5 ms short: padded
    audio = np.concatenate(list(resampled_pieces(nearly, target_rate=8000, piece_frames=rate)))
    assert len(audio) == 5 * rate and not np.any(audio[-50:])
