"""MPEG audio frame headers and how far back an MP3 crop's bit reservoir reaches (pure, no
decoder): the sizes the ISO tables give, the walk back through main-data areas, and a frame
index of real files (libsndfile's LAME and FFmpeg's encoder) with an ID3v2 tag, junk or no
frames at all."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

from audio_files import impulses
from raytag.audio import mpeg_frames
from raytag.audio.mpeg_frames import FrameIndex, first_needed_frame, parse_header


def header_bytes(b1: int, b2: int, b3: int) -> bytes:
    return bytes((0xFF, b1, b2, b3))


def test_header_sizes_follow_the_iso_tables():
    # MPEG-1 layer III, 128 kbit/s, 44.1 kHz, padded, joint stereo, no CRC.
    music = parse_header(header_bytes(0xFB, 0x92, 0x64))
    assert (music.version, music.layer, music.bitrate, music.sample_rate) == ("1", 3, 128, 44100)
    assert (music.frame_bytes, music.side_info_bytes, music.main_data_bytes) == (418, 32, 382)
    assert (music.samples_per_frame, music.reservoir_bytes) == (1152, 511)
    # MPEG-2 layer III, 8 kbit/s, 22.05 kHz, mono: the silent frames.
    quiet = parse_header(header_bytes(0xF3, 0x10, 0xC4))
    assert (quiet.version, quiet.bitrate, quiet.sample_rate, quiet.mono) == ("2", 8, 22050, True)
    assert (quiet.frame_bytes, quiet.side_info_bytes, quiet.main_data_bytes) == (26, 9, 13)
    assert (quiet.samples_per_frame, quiet.reservoir_bytes) == (576, 255)
    # MPEG-2.5 at 8 kHz, stereo, with a CRC: 72 bytes less header, CRC and 17 of side information.
    low = parse_header(header_bytes(0xE2, 0x18, 0x00))
    assert (low.version, low.sample_rate, low.crc, low.main_data_bytes) == ("2.5", 8000, True, 72 - 4 - 2 - 17)
    # Layer II has no reservoir.
    assert parse_header(header_bytes(0xFD, 0x90, 0x00)).reservoir_bytes == 0


@pytest.mark.parametrize("raw", [
    b"\xff\xfb\xf0\x00",  # bitrate index 15
    b"\xff\xfb\x00\x00",  # free format
    b"\xff\xfb\x9c\x00",  # sample rate index 3
    b"\xff\xeb\x90\x00",  # reserved version
    b"\xff\xf9\x90\x00",  # reserved layer
    b"\xfe\xfb\x90\x00",  # no sync word
    b"\xff\xfb",  # too short
])
def test_what_is_not_a_frame_header(raw):
    assert parse_header(raw) is None


def test_the_reservoir_walk_back_counts_main_data_bytes():
    quiet = [13] * 40
    assert first_needed_frame(quiet, 0, 30) == 30
    assert first_needed_frame(quiet, 13, 30) == 29
    assert first_needed_frame(quiet, 14, 30) == 28
    assert first_needed_frame(quiet, 255, 30) == 30 - 20  # 255 bytes: 20 frames of 13
    assert first_needed_frame([13] * 5 + [382] * 5, 511, 9) == 7  # two loud frames hold it
    assert first_needed_frame(quiet, 255, 5) == 0  # reaches past the first frame (damaged)


@pytest.fixture(scope="module")
def clicks_mp3(tmp_path_factory):
    """12 s of clicks on silence at 22.05 kHz, VBR: mostly 26-byte frames."""
    path = tmp_path_factory.mktemp("mpeg") / "clicks.mp3"
    with sf.SoundFile(path, "w", 22050, 1, format="MP3", subtype="MPEG_LAYER_III", bitrate_mode="VARIABLE",
                      compression_level=0.5) as out:
        out.write(impulses(22050, 12, every=1.0))
    return path


def index_of(data: bytes) -> FrameIndex:
    return FrameIndex(lambda offset, size: data[offset : offset + size], len(data))


def test_the_index_reads_the_lame_tag_and_reaches_back_twenty_frames_in_silence(clicks_mp3):
    index = index_of(clicks_mp3.read_bytes())
    assert (index.header.version, index.header.layer, index.header.samples_per_frame) == ("2", 3, 576)
    assert index.delay == 576 + mpeg_frames.DECODER_DELAY  # LAME's encoder delay, as mpg123 drops it
    start = 2 * 22050 + 11025 - 100  # just before the third click, in silence
    first = index.decode_from(start)
    frame = (start + index.delay) // 576
    assert frame - (first + index.delay) // 576 >= mpeg_frames.EXTRA_FRAMES + 19
    assert index.main_bytes[frame - 10] == 13  # silence is coded in the smallest frames
    assert len(index.main_bytes) == frame + 1  # walked no further than needed
    assert index.decode_from(0) == 0
    assert index.decode_from(100) == 0


def test_an_id3v2_tag_or_junk_before_the_frames_does_not_move_them(clicks_mp3):
    data = clicks_mp3.read_bytes()
    plain = index_of(data)
    tag = b"ID3\x04\x00\x00" + bytes((0, 0, 1, 0)) + b"\x00" * 128  # a 128-byte ID3v2.4 tag
    starts = [5000, 30000, 100000, 250000]
    assert [index_of(tag + data).decode_from(s) for s in starts] == [plain.decode_from(s) for s in starts]
    assert [index_of(b"\x00" * 37 + data).decode_from(s) for s in starts] == [plain.decode_from(s) for s in starts]


def test_past_foreign_bytes_the_index_assumes_the_longest_reach(clicks_mp3):
    data = bytearray(clicks_mp3.read_bytes())
    data[len(data) // 2 : len(data) // 2 + 200] = b"\x00" * 200
    index = index_of(bytes(data))
    start = 11 * 22050
    frame = (start + index.delay) // 576
    first_frame = (index.decode_from(start) + index.delay) // 576
    assert index.worst_case_frames() == 20  # 255 bytes / 13
    # That far back, and at most two frames more (the decoder may drop no delay, see decode_from).
    assert 20 <= frame - mpeg_frames.EXTRA_FRAMES - first_frame <= 22
    assert len(index.main_bytes) < frame


def test_bytes_without_frame_headers_decode_from_the_start():
    noise = np.random.default_rng(0).integers(0, 255, 5000, dtype=np.uint8).tobytes().replace(b"\xff", b"\x00")
    assert index_of(noise).header is None
    assert index_of(noise).decode_from(40000) == 0
