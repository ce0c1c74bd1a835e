"""Audio decoders behind :mod:`raytag.audio.io`: libsndfile first, FFmpeg (PyAV) for the rest.

libsndfile (soundfile) opens wav, flac, ogg, mp3, aiff and au; it knows each file's exact length
from its header and seeks to any frame. Everything it reports as an unknown format or encoding
(AAC/M4A, Opus or Vorbis in WebM/Matroska/MP4, WMA, AC-3, ...) is decoded by FFmpeg through PyAV,
and so is Opus in Ogg, which libsndfile opens but FFmpeg decodes more than twice as fast (a 10 s
crop of a 48 kHz stereo file: 31 ms vs 83 ms, best of 15). A failed libsndfile open costs about
20 µs (it reads a few header bytes), so the choice is made per file, not from a suffix table.

A third decoder reads raytag's prepared-audio cache (``*.<rate>hz.npy``, see
:mod:`raytag.audio.pcm_cache`): mono float16 audio already at a model's rate, so a crop is one
byte-range read (``os.pread`` for a path, a ranged read through pyarrow for a URI), converted
to float32 (exact). A cached track is decoded exactly like an audio file, from its cache file.

All decoders give the same contract: a frame index counts samples per channel in the file's own
rate from the first decoded sample; ``read(start, frames)`` returns mono float32 audio (the mean of
all the channels, however many) beginning exactly at frame ``start``, and fewer frames only at the
end of the file (:func:`raytag.audio.io.check_complete` refuses a read that ends before the
header's length). A crop equals the same frames of a whole-file decode: libsndfile's MP3 crops are
decoded in one read call from as far back as their bit reservoir reaches, its Ogg Vorbis crops are checked against
FFmpeg's (see the two classes), and libmpg123's messages on C-level standard error are captured
(:mod:`raytag.audio.chatter`): counted, and its notes about damaged data fail the read.

PyAV specifics:

- *Positioning.* A read seeks to a packet at or before ``start`` minus a 0.5 s pre-roll, demuxes
  (without decoding) the packets that end before the pre-roll, since a seek may land seconds
  early (on a WebM cluster start), decodes from there and drops the samples before ``start``.
  The pre-roll lets the decoder converge: an AAC crop is bit-identical to the same frames of a
  decode from the file's start, except in bands the encoder coded as noise (perceptual noise
  substitution: the decoder draws that noise from its own random state, so it differs by
  where decoding began; up to 0.08 on noisy generated music), and an Opus crop is within 1e-7
  (with a 0.2 s pre-roll it was 1.2e-3). The first decoded frame is
  placed by its timestamp, later frames are counted. That is exact where timestamps count
  samples (MP4/M4A, ADTS, Ogg) and within 1 ms where the container keeps milliseconds
  (WebM/Matroska, ASF/WMA). When a seek lands past ``start`` (a broken index), the read decodes
  from the start of the file instead.
- *Length.* ``frames`` is the stream's duration from the container, less the codec delay the
  decoder drops (Opus' 312-sample pre-skip) where the container counts it: exact for MP4/M4A
  (whose edit list already excludes the AAC encoder's 1024 priming samples) and Ogg; for
  WebM/Matroska/ASF it has millisecond precision (1-2 ms long at most). Reads stop at
  ``frames``, so the padding an MP4 decoder returns after the last sample is not audio. Raw
  elementary streams (ADTS ``.aac``, ``.ac3``, ...) carry no duration and FFmpeg would guess one
  from the bitrate; for those the packets are demuxed (not decoded) and their durations summed,
  which is exact. ADTS has no edit list, so its first 1024 frames are the encoder's priming.
"""

from __future__ import annotations

import contextlib

import os
from abc import ABC, abstractmethod
from dataclasses import dataclass

import av
import numpy as np
import soundfile as sf

from raytag.audio import chatter, file_checks, mpeg_frames, pcm_cache
from raytag.locations import is_uri

# libsndfile's SF_ERR_UNRECOGNISED_FORMAT and SF_ERR_UNSUPPORTED_ENCODING, and what it says of a
# file named .mp3 that holds no MPEG frames ("File does not exist or is not a regular file
# (possibly a pipe?)", code 7; an ADTS stream named .mp3 is one): hand these to FFmpeg.
_LIBSNDFILE_NOT_MP3 = 7
_LIBSNDFILE_UNKNOWN = (1, 4, _LIBSNDFILE_NOT_MP3)
PREROLL_SECONDS = 0.5
# How far a decoded frame's timestamp may be from where the frames before it end (Matroska and
# ASF keep milliseconds; Ogg and MP4 count samples); past it, packets are missing or repeated.
TIMESTAMP_SLACK_SECONDS = 0.002
# FFmpeg demuxers for raw elementary streams, whose durations are only estimated from bitrate.
_RAW_STREAM_FORMATS = {
    "aac", "ac3", "eac3", "dts", "dtshd", "mp3", "amr", "amrnb", "amrwb", "mlp", "truehd", "loas",
}
_PYAV_ERRORS = (av.error.FFmpegError, OSError, ValueError, IndexError, RuntimeError)
# Frames decoded before an Ogg Vorbis crop and dropped (two long blocks): the first block after
# a seek lacks the overlap of the one before it.
VORBIS_PREROLL_FRAMES = 2048
# The most two Vorbis decoders (libvorbis in libsndfile, FFmpeg's own) differ by on the same
# frames (measured: 4e-7 on the project's real files).
VORBIS_AGREEMENT = 1e-5
# libsndfile reads in blocks of this many frames, so a decoding error names where it happened.
READ_BLOCK_FRAMES = 65536


class AudioError(Exception):
    """An audio file that cannot be used: missing, empty, truncated, corrupt or unsupported."""


@dataclass(frozen=True)
class AudioInfo:
    """Header facts of an audio file: its length in frames, rate (Hz) and channel count."""

    frames: int
    sample_rate: int
    channels: int

    @property
    def seconds(self) -> float:
        return self.frames / self.sample_rate


def _reason(exc: BaseException) -> str:
    """An exception's message in words: FFmpeg's and libsndfile's own description (without the
    error number, the function or the path they add), else the first line of the message (its
    type name when it has none)."""
    if isinstance(exc, av.error.FFmpegError) and exc.strerror:
        return f"FFmpeg: {exc.strerror[:1].lower()}{exc.strerror[1:]}"
    if isinstance(exc, sf.LibsndfileError):
        text = exc.error_string.strip().rstrip(".")
        return f"libsndfile: {text[:1].lower()}{text[1:]}"
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0]


class Decoder(ABC):
    """An open audio file. Use :func:`open_decoder`; close it (or use ``with``) when done."""

    path: str
    info: AudioInfo
    backend: str  # "libsndfile", "ffmpeg" or "pcm-cache"

    @abstractmethod
    def read(self, start: int, frames: int) -> np.ndarray:
        """Mono float32 frames ``[start, start + frames)``, shorter only at the end of the file.

        Raises:
            AudioError: decoding fails.
        """

    @abstractmethod
    def close(self) -> None:
        """Releases the file."""

    def __enter__(self) -> Decoder:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class _SoundfileDecoder(Decoder):
    """libsndfile. An MP3 crop is decoded in one read call from as far before it as its bit
    reservoir reaches, and trimmed: a layer III frame takes up to 511 bytes (MPEG-1; 255 in
    MPEG-2/2.5) of its data from the frames before it, which a plain seek never reads (a short
    impulse then decodes as zeros). How many frames that is depends on their sizes, which
    :class:`raytag.audio.mpeg_frames.FrameIndex` reads from the file's frame headers: two at
    128 kbit/s and 44.1 kHz, twenty at 8 kbit/s and 22.05 kHz (a fixed 4608-frame pre-roll
    lost clicks there: 35 of 80 crops wrong). Measured on 160 generated files (8 to 48 kHz, mono
    and stereo, LAME and FFmpeg's encoder, VBR and CBR down to 8 kbit/s, with and without a
    Xing tag, clicks and music): every one of 6,400 crops equalled the whole decode (within
    6e-8). libsndfile 1.2's MP3 reader is not seamless across read calls (errors up to 0.4 at
    some 64 k block boundaries), hence one call. Other formats read in blocks of
    ``READ_BLOCK_FRAMES``, so an error names the block's first frame."""

    backend = "libsndfile"

    def __init__(self, path: str, sound_file: sf.SoundFile, remote=None):
        self.path = path
        self._file = sound_file
        self._remote = remote
        self._mp3 = sound_file.format == "MP3"
        self._frames: mpeg_frames.FrameIndex | None = None  # an MP3's frame headers, walked on demand
        self._bytes = None  # the file, opened again for raytag's own reads (libsndfile keeps its handle)
        self._size: int | None = None
        frames = int(sound_file.frames)
        if sound_file.format in ("WAV", "AIFF", "AU"):
            # libsndfile clamps their length to the bytes there are: report the header's, so
            # that a cut file's missing end is refused like any truncated file's.
            try:
                self._file_bytes()
                head = self._read_bytes(0, file_checks.HEAD_BYTES)
            except OSError as exc:
                self.close()
                raise AudioError(f"{path}: cannot read audio ({_reason(exc)})") from None
            frames = file_checks.promised_frames(head, self._size) or frames
        self.info = AudioInfo(frames, int(sound_file.samplerate), int(sound_file.channels))

    def read(self, start: int, frames: int) -> np.ndarray:
        start = min(max(start, 0), self.info.frames)
        first = self._mp3_first(start) if self._mp3 else start
        data = self._decode(first, start - first + max(frames, 0))
        return data[start - first :]

    def _mp3_first(self, start: int) -> int:
        """Where an MP3 crop from ``start`` is decoded from: far enough back that the bit
        reservoir of its first frames is whole (:meth:`raytag.audio.mpeg_frames.FrameIndex.decode_from`)."""
        if start == 0:
            return 0
        try:
            if self._frames is None:
                self._frames = mpeg_frames.FrameIndex(self._read_bytes, self._file_bytes())
            return self._frames.decode_from(start)
        except OSError as exc:
            raise AudioError(f"{self.path}: reading failed near frame {start} ({_reason(exc)})") from None

    def _file_bytes(self) -> int:
        """The file's size in bytes (opens it for :meth:`_read_bytes` the first time)."""
        if self._size is None:
            if self._remote is not None:
                self._size = self._remote.size()
            else:
                self._bytes = open(self.path, "rb")
                self._size = os.fstat(self._bytes.fileno()).st_size
        return self._size

    def _read_bytes(self, offset: int, size: int) -> bytes:
        if self._remote is not None:
            return self._remote.read_at(size, offset)
        return os.pread(self._bytes.fileno(), size, offset)

    def _decode(self, start: int, frames: int) -> np.ndarray:
        """Mono frames from a seek to ``start``."""
        pieces, position = [], start
        block = frames if self._mp3 else READ_BLOCK_FRAMES
        # Only libmpg123 (MP3) writes to stderr; other formats skip the descriptor swap and its lock.
        with chatter.captured() if self._mp3 else contextlib.nullcontext([]) as lines:
            try:
                self._file.seek(start)
                while frames > 0:
                    data = self._file.read(min(frames, block), dtype="float32", always_2d=True)
                    if len(data) == 0:
                        break
                    pieces.append(data.mean(axis=1) if data.shape[1] > 1 else data[:, 0])
                    position += len(data)
                    frames -= len(data)
            except (sf.LibsndfileError, RuntimeError, OSError, ValueError) as exc:
                failure = _reason(exc)
            else:
                failure = None
        chatter.record(self.path, lines)
        if failure is not None:
            raise AudioError(f"{self.path}: decoding failed near frame {position} ({failure})")
        damage = chatter.damage_reason(lines)
        if damage is not None:
            raise AudioError(f"{self.path}: damaged audio near frame {position} ({damage})")
        return np.concatenate(pieces) if pieces else np.zeros(0, dtype=np.float32)

    def close(self) -> None:
        self._file.close()
        if self._bytes is not None:
            self._bytes.close()
            self._bytes = None
        if self._remote is not None:
            self._remote.close()


class _VorbisDecoder(_SoundfileDecoder):
    """Ogg Vorbis. libsndfile 1.2's seek is sometimes wrong (on the project's real recordings,
    4096-frame crops at random offsets: 34 of 600 with one open file, some shifted by a fixed
    lag; 23 of 600 with a fresh open per crop, mostly near a file's end; a 2048-frame pre-roll
    alone still left 2 %) and FFmpeg's Ogg demuxer sometimes mislabels the first packets after a
    seek (2 % of crops), but the two were never wrong the same way (1,000 crops). So a crop is
    decoded by both (each from ``VORBIS_PREROLL_FRAMES`` before the crop, dropped) and kept when
    they agree within ``VORBIS_AGREEMENT``; otherwise (about 5 % of crops) it is decoded from the
    start of the file by FFmpeg, which is exact, and which checks that the packets' end positions
    match the samples counted (a hole, i.e. damaged pages that the decoder skipped, is then an
    error)."""

    def __init__(self, path: str, sound_file: sf.SoundFile, remote=None):
        super().__init__(path, sound_file, remote)
        self._container = None
        self._container_remote = None  # FFmpeg's own handle on a URI (libsndfile seeks the other)

    def read(self, start: int, frames: int) -> np.ndarray:
        start = min(max(start, 0), self.info.frames)
        frames = max(min(frames, self.info.frames - start), 0)
        if frames == 0:
            return np.zeros(0, dtype=np.float32)
        if start <= VORBIS_PREROLL_FRAMES:
            return self._from_start(start, frames)
        first = start - VORBIS_PREROLL_FRAMES
        ours = self._decode(first, frames + VORBIS_PREROLL_FRAMES)[VORBIS_PREROLL_FRAMES:]
        try:
            theirs = self._ffmpeg_crop(start, frames)
        except _PYAV_ERRORS:
            theirs = None
        if theirs is not None and len(theirs) == len(ours) and \
                (len(ours) == 0 or float(np.max(np.abs(theirs - ours))) <= VORBIS_AGREEMENT):
            return ours
        return self._from_start(start, frames)

    def _open(self):
        if self._container is None:
            source, self._container_remote = _open_source(self.path)
            self._container = av.open(source, mode="r")
        return self._container, self._container.streams.audio[0]

    def _ffmpeg_crop(self, start: int, frames: int) -> np.ndarray | None:
        """A crop placed by the end of a packet (its timestamp plus duration, which counts
        samples in Ogg), not by a frame's timestamp (wrong where block sizes change)."""
        container, stream = self._open()
        rate, origin = self.info.sample_rate, stream.start_time or 0
        target = origin + int((start - VORBIS_PREROLL_FRAMES) / (rate * stream.time_base))
        container.seek(target, stream=stream, backward=True)
        pieces, decoded, first = [], 0, None
        for packet in container.demux(stream):
            for frame in packet.decode():
                pieces.append(_frame_to_mono(frame))
                decoded += frame.samples
                if first is None:
                    if packet.pts is None or not packet.duration:
                        return None
                    first = round((packet.pts + packet.duration - origin) * stream.time_base * rate) - decoded
                    if first > start:
                        return None
            if first is not None and first + decoded >= start + frames:
                break
        if first is None:
            return None
        return np.concatenate(pieces)[start - first : start - first + frames]

    def _from_start(self, start: int, frames: int) -> np.ndarray:
        """Frames ``[start, start + frames)`` decoded by FFmpeg from the first packet.

        Packet end positions (Ogg granules) that run ahead of the samples decoded by more than
        a long block mean pages are missing (damaged data the decoder skipped): an error."""
        decoded = 0
        try:
            container, stream = self._open()
            container.seek(stream.start_time or 0, stream=stream, backward=True)
            rate, pieces, lead = self.info.sample_rate, [], None
            for packet in container.demux(stream):
                for frame in packet.decode():
                    pieces.append(_frame_to_mono(frame))
                    decoded += frame.samples
                if packet.pts is not None and packet.duration and decoded > VORBIS_PREROLL_FRAMES:
                    end = round((packet.pts + packet.duration) * stream.time_base * rate)
                    lead = end - decoded if lead is None else lead  # a stream may start at a granule > 0
                    if end - decoded - lead > VORBIS_PREROLL_FRAMES:
                        raise AudioError(
                            f"{self.path}: damaged audio: {end - decoded - lead} frames are missing before frame "
                            f"{decoded}"
                        )
                if decoded >= start + frames:
                    break
        except _PYAV_ERRORS as exc:
            raise AudioError(f"{self.path}: decoding failed near frame {decoded} ({_reason(exc)})") from None
        return np.concatenate(pieces)[start : start + frames] if pieces else np.zeros(0, dtype=np.float32)

    def close(self) -> None:
        super().close()
        if self._container is not None:
            self._container.close()
            self._container = None
        if self._container_remote is not None:
            self._container_remote.close()
            self._container_remote = None


def _frame_to_mono(frame: av.AudioFrame) -> np.ndarray:
    """Mean of a decoded frame's channels as float32, for any FFmpeg sample format."""
    channels, count = frame.layout.nb_channels, frame.samples
    if frame.format.name == "fltp":
        # Planar float, what AAC, Opus and Vorbis decode to: read the planes without copies
        # (about 6 µs a frame instead of 35 µs through to_ndarray and mean).
        planes = [np.frombuffer(plane, dtype=np.float32, count=count) for plane in frame.planes[:channels]]
        mono = planes[0].copy()
        for plane in planes[1:]:
            mono += plane
        if channels > 1:
            mono *= np.float32(1.0 / channels)
        return mono
    data = frame.to_ndarray()
    if not frame.format.is_planar:
        data = data.reshape(-1, channels).T
    if data.dtype == np.uint8:
        data = (data.astype(np.float32) - 128.0) / 128.0
    elif np.issubdtype(data.dtype, np.integer):
        data = data.astype(np.float32) / float(2 ** (8 * data.dtype.itemsize - 1))
    return data.mean(axis=0, dtype=np.float32) if channels > 1 else data[0].astype(np.float32, copy=False)


class _PyavDecoder(Decoder):
    backend = "ffmpeg"

    def __init__(self, path: str, container: av.container.InputContainer, remote=None):
        self.path = path
        self._container = container
        self._remote = remote
        if not container.streams.audio:
            raise AudioError(f"{path}: cannot read audio (FFmpeg reads it as {container.format.long_name} with no "
                             "audio stream)")
        self._stream = container.streams.audio[0]
        context = self._stream.codec_context
        rate, channels = int(context.sample_rate or 0), int(context.layout.nb_channels or 0)
        if rate <= 0 or channels <= 0:
            raise AudioError(f"{path}: cannot read audio (no sample rate or channel count in the stream)")
        self._origin = self._stream.start_time or 0
        self._fresh = True  # nothing demuxed yet: a read from frame 0 needs no seek
        self._decoded_to = 0  # where the last read's decoding got to (for its error message)
        self.info = AudioInfo(self._count_frames(rate), rate, channels)

    def _count_frames(self, rate: int) -> int:
        stream, container = self._stream, self._container
        formats = set(container.format.name.split(","))
        if not formats & _RAW_STREAM_FORMATS:
            # Ogg and Matroska durations include the codec delay the decoder drops (Opus
            # pre-skip); an MP4 edit list has removed it already.
            delay = 0 if "mp4" in formats else int(stream.codec_context.delay or 0)
            if stream.duration:
                return max(round(stream.duration * stream.time_base * rate) - delay, 0)
            if container.duration:
                return max(round(container.duration * rate / av.time_base) - delay, 0)
        if "aac" in formats:
            self._check_adts()
        total = 0
        for packet in container.demux(stream):
            if packet.size and packet.duration:
                total += packet.duration
        self._rewind()
        return round(total * stream.time_base * rate)

    def _check_adts(self) -> None:
        """Refuses an ADTS stream whose chain of frame headers breaks: FFmpeg skips the damaged
        bytes and counts on, so every later crop would be placed early by the frames lost."""
        try:
            if self._remote is not None:
                data = self._remote.read_at(self._remote.size(), 0)
            else:
                with open(self.path, "rb") as file:
                    data = file.read()
        except OSError as exc:
            raise AudioError(f"{self.path}: cannot read audio ({_reason(exc)})") from None
        broken = file_checks.adts_break(data)
        if broken is not None:
            raise AudioError(f"{self.path}: damaged audio: {broken}")

    def _rewind(self) -> None:
        self._container.seek(self._origin, stream=self._stream, backward=True)
        self._fresh = True

    def _collect(self, start: int, frames: int, *, seeked: bool) -> list[np.ndarray] | None:
        """Decoded mono pieces covering ``[start, start + frames)``.

        After a seek, packets that end before the pre-roll are demuxed but not decoded (the seek
        may land seconds early, e.g. on a WebM cluster start). Returns None when, after a seek,
        the first packet begins past the pre-roll's start, the packets before the first decoded
        one have a hole, or the first decoded frame has no timestamp or begins past ``start``.

        Raises:
            AudioError: a later frame's timestamp is not where the frames decoded so far end
                (by more than ``TIMESTAMP_SLACK_SECONDS``): packets are missing (an Ogg page
                that failed its checksum) or repeated.
        """
        rate, time_base, origin = self.info.sample_rate, self._stream.time_base, self._origin
        slack = TIMESTAMP_SLACK_SECONDS * rate
        skip_until = start - round(PREROLL_SECONDS * rate) if seeked else None
        pieces, cursor, stop, position = [], start, start + frames, None
        self._decoded_to = start
        skipped_to = None  # where the packets demuxed so far without decoding end
        for packet in self._container.demux(self._stream):
            self._fresh = False
            if seeked and position is None and packet.pts is not None:
                begins = round((packet.pts - origin) * time_base * rate)
                if begins > (skip_until if skipped_to is None else skipped_to) + slack:
                    # The seek landed past the pre-roll's start, or packets before it are
                    # missing (a damaged page): a decoder started after the hole would not have
                    # converged by ``start``. Decoding from the file's start finds the hole.
                    return None
                if packet.duration:
                    skipped_to = round((packet.pts + packet.duration - origin) * time_base * rate)
                    if skipped_to < skip_until:
                        continue
            for frame in packet.decode():
                samples = _frame_to_mono(frame)
                if position is None:
                    if frame.pts is None:
                        if seeked:
                            return None
                        position = 0
                    else:
                        position = round((frame.pts - origin) * time_base * rate)
                    if position > start:
                        if seeked:
                            return None
                        # A stream whose first timestamp is past zero: its timeline starts silent.
                        gap = min(position, stop) - cursor
                        pieces.append(np.zeros(gap, dtype=np.float32))
                        cursor += gap
                        if cursor >= stop:
                            return pieces
                elif frame.pts is not None:
                    stamped = round((frame.pts - origin) * time_base * rate)
                    if abs(stamped - position) > slack:
                        raise AudioError(self._gap_message(position, stamped))
                end = position + len(samples)
                self._decoded_to = end
                if end > cursor:
                    piece = samples[cursor - position : stop - position]
                    pieces.append(piece)
                    cursor += len(piece)
                position = end
                if cursor >= stop:
                    return pieces
        return pieces

    def _gap_message(self, decoded_to: int, stamped: int) -> str:
        if stamped > decoded_to:
            return f"{self.path}: damaged audio: {stamped - decoded_to} frames are missing before frame {decoded_to}"
        return f"{self.path}: damaged audio: the timestamps go back {decoded_to - stamped} frames at frame {decoded_to}"

    def read(self, start: int, frames: int) -> np.ndarray:
        start = max(start, 0)
        # The stream ends at ``info.frames``: an MP4 decoder also returns the encoder's padding
        # of the last packet, which the edit list excludes.
        frames = min(frames, self.info.frames - start)
        if frames <= 0:
            return np.zeros(0, dtype=np.float32)
        target = start - round(PREROLL_SECONDS * self.info.sample_rate)
        try:
            pieces = None
            if target > 0:
                offset = self._origin + int(target / (self.info.sample_rate * self._stream.time_base))
                self._container.seek(offset, stream=self._stream, backward=True)
                self._fresh = False
                pieces = self._collect(start, frames, seeked=True)
            if pieces is None:
                if not self._fresh:
                    self._rewind()
                pieces = self._collect(start, frames, seeked=False)
        except _PYAV_ERRORS as exc:
            raise AudioError(f"{self.path}: decoding failed near frame {self._decoded_to} ({_reason(exc)})") from None
        return np.concatenate(pieces) if pieces else np.zeros(0, dtype=np.float32)

    def close(self) -> None:
        self._container.close()
        if self._remote is not None:
            self._remote.close()


class _PcmCacheDecoder(Decoder):
    """A prepared-audio cache file: header parsed on open, crops read as byte ranges."""

    backend = "pcm-cache"

    def __init__(self, path: str):
        self.path = path
        self._fd: int | None = None
        self._remote = None
        try:
            if is_uri(path):
                import pyarrow.fs as pafs

                filesystem, inner = pafs.FileSystem.from_uri(path)
                self._remote = filesystem.open_input_file(inner)
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


def open_decoder(path: str) -> Decoder:
    """Opens ``path`` with libsndfile, or with FFmpeg when libsndfile does not know its format;
    a prepared-audio cache file (``*.npy``) with the cache reader.

    Raises:
        AudioError: the file is missing, unreadable or in a format neither library decodes.
    """
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
    a URI a seekable file of pyarrow's file system (reads become ranged requests)."""
    if not is_uri(path):
        if not os.path.exists(path):
            raise AudioError(f"{path}: cannot read audio (No such file or directory)")
        return path, None
    import pyarrow.fs as pafs

    try:
        filesystem, inner = pafs.FileSystem.from_uri(path)
        remote = filesystem.open_input_file(inner)
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
        libsndfile_reason = "libsndfile: no MPEG audio frames" if exc.code == _LIBSNDFILE_NOT_MP3 else _reason(exc)
    except (RuntimeError, OSError, ValueError) as exc:
        raise AudioError(f"{path}: cannot read audio ({_reason(exc)})") from None
    else:
        chatter.record(path, lines)
        if sound_file.subtype == "VORBIS":
            return _VorbisDecoder(path, sound_file, remote)
        if sound_file.subtype != "OPUS":
            return _SoundfileDecoder(path, sound_file, remote)
        # Ogg Opus: FFmpeg decodes a seeked crop about twice as fast as libsndfile, and Ogg
        # granule positions count samples, so positions stay exact.
        sound_file.close()
        libsndfile_reason = "Ogg Opus, decoded by FFmpeg"
    if remote is not None:
        remote.seek(0)
    try:
        container = av.open(source, mode="r")
    except _PYAV_ERRORS as exc:
        reasons = f"not a format libsndfile or FFmpeg decodes ({libsndfile_reason}; {_reason(exc)})"
        raise AudioError(f"{path}: cannot read audio ({_unreadable(path, remote, reasons)})") from None
    try:
        return _PyavDecoder(path, container, remote)
    except AudioError:
        container.close()
        raise
    except _PYAV_ERRORS as exc:
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
