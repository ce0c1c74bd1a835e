"""A corpus held in memory for the benchmark runner (bench/noise_runner.py): its splits decoded
once, as float32 waveforms or as 16-bit PCM clips (half the memory), with their manifest labels,
clean labels and verified flags."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from raytag.audio.io import probe, read_frames
from raytag.data.manifest import multi_hot, read_labels, read_manifest
from raytag.data.rows import TrackTable


@dataclass(frozen=True)
class SplitAudio:
    """One split of a corpus, decoded into memory.

    Attributes:
        table: the split's tracks (``labels``: what the manifest shows, noisy or verified).
        audio: one float32 mono waveform (or :class:`PcmClip`) per track at the corpus's rate, in
            table order.
        clean: (N, K) clean labels (zeros for unlabeled audio).
        verified: (N,) bool, the manifest's ``verified`` flags.
    """

    table: TrackTable
    audio: tuple[np.ndarray, ...]
    clean: np.ndarray
    verified: np.ndarray

    def subset(self, keep: np.ndarray) -> SplitAudio:
        """The tracks where ``keep`` (N,) is True, in order."""
        index = np.flatnonzero(keep)
        table = self.table
        return SplitAudio(
            TrackTable(tuple(table.paths[i] for i in index), table.frames[index], table.rates[index],
                       table.labels[index]),
            tuple(self.audio[i] for i in index), self.clean[index], self.verified[index],
        )


@dataclass(frozen=True)
class MemoryCorpus:
    """A corpus held in memory: its tag vocabulary, sample rate (Hz) and decoded splits."""

    tags: tuple[str, ...]
    sample_rate: int
    splits: dict[str, SplitAudio]

    def split(self, name: str) -> SplitAudio:
        if name not in self.splits:
            raise ValueError(f"the corpus was loaded without its {name!r} split (loaded: {sorted(self.splits)})")
        return self.splits[name]


class PcmClip:
    """A clip held as its 16-bit PCM samples (half the memory of float32): ``len`` and slices
    behave as the float32 waveform ``read_frames`` decodes (sample / 32768, exactly)."""

    def __init__(self, pcm: np.ndarray):
        if pcm.dtype != np.int16 or pcm.ndim != 1:
            raise ValueError(f"PcmClip holds mono int16 samples, got {pcm.dtype} of shape {pcm.shape}")
        self.pcm = pcm

    def __len__(self) -> int:
        return len(self.pcm)

    def __getitem__(self, index) -> np.ndarray:
        return np.asarray(self.pcm[index], dtype=np.float32) / np.float32(32768.0)


def _read_clip(path: str, frames: int, compact: bool):
    """A whole clip: float32, or a :class:`PcmClip` of a 16-bit PCM mono WAV when ``compact``."""
    if not compact:
        return read_frames(path, 0, frames)
    import soundfile

    info = soundfile.info(path)
    if (info.format, info.subtype, info.channels) != ("WAV", "PCM_16", 1):
        raise ValueError(f"{path}: compact loading needs mono 16-bit PCM WAV, got {info.format} {info.subtype} "
                         f"with {info.channels} channels")
    pcm, _ = soundfile.read(path, dtype="int16")
    if len(pcm) != frames:
        raise ValueError(f"{path}: read {len(pcm)} frames, the header says {frames}")
    return PcmClip(pcm)


def load_corpus(manifest: str | Path, clean_labels: str | Path, *, splits: Sequence[str] = ("train", "valid", "test"),
                tags: Sequence[str] | None = None, compact: bool = False) -> MemoryCorpus:
    """Reads a manifest and its clean label file and decodes every clip of ``splits`` once.

    Args:
        manifest: the corpus manifest (``raytag.data.manifest`` format).
        clean_labels: ``path,tags`` of the true labels of every labelled clip (``clean.csv``).
        splits: which splits to hold (``unlabeled`` only where a noisy student needs it).
        tags: the vocabulary; default every tag in the manifest, sorted (as a job without
            ``data.tags``).
        compact: hold each clip as a :class:`PcmClip` (16-bit PCM WAV corpora: half the
            memory; the evidence corpus holds ~5,000 clips of 10 s).

    Raises:
        ValueError: clips at different sample rates, or a labelled clip without clean labels.
    """
    parsed = read_manifest(manifest, tags)
    clean = read_labels(clean_labels)
    vocabulary, rates, held = parsed.vocabulary, set(), {}
    for name in splits:
        tracks = parsed.split(name)
        missing = [t.path for t in tracks if name != "unlabeled" and t.path not in clean]
        if missing:
            raise ValueError(f"{clean_labels}: no clean labels for {len(missing)} {name} clips, e.g. {missing[0]}")
        audio, frames, track_rates = [], [], []
        for track in tracks:
            info = probe(track.path)
            audio.append(_read_clip(track.path, info.frames, compact))
            frames.append(info.frames)
            track_rates.append(info.sample_rate)
        rates.update(track_rates)
        labels = parsed.label_matrix(tracks)
        truth = multi_hot([clean.get(t.path, ()) for t in tracks], vocabulary)
        table = TrackTable(tuple(t.path for t in tracks), np.asarray(frames, np.int64),
                           np.asarray(track_rates, np.int64), labels)
        held[name] = SplitAudio(table, tuple(audio), truth, np.array([t.verified for t in tracks], dtype=bool))
    if len(rates) != 1:
        raise ValueError(f"{manifest}: the benchmark runner needs one sample rate for every clip, found {sorted(rates)}")
    return MemoryCorpus(tuple(vocabulary), rates.pop(), held)
