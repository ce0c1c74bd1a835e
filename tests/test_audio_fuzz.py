"""Property-based tests of audio bytes (hypothesis): a mutated real file of every codec raytag
reads (wav, flac, Ogg Vorbis, Opus, MP3, AAC in M4A and ADTS, and the real recordings) either
decodes, its crops equal to the whole decode within the codec's tolerance, or raises raytag's
AudioError with a one-line reason; never another exception, a wrong crop, a hang or a crash
(each case runs in a worker process under a time bound). See tests/audio_mutations.py.

CI runs a small derandomized profile (``EXAMPLES`` cases per codec); ``bench/fuzz_audio.py
--examples N`` runs long random ones and lists what it finds. Each finding, once fixed, is
pinned here with ``@example`` (they run for every codec).
"""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, example, given, settings

from audio_mutations import SEEDS, TOLERANCE, DecodeWorker, apply, mutations, write_seeds
from requirements import REAL_AUDIO, needs_real_audio

EXAMPLES = 30
CODECS = sorted(SEEDS)
ALL_SEEDS = CODECS + ["real-vorbis", "real-wav"]
PROFILE = settings(max_examples=EXAMPLES, derandomize=True, database=None, deadline=None,
                   suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])


@pytest.fixture(scope="module")
def seeds(tmp_path_factory):
    return write_seeds(tmp_path_factory.mktemp("fuzz-seeds"))


@pytest.fixture(scope="module")
def worker():
    process = DecodeWorker()
    yield process
    process.close()


def assert_decodes_or_is_refused(seeds, worker, folder, codec, mutation):
    data = apply(seeds[codec].read_bytes(), mutation, seeds)
    path = folder / f"case{seeds[codec].suffix}"
    path.write_bytes(data)
    outcome, details = worker.run(str(path), TOLERANCE[codec])
    assert outcome in ("decoded", "refused"), f"{codec} {mutation!r}: {outcome}: {details}"


@pytest.mark.parametrize("codec", CODECS)
@PROFILE
@given(mutation=mutations(ALL_SEEDS))
@example(mutation=(("replace", b""),))
@example(mutation=(("cut", 0.5),))
@example(mutation=(("overwrite", 0.4, bytes(3000)),))
@example(mutation=(("splice", 0.05, "wav"),))
# Found by bench/fuzz_audio.py: the start overwritten with 0xdd bytes reads as raw GSM to FFmpeg
# (each GSM frame starts with the nibble 0xd), whose crops after a seek differed from the whole
# decode by up to 0.02; now refused (not a format raytag decodes).
@example(mutation=(("overwrite", 0.0, b"\xdd" * 3725),))
# Found by bench/fuzz_audio.py (seed 3): 95 bytes overwritten in an MP3's frames decode to
# garbage at 8.5 (libmpg123 does not notice), where a crop and the whole decode differ by 2e-6,
# float rounding at that magnitude; the tolerance is now of the crop's peak past full scale.
@example(mutation=(("overwrite", 0.45659416698850885, b"\xec\x9b'\x0c\x84)\xd3\x81&\xcf\xfd\x82\x9a\x88"
                    b"\xa6\xea\x08\xdds\xf3\x80\xdd8\xf8\xfeE\x90zd\x81\xd2\xd0\xeb/G\xc0\x07\x07N\xf5?\x9ekc\xffx"
                    b"\x13\\h\x9f\x12gY\x94\xd6\x87\x8e\xe7\xdeqI\xa0\xa7/ \xc1\xb5O\xa4io\xfc\x96*@\xc89\\\xf6\xa7"
                    b"\x10\xc729FQ\x1c\x1b\xb5u\xf7\xf8\xf7ml"),))
def test_mutated_audio_decodes_or_is_refused(seeds, worker, tmp_path, codec, mutation):
    assert_decodes_or_is_refused(seeds, worker, tmp_path, codec, mutation)


@needs_real_audio
@pytest.mark.parametrize("codec", ["real-vorbis", "real-wav"])
@PROFILE
@given(mutation=mutations(ALL_SEEDS))
@example(mutation=(("cut", 0.5),))
def test_mutated_real_recordings_decode_or_are_refused(seeds, worker, tmp_path, codec, mutation):
    assert (REAL_AUDIO / "robin-bird-call.ogg").is_file()
    assert_decodes_or_is_refused(seeds, worker, tmp_path, codec, mutation)


def test_the_property_catches_what_it_should(seeds, worker, tmp_path):
    """The check itself: a healthy file decodes, a truncated one is refused with its reason,
    and a crop that differs from the whole decode is a finding (a decoder made to shift one)."""
    from audio_mutations import check
    from raytag.audio import libsndfile_decoder

    assert worker.run(str(seeds["flac"]), 0.0)[0] == "decoded"
    cut = tmp_path / "cut.wav"
    cut.write_bytes(apply(seeds["wav"].read_bytes(), (("cut", 0.5),), seeds))
    outcome, details = worker.run(str(cut), 0.0)
    assert outcome == "refused" and "truncated" in details
    random_bytes = tmp_path / "random.mp3"
    random_bytes.write_bytes(bytes(range(1, 250)) * 20)
    assert worker.run(str(random_bytes), 0.0)[0] == "refused"
    original = libsndfile_decoder.SoundfileDecoder.read
    try:
        libsndfile_decoder.SoundfileDecoder.read = lambda self, start, frames: original(self, max(start - 1, 0), frames)
        assert check(str(seeds["flac"]), 0.0)[0] == "wrong"
    finally:
        libsndfile_decoder.SoundfileDecoder.read = original
