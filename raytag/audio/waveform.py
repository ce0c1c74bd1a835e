"""Audio already in memory as a source like any file: a :class:`Waveform` goes wherever a path
goes (:func:`raytag.audio.io.probe`, :func:`raytag.audio.io.load_crop`, a track table's
``paths``), and :func:`raytag.audio.decoders.open_decoder` opens it with :class:`WaveformDecoder`.

So a waveform follows a file's exact arithmetic: its length and rate are its "header", a crop
is cut at the waveform's own rate from the same first frame and then resampled, and a waveform
of zero samples or with non-finite ones fails the probe as an empty or corrupt file does. A WAV
file and its samples given as a waveform at the file's rate decode to the same crops.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from raytag.audio.decoder_base import AudioInfo, Decoder
from raytag.errors import InputError


class WaveformError(InputError):
    """A waveform given in a form raytag cannot take (not 1-D, no sample rate)."""


@dataclass(frozen=True, eq=False)
class Waveform:
    """Mono audio in memory.

    Compared and hashed by identity (two waveforms are two sources, whatever they hold).

    Attributes:
        samples: (T,) float32 samples, C-contiguous (a copy is made when the input is not).
        sample_rate: their rate in Hz.
        name: what messages and outputs call it (default ``"waveform"``).

    Raises:
        WaveformError: samples that are not a 1-D array of numbers, or a rate below 1 Hz.
    """

    samples: np.ndarray
    sample_rate: int
    name: str = "waveform"

    def __post_init__(self) -> None:
        try:
            samples = np.ascontiguousarray(self.samples, dtype=np.float32)
        except (TypeError, ValueError) as exc:
            raise WaveformError(f"{self.name}: samples must be an array of numbers ({exc})") from None
        if samples.ndim != 1:
            raise WaveformError(f"{self.name}: samples must be a 1-D array (mono); got shape {samples.shape}")
        try:
            rate = int(self.sample_rate)
        except (TypeError, ValueError, OverflowError):
            rate = 0
        if isinstance(self.sample_rate, bool) or rate != self.sample_rate or rate < 1:
            raise WaveformError(f"{self.name}: the sample rate must be a whole number of Hz, at least 1; "
                                f"got {self.sample_rate!r}")
        object.__setattr__(self, "samples", samples)
        object.__setattr__(self, "sample_rate", rate)

    def __str__(self) -> str:
        return self.name

    def open_decoder(self) -> WaveformDecoder:
        """The reader :func:`raytag.audio.decoders.open_decoder` returns for this waveform."""
        return WaveformDecoder(self)


class WaveformDecoder(Decoder):
    """Reads a :class:`Waveform` with the decoders' contract: ``read(start, frames)`` returns
    mono float32 frames ``[start, start + frames)``, fewer only at the end."""

    backend = "memory"

    def __init__(self, waveform: Waveform):
        self.path = str(waveform)
        self.info = AudioInfo(len(waveform.samples), waveform.sample_rate, 1)
        self._samples = waveform.samples

    def read(self, start: int, frames: int) -> np.ndarray:
        start = min(max(start, 0), self.info.frames)
        return self._samples[start : start + max(frames, 0)].copy()

    def close(self) -> None:
        pass
