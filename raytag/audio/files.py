"""Which files are audio: the suffixes raytag decodes, and the audio files under a folder."""

from __future__ import annotations

from pathlib import Path

# libsndfile formats, then those FFmpeg decodes (raytag.audio.decoders; Monkey's Audio .ape included:
# FFmpeg decodes it, it has no encoder to make a test file with).
AUDIO_SUFFIXES = frozenset({
    ".wav", ".flac", ".ogg", ".oga", ".mp3", ".aiff", ".aif", ".au",
    ".m4a", ".aac", ".mp4", ".opus", ".webm", ".mka", ".wma", ".ape",
})


def audio_files(folder: str | Path) -> list[str]:
    """Absolute paths of the audio files under ``folder`` (recursively, by suffix, any case),
    sorted."""
    return sorted(str(p.resolve()) for p in Path(folder).rglob("*") if p.is_file() and p.suffix.lower() in AUDIO_SUFFIXES)
