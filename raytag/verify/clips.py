"""The audio a verification page plays: one short clip of each track, encoded as Ogg Opus.

**Where the clip is.** Without a model, the middle of the track: a window of ``clip_s``
seconds centred on the track's midpoint (the whole track when it is shorter). With a model,
the window is centred on the segment where the model's scores for the track's tags (its
labelled tags and any tag the audit suspects) are highest on average (:func:`relevant_segment`);
a track with none of those gets the segment where the model is most sure of any tag. A
window that would run past either end of the track is moved inside it, never padded.

**What is encoded.** The clip is decoded with raytag's own crop reader (only the frames of the
window, downmixed to mono, resampled to 48 kHz, :func:`raytag.audio.io.load_crop`) and encoded
with libopus (through PyAV's bundled FFmpeg) at ``bitrate`` bit/s, constrained VBR, 24 kbit/s by
default: 20 s take about 62 kB (83 kB as base64 in the page). A clip whose peak passes -1 dBFS
(a loud master, resampling overshoot) is scaled down to it, and the gain reported, rather than
clipped by the codec's overshoot or the browser; a clip whose peak is below -80 dBFS is reported
as silent, so a page never plays silence without saying so.

Core module: no Ray, no MLflow.
"""

from __future__ import annotations

import io
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from raytag.audio.io import load_crop

CLIP_RATE = 48_000
"""Hz of the encoded clips (Opus's own rate)."""
DEFAULT_BITRATE = 24_000
SILENT_PEAK = 1e-4
"""A clip whose largest sample is below this (-80 dBFS) is reported as silent."""
PEAK_CEILING = 10 ** (-1 / 20)
"""A clip whose peak passes this (-1 dBFS) is scaled down to it: lossy coding overshoots a full
scale sine by about 0.6 dB at 24 kbit/s, and the browser would clip that."""


@dataclass(frozen=True)
class Clip:
    """One encoded clip.

    Attributes:
        start_s, end_s: where the clip is in the track (seconds).
        data: the Ogg Opus file's bytes.
        peak: the largest absolute sample of the decoded clip, before any gain.
        gain_db: the gain applied so it does not clip (0, or negative).
    """

    start_s: float
    end_s: float
    data: bytes
    peak: float
    gain_db: float

    @property
    def silent(self) -> bool:
        return self.peak < SILENT_PEAK


def clip_window(duration_s: float, clip_s: float, center_s: float | None = None) -> tuple[float, float]:
    """``(start_s, end_s)`` of a ``clip_s`` window centred on ``center_s`` (default: the
    track's middle), moved inside ``[0, duration_s]``; the whole track when it is shorter.

    Raises:
        ValueError: a non-positive ``clip_s`` or ``duration_s``.
    """
    if not (clip_s > 0 and duration_s > 0):
        raise ValueError(f"clip and track lengths must be positive; got {clip_s} and {duration_s}")
    if duration_s <= clip_s:
        return 0.0, float(duration_s)
    center = duration_s / 2 if center_s is None else center_s
    start = min(max(center - clip_s / 2, 0.0), duration_s - clip_s)
    return float(start), float(start + clip_s)


def relevant_segment(probabilities: np.ndarray, tags: Sequence[int]) -> tuple[int, float]:
    """``(segment, score)``: the segment whose mean probability over the columns ``tags`` is
    highest (the first such on ties), and that mean; with no ``tags``, the segment with the
    highest probability of any tag.

    Args:
        probabilities: (S, K) per-segment tag probabilities, S ≥ 1.
        tags: column indices of the track's tags.

    Raises:
        ValueError: no segment.
    """
    probabilities = np.asarray(probabilities, dtype=np.float64)
    if probabilities.ndim != 2 or not len(probabilities):
        raise ValueError("no segment scores")
    columns = probabilities[:, list(tags)] if len(tags) else probabilities
    score = columns.mean(axis=1) if len(tags) else columns.max(axis=1)
    best = int(np.argmax(score))
    return best, float(score[best])


def encode_opus(audio: np.ndarray, *, sample_rate: int = CLIP_RATE, bitrate: int = DEFAULT_BITRATE) -> bytes:
    """Mono float samples in [-1, 1] as an Ogg Opus file (libopus through PyAV).

    Args:
        audio: (T,) float32 samples at ``sample_rate``.
        sample_rate: one of Opus's rates (8, 12, 16, 24 or 48 kHz).
        bitrate: target bit/s (default 24,000).
    """
    import av

    buffer = io.BytesIO()
    with av.open(buffer, "w", format="ogg") as container:
        # Constrained VBR: the size follows the bitrate (unconstrained VBR ran 25 % over it on music).
        stream = container.add_stream("libopus", rate=sample_rate, layout="mono", options={"vbr": "constrained"})
        stream.bit_rate = int(bitrate)
        frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(audio, dtype=np.float32)[None, :], format="flt",
                                           layout="mono")
        frame.sample_rate = sample_rate
        for packet in stream.encode(frame):
            container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    return buffer.getvalue()


def make_clip(path: str, *, source_rate: int, start_s: float, end_s: float, bitrate: int = DEFAULT_BITRATE) -> Clip:
    """Decodes ``[start_s, end_s)`` of the track at ``path`` and encodes it (see the module
    docstring).

    Args:
        path: the audio file (path or URI).
        source_rate: the file's sample rate (Hz, from its header).
        start_s, end_s: the window, inside the track.
        bitrate: Opus bit/s.

    Raises:
        raytag.audio.io.AudioError: the window does not decode.
    """
    start = round(start_s * source_rate)
    samples = max(1, round((end_s - start_s) * CLIP_RATE))
    audio = load_crop(path, start, samples, CLIP_RATE, source_rate)
    peak = float(np.abs(audio).max(initial=0.0))
    gain = PEAK_CEILING / peak if peak > PEAK_CEILING else 1.0
    data = encode_opus(audio * np.float32(gain), bitrate=bitrate)
    return Clip(start / source_rate, start / source_rate + samples / CLIP_RATE, data, peak, 20 * math.log10(gain))
