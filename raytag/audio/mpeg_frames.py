"""MPEG audio frames (MP3): where a crop must start decoding so that its bit reservoir is whole.

A layer III frame does not keep its coded audio to itself. Its side information begins with
``main_data_begin``: how many bytes *before* the frame its main data starts (9 bits in MPEG-1,
so up to 511 bytes; 8 bits in MPEG-2 and MPEG-2.5, up to 255 bytes; ISO/IEC 11172-3 and
13818-3, "bit reservoir"). Those bytes lie in the main-data areas of the frames before it: what
is left of a frame after its 4-byte header, its optional 2-byte CRC and its side information
(MPEG-1: 17 bytes mono, 32 stereo; MPEG-2/2.5: 9 and 17). How many frames back that reaches
depends on the frames' sizes: at 128 kbit/s and 44.1 kHz (418-byte frames) 511 bytes are
less than two frames back; at 8 kbit/s and 22.05 kHz (26-byte frames, 13 bytes of main data)
255 bytes are 20 frames back (11,520 samples, 0.52 s). A decoder that starts reading after a
seek lacks those bytes and decodes the first frames as silence or noise, so a crop must be
decoded from far enough before it, and how far is read here from the stream itself.

:class:`FrameIndex` walks the frame headers from the first audio frame (after an ID3v2 tag and
the Xing/Info/VBRI frame that encoders put first), only as far as a crop needs, and keeps each
frame's main-data size and ``main_data_begin``; :func:`first_needed_frame` walks back from a
frame through those sizes. The walk reads the file up to the crop in 64 KB pieces and looks at
a few bytes of each frame (about 0.2 µs a frame; a 3-minute 44.1 kHz file has 6,900 frames),
less than libsndfile's own seek, which walks the same headers to find the frame. Where the
headers stop making sense (damaged or foreign bytes, a free-format stream),
:meth:`FrameIndex.decode_from` falls back to the most frames that the reservoir can reach at
the stream's lowest bitrate, so a crop is never decoded with less.
Everything here works on bytes (Python and NumPy); no decoder library is involved.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from functools import lru_cache

import numpy as np

# kbit/s by (MPEG-1 or not, layer) and the header's 4-bit index; index 0 is "free format" and
# 15 is invalid (both are 0 here: the walk stops at them).
_BITRATES = {
    (True, 1): (0, 32, 64, 96, 128, 160, 192, 224, 256, 288, 320, 352, 384, 416, 448, 0),
    (True, 2): (0, 32, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320, 384, 0),
    (True, 3): (0, 32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320, 0),
    (False, 1): (0, 32, 48, 56, 64, 80, 96, 112, 128, 144, 160, 176, 192, 224, 256, 0),
    (False, 2): (0, 8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160, 0),
    (False, 3): (0, 8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160, 0),
}
# Sample rates (Hz) by the header's 2-bit version code (0: MPEG-2.5, 2: MPEG-2, 3: MPEG-1).
_SAMPLE_RATES = {0: (11025, 12000, 8000), 2: (22050, 24000, 16000), 3: (44100, 48000, 32000)}
_VERSIONS = {0: "2.5", 2: "2", 3: "1"}
# The samples mpg123 (libsndfile's MP3 decoder) drops at the start besides the encoder delay
# that a LAME tag states, in gapless mode: the layer III decoder's own delay.
DECODER_DELAY = 529
# Frames before the one a crop starts in that must decode whole, besides those their reservoir
# reaches: a granule's output overlaps the previous granule's (the hybrid filterbank's
# overlap-add), and the synthesis filter's 512-sample window reaches into the granule before
# that; in MPEG-2/2.5 a frame is one granule. Measured: with 1, 10 of 2,000 crops of
# low-bitrate click files were wrong; with 2, none.
EXTRA_FRAMES = 2
# How far the walk reads at a time.
_CHUNK_BYTES = 1 << 16
_ID3V2_HEADER = 10


@dataclass(frozen=True)
class FrameHeader:
    """The fields of an MPEG audio frame header that size the frame.

    Attributes:
        version: ``"1"``, ``"2"`` or ``"2.5"``.
        layer: 1, 2 or 3.
        bitrate: kbit/s.
        sample_rate: Hz.
        padding: one extra byte (layer I: one 4-byte slot).
        crc: a 16-bit CRC follows the header.
        mono: single channel (side information is shorter).
    """

    version: str
    layer: int
    bitrate: int
    sample_rate: int
    padding: bool
    crc: bool
    mono: bool

    @property
    def samples_per_frame(self) -> int:
        if self.layer == 1:
            return 384
        return 576 if self.layer == 3 and self.version != "1" else 1152

    @property
    def frame_bytes(self) -> int:
        """The whole frame, header included."""
        if self.layer == 1:
            return (12_000 * self.bitrate // self.sample_rate + self.padding) * 4
        per_slot = 144_000 if self.layer == 2 or self.version == "1" else 72_000
        return per_slot * self.bitrate // self.sample_rate + self.padding

    @property
    def side_info_bytes(self) -> int:
        """Layer III side information (0 for layers I and II)."""
        if self.layer != 3:
            return 0
        if self.version == "1":
            return 17 if self.mono else 32
        return 9 if self.mono else 17

    @property
    def main_data_bytes(self) -> int:
        """Bytes of the frame that hold main data (its own or later frames')."""
        return max(self.frame_bytes - 4 - 2 * self.crc - self.side_info_bytes, 0)

    @property
    def reservoir_bytes(self) -> int:
        """The most bytes before a frame that its main data may begin (0: no reservoir)."""
        if self.layer != 3:
            return 0
        return 511 if self.version == "1" else 255


def parse_header(data: bytes, offset: int = 0) -> FrameHeader | None:
    """The frame header at ``data[offset:offset + 4]``, or None where there is none (no sync
    word, a reserved version/layer/rate, a free-format or invalid bitrate)."""
    if offset + 4 > len(data) or data[offset] != 0xFF or (data[offset + 1] & 0xE0) != 0xE0:
        return None
    b1, b2, b3 = data[offset + 1], data[offset + 2], data[offset + 3]
    version_code, layer_code = (b1 >> 3) & 3, (b1 >> 1) & 3
    rate_code, bitrate_code = (b2 >> 2) & 3, b2 >> 4
    if version_code == 1 or layer_code == 0 or rate_code == 3:
        return None
    layer = 4 - layer_code
    bitrate = _BITRATES[(version_code == 3, layer)][bitrate_code]
    if bitrate == 0:
        return None
    return FrameHeader(
        version=_VERSIONS[version_code], layer=layer, bitrate=bitrate,
        sample_rate=_SAMPLE_RATES[version_code][rate_code], padding=bool(b2 & 2), crc=not b1 & 1,
        mono=(b3 >> 6) == 3,
    )


def main_data_begin(data: bytes, offset: int, header: FrameHeader) -> int:
    """A layer III frame's ``main_data_begin`` (bytes back from its main data); 0 for other layers."""
    if header.layer != 3:
        return 0
    at = offset + 4 + 2 * header.crc
    if header.version == "1":
        return (data[at] << 1) | (data[at + 1] >> 7)
    return data[at]


def first_needed_frame(main_bytes: Sequence[int], reach: int, frame: int) -> int:
    """The first frame whose main-data area a decoder must have read for frame ``frame``,
    whose main data begins ``reach`` bytes before its own main-data area.

    Args:
        main_bytes: each frame's main-data size in bytes (:attr:`FrameHeader.main_data_bytes`).
        reach: the frame's ``main_data_begin``.
        frame: index into ``main_bytes``.

    Returns:
        ``frame`` itself when ``reach`` is 0, else the frame holding the reservoir's first byte
        (0 when the reach goes past the first frame, as only a damaged stream's does).
    """
    first = frame
    while reach > 0 and first > 0:
        first -= 1
        reach -= main_bytes[first]
    return first


def _id3v2_size(head: bytes) -> int:
    """Bytes of an ID3v2 tag at the start of ``head`` (0 without one)."""
    if len(head) < _ID3V2_HEADER or head[:3] != b"ID3":
        return 0
    size = (head[6] & 0x7F) << 21 | (head[7] & 0x7F) << 14 | (head[8] & 0x7F) << 7 | (head[9] & 0x7F)
    footer = 10 if head[5] & 0x10 else 0
    return _ID3V2_HEADER + size + footer


def _tag_frame_delay(data: bytes, offset: int, header: FrameHeader) -> int | None:
    """For an information frame (Xing/Info, VBRI), the encoder delay a LAME tag in it states (0
    without one); None for an audio frame."""
    at = offset + 4 + 2 * header.crc + header.side_info_bytes
    if data[offset + 36 : offset + 40] == b"VBRI":
        return 0
    if data[at : at + 4] not in (b"Xing", b"Info"):
        return None
    flags = int.from_bytes(data[at + 4 : at + 8], "big")
    lame = at + 8 + 4 * bool(flags & 1) + 4 * bool(flags & 2) + 100 * bool(flags & 4) + 4 * bool(flags & 8)
    # The LAME extension: 9-byte encoder name, then 12 bytes, then 12 bits of encoder delay.
    if len(data) < lame + 24 or not data[lame : lame + 4].isalpha():
        return 0
    return data[lame + 21] << 4 | data[lame + 22] >> 4


def _first_frame(data: bytes) -> int | None:
    """Offset of the first frame header in ``data`` that the next frame's header confirms
    (bytes before it are junk a decoder skips), or None."""
    at = data.find(b"\xff")
    while 0 <= at < len(data) - 4:
        header = parse_header(data, at)
        if header is not None:
            following = parse_header(data, at + header.frame_bytes)
            if following is not None and (following.version, following.layer) == (header.version, header.layer):
                return at
        at = data.find(b"\xff", at + 1)
    return None


@lru_cache(maxsize=64)
def _size_table(b1: int, rate_code: int) -> tuple[int, ...]:
    """Frame bytes by a header's third byte, for the version and layer of its second byte ``b1``
    and the sample rate ``rate_code`` (0 for a bitrate or rate that does not belong)."""
    table = []
    for byte in range(256):
        header = parse_header(bytes((0xFF, b1 | 1, byte, 0))) if (byte >> 2) & 3 == rate_code else None
        table.append(header.frame_bytes if header is not None else 0)
    return tuple(table)


class FrameIndex:
    """The frames of an MP3 file, walked lazily from the first audio frame.

    Args:
        read_at: ``read_at(offset, size)`` returns the file's bytes there (fewer at its end).
        file_bytes: the file's size.
    """

    def __init__(self, read_at: Callable[[int, int], bytes], file_bytes: int):
        self._read_at = read_at
        self._size = file_bytes
        self._main_parts: list[np.ndarray] = []  # main-data sizes of the frames walked, by chunk
        self._reach_parts: list[np.ndarray] = []  # their main_data_begin
        self._count = 0  # frames walked
        self._next = 0  # byte offset of the next frame to walk
        self._ended = False  # the walk reached the end of the audio frames or bytes it cannot parse
        self.header: FrameHeader | None = None  # the first audio frame's
        self.delay = 0  # samples a gapless decoder drops from the start, per the LAME tag
        self._b1, self._sizes, self._sizes_array, self._side_info = 0, (), np.zeros(0, dtype=np.int64), (0, 0)
        self._start()

    def _start(self) -> None:
        head = self._read_at(0, _ID3V2_HEADER)
        offset = _id3v2_size(head)
        data = self._read_at(offset, _CHUNK_BYTES)
        skip = _first_frame(data)
        if skip is None:
            return  # no frames where libsndfile found them: decode_from decodes from the start
        offset += skip
        header = parse_header(data, skip)
        self.header = header
        tag_delay = _tag_frame_delay(data, skip, header)
        self._next = offset
        if tag_delay is not None:
            # mpg123 does not decode the information frame, and in gapless mode drops the
            # LAME tag's encoder delay and its own decoder delay from the start.
            self._next += header.frame_bytes
            self.delay = tag_delay + DECODER_DELAY if tag_delay else 0
        first = self._read_at(self._next, 4)
        if parse_header(first) is None:
            self._ended = True
            return
        self._b1 = first[1] & 0xFE
        self._sizes = _size_table(self._b1, (first[2] >> 2) & 3)
        self._sizes_array = np.asarray(self._sizes, dtype=np.int64)
        mono, stereo = (replace(header, mono=flag).side_info_bytes for flag in (True, False))
        self._side_info = (mono, stereo)

    def _walk(self, until_frame: int) -> None:
        """Extends the index to frame ``until_frame`` (or as far as the headers go).

        The loop over frames only reads each header's size (from its third byte); the sync
        words and each frame's main-data size and ``main_data_begin`` are then read from the
        chunk with numpy."""
        sizes = self._sizes
        while not self._ended and self._count <= until_frame:
            data = self._read_at(self._next, _CHUNK_BYTES)
            end, last_chunk = len(data), self._next + len(data) >= self._size
            offsets, pos, wanted = [], 0, until_frame + 1 - self._count
            append = offsets.append
            while pos + 8 <= end and wanted > 0:
                size = sizes[data[pos + 2]]  # 0 for a bitrate or rate that is not this stream's
                if not size:
                    self._ended = True
                    break
                if pos + size > end and not last_chunk:
                    break  # the frame continues in the next chunk
                append(pos)
                pos += size
                wanted -= 1
            walked = self._add(np.frombuffer(data, dtype=np.uint8), np.asarray(offsets, dtype=np.int64))
            if walked < len(offsets):
                self._ended = True  # the end of the frames (a trailing tag) or foreign bytes
                pos = offsets[walked]
            self._next += pos
            if walked == 0:
                self._ended = True  # the end of the file, or a frame that runs past it
                break

    def _add(self, data: np.ndarray, offsets: np.ndarray) -> int:
        """Keeps the main-data size and ``main_data_begin`` of the frames at ``offsets`` in
        ``data`` up to the first whose sync word or version and layer are not this stream's;
        returns how many it kept."""
        synced = (data[offsets] == 0xFF) & ((data[offsets + 1] & 0xFE) == self._b1)
        if not synced.all():
            offsets = offsets[: int(np.argmin(synced))]
        if len(offsets) == 0:
            return 0
        second, fourth = data[offsets + 1], data[offsets + 3]
        crc = (second & 1) == 0
        after = offsets + 4 + 2 * crc  # where the side information starts
        side_mono, side_stereo = self._side_info
        side = np.where(fourth >= 0xC0, side_mono, side_stereo)
        self._main_parts.append(self._sizes_array[data[offsets + 2]] - 4 - 2 * crc - side)
        if self.header.version == "1":
            self._reach_parts.append(data[after].astype(np.int64) << 1 | data[after + 1] >> 7)
        else:
            self._reach_parts.append(data[after].astype(np.int64))
        self._count += len(offsets)
        return len(offsets)

    @property
    def main_bytes(self) -> np.ndarray:
        """Each walked frame's main-data size in bytes."""
        if len(self._main_parts) > 1:
            self._main_parts = [np.concatenate(self._main_parts)]
        return self._main_parts[0] if self._main_parts else np.zeros(0, dtype=np.int64)

    @property
    def reaches(self) -> np.ndarray:
        """Each walked frame's ``main_data_begin``."""
        if len(self._reach_parts) > 1:
            self._reach_parts = [np.concatenate(self._reach_parts)]
        return self._reach_parts[0] if self._reach_parts else np.zeros(0, dtype=np.int64)

    def decode_from(self, start: int) -> int:
        """The first sample (in the decoder's output, counted from 0) from which a decode must
        run for sample ``start`` to come out as in a decode of the whole file.

        From the frame headers: the frame that holds ``start``, the ``EXTRA_FRAMES`` before it,
        and the frames that the first of those reaches into for its main data. Which frame holds
        ``start`` depends on what the decoder drops from the start: in gapless mode mpg123 drops
        the encoder delay a LAME tag states and its own ``DECODER_DELAY``, without that mode
        nothing; the earliest start any of these needs is taken. Past the point where the
        headers stop making sense, the most frames the reservoir can reach at the stream's
        lowest bitrate; with no readable header at all, 0 (the start of the file).
        """
        if self.header is None:
            return 0
        return min(self._decode_from(start, dropped) for dropped in {0, DECODER_DELAY, self.delay})

    def _decode_from(self, start: int, dropped: int) -> int:
        """:meth:`decode_from` for a decoder that drops ``dropped`` samples from the start."""
        per_frame = self.header.samples_per_frame
        frame = (start + dropped) // per_frame
        whole = max(frame - EXTRA_FRAMES, 0)  # the first frame that must decode whole
        if self.header.reservoir_bytes == 0:
            first = whole  # layers I and II: frames stand alone
        else:
            self._walk(frame)
            if whole < self._count:
                first = first_needed_frame(self.main_bytes, int(self.reaches[whole]), whole)
            else:
                first = whole - self.worst_case_frames()
        return min(max(first * per_frame - dropped, 0), start)

    def worst_case_frames(self) -> int:
        """How many frames back the reservoir can reach at this stream's lowest bitrate (its
        version, layer, sample rate and channel mode: MPEG-2 mono at 22.05 kHz, 20)."""
        header = self.header
        lowest = next(rate for rate in _BITRATES[(header.version == "1", header.layer)] if rate)
        smallest = replace(header, bitrate=lowest, padding=False)
        return -(-header.reservoir_bytes // max(smallest.main_data_bytes, 1))
