"""Property-based tests of the corpus adapters' readers of published metadata (MTG-Jamendo split
TSVs, MagnaTagATune's quoted TSVs, the MSD split pickles and tag list, FSDKaggle2019's label
CSVs): any damaged corpus either makes a manifest or raises CorpusError/ManifestError naming
the file (or the option at fault); never another exception or a hang.

Each case starts from the corpus files the adapters' own tests write in the published formats
(tests/test_corpus_*.py), then edits one file: a field of a line replaced by odd text, a field
dropped or added, or its bytes damaged; MSD's pickles get values of other kinds (ids that are
not ids, vectors that are not 0/1, other containers) or damaged bytes.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
from hypothesis import given
from hypothesis import strategies as st
from parser_properties import PROFILE, damaged, odd_text, parses_or_refuses
from test_corpus_fsd_kaggle2019 import write_zenodo
from test_corpus_magnatagatune import write_corpus as write_magnatagatune
from test_corpus_msd import py2_pickle, track_id
from test_corpus_msd import write_split_dir as write_msd
from test_corpus_mtg_jamendo import write_split_dir as write_mtg

from raytag.data.corpora import get_corpus, make_manifest


@st.composite
def edited_text(draw, data: bytes, separator: str) -> bytes:
    """A text file with one line's field replaced, dropped or added, then byte damage."""
    text = data.decode("utf-8")
    line_end = "\r\n" if "\r\n" in text else "\n"
    lines = text.split(line_end)
    for _ in range(draw(st.integers(0, 2))):
        i = draw(st.integers(0, len(lines) - 1))
        fields = lines[i].split(separator)
        j = draw(st.integers(0, len(fields) - 1))
        action = draw(st.sampled_from(["replace", "replace", "drop", "add"]))
        if action == "replace":
            fields[j] = draw(st.one_of(odd_text(), odd_text().map(lambda s: f'"{s}"')))
        elif action == "drop":
            fields.pop(j)
        else:
            fields.insert(j, draw(odd_text()))
        lines[i] = separator.join(fields)
    return draw(damaged(line_end.join(lines).encode("utf-8")))


def run_adapter(name: str, folder: Path, prop: str, **options) -> None:
    """Makes the manifest; it is made or the error names a file of ``folder`` or an option."""
    adapter = get_corpus(name)
    names = [str(folder), name, *(f"--{key.replace('_', '-')}" for key in options)]
    parses_or_refuses(prop, lambda: make_manifest(adapter, source=folder, output=folder / "out" / "manifest.csv",
                                                  overwrite=True, allow_missing=True, **options), names)


def fresh(tmp_path: Path) -> Path:
    return Path(tempfile.mkdtemp(dir=tmp_path))


@PROFILE
@given(data=st.data(), part=st.sampled_from(["train", "validation", "test"]), low_quality=st.booleans())
def test_any_mtg_jamendo_split_files_make_a_manifest_or_are_refused(tmp_path, data, part, low_quality):
    folder = fresh(tmp_path)
    splits = write_mtg(folder / "splits")
    path = splits / f"autotagging_top50tags-{part}.tsv"
    path.write_bytes(data.draw(edited_text(path.read_bytes(), "\t")))
    run_adapter("mtg-jamendo", folder, "corpus-mtg-jamendo", split_dir=splits, low_quality=low_quality)


@PROFILE
@given(data=st.data(), name=st.sampled_from(["annotations_final.csv", "clip_info_final.csv"]),
       top=st.integers(-1, 8), drop_untagged=st.booleans())
def test_any_magnatagatune_annotations_make_a_manifest_or_are_refused(tmp_path, data, name, top, drop_untagged):
    folder = write_magnatagatune(fresh(tmp_path))
    path = folder / name
    path.write_bytes(data.draw(edited_text(path.read_bytes(), "\t")))
    run_adapter("magnatagatune", folder, "corpus-magnatagatune", top=top, drop_untagged=drop_untagged)


ODD_IDS = st.one_of(st.sampled_from([track_id(1), track_id(2), track_id(500)]), odd_text(), st.integers(),
                    st.none(), st.binary(max_size=20))
ODD_VECTORS = st.one_of(
    st.lists(st.integers(-1, 2), max_size=5).map(lambda v: np.array(v, dtype=np.int64)),
    st.lists(st.floats(allow_nan=True), max_size=4).map(lambda v: np.array(v, dtype=np.float64)),
    st.lists(st.integers(0, 1), min_size=4, max_size=4), odd_text(), st.none())


@st.composite
def msd_edit(draw) -> tuple[str, bytes | None]:
    """Which MSD file to change and its new bytes."""
    name = draw(st.sampled_from(["filtered_list_train.cP", "filtered_list_test.cP", "msd_id_to_tag_vector.cP",
                                 "50tagList.txt", "unique_tracks.txt"]))
    if name == "50tagList.txt":
        return name, draw(damaged("\n".join(draw(st.lists(odd_text(), max_size=5))).encode("utf-8")))
    if name == "unique_tracks.txt":
        line = "<SEP>".join(draw(st.lists(odd_text(), min_size=1, max_size=5)))
        return name, draw(damaged(f"{track_id(0)}<SEP>S<SEP>Artist<SEP>Title\n{line}\n".encode("utf-8")))
    if name == "msd_id_to_tag_vector.cP":
        value = draw(st.one_of(st.dictionaries(ODD_IDS, ODD_VECTORS, max_size=4), st.lists(ODD_IDS, max_size=3)))
    else:
        value = draw(st.one_of(st.lists(ODD_IDS, max_size=6), st.dictionaries(st.text(max_size=3), st.integers()),
                               odd_text()))
    try:
        data = py2_pickle(value)
    except (TypeError, ValueError, KeyError, AttributeError):  # a value the test's Python 2 pickler cannot write
        return name, None
    return name, draw(damaged(data))


@PROFILE
@given(edit=msd_edit(), train_count=st.sampled_from([1, 3, 6, 0, 100]),
       template=st.sampled_from(["{id[2]}/{id[3]}/{id[4]}/{id}.clip.mp3", "{id}.mp3", "{id[40]}.mp3"]))
def test_any_msd_split_files_make_a_manifest_or_are_refused(tmp_path, edit, train_count, template):
    folder = fresh(tmp_path)
    splits, _, _ = write_msd(folder / "split")
    (splits / "unique_tracks.txt").write_text(f"{track_id(0)}<SEP>S<SEP>Artist<SEP>Title\n")
    name, data = edit
    if data is not None:
        (splits / name).write_bytes(data)
    run_adapter("msd", folder, "corpus-msd", split_dir=splits, train_count=train_count, path_template=template,
                unique_tracks=splits / "unique_tracks.txt")


@PROFILE
@given(data=st.data(), name=st.sampled_from(["train_curated_post_competition.csv", "train_noisy_post_competition.csv",
                                             "test_post_competition.csv"]),
       valid_fraction=st.sampled_from([0.0, 0.1, 0.5, 0.99]))
def test_any_fsd_kaggle2019_label_csvs_make_a_manifest_or_are_refused(tmp_path, data, name, valid_fraction):
    folder = write_zenodo(fresh(tmp_path))
    path = folder / "FSDKaggle2019.meta" / name
    path.write_bytes(data.draw(edited_text(path.read_bytes(), ",")))
    run_adapter("fsd-kaggle2019", folder, "corpus-fsd-kaggle2019", valid_fraction=valid_fraction)
