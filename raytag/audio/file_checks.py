"""What raytag reads from an audio file's bytes itself, where the decoder libraries say nothing
or say it badly: the length an uncompressed WAV, AIFF or AU header promises, where a raw ADTS
(AAC) stream breaks, and what a file that no decoder opens holds instead of audio.

- *WAV, AIFF, AU.* libsndfile takes such a file's length from its header but clamps it to the
  bytes that are there, without a word, so a file cut to half its bytes reads as a shorter,
  healthy file. :func:`promised_frames` gives the frames the header promises, which the
  decoder then reports, so the missing end is refused like any truncated file's
  (:func:`raytag.audio.io.check_complete`).
- *ADTS.* Each frame's 7-byte header states its length, so the frames chain from the first to
  the last. FFmpeg skips bytes where the chain breaks (damaged or missing frames) and counts on,
  so every later crop would be placed 1024 frames early per lost frame; :func:`adts_break`
  finds the break.
- *Not audio.* :func:`describe_content` names what the bytes are (nothing, text, a web page)
  when neither libsndfile nor FFmpeg opens a file, instead of their messages ("File does not
  exist or is not a regular file (possibly a pipe?)" for a text file named ``.mp3``).

Pure functions on bytes; the decoders read the bytes.
"""

from __future__ import annotations

import struct

# WAV format tags whose frames are one block each (PCM, IEEE float, A-law, µ-law, extensible).
_ONE_FRAME_PER_BLOCK = {0x0001, 0x0003, 0x0006, 0x0007, 0xFFFE}
# AIFF-C compression types that are plain samples.
_AIFC_UNCOMPRESSED = {b"NONE", b"sowt", b"twos", b"raw ", b"fl32", b"FL32", b"fl64", b"FL64"}
# AU encodings and their bytes a sample (mu-law, 8/16/24/32-bit PCM, float, double, A-law).
_AU_SAMPLE_BYTES = {1: 1, 2: 1, 3: 2, 4: 3, 5: 4, 6: 4, 7: 8, 27: 1}
# Data-chunk sizes that streaming writers leave when they cannot go back to fill the length in.
_UNKNOWN_SIZES = {0, 0xFFFFFFFF, 0x7FFFFFFF, 0x7FFFF000, 0x80000000}
# How many bytes of a file's start :func:`describe_content` and the WAV header parse look at.
HEAD_BYTES = 4096
_ADTS_HEADER = 7


def promised_frames(head: bytes, file_bytes: int) -> int | None:
    """The frames an uncompressed WAV, AIFF or AU header promises where they are more than the
    file holds; None when there is nothing to check (another format, a compressed encoding, an
    unknown length left by a streaming writer, a header longer than ``head``) or the file holds
    them all.

    Args:
        head: the file's first bytes (``HEAD_BYTES`` holds the usual headers).
        file_bytes: the file's size.
    """
    if len(head) >= 12 and head[:4] == b"RIFF" and head[8:12] == b"WAVE":
        found = _wav_data(head)
    elif len(head) >= 12 and head[:4] == b"FORM" and head[8:12] in (b"AIFF", b"AIFC"):
        found = _aiff_data(head)
    elif len(head) >= 24 and head[:4] == b".snd":
        found = _au_data(head)
    else:
        found = None
    if found is None:
        return None
    start, promised, frame_bytes = found
    held = max(file_bytes - start, 0) // frame_bytes
    return promised if promised > held else None


def _chunks(head: bytes, at: int, unpack: str):
    """(id, size, offset of the data) of the RIFF/IFF chunks in ``head`` from ``at``."""
    while at + 8 <= len(head):
        size = struct.unpack_from(unpack, head, at + 4)[0]
        yield head[at : at + 4], size, at + 8
        at += 8 + size + (size & 1)


def _wav_data(head: bytes) -> tuple[int, int, int] | None:
    """(offset of the samples, frames promised, bytes a frame) of a WAV's data chunk."""
    tag = block = 0
    for chunk, size, at in _chunks(head, 12, "<I"):
        if chunk == b"fmt " and at + 14 <= len(head):
            tag, block = struct.unpack_from("<H", head, at)[0], struct.unpack_from("<H", head, at + 12)[0]
        elif chunk == b"data":
            if tag not in _ONE_FRAME_PER_BLOCK or block == 0 or size in _UNKNOWN_SIZES:
                return None
            return at, size // block, block
    return None


def _aiff_data(head: bytes) -> tuple[int, int, int] | None:
    """(offset of the samples, frames promised, bytes a frame) of an AIFF's COMM and SSND."""
    frames = frame_bytes = None
    for chunk, size, at in _chunks(head, 12, ">I"):
        if chunk == b"COMM" and at + 8 <= len(head):
            channels, frames, bits = struct.unpack_from(">HIH", head, at)
            compression = head[at + 18 : at + 22] if head[8:12] == b"AIFC" else b"NONE"
            if compression not in _AIFC_UNCOMPRESSED:
                return None
            frame_bytes = channels * ((bits + 7) // 8)
        elif chunk == b"SSND" and frames is not None and frame_bytes and at + 8 <= len(head):
            offset = struct.unpack_from(">I", head, at)[0]
            return at + 8 + offset, frames, frame_bytes
    return None


def _au_data(head: bytes) -> tuple[int, int, int] | None:
    """(offset of the samples, frames promised, bytes a frame) of a Sun/NeXT AU header."""
    start, size, encoding, _, channels = struct.unpack_from(">IIIII", head, 4)
    width = _AU_SAMPLE_BYTES.get(encoding)
    if width is None or channels == 0 or size in _UNKNOWN_SIZES:
        return None
    return start, size // (width * channels), width * channels


def adts_break(data: bytes) -> str | None:
    """Where the chain of ADTS frame headers breaks, in words; None when it runs to the end
    (or to an ID3v1 or APE tag there).

    Args:
        data: the whole file (an ID3v2 tag at its start is skipped).
    """
    at = 0
    if data[:3] == b"ID3" and len(data) >= 10:
        at = 10 + ((data[6] & 0x7F) << 21 | (data[7] & 0x7F) << 14 | (data[8] & 0x7F) << 7 | (data[9] & 0x7F))
    end, frames = len(data), 0
    while at < end:
        if data[at : at + 3] == b"TAG" and end - at == 128 or data[at : at + 8] == b"APETAGEX":
            return None
        if at + _ADTS_HEADER > end or data[at] != 0xFF or (data[at + 1] & 0xF6) != 0xF0:
            return f"no ADTS frame header at byte {at} of {end}, after {frames} frames (damaged or missing bytes)"
        length = (data[at + 3] & 0x03) << 11 | data[at + 4] << 3 | data[at + 5] >> 5
        if length < _ADTS_HEADER:
            return f"an ADTS frame header at byte {at} of {end} states a length of {length} bytes (damaged)"
        if at + length > end:
            return f"the last ADTS frame is cut off at byte {end} (truncated?)"
        at += length
        frames += 1
    return None


def describe_content(head: bytes, file_bytes: int) -> str | None:
    """What a file that no decoder opens holds, in words ("the file is empty (0 bytes)", "not
    an audio file (its bytes are text)"), or None when its bytes look like binary data."""
    if file_bytes == 0:
        return "the file is empty: 0 bytes"
    sample = head[:HEAD_BYTES]
    if b"\x00" in sample:
        return None
    try:
        text = sample.decode("utf-8")
    except UnicodeDecodeError as exc:
        if exc.start < len(sample) - 3:  # not just a character cut at the end of the sample
            return None
        text = sample[: exc.start].decode("utf-8")
    text = text.removeprefix("\ufeff")  # a byte-order mark
    if not text or not all(char.isprintable() or char in "\t\r\n\f" for char in text):
        return None
    opening = text.lstrip().lower()
    if opening.startswith(("<!doctype html", "<html")):
        return "not an audio file (it is a web page: HTML)"
    return "not an audio file (its bytes are text)"
