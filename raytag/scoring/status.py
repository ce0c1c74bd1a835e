"""A scored track's status and the rules that give it: the one place they are defined.

Only ``ok`` tracks get probabilities, so a recording that holds nothing to tag never gets
confident tags, whichever entry point scores it:

- ``ok``: tagged.
- ``silent``: every decoded chunk peaks at or below :data:`SILENT_PEAK_DBFS` (-60 dBFS):
  digital silence, dither, a file padded with zeros.
- ``too short``: shorter than :data:`MIN_CROP_FRACTION` (half) of the model's crop. Such a
  track would be mostly zero padding; a track of at least half a crop is scored as one chunk
  padded at its end (a 2.97 s recording for a 3 s crop is 1 % padding, and tagged).
- ``unreadable``: missing, empty, corrupt, truncated, not audio, or no chunk decoded.

Imports neither numpy nor torch.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import StrEnum
from fractions import Fraction
from typing import Any


class TrackStatus(StrEnum):
    """What became of a track (see the module docstring); its value is what outputs show."""

    OK = "ok"
    SILENT = "silent"
    TOO_SHORT = "too short"
    UNREADABLE = "unreadable"


SILENT_PEAK_DBFS = -60.0
"""A track whose decoded chunks never go above this peak level is ``silent``."""
MIN_CROP_FRACTION = Fraction(1, 2)
"""A track shorter than this share of the model's crop is ``too short``."""
NO_CHUNK_DECODED = "no chunk of the track could be decoded"


@dataclass(frozen=True)
class TrackResult:
    """One scored source's outcome.

    Attributes:
        source: the file path (or URI), or the in-memory :class:`raytag.audio.waveform.Waveform`.
        status: a :class:`TrackStatus`.
        probabilities: (K,) float64 track-level probabilities when ``status`` is ``ok``, else None.
        reason: why the track was not tagged ("" when ok).
    """

    source: Any
    status: TrackStatus
    probabilities: Any = None
    reason: str = ""


def too_short_reason(*, frames: int, rate: int, crop_samples: int, sample_rate: int) -> str | None:
    """Why a track is ``too short``, or None when it is long enough.

    Args:
        frames, rate: the track's length in frames and its sample rate (Hz).
        crop_samples, sample_rate: the model's crop (samples) and rate (Hz).

    Returns:
        None when ``frames / rate`` is at least :data:`MIN_CROP_FRACTION` of
        ``crop_samples / sample_rate`` (exact, in integers), else the reason, e.g.
        ``"0.40 s of audio; the model's crop is 1.00 s and a track must last at least half of one"``.
    """
    if Fraction(frames * sample_rate) >= MIN_CROP_FRACTION * crop_samples * rate:
        return None
    return (f"{frames / rate:.2f} s of audio; the model's crop is {crop_samples / sample_rate:.2f} s and a track "
            f"must last at least {_share(MIN_CROP_FRACTION)} of one")


def silence_reason(peak: float) -> str | None:
    """Why a track is ``silent`` (its chunks' largest absolute sample ``peak`` is at or below
    :data:`SILENT_PEAK_DBFS`), or None when it is not."""
    level = 20.0 * math.log10(peak) if peak > 0 else float("-inf")
    if level > SILENT_PEAK_DBFS:
        return None
    return f"peak level {level:.1f} dBFS (at most {SILENT_PEAK_DBFS:.0f} dBFS)"


def _share(fraction: Fraction) -> str:
    return "half" if fraction == Fraction(1, 2) else f"{float(fraction):.0%}"
