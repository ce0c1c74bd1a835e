"""Audio decoders behind :mod:`raytag.audio.io`: libsndfile first, FFmpeg (PyAV) for the rest.

libsndfile (soundfile) opens wav, flac, ogg, mp3, aiff and au; it knows each file's exact length
from its header and seeks to any frame. Everything it reports as an unknown format or encoding
(AAC/M4A and ADTS, Opus or Vorbis in WebM/Matroska/MP4, WMA, APE) is decoded by FFmpeg through PyAV,
and so is Opus in Ogg, which libsndfile opens but FFmpeg decodes more than twice as fast (a 10 s
crop of a 48 kHz stereo file: 31 ms vs 83 ms, best of 15). A failed libsndfile open costs about
20 µs (it reads a few header bytes), so the choice is made per file, not from a suffix table.

A third decoder reads raytag's prepared-audio cache (``*.<rate>hz.npy``, see
:mod:`raytag.audio.pcm_cache`): mono float16 audio already at a model's rate, so a crop is one
byte-range read (``os.pread`` for a path, a ranged read of :func:`raytag.storage.open_random_access`
for a URI), converted
to float32 (exact). A cached track is decoded exactly like an audio file, from its cache file.

All decoders give the same contract: a frame index counts samples per channel in the file's own
rate from the first decoded sample; ``read(start, frames)`` returns mono float32 audio (the mean of
all the channels, however many) beginning exactly at frame ``start``, and fewer frames only at the
end of the file (:func:`raytag.audio.io.check_complete` refuses a read that ends before the
header's length). A crop equals the same frames of a whole-file decode, or the read is refused (damaged or
missing data): see :mod:`raytag.audio.libsndfile_decoder` (MP3's bit reservoir, Ogg Vorbis
checked against FFmpeg, headers that promise more than the file holds) and
:mod:`raytag.audio.ffmpeg_decoder` (pre-roll, timestamps, holes).
"""

from __future__ import annotations

import os

import av
import numpy as np
import soundfile as sf

from raytag import storage
from raytag.audio import chatter, file_checks, pcm_cache
from raytag.audio.decoder_base import AudioError, AudioInfo, Decoder
from raytag.audio.decoder_base import reason as _reason
from raytag.audio.ffmpeg_decoder import PYAV_ERRORS, FfmpegDecoder
from raytag.audio.libsndfile_decoder import SoundfileDecoder, VorbisDecoder
from raytag.locations import is_uri

# libsndfile's SF_ERR_UNRECOGNISED_FORMAT and SF_ERR_UNSUPPORTED_ENCODING, and what it says of a
# file named .mp3 that holds no MPEG frames ("File does not exist or is not a regular file
# (possibly a pipe?)", code 7; an ADTS stream named .mp3 is one): hand these to FFmpeg.
_LIBSNDFILE_NOT_MP3 = 7
_LIBSNDFILE_UNKNOWN = (1, 4, _LIBSNDFILE_NOT_MP3)
# The FFmpeg demuxers of the formats raytag decodes with FFmpeg (those of AUDIO_SUFFIXES in
# raytag/audio/files.py that libsndfile does not open, and wav/flac/aiff/au in encodings it does
# not know), all with timestamps or lengths that place a crop exactly. Others are refused: FFmpeg
# also guesses headerless streams (raw GSM, G.722, ...) from bytes that are not audio; raw AC-3
# crops were 5e-6 off the whole decode (not claimed exact, so not decoded); and FFmpeg's MP3
# decoding is not reservoir-exact after a seek (raytag's MP3 is libsndfile's).
FFMPEG_FORMATS = frozenset({"mov", "mp4", "m4a", "aac", "ogg", "matroska", "webm", "asf", "ape", "wav", "flac",
                            "aiff", "au"})
__all__ = ["AudioError", "AudioInfo", "Decoder", "open_decoder"]


class _PcmCacheDecoder(Decoder):
    """A prepared-audio cache file: header parsed on open, crops read as byte ranges."""

    backend = "pcm-cache"

    def __init__(self, path: str):
        self.path = path
        self._fd: int | None = None
        self._remote = None
        try:
            if is_uri(path):
                self._remote = storage.open_random_access(path)
                size = self._remote.size()
            else:
                self._fd = os.open(path, os.O_RDONLY)
                size = os.fstat(self._fd).st_size
            offset, samples = pcm_cache.parse_header(self._read_at(0, pcm_cache.HEADER_PROBE_BYTES), location=path)
            rate = pcm_cache.rate_of(path)
        except (OSError, pcm_cache.PcmCacheError) as exc:
            self.close()
            raise AudioError(f"{path}: cannot read audio ({_reason(exc)})") from None
        expected = offset + pcm_cache.PCM_DTYPE.itemsize * samples
        if size != expected:
            self.close()
            raise AudioError(
                f"{path}: truncated audio cache file ({size} bytes; its header promises {samples} samples, "
                f"{expected} bytes)"
            )
        self._offset = offset
        self.info = AudioInfo(samples, rate, 1)

    def _read_at(self, offset: int, size: int) -> bytes:
        if self._remote is not None:
            return self._remote.read_at(size, offset)
        return os.pread(self._fd, size, offset)

    def read(self, start: int, frames: int) -> np.ndarray:
        start = min(max(start, 0), self.info.frames)
        count = max(min(frames, self.info.frames - start), 0)
        if count == 0:
            return np.zeros(0, dtype=np.float32)
        width = pcm_cache.PCM_DTYPE.itemsize
        try:
            data = self._read_at(self._offset + width * start, width * count)
        except OSError as exc:
            raise AudioError(f"{self.path}: reading failed at frame {start} ({_reason(exc)})") from None
        if len(data) != width * count:
            raise AudioError(f"{self.path}: truncated audio cache file (ends before frame {start + count})")
        return pcm_cache.from_cache_samples(np.frombuffer(data, dtype=pcm_cache.PCM_DTYPE))

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
        if self._remote is not None:
            self._remote.close()
            self._remote = None


def open_decoder(path) -> Decoder:
    """Opens ``path`` with libsndfile, or with FFmpeg when libsndfile does not know its format;
    a prepared-audio cache file (``*.npy``) with the cache reader; an in-memory
    :class:`raytag.audio.waveform.Waveform` with its own reader.

    Raises:
        AudioError: the file is missing, unreadable or in a format neither library decodes.
    """
    if hasattr(path, "open_decoder"):  # an in-memory source (a Waveform) opens its own reader
        return path.open_decoder()
    if pcm_cache.is_cache_file(path):
        return _PcmCacheDecoder(path)
    source, remote = _open_source(path)
    try:
        return _open_with_libraries(path, source, remote)
    except BaseException:
        if remote is not None:
            remote.close()
        raise


def _open_source(path: str):
    """``(what the libraries open, the remote file to close or None)``: the path itself, or for
    a URI a seekable file from :func:`raytag.storage.open_random_access` (reads become ranged
    requests)."""
    if not is_uri(path):
        if not os.path.exists(path):
            raise AudioError(f"{path}: cannot read audio (No such file or directory)")
        return path, None
    try:
        remote = storage.open_random_access(path)
    except (OSError, ValueError) as exc:
        raise AudioError(f"{path}: cannot read audio ({_reason(exc)})") from None
    return remote, remote


def _open_with_libraries(path: str, source, remote) -> Decoder:
    try:
        empty = (remote.size() if remote is not None else os.path.getsize(path)) == 0
    except OSError as exc:
        raise AudioError(f"{path}: cannot read audio ({_reason(exc)})") from None
    if empty:
        raise AudioError(f"{path}: cannot read audio (the file is empty: 0 bytes)")
    lines: list[str] = []
    try:
        with chatter.captured() as lines:  # libmpg123 notes a Xing header that is off on open
            sound_file = sf.SoundFile(source)
    except sf.LibsndfileError as exc:
        if exc.code not in _LIBSNDFILE_UNKNOWN:
            raise AudioError(f"{path}: cannot read audio ({_unreadable(path, remote, _reason(exc))})") from None
        libsndfile_reason = "libsndfile: not an MP3 it can open" if exc.code == _LIBSNDFILE_NOT_MP3 else _reason(exc)
    except (RuntimeError, OSError, ValueError) as exc:
        raise AudioError(f"{path}: cannot read audio ({_reason(exc)})") from None
    else:
        chatter.record(path, lines)
        if sound_file.subtype == "VORBIS":
            return VorbisDecoder(path, sound_file, remote, open_source=_open_source)
        if sound_file.subtype != "OPUS":
            return SoundfileDecoder(path, sound_file, remote)
        # Ogg Opus: FFmpeg decodes a seeked crop about twice as fast as libsndfile, and Ogg
        # granule positions count samples, so positions stay exact.
        sound_file.close()
        libsndfile_reason = "Ogg Opus, decoded by FFmpeg"
    if remote is not None:
        remote.seek(0)
    try:
        container = av.open(source, mode="r")
    except PYAV_ERRORS as exc:
        reasons = f"not a format libsndfile or FFmpeg decodes ({libsndfile_reason}; {_reason(exc)})"
        raise AudioError(f"{path}: cannot read audio ({_unreadable(path, remote, reasons)})") from None
    formats = set(container.format.name.split(","))
    if not formats & FFMPEG_FORMATS:
        container.close()
        reasons = f"{libsndfile_reason}; FFmpeg reads it as {container.format.long_name}, not a format raytag decodes"
        raise AudioError(f"{path}: cannot read audio ({_unreadable(path, remote, reasons)})")
    try:
        return FfmpegDecoder(path, container, remote)
    except AudioError:
        container.close()
        raise
    except PYAV_ERRORS as exc:
        container.close()
        raise AudioError(f"{path}: cannot read audio ({_unreadable(path, remote, _reason(exc))})") from None


def _unreadable(path: str, remote, reasons: str) -> str:
    """Why a file cannot be opened, in words: what its bytes are when they are not audio at all
    (nothing, text, a web page; :func:`raytag.audio.file_checks.describe_content`), else the
    libraries' ``reasons``."""
    try:
        if remote is not None:
            size = remote.size()
            head = remote.read_at(min(size, file_checks.HEAD_BYTES), 0)
        else:
            size = os.path.getsize(path)
            with open(path, "rb") as file:
                head = file.read(file_checks.HEAD_BYTES)
    except OSError:
        return reasons
    return file_checks.describe_content(head, size) or reasons
