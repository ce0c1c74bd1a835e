"""The libsndfile decoder (soundfile): wav, flac, ogg (Vorbis), mp3, aiff and au, with the
contract of :class:`raytag.audio.decoders.Decoder`. An MP3 crop is decoded from as far back as
its bit reservoir reaches (:mod:`raytag.audio.mpeg_frames`), an Ogg Vorbis crop is checked
against FFmpeg's decode of the same frames, a WAV/AIFF/AU file reports the length its header
promises (:mod:`raytag.audio.file_checks`), and libmpg123's messages on C-level standard error
are captured (:mod:`raytag.audio.chatter`): counted, and its notes about damaged data fail the
read.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable

import av
import numpy as np
import soundfile as sf

from raytag.audio import chatter, file_checks, mpeg_frames
from raytag.audio.decoder_base import AudioError, AudioInfo, Decoder, reason
from raytag.audio.ffmpeg_decoder import PYAV_ERRORS, frame_to_mono

# Frames decoded before an Ogg Vorbis crop and dropped (two long blocks): the first block after
# a seek lacks the overlap of the one before it.
VORBIS_PREROLL_FRAMES = 2048
# The most two Vorbis decoders (libvorbis in libsndfile, FFmpeg's own) differ by on the same
# frames (measured: 4e-7 on the project's real files).
VORBIS_AGREEMENT = 1e-5
# libsndfile reads in blocks of this many frames, so a decoding error names where it happened.
READ_BLOCK_FRAMES = 65536


class SoundfileDecoder(Decoder):
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
                raise AudioError(f"{path}: cannot read audio ({reason(exc)})") from None
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
            raise AudioError(f"{self.path}: reading failed near frame {start} ({reason(exc)})") from None

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
                failure = reason(exc)
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


class VorbisDecoder(SoundfileDecoder):
    """Ogg Vorbis. libsndfile 1.2's seek is sometimes wrong (on the project's real recordings,
    4096-frame crops at random offsets: 34 of 600 with one open file, some shifted by a fixed
    lag; 23 of 600 with a fresh open per crop, mostly near a file's end; a 2048-frame pre-roll
    alone still left 2 %) and FFmpeg's Ogg demuxer sometimes mislabels the first packets after a
    seek (2 % of crops), but the two were never wrong the same way (1,000 crops). So a crop is
    decoded by both (each from ``VORBIS_PREROLL_FRAMES`` before the crop, dropped) and kept when
    they agree within ``VORBIS_AGREEMENT``; otherwise (about 5 % of crops) it is decoded from the
    start of the file by FFmpeg, which is exact, and which checks that the packets' end positions
    match the samples counted (a hole, i.e. damaged pages that the decoder skipped, is then an
    error).

    Args:
        open_source: opens ``path`` again for FFmpeg: ``(what av.open takes, the remote file to
            close or None)`` (:func:`raytag.audio.decoders.open_decoder` passes its own).
    """

    def __init__(self, path: str, sound_file: sf.SoundFile, remote=None, *,
                 open_source: Callable[[str], tuple[object, object]]):
        super().__init__(path, sound_file, remote)
        self._open_source = open_source
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
        except PYAV_ERRORS:
            theirs = None
        if theirs is not None and len(theirs) == len(ours) and \
                (len(ours) == 0 or float(np.max(np.abs(theirs - ours))) <= VORBIS_AGREEMENT):
            return ours
        return self._from_start(start, frames)

    def _open(self):
        if self._container is None:
            source, self._container_remote = self._open_source(self.path)
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
                pieces.append(frame_to_mono(frame))
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
                    pieces.append(frame_to_mono(frame))
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
        except PYAV_ERRORS as exc:
            raise AudioError(f"{self.path}: decoding failed near frame {decoded} ({reason(exc)})") from None
        return np.concatenate(pieces)[start : start + frames] if pieces else np.zeros(0, dtype=np.float32)

    def close(self) -> None:
        super().close()
        if self._container is not None:
            self._container.close()
            self._container = None
        if self._container_remote is not None:
            self._container_remote.close()
            self._container_remote = None
