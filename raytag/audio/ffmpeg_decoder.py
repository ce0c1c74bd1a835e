"""The FFmpeg decoder (PyAV): AAC/M4A, Opus, WebM/Matroska, WMA and whatever else libsndfile
does not open, with the contract of :class:`raytag.audio.decoders.Decoder`.

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
  (WebM/Matroska, ASF/WMA). When a seek lands past the pre-roll (a broken index, or packets
  missing before it), the read decodes from the start of the file instead.
- *Holes.* A decoded frame whose timestamp is not where the frames before it end (by more than
  ``TIMESTAMP_SLACK_SECONDS``), or a skipped packet that does not follow the one before it,
  means packets are missing (FFmpeg drops an Ogg page whose checksum fails and decodes on) or
  repeated: the read is refused (counting on would place the audio after a hole early, by a
  second for an Ogg Opus page). A raw ADTS stream carries no timestamps of its own (FFmpeg counts
  packets), so its frame-header chain is walked when it is opened
  (:func:`raytag.audio.file_checks.adts_break`).
- *Length.* ``frames`` is the stream's duration from the container, less the codec delay the
  decoder drops (Opus' 312-sample pre-skip) where the container counts it: exact for MP4/M4A
  (whose edit list already excludes the AAC encoder's 1024 priming samples) and Ogg; for
  WebM/Matroska/ASF it has millisecond precision (1-2 ms long at most). Reads stop at
  ``frames``, so the padding an MP4 decoder returns after the last sample is not audio. A raw
  elementary stream (ADTS ``.aac``, the one raytag decodes) carries no duration and FFmpeg
  would guess one from the bitrate; its packets are demuxed (not decoded) and their durations
  summed, which is exact. ADTS has no edit list, so its first 1024 frames are the encoder's priming.
"""

from __future__ import annotations

import av
import numpy as np

from raytag.audio import file_checks
from raytag.audio.decoder_base import AudioError, AudioInfo, Decoder, reason

PREROLL_SECONDS = 0.5
# How far a decoded frame's timestamp may be from where the frames before it end (Matroska and
# ASF keep milliseconds; Ogg and MP4 count samples); past it, packets are missing or repeated.
TIMESTAMP_SLACK_SECONDS = 0.002
# FFmpeg demuxers for raw elementary streams, whose durations are only estimated from bitrate
# (of the formats raytag decodes, raytag.audio.decoders.FFMPEG_FORMATS, only ADTS AAC).
_RAW_STREAM_FORMATS = {"aac"}
PYAV_ERRORS = (av.error.FFmpegError, OSError, ValueError, IndexError, RuntimeError)


def frame_to_mono(frame: av.AudioFrame) -> np.ndarray:
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


class FfmpegDecoder(Decoder):
    """FFmpeg through PyAV: see the module's notes."""

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
        if context is None:  # PyAV finds no decoder for the stream's codec
            raise AudioError(f"{path}: cannot read audio (FFmpeg has no decoder for the audio stream of its "
                             f"{container.format.long_name})")
        layout = context.layout
        rate, channels = int(context.sample_rate or 0), int(layout.nb_channels or 0) if layout is not None else 0
        if rate <= 0 or channels <= 0:
            raise AudioError(f"{path}: cannot read audio (FFmpeg finds no sample rate or channel count in its "
                             f"{container.format.long_name} stream)")
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
            raise AudioError(f"{self.path}: cannot read audio ({reason(exc)})") from None
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
                samples = frame_to_mono(frame)
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
        except PYAV_ERRORS as exc:
            raise AudioError(f"{self.path}: decoding failed near frame {self._decoded_to} ({reason(exc)})") from None
        return np.concatenate(pieces) if pieces else np.zeros(0, dtype=np.float32)

    def close(self) -> None:
        self._container.close()
        if self._remote is not None:
            self._remote.close()
