"""What every corpus adapter shares: rows, options, the manifest writer and the report.

An adapter reads a public corpus's own metadata files (in their exact published format) and
returns :class:`CorpusRows`; :func:`make_manifest` validates them, writes a manifest CSV with
:func:`raytag.data.manifest.write_manifest` (absolute audio paths) and
returns a :class:`CorpusReport`: rows per split, tags, audio files missing on disk (they stay in
the manifest; the training-time scan skips and counts them) and, where the corpus names
artists, whether the splits are artist-disjoint.
"""

from __future__ import annotations

import os
from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from raytag.data.manifest import MANIFEST_COLUMNS, SPLITS, track_row, write_manifest
from raytag.errors import InputError

EXAMPLES = 5  # how many missing files or shared artists a report names


class CorpusError(InputError):
    """Corpus files that cannot be turned into a manifest, with the file (and line) at fault."""


@dataclass(frozen=True)
class CorpusRow:
    """One audio file of a corpus.

    Attributes:
        path: absolute audio path.
        tags: the clip's tags (checked with :func:`check_tag`).
        split: ``train``, ``valid``, ``test`` or ``unlabeled``.
        verified: whether a person checked these tags.
        artist: artist id or name, if the corpus has one.
        where: the metadata file and line this row came from, for error messages.
    """

    path: str
    tags: tuple[str, ...]
    split: str
    verified: bool = False
    artist: str | None = None
    where: str = ""


@dataclass
class CorpusRows:
    """An adapter's output: the rows, and report lines only that corpus can state."""

    rows: list[CorpusRow]
    notes: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class CorpusOption:
    """A corpus-specific option of ``raytag corpus NAME`` (passed to the adapter by ``name``).

    ``kind`` is ``str``, ``int``, ``float``, ``Path`` or ``bool`` (a flag, default False).
    """

    name: str
    kind: type
    help: str
    default: object = None
    choices: tuple[str, ...] | None = None
    required: bool = False

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")


@dataclass(frozen=True)
class CorpusAdapter:
    """A registered corpus: ``build(source=Path, **options) -> CorpusRows``."""

    name: str
    summary: str
    source_help: str
    options: tuple[CorpusOption, ...]
    build: Callable[..., CorpusRows]


@dataclass(frozen=True)
class CorpusReport:
    """What :func:`make_manifest` wrote and found."""

    corpus: str
    manifest: str
    rows_per_split: dict[str, int]
    tags: int
    tag_occurrences: int
    untagged_rows: int
    missing_audio: int
    missing_examples: tuple[str, ...]
    artist_disjoint: bool | None
    shared_artists: int
    shared_artist_examples: tuple[str, ...]
    notes: tuple[str, ...]

    def format(self) -> str:
        """The report as text for the console."""
        total = sum(self.rows_per_split.values())
        splits = ", ".join(f"{name} {n:,}" for name, n in self.rows_per_split.items() if n)
        lines = [
            f"{self.corpus}: wrote {self.manifest}",
            f"  rows: {total:,} ({splits})",
            f"  tags: {self.tags} ({self.tag_occurrences:,} tag occurrences; {self.untagged_rows:,} rows with no tag)",
        ]
        if self.missing_audio:
            lines.append(
                f"  audio missing on disk: {self.missing_audio:,} of {total:,} (kept in the manifest; the scan "
                f"before training skips and counts them), e.g. " + ", ".join(self.missing_examples)
            )
        else:
            lines.append(f"  audio missing on disk: none of {total:,}")
        if self.artist_disjoint is None:
            lines.append("  artist-disjoint splits: unknown (no artist information)")
        elif self.artist_disjoint:
            lines.append("  artist-disjoint splits: yes")
        else:
            lines.append(
                f"  artist-disjoint splits: no, {self.shared_artists:,} "
                + ("artist appears" if self.shared_artists == 1 else "artists appear")
                + " in more than one split, e.g. " + ", ".join(self.shared_artist_examples)
            )
        lines.extend(f"  {note}" for note in self.notes)
        return "\n".join(lines)


def check_tag(tag: str, where: str) -> str:
    """Returns ``tag`` if a manifest can hold it unchanged.

    Raises:
        CorpusError: the tag is empty, contains ``;`` (the manifest's tag separator) or a line
            break, or has leading/trailing spaces (the manifest reader would strip them).
    """
    if not tag:
        raise CorpusError(f"{where}: empty tag")
    if ";" in tag:
        raise CorpusError(f"{where}: tag {tag!r} contains ';', the manifest's tag separator")
    if "\n" in tag or "\r" in tag:
        raise CorpusError(f"{where}: tag {tag!r} contains a line break")
    if tag != tag.strip():
        raise CorpusError(f"{where}: tag {tag!r} has leading or trailing spaces")
    return tag


def _check_rows(rows: Sequence[CorpusRow]) -> None:
    seen: dict[str, str] = {}
    for row in rows:
        where = row.where or row.path
        if not os.path.isabs(row.path):
            raise CorpusError(f"{where}: audio path {row.path!r} is not absolute")
        if row.split not in SPLITS:
            raise CorpusError(f"{where}: unknown split {row.split!r}")
        for tag in row.tags:
            check_tag(tag, where)
        if row.path in seen:
            raise CorpusError(f"{where}: audio file {row.path} is listed twice (first at {seen[row.path]})")
        seen[row.path] = where


def _shared_artists(rows: Sequence[CorpusRow]) -> list[str] | None:
    """Artists found in more than one split, or None when no row names an artist."""
    splits_of: dict[str, set[str]] = defaultdict(set)
    for row in rows:
        if row.artist:
            splits_of[row.artist].add(row.split)
    if not splits_of:
        return None
    return sorted(artist for artist, splits in splits_of.items() if len(splits) > 1)


def make_manifest(
    adapter: CorpusAdapter,
    *,
    source: Path,
    output: Path,
    overwrite: bool = False,
    allow_missing: bool = False,
    **options,
) -> CorpusReport:
    """Builds a corpus's rows, writes them as a manifest CSV and reports on them.

    Args:
        adapter: the corpus (see :func:`raytag.data.corpora.get_corpus`).
        source: the corpus folder (``--from``), made absolute.
        output: manifest CSV to write.
        overwrite: replace an existing ``output``.
        allow_missing: write the manifest even when not one of its audio files is on disk
            (e.g. to make it before downloading the audio); without it that is an error, since
            it almost always means a wrong ``--from``.
        **options: the adapter's own options, by name.

    Raises:
        CorpusError: unreadable corpus files, a tag that contains ``;``, a duplicate audio file,
            an existing ``output`` without ``overwrite``, every audio file missing without
            ``allow_missing`` (nothing is written then).
    """
    output = Path(output)
    if output.suffix.lower() != ".csv":
        raise CorpusError(f"{output}: the manifest is written as CSV; name it *.csv")
    if output.exists() and not overwrite:
        raise CorpusError(f"{output} exists; pass --overwrite to replace it")
    source = Path(source).expanduser().resolve()
    if not source.is_dir():
        raise CorpusError(f"{source}: not a folder (--from is the corpus's audio root)")
    built = adapter.build(source=source, **options)
    if not built.rows:
        raise CorpusError(f"{adapter.name}: the corpus files list no audio")
    _check_rows(built.rows)
    missing = [row.path for row in built.rows if not os.path.isfile(row.path)]
    if len(missing) == len(built.rows) and not allow_missing:
        raise CorpusError(
            f"{source}: none of the {len(built.rows):,} audio files the corpus lists is there (e.g. {missing[0]}); "
            "is --from the corpus's audio root? Pass --allow-missing to write the manifest anyway"
        )
    # The one manifest writer: the file is in place only once it reads back with the reader
    # training uses.
    manifest = write_manifest(
        output, MANIFEST_COLUMNS,
        [track_row(row.path, row.tags, row.split, row.verified, row.artist) for row in built.rows],
        overwrite=overwrite,
    )
    shared = _shared_artists(built.rows)
    counts = Counter(row.split for row in built.rows)
    return CorpusReport(
        corpus=adapter.name,
        manifest=str(output),
        rows_per_split={name: counts.get(name, 0) for name in SPLITS},
        tags=len(manifest.vocabulary),
        tag_occurrences=sum(len(row.tags) for row in built.rows),
        untagged_rows=sum(not row.tags for row in built.rows),
        missing_audio=len(missing),
        missing_examples=tuple(missing[:EXAMPLES]),
        artist_disjoint=None if shared is None else not shared,
        shared_artists=len(shared or ()),
        shared_artist_examples=tuple((shared or [])[:EXAMPLES]),
        notes=tuple(built.notes),
    )
