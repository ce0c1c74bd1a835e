"""``raytag predict``'s inputs: which audio files to tag.

Inputs are audio files, folders (searched recursively for :data:`raytag.audio.files.AUDIO_SUFFIXES`)
and lists of files (a manifest, or any CSV/TSV/JSONL with a ``path`` column). A path that does
not exist is kept: it becomes a row whose status says so, like any unreadable file.

Core module: no Ray, no MLflow, no torch.
"""

from __future__ import annotations

import posixpath
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from raytag.audio.files import audio_files
from raytag.data.manifest import read_paths
from raytag.errors import InputError
from raytag.locations import is_uri

LIST_SUFFIXES = (".csv", ".tsv", ".jsonl")


class PredictError(InputError):
    """Bad input to ``raytag predict``: a flag, an output file, a model or audio that is not
    there; the message names it."""


@dataclass(frozen=True)
class AudioInputs:
    """The audio files to tag, distinct, in the order given.

    Attributes:
        paths: absolute paths.
        repeated: paths named more than once (by two arguments, e.g. a folder and a file in
            it); each is tagged once.
        empty_folders: folders given that hold no audio file.
    """

    paths: list[str]
    repeated: int
    empty_folders: list[str]


def collect_audio(sources: Sequence[str]) -> AudioInputs:
    """The audio files named by ``sources``: files, folders (recursive) and file lists
    (``.csv``, ``.tsv``, ``.jsonl`` with a ``path`` column); a URI (``s3://...``) names a file
    or a file list.

    Raises:
        raytag.data.manifest.ManifestError: a file list that is missing or malformed.
    """
    paths: list[str] = []
    empty: list[str] = []
    for source in sources:
        if is_uri(source):  # an audio file or a file list in object storage (no folder listing)
            listed = posixpath.splitext(source)[1].lower() in LIST_SUFFIXES
            paths += read_paths(source) if listed else [source]
            continue
        location = Path(source)
        if location.suffix.lower() in LIST_SUFFIXES and not location.is_dir():
            paths += read_paths(location)
        elif location.is_dir():
            found = audio_files(location)
            if not found:
                empty.append(str(location))
            paths += found
        else:
            paths.append(str(location.resolve()))
    distinct = list(dict.fromkeys(paths))
    return AudioInputs(distinct, len(paths) - len(distinct), empty)
