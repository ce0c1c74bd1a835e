"""What raytag reads from audio bytes itself: the length a WAV/AIFF/AU header promises (a cut
file is truncated, not a shorter healthy one), where an ADTS stream's frame chain breaks, and
what a file that is not audio holds. Then the same through the decoders, as the scan sees it."""

from __future__ import annotations

import struct

import numpy as np
import pytest
import soundfile as sf

from audio_files import music_like, write
from raytag.audio.decoders import open_decoder
from raytag.audio.file_checks import adts_break, describe_content, promised_frames
from raytag.audio.io import AudioError, probe, read_frames
from raytag.data.batches import scan_batch

RATE = 16000


@pytest.fixture(scope="module")
def pcm_files(tmp_path_factory):
    """12 s of 16-bit mono in WAV, AIFF and AU, whole."""
    folder = tmp_path_factory.mktemp("pcm")
    audio = music_like(RATE, 12.0)
    files = {}
    for container, suffix in (("WAV", "wav"), ("AIFF", "aiff"), ("AU", "au")):
        files[suffix] = folder / f"whole.{suffix}"
        sf.write(files[suffix], audio, RATE, format=container, subtype="PCM_16")
    return files


@pytest.mark.parametrize("suffix", ["wav", "aiff", "au"])
def test_a_header_promises_its_frames_only_where_the_file_is_short_of_them(pcm_files, suffix):
    data = pcm_files[suffix].read_bytes()
    assert promised_frames(data[:4096], len(data)) is None  # whole: nothing to report
    assert promised_frames(data[:4096], len(data) // 2) == 12 * RATE
    assert promised_frames(data[:4096], len(data) - 1) == 12 * RATE  # one byte short is short


def test_unknown_lengths_and_other_formats_promise_nothing(pcm_files):
    data = bytearray(pcm_files["wav"].read_bytes())
    at = data.index(b"data")
    streamed = bytes(data[: at + 4]) + struct.pack("<I", 0xFFFFFFFF) + bytes(data[at + 8 :])
    assert promised_frames(streamed[:4096], len(streamed) // 2) is None  # a streaming writer's placeholder
    assert promised_frames(b"fLaC" + bytes(100), 10) is None
    assert promised_frames(b"", 0) is None


@pytest.mark.parametrize("suffix", ["wav", "aiff", "au"])
def test_a_cut_pcm_file_is_truncated_not_shorter(pcm_files, tmp_path, suffix):
    """Issue 26: a WAV whose header promises 12 s but holds 6 s got status ok (libsndfile
    clamps it to 6 s without a word). Now the header's length is the file's, the scan refuses
    it as truncated, and a crop before the cut still decodes."""
    data = pcm_files[suffix].read_bytes()
    cut = tmp_path / f"cut.{suffix}"
    cut.write_bytes(data[: len(data) // 2])
    assert sf.info(str(cut)).frames < 6.1 * RATE  # what libsndfile says
    with open_decoder(str(cut)) as decoder:
        assert decoder.info.frames == 12 * RATE
    with pytest.raises(AudioError, match=r"the audio ends at frame \d+ \(middle of the file\) although the header "
                                         r"promises 192000 frames \(truncated\?\)"):
        probe(str(cut))
    scanned = scan_batch({"path": np.asarray([str(cut)], dtype=object)})
    assert "truncated" in scanned["error"][0]
    whole = read_frames(str(pcm_files[suffix]), 0, 12 * RATE)
    np.testing.assert_array_equal(read_frames(str(cut), RATE, RATE), whole[RATE : 2 * RATE])


def adts_file(tmp_path) -> bytes:
    return write(tmp_path / "tone", music_like(22050, 3.0, noise=False), 22050, "aac-adts").read_bytes()


def test_the_adts_chain_runs_to_the_end_or_to_a_tag(tmp_path):
    data = adts_file(tmp_path)
    assert adts_break(data) is None
    assert adts_break(data + b"TAG" + bytes(125)) is None  # ID3v1
    assert adts_break(b"ID3\x04\x00\x00\x00\x00\x00\x10" + bytes(16) + data) is None  # ID3v2 (16 bytes)


def test_the_adts_chain_breaks_where_bytes_are_overwritten_or_cut(tmp_path):
    data = bytearray(adts_file(tmp_path))
    at = len(data) // 2
    damaged = bytes(data[:at]) + bytes(3000) + bytes(data[at + 3000 :])
    assert adts_break(damaged).startswith("no ADTS frame header at byte ")
    cut = len(data) - 100
    assert adts_break(bytes(data[:cut])) == f"the last ADTS frame is cut off at byte {cut} (truncated?)"


def test_a_damaged_adts_stream_fails_the_scan(tmp_path):
    """Issue 26: ADTS AAC with a damaged block passed the scan and later crops were 1024
    frames off; FFmpeg skips the damaged bytes and counts on."""
    data = adts_file(tmp_path)
    damaged = tmp_path / "damaged.aac"
    at = len(data) // 2
    damaged.write_bytes(data[:at] + np.random.default_rng(0).integers(0, 256, 1500, dtype=np.uint8).tobytes()
                        + data[at + 1500 :])
    scanned = scan_batch({"path": np.asarray([str(damaged)], dtype=object)})
    assert "damaged audio: no ADTS frame header at byte" in scanned["error"][0]


@pytest.mark.parametrize("head, size, said", [
    (b"", 0, "the file is empty: 0 bytes"),
    (b"artist,title\nMiles,So What\n", 27, "not an audio file (its bytes are text)"),
    (b"  <!doctype html><title>403</title>", 36, "not an audio file (it is a web page: HTML)"),
    ("caf\u00e9 ".encode() * 1023 + "\u00e9".encode()[:1], 4096, "not an audio file (its bytes are text)"),
    (b"RIFF\x24\x00\x00\x00WAVEfmt ", 44, None),
    (bytes(range(32, 127)) + b"\x01", 96, None),  # a control character: binary
    (b"\xff\xfb\x90\x00", 4, None),
])
def test_describe_content(head, size, said):
    assert describe_content(head, size) == said
