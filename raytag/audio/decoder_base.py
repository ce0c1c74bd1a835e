"""The decoders' shared contract: :class:`Decoder`, :class:`AudioInfo`, :class:`AudioError`, and
how a decoder library's error reads in a message.

All decoders give the same contract: a frame index counts samples per channel in the file's own
rate from the first decoded sample; ``read(start, frames)`` returns mono float32 audio (the mean of
all the channels, however many) beginning exactly at frame ``start``, and fewer frames only at the
end of the file (:func:`raytag.audio.io.check_complete` refuses a read that ends before the
header's length). A crop equals the same frames of a whole-file decode, or the read is refused (damaged or
missing data): see :mod:`raytag.audio.libsndfile_decoder` (MP3's bit reservoir, Ogg Vorbis
checked against FFmpeg, headers that promise more than the file holds) and
:mod:`raytag.audio.ffmpeg_decoder` (pre-roll, timestamps, holes).

:mod:`raytag.audio.decoders` opens a file with the right decoder and re-exports these names.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass

import av
import numpy as np
import soundfile as sf

# libsndfile's messages that name its internals, in words (what it fails on when a FLAC's or a
# WAV's data is shorter than its header says).
_LIBSNDFILE_WORDS = {"Internal psf_fseek() failed": "a seek went past the end of the file (truncated?)"}


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


def reason(exc: BaseException) -> str:
    """An exception's message in words: FFmpeg's and libsndfile's own description (without the
    error number, the function or the path they add), else the first line of the message (its
    type name when it has none)."""
    if isinstance(exc, av.error.FFmpegError) and exc.strerror:
        return f"FFmpeg: {exc.strerror[:1].lower()}{exc.strerror[1:]}"
    if isinstance(exc, sf.LibsndfileError):
        text = exc.error_string.strip().rstrip(".")
        text = _LIBSNDFILE_WORDS.get(text, text)
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
