"""MTG-Jamendo (Bogdanov et al. 2019): the autotagging split files as published.

Inputs:
    ``--split-dir``: a split folder of the MTG/mtg-jamendo-dataset repository,
    ``data/splits/split-N``, with ``autotagging_{top50tags,genre,instrument,moodtheme}-{train,
    validation,test}.tsv`` and, for every tag, ``autotagging-{train,validation,test}.tsv``
    (``--subset all``). ``--from``: the audio root that holds the folders ``00`` ... ``99``.

Format (checked strictly): tab-separated, CRLF line ends, the header ``TRACK_ID ARTIST_ID
ALBUM_ID PATH DURATION TAGS``, and every tag in a field of its own after ``DURATION``
(``genre---rock``, ``instrument---piano``, ``mood/theme---sad``), so a row has 5 + n fields.
``PATH`` (``14/1234.mp3``) is relative to the audio root; ``--low-quality`` uses the smaller
``audio-low`` download instead, whose files are named ``14/1234.low.mp3``.

Splits are the files': train, validation -> valid, test. ``ARTIST_ID`` is kept as the artist
(the official splits are artist-disjoint). Tags are kept as written, category prefix included.
Tags come from the uploading artists, so rows are not marked verified. Split-0 top-50:
32,136 / 10,888 / 11,356 rows, 50 tags (31 genre, 14 instrument, 5 mood/theme).
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from raytag.data.corpora.base import CorpusAdapter, CorpusError, CorpusOption, CorpusRow, CorpusRows, check_tag

SUBSETS = ("top50tags", "genre", "instrument", "moodtheme", "all")
HEADER = ("TRACK_ID", "ARTIST_ID", "ALBUM_ID", "PATH", "DURATION", "TAGS")
PARTS = (("train", "train"), ("validation", "valid"), ("test", "test"))


def split_file(split_dir: Path, subset: str, part: str) -> Path:
    """The published file of one subset and part (``train``, ``validation`` or ``test``)."""
    name = f"autotagging-{part}.tsv" if subset == "all" else f"autotagging_{subset}-{part}.tsv"
    return split_dir / name


def _lines(path: Path) -> list[str]:
    if not path.is_file():
        raise CorpusError(f"{path}: split file not found")
    try:
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as exc:
        raise CorpusError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    lines = [line[:-1] if line.endswith("\r") else line for line in text.split("\n")]
    if lines and lines[-1] == "":
        lines.pop()
    return lines


def read_split_file(path: Path) -> list[tuple[int, list[str]]]:
    """``(line number, fields)`` of every track row of one split file, header checked."""
    lines = _lines(path)
    if not lines or tuple(lines[0].split("\t")) != HEADER:
        found = lines[0].split("\t") if lines else []
        raise CorpusError(f"{path}:1: expected the header {' '.join(HEADER)} (tab-separated), found {found}")
    rows = []
    for line_no, line in enumerate(lines[1:], start=2):
        fields = line.split("\t")
        if len(fields) < len(HEADER):
            raise CorpusError(
                f"{path}:{line_no}: {len(fields)} fields; a row needs TRACK_ID, ARTIST_ID, ALBUM_ID, PATH, "
                "DURATION and at least one tag, tab-separated"
            )
        rows.append((line_no, fields))
    return rows


def _audio_path(source: Path, relative: str, low_quality: bool, where: str) -> str:
    parts = Path(relative).parts
    if not relative or Path(relative).is_absolute() or ".." in parts:
        raise CorpusError(f"{where}: PATH {relative!r} is not a path under the audio root")
    if low_quality:
        if not relative.endswith(".mp3"):
            raise CorpusError(f"{where}: PATH {relative!r} does not end in .mp3; cannot name its .low.mp3")
        relative = relative[: -len(".mp3")] + ".low.mp3"
    return str(source / relative)


def build_rows(*, source: Path, split_dir: Path, subset: str = "top50tags", low_quality: bool = False) -> CorpusRows:
    """Rows of one MTG-Jamendo subset's three split files.

    Args:
        source: the audio root (folders ``00`` ... ``99``).
        split_dir: ``data/splits/split-N`` of the dataset repository.
        subset: ``top50tags`` (default), ``genre``, ``instrument``, ``moodtheme`` or ``all``.
        low_quality: point at the ``audio-low`` files (``*.low.mp3``).

    Raises:
        CorpusError: a missing file, a wrong header, a short row, a bad tag or DURATION, a
            track listed twice.
    """
    if subset not in SUBSETS:
        raise CorpusError(f"unknown subset {subset!r}; expected one of {', '.join(SUBSETS)}")
    split_dir = Path(split_dir).expanduser().resolve()
    rows, first_seen, tags = [], {}, Counter()
    for part, split in PARTS:
        path = split_file(split_dir, subset, part)
        for line_no, fields in read_split_file(path):
            where = f"{path}:{line_no}"
            track_id, artist_id, _, relative, duration = fields[:5]
            if track_id in first_seen:
                raise CorpusError(f"{where}: track {track_id} is listed twice (first at {first_seen[track_id]})")
            first_seen[track_id] = where
            try:
                float(duration)
            except ValueError:
                raise CorpusError(f"{where}: DURATION {duration!r} is not a number (columns shifted?)") from None
            row_tags = tuple(check_tag(tag, where) for tag in fields[5:])
            tags.update(row_tags)
            rows.append(
                CorpusRow(
                    path=_audio_path(source, relative, low_quality, where),
                    tags=row_tags,
                    split=split,
                    verified=False,
                    artist=artist_id or None,
                    where=where,
                )
            )
    categories = Counter(tag.split("---")[0] for tag in tags)
    notes = [
        f"subset {subset} from {split_dir}" + (" (audio-low .low.mp3 files)" if low_quality else ""),
        "tags per category: " + ", ".join(f"{name} {n}" for name, n in sorted(categories.items())),
    ]
    return CorpusRows(rows, notes)


ADAPTER = CorpusAdapter(
    name="mtg-jamendo",
    summary="MTG-Jamendo autotagging split files (TSV, one tag per extra field)",
    source_help="audio root holding the folders 00 ... 99",
    options=(
        CorpusOption("split_dir", Path, "data/splits/split-N folder of the dataset repository", required=True),
        CorpusOption("subset", str, "tag subset (default top50tags)", default="top50tags", choices=SUBSETS),
        CorpusOption("low_quality", bool, "use the audio-low files (NN/ID.low.mp3)"),
    ),
    build=build_rows,
)
