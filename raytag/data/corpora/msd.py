"""Million Song Dataset with the 50 Last.fm tags: the split files of Lee et al. (2017).

These are the files most MSD tagging work since uses (Won et al. 2020 and 2021 among them),
distributed as ``split/msd`` of minzwon/sota-music-tagging-models and as ``MSD_split`` of
jongpillee/music_dataset_split; they refine Choi et al.'s (2016) split to clips of at least
29.1 s. Inputs, in ``--split-dir``:

- ``filtered_list_train.cP``: a pickled list of MSD track ids (``TRAADIN128F931D672``); the
  first 201,680 are the training set, the remaining 11,774 validation (``--train-count``);
- ``filtered_list_test.cP``: the 28,435 test ids;
- ``msd_id_to_tag_vector.cP``: a pickled dict from track id to a 0/1 NumPy vector over the tags;
- ``50tagList.txt``: the tag names, one per line, in vector order (``rock``, ``Hip-Hop``, ...);
- optionally ``MSD_id_to_7D_id.pkl`` and ``7D_id_to_path.pkl`` (track id -> 7digital id ->
  ``8/9/8947470.clip.mp3``), needed only by templates that use ``{id7}`` or ``{path7}``.

The pickles come from Python 2's cPickle and are loaded with a restricted unpickler that
accepts plain data and numeric NumPy arrays only (:mod:`raytag.data.corpora.safe_pickle`).

Audio paths: ``--path-template`` under ``--from``, with the fields ``{id}`` (MSD track id),
``{id7}`` (7digital id) and ``{path7}`` (the 7digital relative path); the default
``{id[2]}/{id[3]}/{id[4]}/{id}.clip.mp3`` is the track-id folder layout of the 30 s previews.
Artists come from MSD's ``unique_tracks.txt`` (``--unique-tracks``; lines
``TRACK_ID<SEP>SONG_ID<SEP>ARTIST<SEP>TITLE``) when given. Last.fm tags are crowd tags: rows
are not marked verified.
"""

from __future__ import annotations

import pickle
import re
import string
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from raytag.data.corpora.base import CorpusAdapter, CorpusError, CorpusOption, CorpusRow, CorpusRows, check_tag
from raytag.data.corpora.safe_pickle import load_pickle

TRAIN_LIST, TEST_LIST = "filtered_list_train.cP", "filtered_list_test.cP"
TAG_VECTORS, TAG_LIST = "msd_id_to_tag_vector.cP", "50tagList.txt"
ID7_MAP, PATH7_MAP = "MSD_id_to_7D_id.pkl", "7D_id_to_path.pkl"
DEFAULT_TEMPLATE = "{id[2]}/{id[3]}/{id[4]}/{id}.clip.mp3"
TRAIN_COUNT = 201_680
_TRACK_ID = re.compile(r"TR[A-Z0-9]{16}")
_FIELD = re.compile(r"(id|id7|path7)(\[\d+\])?")


def _load(path: Path, *, allow_arrays: bool = False):
    if not path.is_file():
        raise CorpusError(f"{path}: file not found")
    try:
        return load_pickle(path, allow_arrays=allow_arrays)
    except pickle.UnpicklingError as exc:
        raise CorpusError(str(exc)) from None


def _as_text(value, where: str) -> str:
    if isinstance(value, bytes):
        value = value.decode("ascii", errors="replace")
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        return str(int(value))
    if not isinstance(value, str):
        raise CorpusError(f"{where}: expected a string, found {type(value).__name__}")
    return value


def read_id_list(path: Path) -> list[str]:
    """A pickled list of MSD track ids, checked for format and duplicates."""
    ids = _load(path)
    if not isinstance(ids, (list, tuple)):
        raise CorpusError(f"{path}: expected a list of track ids, found {type(ids).__name__}")
    out, seen = [], set()
    for i, value in enumerate(ids):
        track = _as_text(value, f"{path}[{i}]")
        if not _TRACK_ID.fullmatch(track):
            raise CorpusError(f"{path}[{i}]: {track!r} is not an MSD track id")
        if track in seen:
            raise CorpusError(f"{path}[{i}]: track {track} is listed twice")
        seen.add(track)
        out.append(track)
    return out


def read_tag_list(path: Path) -> list[str]:
    """Tag names, one per line (blank lines ignored), each checked for the manifest."""
    if not path.is_file():
        raise CorpusError(f"{path}: file not found")
    tags = []
    try:
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as exc:
        raise CorpusError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    for line_no, line in enumerate(text.splitlines(), start=1):
        if line.strip():
            tags.append(check_tag(line.strip(), f"{path}:{line_no}"))
    if len(set(tags)) != len(tags):
        raise CorpusError(f"{path}: a tag is listed twice")
    return tags


def tag_vector(value, tags: Sequence[str], where: str) -> tuple[str, ...]:
    """The tags a 0/1 vector (an array or a list of numbers) marks."""
    vector = np.asarray(value).reshape(-1) if isinstance(value, (np.ndarray, list, tuple)) else None
    if vector is None or vector.dtype.kind not in "biuf":
        raise CorpusError(f"{where}: expected a numeric tag vector, found {type(value).__name__}")
    if len(vector) != len(tags):
        raise CorpusError(f"{where}: the tag vector has {len(vector)} entries, the tag list {len(tags)}")
    if not np.all((vector == 0) | (vector == 1)):
        raise CorpusError(f"{where}: tag vector values must be 0 or 1, found {sorted(set(vector.tolist()))[:5]}")
    return tuple(tag for tag, flag in zip(tags, vector) if flag)


def check_template(template: str) -> set[str]:
    """The fields a path template uses; only ``id``, ``id7`` and ``path7`` (optionally indexed)."""
    roots = set()
    try:
        parsed = list(string.Formatter().parse(template))
    except ValueError as exc:
        raise CorpusError(f"--path-template {template!r}: {exc}") from None
    for _, name, spec, conversion in parsed:
        if name is None:
            continue
        if not _FIELD.fullmatch(name) or spec or conversion:
            raise CorpusError(
                f"--path-template {template!r}: field {{{name}}} not allowed; use {{id}}, {{id7}}, {{path7}} "
                "or an indexed character such as {id[2]}"
            )
        roots.add(name.split("[")[0])
    if "id" not in roots and "id7" not in roots and "path7" not in roots:
        raise CorpusError(f"--path-template {template!r} names no track (use {{id}}, {{id7}} or {{path7}})")
    return roots


def read_artists(path: Path) -> dict[str, str]:
    """Track id -> artist name from MSD's ``unique_tracks.txt``."""
    if not path.is_file():
        raise CorpusError(f"{path}: file not found")
    artists = {}
    with path.open(encoding="utf-8", errors="surrogateescape") as f:
        for line_no, line in enumerate(f, start=1):
            try:
                line.encode("utf-8")
            except UnicodeEncodeError:
                raise CorpusError(f"{path}:{line_no}: not UTF-8 text") from None
            if not line.strip():
                continue
            parts = line.rstrip("\r\n").split("<SEP>")
            if len(parts) != 4:
                raise CorpusError(f"{path}:{line_no}: expected TRACK_ID<SEP>SONG_ID<SEP>ARTIST<SEP>TITLE")
            artists[parts[0]] = parts[2]
    return artists


def build_rows(
    *,
    source: Path,
    split_dir: Path,
    path_template: str = DEFAULT_TEMPLATE,
    train_count: int = TRAIN_COUNT,
    unique_tracks: Path | None = None,
) -> CorpusRows:
    """Rows of the MSD top-50 split: train, valid (the tail of the train list) and test.

    Raises:
        CorpusError: a missing or refused pickle (any global but NumPy's array reconstruction),
            a malformed id or tag vector, a track in two lists or without a tag vector, a bad
            template.
    """
    split_dir = Path(split_dir).expanduser().resolve()
    fields = check_template(path_template)
    tags = read_tag_list(split_dir / TAG_LIST)
    train_ids, test_ids = read_id_list(split_dir / TRAIN_LIST), read_id_list(split_dir / TEST_LIST)
    if not 0 < train_count <= len(train_ids):
        raise CorpusError(f"--train-count {train_count}: {TRAIN_LIST} lists {len(train_ids)} tracks")
    both = set(train_ids) & set(test_ids)
    if both:
        raise CorpusError(f"{len(both)} tracks are in both {TRAIN_LIST} and {TEST_LIST}, e.g. {sorted(both)[0]}")
    vectors = _load(split_dir / TAG_VECTORS, allow_arrays=True)
    if not isinstance(vectors, dict):
        raise CorpusError(f"{split_dir / TAG_VECTORS}: expected a dict, found {type(vectors).__name__}")
    vectors = {_as_text(k, f"{split_dir / TAG_VECTORS} key"): v for k, v in vectors.items()}
    without = [t for t in train_ids + test_ids if t not in vectors]
    if without:
        raise CorpusError(
            f"{split_dir / TAG_VECTORS}: no tag vector for {len(without)} listed tracks, e.g. {without[0]}"
        )
    id7, path7 = {}, {}
    if fields & {"id7", "path7"}:
        id7 = {_as_text(k, ID7_MAP): _as_text(v, ID7_MAP) for k, v in _load(split_dir / ID7_MAP).items()}
    if "path7" in fields:
        path7 = {_as_text(k, PATH7_MAP): _as_text(v, PATH7_MAP) for k, v in _load(split_dir / PATH7_MAP).items()}
    artists = read_artists(Path(unique_tracks)) if unique_tracks else {}
    parts = [
        (TRAIN_LIST, train_ids[:train_count], "train", 0),
        (TRAIN_LIST, train_ids[train_count:], "valid", train_count),
        (TEST_LIST, test_ids, "test", 0),
    ]
    rows = []
    for name, ids, split, offset in parts:
        for i, track in enumerate(ids, start=offset):
            where = f"{split_dir / name}[{i}]"
            values = {"id": track}
            if fields & {"id7", "path7"}:
                if track not in id7:
                    raise CorpusError(f"{split_dir / ID7_MAP}: no 7digital id for {track} ({where})")
                values["id7"] = id7[track]
            if "path7" in fields:
                if values["id7"] not in path7:
                    raise CorpusError(
                        f"{split_dir / PATH7_MAP}: no path for 7digital id {values['id7']} ({where})"
                    )
                values["path7"] = path7[values["id7"]]
            try:
                relative = path_template.format(**values)
            except IndexError:
                raise CorpusError(
                    f"--path-template {path_template!r}: an index is past the end of {values}"
                ) from None
            tags_of = tag_vector(vectors[track], tags, f"{split_dir / TAG_VECTORS}[{track}]")
            rows.append(CorpusRow(str(source / relative), tags_of, split, False, artists.get(track), where))
    present = {tag for row in rows for tag in row.tags}
    notes = [
        f"split: the first {train_count:,} of {TRAIN_LIST} train, the other {len(train_ids) - train_count:,} valid, "
        f"{TEST_LIST} test",
        f"audio: {source}/{path_template}",
    ]
    if len(present) < len(tags):
        notes.append(f"tags of {TAG_LIST} no listed track has: {', '.join(t for t in tags if t not in present)}")
    if unique_tracks:
        notes.append(f"artists from {Path(unique_tracks).name}; {sum(r.artist is None for r in rows)} tracks have none")
    return CorpusRows(rows, notes)


ADAPTER = CorpusAdapter(
    name="msd",
    summary="Million Song Dataset, 50 Last.fm tags, the split pickles of Lee et al. 2017",
    source_help="audio root of the MSD 30 s previews",
    options=(
        CorpusOption(
            "split_dir", Path, f"folder with {TRAIN_LIST}, {TEST_LIST}, {TAG_VECTORS}, {TAG_LIST}", required=True
        ),
        CorpusOption(
            "path_template", str, f"audio path under --from (default {DEFAULT_TEMPLATE})", default=DEFAULT_TEMPLATE
        ),
        CorpusOption(
            "train_count", int, f"leading ids of {TRAIN_LIST} that train (default {TRAIN_COUNT})", default=TRAIN_COUNT
        ),
        CorpusOption("unique_tracks", Path, "MSD unique_tracks.txt, for artists"),
    ),
    build=build_rows,
)
