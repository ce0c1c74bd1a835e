"""FSDKaggle2019 (Fonseca et al. 2019; DCASE 2019 task 2): curated, noisy and test clips.

Inputs, under ``--from``, in either published layout:

- Zenodo: ``FSDKaggle2019.meta/{train_curated,train_noisy,test}_post_competition.csv`` and the
  audio folders ``FSDKaggle2019.audio_{train_curated,train_noisy,test}/``;
- Kaggle competition: ``train_curated.csv``, ``train_noisy.csv`` and ``train_curated/``,
  ``train_noisy/``, ``test/`` (its test labels were never public, so no test rows).

Each CSV has the columns ``fname`` and ``labels`` (more columns are allowed: ``freesound_id``,
``license``, ``usage``); ``labels`` holds the clip's labels separated by commas inside one
quoted field (``"Walk_and_footsteps,Slam"``). ``--meta-dir`` points elsewhere for the CSVs.

Rows: curated clips are ``verified=true`` (people labelled them; correct but possibly
incomplete), noisy clips (Flickr videos, labels from metadata) ``verified=false``, test clips
``verified=true``. There is no official validation split: raytag takes a seeded fraction
(``--valid-fraction`` 0.1, ``--seed`` 0) of the curated clips, stratified by each clip's rarest
label, so every label keeps about the same share in valid; all noisy clips train. The dataset's
README lists five curated clips with wrong labels (a renaming bug) and one with no signal
(``1d44b0bd.wav``); they are left out and named in the report (``--keep-known-bad`` keeps them).
No artist information.
"""

from __future__ import annotations

import csv
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np

from raytag.data.corpora.base import CorpusAdapter, CorpusError, CorpusOption, CorpusRow, CorpusRows, check_tag

META = "FSDKaggle2019.meta"
# (set, post-competition CSV, competition CSV, Zenodo audio folder, Kaggle audio folder)
SETS = (
    ("curated", "train_curated_post_competition.csv", "train_curated.csv",
     "FSDKaggle2019.audio_train_curated", "train_curated"),
    ("noisy", "train_noisy_post_competition.csv", "train_noisy.csv", "FSDKaggle2019.audio_train_noisy", "train_noisy"),
    ("test", "test_post_competition.csv", None, "FSDKaggle2019.audio_test", "test"),
)
# From the dataset's README: wrong labels (renaming bug) and one clip without signal.
KNOWN_BAD_CURATED = ("f76181c4.wav", "77b925c2.wav", "6a1f682a.wav", "c7db12aa.wav", "7752cc8a.wav", "1d44b0bd.wav")


def read_label_csv(path: Path) -> list[tuple[str, tuple[str, ...], str]]:
    """``(fname, labels, where)`` per row of an FSDKaggle2019 label CSV, strictly."""
    with path.open(encoding="utf-8", newline="") as f:
        reader = csv.reader(f)
        try:
            header = [c.strip() for c in next(reader, [])]
            if "fname" not in header or "labels" not in header:
                raise CorpusError(f"{path}:1: expected the columns fname and labels, found {header}")
            name_col, label_col = header.index("fname"), header.index("labels")
            rows, seen, next_line = [], {}, reader.line_num + 1
            for fields in reader:
                line_no, next_line = next_line, reader.line_num + 1
                if not fields:
                    continue
                where = f"{path}:{line_no}"
                if len(fields) != len(header):
                    raise CorpusError(
                        f"{where}: {len(fields)} fields, the header has {len(header)} (labels must be one quoted field)"
                    )
                fname = fields[name_col].strip()
                if not fname or "/" in fname or fname in (".", ".."):
                    raise CorpusError(f"{where}: fname {fname!r} is not a file name")
                if fname in seen:
                    raise CorpusError(f"{where}: {fname} is listed twice (first on line {seen[fname]})")
                seen[fname] = line_no
                labels = tuple(check_tag(label.strip(), where) for label in fields[label_col].split(","))
                rows.append((fname, labels, where))
        except csv.Error as exc:
            raise CorpusError(f"{path}:{reader.line_num}: malformed CSV ({exc})") from None
        except UnicodeDecodeError as exc:
            raise CorpusError(f"{path}: not UTF-8 text ({exc.reason})") from None
    return rows


def validation_pick(labels: list[tuple[str, ...]], *, fraction: float, seed: int) -> set[int]:
    """Indices of clips for validation: per rarest label, a seeded ``round(fraction * n)`` of them."""
    counts = Counter(label for clip in labels for label in clip)
    groups: dict[str, list[int]] = defaultdict(list)
    for i, clip in enumerate(labels):
        groups[min(clip, key=lambda label: (counts[label], label))].append(i)
    rng = np.random.default_rng(seed)
    picked = set()
    for key in sorted(groups):
        members = groups[key]
        take = int(round(fraction * len(members)))
        picked.update(members[j] for j in rng.permutation(len(members))[:take])
    return picked


def _locate(source: Path, meta_dir: Path | None, post: str, competition: str | None) -> Path | None:
    folders = [Path(meta_dir)] if meta_dir else [source / META, source]
    for folder in folders:
        for name in (post, competition):
            if name and (folder / name).is_file():
                return folder / name
    return None


def build_rows(
    *,
    source: Path,
    meta_dir: Path | None = None,
    valid_fraction: float = 0.1,
    seed: int = 0,
    no_noisy: bool = False,
    keep_known_bad: bool = False,
) -> CorpusRows:
    """Rows of FSDKaggle2019: curated (train/valid, verified), noisy (train) and test.

    Raises:
        CorpusError: no curated CSV, a malformed CSV, a label containing ``;``, a bad fraction.
    """
    if not 0 <= valid_fraction < 1:
        raise CorpusError(f"--valid-fraction {valid_fraction}: expected a fraction in [0, 1)")
    rows, notes = [], []
    for name, post, competition, zenodo_audio, kaggle_audio in SETS:
        if name == "noisy" and no_noisy:
            notes.append("noisy set left out (--no-noisy)")
            continue
        csv_path = _locate(source, meta_dir, post, competition)
        if csv_path is None:
            if name == "curated":
                raise CorpusError(f"no {post} or {competition} in {meta_dir or source} (or {source / META})")
            notes.append(f"{name}: no {post}" + (f" or {competition}" if competition else "") + " found; no rows")
            continue
        # The Zenodo folder names, unless only the Kaggle ones exist.
        kaggle = not (source / zenodo_audio).is_dir() and (source / kaggle_audio).is_dir()
        audio = source / (kaggle_audio if kaggle else zenodo_audio)
        clips = read_label_csv(csv_path)
        if name == "curated" and not keep_known_bad:
            bad = [fname for fname, _, _ in clips if fname in KNOWN_BAD_CURATED]
            clips = [clip for clip in clips if clip[0] not in KNOWN_BAD_CURATED]
            notes.append(
                f"left out {len(bad)} curated clips the dataset README lists as mislabelled or silent: "
                + (", ".join(bad) or "none present")
            )
        valid = set()
        if name == "curated":
            valid = validation_pick([labels for _, labels, _ in clips], fraction=valid_fraction, seed=seed)
        split = {"curated": "train", "noisy": "train", "test": "test"}[name]
        for i, (fname, labels, where) in enumerate(clips):
            row_split = "valid" if i in valid else split
            rows.append(CorpusRow(str(audio / fname), labels, row_split, name != "noisy", None, where))
        notes.append(f"{name}: {len(clips):,} clips from {csv_path.name}, audio in {audio.name}/")
    notes.append(
        f"valid: {valid_fraction:.0%} of the curated clips (seed {seed}), stratified by each clip's rarest label; "
        "there is no official validation split"
    )
    return CorpusRows(rows, notes)


ADAPTER = CorpusAdapter(
    name="fsd-kaggle2019",
    summary="FSDKaggle2019 (curated verified, noisy unverified, test), Zenodo or Kaggle layout",
    source_help="folder holding the FSDKaggle2019.* folders (or the Kaggle files)",
    options=(
        CorpusOption("meta_dir", Path, "folder with the label CSVs (default: FSDKaggle2019.meta/ or --from)"),
        CorpusOption("valid_fraction", float, "share of curated clips to validate on (default 0.1)", default=0.1),
        CorpusOption("seed", int, "seed of the validation pick (default 0)", default=0),
        CorpusOption("no_noisy", bool, "leave out the noisy training set"),
        CorpusOption("keep_known_bad", bool, "keep the 6 curated clips the README lists as mislabelled or silent"),
    ),
    build=build_rows,
)
