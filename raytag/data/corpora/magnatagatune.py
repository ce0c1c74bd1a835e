"""MagnaTagATune (Law et al. 2009): ``annotations_final.csv`` as published, top-50 tags.

Inputs:
    ``--from``: the audio root holding the 16 folders ``0`` ... ``f`` (the unzipped
    ``mp3.zip``). ``--annotations`` (default ``<from>/annotations_final.csv``): tab-separated,
    every field double-quoted, the columns ``clip_id``, 188 binary tag columns and ``mp3_path``
    (``f/american_bach_soloists-...-30-59.mp3``). ``--clip-info`` (default
    ``<from>/clip_info_final.csv`` when present): same format, its ``clip_id`` and ``artist``
    columns give each clip's artist.

Tags: the ``--top`` (50) tags with the most clips; a tie in clip count is broken by the tag
name in alphabetical order, so the choice does not depend on column order (the report says
whether a tie straddles the cut). Tag names are kept as written (``no vocals``, ``female``).

Split: the 12:1:3 split by the first character of the mp3 folder that most MagnaTagATune tagging
papers use since Dieleman & Schrauwen (2014): folders ``0``-``b`` train, ``c`` valid, ``d``-``f``
test. It is not artist-disjoint; with ``clip_info_final.csv`` the report shows by how much.

Clips with none of the kept tags stay in the manifest as labelled negatives (all 50 tags
absent), the usual practice; the report counts them per split. ``--drop-untagged`` leaves them
out instead (Lee et al. 2017's filtered lists also drop them), and the report counts what it
dropped. The crowd's tags are not verified.
"""

from __future__ import annotations

import csv
from collections import Counter
from pathlib import Path

from raytag.data.corpora.base import CorpusAdapter, CorpusError, CorpusOption, CorpusRow, CorpusRows, check_tag

ANNOTATIONS = "annotations_final.csv"
CLIP_INFO = "clip_info_final.csv"
FOLDER_SPLITS = {**{c: "train" for c in "0123456789ab"}, "c": "valid", **{c: "test" for c in "def"}}


def read_tab_quoted(path: Path, required: tuple[str, ...]) -> tuple[list[str], list[tuple[int, list[str]]]]:
    """``(header, [(line number, fields)])`` of a tab-separated, double-quoted file, strictly."""
    if not path.is_file():
        raise CorpusError(f"{path}: file not found")
    with path.open(encoding="utf-8", newline="") as f:
        reader = csv.reader(f, delimiter="\t", quotechar='"')
        try:
            header = next(reader, [])
            missing = [c for c in required if c not in header]
            if missing:
                raise CorpusError(f"{path}:1: missing column(s) {', '.join(missing)} (is it tab-separated?)")
            rows, next_line = [], reader.line_num + 1
            for fields in reader:
                line_no, next_line = next_line, reader.line_num + 1
                if not fields:
                    continue
                if len(fields) != len(header):
                    raise CorpusError(f"{path}:{line_no}: {len(fields)} fields, the header has {len(header)}")
                rows.append((line_no, fields))
        except csv.Error as exc:
            raise CorpusError(f"{path}:{reader.line_num}: malformed ({exc})") from None
        except UnicodeDecodeError as exc:
            raise CorpusError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    return header, rows


def top_tags(counts: dict[str, int], top: int) -> list[str]:
    """The ``top`` tags by clip count, ties broken alphabetically."""
    return [tag for tag, _ in sorted(counts.items(), key=lambda item: (-item[1], item[0]))[:top]]


def _artists(path: Path) -> dict[str, str]:
    header, rows = read_tab_quoted(path, ("clip_id", "artist"))
    clip, artist = header.index("clip_id"), header.index("artist")
    return {fields[clip]: fields[artist] for _, fields in rows if fields[artist].strip()}


def build_rows(
    *,
    source: Path,
    annotations: Path | None = None,
    clip_info: Path | None = None,
    top: int = 50,
    drop_untagged: bool = False,
) -> CorpusRows:
    """Rows of MagnaTagATune with its ``top`` most frequent tags and the folder split.

    Args:
        source: audio root (folders ``0`` ... ``f``).
        annotations: ``annotations_final.csv`` (default: in ``source``).
        clip_info: ``clip_info_final.csv`` for artists (default: in ``source`` if present).
        top: how many tags to keep (default 50).
        drop_untagged: leave out clips with none of the kept tags (default: keep them).

    Raises:
        CorpusError: a missing file or column, a row of the wrong length, a tag value other than
            0/1, an ``mp3_path`` outside the folders ``0`` ... ``f``, a tag containing ``;``.
    """
    path = Path(annotations) if annotations else source / ANNOTATIONS
    header, rows = read_tab_quoted(path, ("clip_id", "mp3_path"))
    clip_col, path_col = header.index("clip_id"), header.index("mp3_path")
    tag_cols = {i: check_tag(name, f"{path}:1") for i, name in enumerate(header) if i not in (clip_col, path_col)}
    if top < 1 or top > len(tag_cols):
        raise CorpusError(f"--top {top}: the file has {len(tag_cols)} tag columns")
    counts = Counter()
    for line_no, fields in rows:
        for i, tag in tag_cols.items():
            if fields[i] not in ("0", "1"):
                raise CorpusError(f"{path}:{line_no}: column {tag!r} is {fields[i]!r}, expected 0 or 1")
            counts[tag] += fields[i] == "1"
    kept = top_tags(counts, top)
    info_path = Path(clip_info) if clip_info else source / CLIP_INFO
    artists = _artists(info_path) if clip_info or info_path.is_file() else {}
    kept_cols = [(i, tag) for i, tag in tag_cols.items() if tag in set(kept)]
    out, untagged, dropped = [], Counter(), 0
    for line_no, fields in rows:
        where = f"{path}:{line_no}"
        relative = fields[path_col]
        folder = relative.split("/", 1)[0]
        if folder not in FOLDER_SPLITS or "/" not in relative or ".." in Path(relative).parts:
            raise CorpusError(f"{where}: mp3_path {relative!r} is not in one of the folders 0 ... f")
        split = FOLDER_SPLITS[folder]
        tags = tuple(tag for i, tag in kept_cols if fields[i] == "1")
        if not tags:
            untagged[split] += 1
            if drop_untagged:
                dropped += 1
                continue
        out.append(CorpusRow(str(source / relative), tags, split, False, artists.get(fields[clip_col]), where))
    ranked = sorted(counts.values(), reverse=True)
    tie = top < len(ranked) and ranked[top - 1] == ranked[top]
    notes = [
        f"tags: the {top} with most clips in {path.name} (ties broken alphabetically"
        + (f"; a tie at {ranked[top - 1]} clips straddles the cut)" if tie else ")"),
        "split: by mp3 folder, 0-b train, c valid, d-f test (12:1:3)",
        "clips with none of the kept tags: "
        + ", ".join(f"{s} {untagged[s]}" for s in ("train", "valid", "test"))
        + (f"; dropped ({dropped}, --drop-untagged)" if drop_untagged else "; kept as labelled negatives"),
    ]
    if artists:
        notes.append(f"artists from {info_path.name}; {sum(r.artist is None for r in out)} clips have none")
    return CorpusRows(out, notes)


ADAPTER = CorpusAdapter(
    name="magnatagatune",
    summary="MagnaTagATune annotations_final.csv, top-50 tags, 12:1:3 folder split",
    source_help="audio root holding the folders 0 ... f",
    options=(
        CorpusOption("annotations", Path, "annotations_final.csv (default: in --from)"),
        CorpusOption("clip_info", Path, "clip_info_final.csv for artists (default: in --from if present)"),
        CorpusOption("top", int, "how many of the most frequent tags to keep (default 50)", default=50),
        CorpusOption("drop_untagged", bool, "leave out clips with none of the kept tags"),
    ),
    build=build_rows,
)
