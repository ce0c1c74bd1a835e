"""Audio decoding: read only the crop that is needed, downmix, resample, pad.

Offsets and lengths in the file's own sample rate are called *frames*; lengths at the model's
rate are called *samples*. The decoder seeks to the first frame of a crop and decodes just the
frames asked for, so a 10 s crop of a 10 min track costs about 10 s of decoding. libsndfile
(soundfile) decodes wav, flac, ogg (Vorbis), mp3, aiff and au; FFmpeg (PyAV) decodes what libsndfile cannot open
(AAC/M4A, Opus in WebM/Matroska/MP4, WMA, ...), with the same contract: see
:mod:`raytag.audio.decoders`.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from functools import lru_cache
from typing import TYPE_CHECKING

import numpy as np

from raytag.audio.decoders import AudioError, AudioInfo, Decoder, open_decoder

if TYPE_CHECKING:
    import torchaudio

__all__ = [
    "AudioError",
    "AudioInfo",
    "PROBE_WINDOW_FRAMES",
    "check_complete",
    "chunk_starts",
    "fit_length",
    "load_crop",
    "probe",
    "random_start",
    "read_frames",
    "resample",
    "resampled_pieces",
    "source_frames",
]

# Frames decoded at each of the three places :func:`probe` checks (about 46 ms at 44.1 kHz).
PROBE_WINDOW_FRAMES = 2048
# A whole-track decode may end this much before the header's length (MP3 and Matroska lengths
# are estimates within a packet); the rest is zero-padded. A longer shortfall is an error.
END_SHORTFALL_SECONDS = 0.1


def probe(path: str) -> AudioInfo:
    """Reads an audio file's header and checks that its audio decodes.

    Besides the header, ``PROBE_WINDOW_FRAMES`` frames are decoded at the start, in the middle
    and at the end of the file, so a file that is corrupt or truncated past its header is
    rejected here, once, rather than failing on every epoch. This catches damage that reaches
    those places (e.g. a file cut off before its middle, or a corrupt FLAC whose damaged frames
    the middle read lands in); damage elsewhere still shows up as a decode failure at training
    time. Opening the file also refuses what its bytes show without decoding: a WAV/AIFF/AU
    header that promises more frames than the file holds, a raw ADTS stream whose frame headers
    do not chain (:mod:`raytag.audio.file_checks`). Cost per 3-minute file (best of 30, one
    core): 0.25 ms for wav, 0.6 ms flac, 1.2 ms Ogg Vorbis, 4 ms mp3 (libsndfile's mp3 seeks
    are slow), 2 ms AAC/M4A, 4-6 ms Opus (each FFmpeg read also decodes its pre-roll; measured
    with a 0.2 s pre-roll, now 0.5 s); the header alone is 0.05-0.9 ms. Walking the frame
    headers adds about 3.5 ms to an MP3 (for its end window's bit reservoir) and 3 ms to a raw
    ADTS stream (measured on a shared, loaded machine).

    Raises:
        AudioError: the file is missing, unreadable, unsupported, has no frames, or its audio
            does not decode (an error, no frames where the header promises some, or non-finite
            samples).
    """
    with open_decoder(path) as decoder:
        info = decoder.info
        if info.frames <= 0:
            raise AudioError(f"{path}: the file has no audio frames")
        _check_decodes(decoder)
    return info


def _check_decodes(decoder: Decoder) -> None:
    frames = decoder.info.frames
    window = min(PROBE_WINDOW_FRAMES, frames)
    # The end read covers the length a short read may lack, so a truncated file reads nothing.
    slack = math.ceil(END_SHORTFALL_SECONDS * decoder.info.sample_rate)
    places = {"start": 0, "middle": max(frames // 2 - window // 2, 0), "end": max(frames - window - slack, 0)}
    for place, start in places.items():
        frames_read = window + slack if place == "end" else window
        audio = decoder.read(start, frames_read)
        check_complete(decoder, start, frames_read, audio, place=f" ({place} of the file)")
        if not np.all(np.isfinite(audio)):
            raise AudioError(f"{decoder.path}: decoded samples are not finite near frame {start}")


def check_complete(decoder: Decoder, start: int, frames: int, audio: np.ndarray, *, place: str = "") -> None:
    """Refuses a read that ended early although the header promises more frames.

    A read of ``frames`` from ``start`` may be short only past the header's length, by at most
    ``END_SHORTFALL_SECONDS`` (MP3 and Matroska lengths are estimates within a packet). A
    truncated file (an MP3 cut to 60 % of its bytes whose header still promises every frame)
    would otherwise give silence where its audio is missing.

    Raises:
        AudioError: the audio ends before the header says it does.
    """
    info = decoder.info
    promised = max(min(frames, info.frames - start), 0)
    if len(audio) >= promised:
        return
    ends = start + len(audio)
    if info.frames - ends > END_SHORTFALL_SECONDS * info.sample_rate:
        where = f"at frame {ends}" if len(audio) else f"before frame {start}"
        raise AudioError(
            f"{decoder.path}: the audio ends {where}{place} although the header promises "
            f"{info.frames} frames (truncated?)"
        )


def source_frames(num_samples: int, source_rate: int, target_rate: int) -> int:
    """Frames at ``source_rate`` that cover ``num_samples`` at ``target_rate``."""
    return math.ceil(num_samples * source_rate / target_rate)


def read_frames(path: str, start: int, frames: int) -> np.ndarray:
    """Decodes ``frames`` frames from frame ``start``, downmixed to mono float32.

    Returns fewer frames when the file ends first (an empty array past its end).

    Raises:
        AudioError: the file cannot be opened, decoding fails part-way, or the audio ends
            before the header's length (a truncated file; see :func:`check_complete`).
    """
    with open_decoder(path) as decoder:
        mono = decoder.read(start, frames)
        check_complete(decoder, start, frames, mono)
    if not np.all(np.isfinite(mono)):
        raise AudioError(f"{path}: decoded samples are not finite")
    return np.ascontiguousarray(mono, dtype=np.float32)


@lru_cache(maxsize=16)
def _resampler(source_rate: int, target_rate: int) -> torchaudio.transforms.Resample:
    import torchaudio  # here, not at the top: reading and checking audio needs no torch (2 s to import)

    # The windowed-sinc kernel depends only on the two rates: build it once per pair.
    return torchaudio.transforms.Resample(source_rate, target_rate)


def resample(audio: np.ndarray, source_rate: int, target_rate: int) -> np.ndarray:
    """Band-limited resampling of a mono float32 signal with torchaudio."""
    if source_rate == target_rate or audio.size == 0:
        return audio
    import torch

    with torch.no_grad():
        out = _resampler(source_rate, target_rate)(torch.from_numpy(audio))
    return out.numpy()


def resampled_pieces(decoder: Decoder, *, target_rate: int, piece_frames: int) -> Iterator[np.ndarray]:
    """A whole track at ``target_rate``, decoded and resampled in bounded pieces.

    The pieces (mono float32) concatenate to the resampling of the whole track at once, to
    float rounding, and to ``ceil(frames * target_rate / rate)`` samples: each piece is
    resampled with enough of its neighbours' frames on both sides that the windowed-sinc filter
    sees the same input, and piece boundaries fall on whole periods of the two rates. Memory is
    bounded by ``piece_frames``, however long the track (a 3-hour track at 44.1 kHz is 476 M
    frames, 1.9 GB as float32; with pieces of 30 s a few tens of MB are held at a time).

    Args:
        decoder: an open track (its ``info`` gives frames and rate).
        target_rate: the output rate (Hz).
        piece_frames: source frames decoded per piece (rounded down to a whole period).

    Raises:
        AudioError: decoding fails, or the audio ends more than ``END_SHORTFALL_SECONDS``
            before the header's length (a shorter shortfall is zero-padded).
    """
    total, rate = decoder.info.frames, decoder.info.sample_rate
    if rate == target_rate:
        for start in range(0, total, piece_frames):
            yield _read_checked(decoder, start, min(start + piece_frames, total))
        return
    resampler = _resampler(rate, target_rate)
    period, out_period = rate // resampler.gcd, target_rate // resampler.gcd
    context = period * (math.ceil((resampler.width + period) / period) + 1)
    step = max(period, piece_frames // period * period)
    buffer, buffer_start = np.zeros(0, dtype=np.float32), 0
    written, length = 0, -(-total * out_period // period)
    for start in range(0, total, step):
        stop = min(start + step, total)
        have = buffer_start + len(buffer)
        need = min(stop + context, total)
        if need > have:
            buffer = np.concatenate([buffer, _read_checked(decoder, have, need)])
        segment_start = max(start - context, 0)
        segment = buffer[segment_start - buffer_start : need - buffer_start]
        import torch

        with torch.no_grad():
            out = resampler(torch.from_numpy(np.ascontiguousarray(segment))).numpy()
        first = (start - segment_start) * out_period // period
        count = (stop - start) * out_period // period if stop < total else length - written
        yield out[first : first + count]
        written += count
        keep_from = max(stop - context, 0)
        buffer, buffer_start = buffer[keep_from - buffer_start :], keep_from


def _read_checked(decoder: Decoder, start: int, stop: int) -> np.ndarray:
    """Frames ``[start, stop)``; a short read near the end of the file is zero-padded."""
    audio = decoder.read(start, stop - start)
    if len(audio) < stop - start:
        check_complete(decoder, start, stop - start, audio)
        audio = np.pad(audio, (0, stop - start - len(audio)))
    if not np.all(np.isfinite(audio)):
        raise AudioError(f"{decoder.path}: decoded samples are not finite near frame {start}")
    return np.ascontiguousarray(audio, dtype=np.float32)


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
