"""Audio decoding: read only the crop that is needed, downmix, resample, pad.

Offsets and lengths in the file's own sample rate are called *frames*; lengths at the model's
rate are called *samples*. soundfile seeks to the first frame of a crop and decodes just the
frames asked for, so a 10 s crop of a 10 min track costs 10 s of decoding.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import soundfile as sf
import torch
import torchaudio


class AudioError(Exception):
    """An audio file that cannot be used: missing, empty, truncated, corrupt or unsupported."""


@dataclass(frozen=True)
class AudioInfo:
    """Header facts of an audio file."""

    frames: int
    sample_rate: int
    channels: int

    @property
    def seconds(self) -> float:
        return self.frames / self.sample_rate


def probe(path: str) -> AudioInfo:
    """Reads an audio file's header.

    Raises:
        AudioError: the file is missing, unreadable, unsupported or has no frames.
    """
    try:
        info = sf.info(path)
    except (sf.LibsndfileError, RuntimeError, OSError, ValueError) as exc:
        raise AudioError(f"{path}: cannot read audio ({_reason(exc)})") from None
    if info.frames <= 0:
        raise AudioError(f"{path}: the file has no audio frames")
    return AudioInfo(frames=int(info.frames), sample_rate=int(info.samplerate), channels=int(info.channels))


def _reason(exc: Exception) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0]


def source_frames(num_samples: int, source_rate: int, target_rate: int) -> int:
    """Frames at ``source_rate`` that cover ``num_samples`` at ``target_rate``."""
    return math.ceil(num_samples * source_rate / target_rate)


def read_frames(path: str, start: int, frames: int) -> np.ndarray:
    """Decodes ``frames`` frames from frame ``start``, downmixed to mono float32.

    Returns fewer frames when the file ends first (an empty array past its end).

    Raises:
        AudioError: the file cannot be opened or decoding fails part-way (e.g. truncated data).
    """
    try:
        with sf.SoundFile(path) as f:
            if start > 0:
                f.seek(min(start, f.frames))
            data = f.read(frames, dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError, OSError, ValueError) as exc:
        raise AudioError(f"{path}: decoding failed at frame {start} ({_reason(exc)})") from None
    mono = data.mean(axis=1) if data.shape[1] > 1 else data[:, 0]
    if not np.all(np.isfinite(mono)):
        raise AudioError(f"{path}: decoded samples are not finite")
    return np.ascontiguousarray(mono, dtype=np.float32)


@lru_cache(maxsize=16)
def _resampler(source_rate: int, target_rate: int) -> torchaudio.transforms.Resample:
    # The windowed-sinc kernel depends only on the two rates: build it once per pair.
    return torchaudio.transforms.Resample(source_rate, target_rate)


def resample(audio: np.ndarray, source_rate: int, target_rate: int) -> np.ndarray:
    """Band-limited resampling of a mono float32 signal with torchaudio."""
    if source_rate == target_rate or audio.size == 0:
        return audio
    with torch.no_grad():
        out = _resampler(source_rate, target_rate)(torch.from_numpy(audio))
    return out.numpy()


def fit_length(audio: np.ndarray, num_samples: int) -> np.ndarray:
    """Trims or zero-pads (at the end) to exactly ``num_samples``."""
    if len(audio) >= num_samples:
        return audio[:num_samples]
    return np.pad(audio, (0, num_samples - len(audio)))


def load_crop(path: str, start: int, num_samples: int, target_rate: int, source_rate: int) -> np.ndarray:
    """Decodes the crop starting at frame ``start`` and returns ``num_samples`` at ``target_rate``.

    Only the frames that cover the crop are decoded. A crop that runs past the end of the file
    is zero-padded.

    Args:
        path: audio file.
        start: first frame, in the file's rate.
        num_samples: crop length at ``target_rate``.
        target_rate: the model's sample rate (Hz).
        source_rate: the file's sample rate (Hz), from :func:`probe`.
    """
    frames = source_frames(num_samples, source_rate, target_rate)
    audio = read_frames(path, start, frames)
    return fit_length(resample(audio, source_rate, target_rate), num_samples)


def random_start(total_frames: int, crop_frames: int, rng: np.random.Generator) -> int:
    """A uniformly random first frame for a crop; 0 when the track is shorter than the crop."""
    return int(rng.integers(0, total_frames - crop_frames + 1)) if total_frames > crop_frames else 0


def chunk_starts(total_frames: int, crop_frames: int, max_chunks: int | None = None) -> list[int]:
    """First frames of chunks that cover a whole track.

    ``ceil(total / crop)`` chunks spread evenly from the first frame to the last, so together they
    cover the track with the least overlap and none is padding. With ``max_chunks`` set and a
    longer track, only that many, still spread evenly from start to end (as the short-chunk
    ResNet's 16 equally spaced crops).
    """
    if total_frames <= crop_frames:
        return [0]
    count = math.ceil(total_frames / crop_frames)
    if max_chunks is not None and count > max_chunks:
        count = max_chunks
    last = total_frames - crop_frames
    if count == 1:
        return [last // 2]
    return [round(i * last / (count - 1)) for i in range(count)]
