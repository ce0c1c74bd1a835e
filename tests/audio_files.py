"""Test audio written here in every codec raytag decodes, from known signals (no downloads).

libsndfile writes wav, flac, aiff, Ogg Vorbis and MP3 (its LAME encoder); PyAV's FFmpeg encoders
write AAC (in MP4 and as a raw ADTS stream) and Opus (in Ogg).
"""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np
import soundfile as sf

# name: (suffix, writer, libsndfile format / FFmpeg container, subtype / codec)
CODECS = {
    "wav": (".wav", "soundfile", "WAV", "PCM_16"),
    "flac": (".flac", "soundfile", "FLAC", "PCM_16"),
    "aiff": (".aiff", "soundfile", "AIFF", "PCM_16"),
    "vorbis": (".ogg", "soundfile", "OGG", "VORBIS"),
    "mp3": (".mp3", "soundfile", "MP3", "MPEG_LAYER_III"),
    "aac-m4a": (".m4a", "ffmpeg", "mp4", "aac"),
    "aac-adts": (".aac", "ffmpeg", "adts", "aac"),
    "opus": (".opus", "ffmpeg", "ogg", "libopus"),
}


def music_like(rate: int, seconds: float, *, seed: int = 0, noise: bool = True) -> np.ndarray:
    """A chirp, a few tones and (with ``noise``) noise bursts: never silent, about -10 dBFS."""
    t = np.arange(int(seconds * rate)) / rate
    rng = np.random.default_rng(seed)
    chirp = np.sin(2 * np.pi * (200 * t + 400 * t**2 / seconds))
    tones = sum(np.sin(2 * np.pi * f * t + rng.uniform(0, 6)) for f in (220, 330, 495))
    bursts = rng.standard_normal(len(t)) * (np.sin(2 * np.pi * 1.5 * t) > 0.6)
    return (0.12 * chirp + 0.06 * tones + (0.05 * bursts if noise else 0)).astype(np.float32)


def impulses(rate: int, seconds: float, *, every: float = 0.25) -> np.ndarray:
    """Silence with a two-sample click every ``every`` seconds: an MP3 crop that loses the bit
    reservoir comes back all zeros."""
    audio = np.zeros(int(seconds * rate), dtype=np.float32)
    step = int(every * rate)
    audio[step // 2 :: step] = 0.9
    audio[step // 2 + 1 :: step] = -0.9
    return audio


def write(path: Path, audio: np.ndarray, rate: int, codec: str) -> Path:
    """Writes ``audio`` (frames,) or (frames, channels) in ``codec`` (a key of :data:`CODECS`);
    returns the path (with the codec's suffix)."""
    suffix, writer, container, subtype = CODECS[codec]
    path = Path(path).with_suffix(suffix)
    if writer == "soundfile":
        # In blocks: libsndfile 1.2's Vorbis encoder crashes on one large write (a minute of
        # 44.1 kHz stereo).
        channels = 1 if audio.ndim == 1 else audio.shape[1]
        with sf.SoundFile(path, "w", rate, channels, format=container, subtype=subtype) as out:
            for i in range(0, len(audio), 65536):
                out.write(audio[i : i + 65536])
        return path
    planar = np.ascontiguousarray(np.atleast_2d(audio.T) if audio.ndim == 2 else audio[None, :], dtype=np.float32)
    layout = {1: "mono", 2: "stereo"}[planar.shape[0]]
    with av.open(str(path), "w", format=container) as out:
        stream = out.add_stream(subtype, rate=rate)
        stream.layout = layout
        stream.bit_rate = 128_000
        for i in range(0, planar.shape[1], 1024):
            frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(planar[:, i : i + 1024]), format="fltp", layout=layout)
            frame.sample_rate, frame.pts = rate, i
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    return path


def cut(source: Path, dest: Path, fraction: float) -> Path:
    """A copy of ``source`` holding only its first ``fraction`` of bytes (header intact)."""
    data = source.read_bytes()
    dest.write_bytes(data[: int(len(data) * fraction)])
    return dest


def overwrite(source: Path, dest: Path, fraction: float, size: int = 4000, seed: int = 0) -> Path:
    """A copy of ``source`` with ``size`` random bytes written over it at ``fraction`` of its
    length (its header intact, its length unchanged)."""
    data = bytearray(source.read_bytes())
    at = int(len(data) * fraction)
    data[at : at + size] = np.random.default_rng(seed).integers(0, 256, size, dtype=np.uint8).tobytes()
    dest.write_bytes(bytes(data))
    return dest
