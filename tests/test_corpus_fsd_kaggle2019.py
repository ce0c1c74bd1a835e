"""FSDKaggle2019 adapter on label CSVs in the published formats (labels comma-separated inside
one quoted field), in the Zenodo and the Kaggle layouts."""

import csv
from collections import Counter
from pathlib import Path

import pytest

from raytag.data.corpora import CorpusError, get_corpus, make_manifest
from raytag.data.corpora.fsd_kaggle2019 import validation_pick
from raytag.data.manifest import read_manifest

LABELS = ["Bark", "Walk_and_footsteps", "Slam", "Bathtub_(filling_or_washing)", "Accordion"]


def write_csv(path: Path, header: list[str], rows: list[list[str]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as f:
        csv.writer(f, lineterminator="\n").writerows([header, *rows])


def curated_rows(count: int = 40) -> list[list[str]]:
    rows = []
    for i in range(count):
        labels = [LABELS[i % 4]] + (["Slam"] if i % 5 == 0 and LABELS[i % 4] != "Slam" else [])
        rows.append([f"{i:08x}.wav", ",".join(labels), str(100000 + i), "CC-BY"])
    rows.append(["f76181c4.wav", "Accordion", "99", "CC0"])  # listed as mislabelled in the README
    return rows


def write_zenodo(root: Path) -> Path:
    meta = root / "FSDKaggle2019.meta"
    write_csv(meta / "train_curated_post_competition.csv", ["fname", "labels", "freesound_id", "license"], curated_rows())
    noisy = [[f"n{i:07x}.wav", "Bark,Walk_and_footsteps" if i % 2 else "Accordion", f"https://flickr/{i}", "CC-BY"] for i in range(6)]
    write_csv(meta / "train_noisy_post_competition.csv", ["fname", "labels", "flickr_video_URL", "license"], noisy)
    test = [[f"t{i:07x}.wav", "Slam", "Public" if i % 2 else "Private", str(i), "CC0"] for i in range(5)]
    write_csv(meta / "test_post_competition.csv", ["fname", "labels", "usage", "freesound_id", "license"], test)
    for folder in ("FSDKaggle2019.audio_train_curated", "FSDKaggle2019.audio_train_noisy", "FSDKaggle2019.audio_test"):
        (root / folder).mkdir()
    (root / "FSDKaggle2019.audio_train_curated" / "00000000.wav").write_bytes(b"")
    return root


def test_zenodo_layout(tmp_path):
    root = write_zenodo(tmp_path / "fsd")
    report = make_manifest(get_corpus("fsd-kaggle2019"), source=root, output=tmp_path / "m.csv")
    tracks = {Path(t.path).name: t for t in read_manifest(tmp_path / "m.csv").tracks}
    assert report.rows_per_split == {"train": 36 + 6, "valid": 4, "test": 5, "unlabeled": 0}
    assert tracks["00000000.wav"].tags == ("Bark", "Slam")
    assert tracks["00000000.wav"].path == str(root / "FSDKaggle2019.audio_train_curated" / "00000000.wav")
    assert tracks["n0000001.wav"].tags == ("Bark", "Walk_and_footsteps") and not tracks["n0000001.wav"].verified
    assert tracks["n0000001.wav"].path.startswith(str(root / "FSDKaggle2019.audio_train_noisy"))
    assert tracks["t0000000.wav"].split == "test" and tracks["t0000000.wav"].verified
    assert all(t.verified for t in tracks.values() if t.split == "valid")
    assert "f76181c4.wav" not in tracks and "left out 1 curated clips the dataset README lists" in report.format()
    assert report.missing_audio == len(tracks) - 1 and report.artist_disjoint is None
    # Every curated label keeps a share of the validation clips.
    assert {t.tags[0] for t in tracks.values() if t.split == "valid"} == set(LABELS[:4])


def test_validation_pick_is_seeded_and_stratified():
    labels = [(LABELS[i % 4],) for i in range(400)] + [("Accordion", "Bark")] * 20
    pick = validation_pick(labels, fraction=0.1, seed=0)
    assert pick == validation_pick(labels, fraction=0.1, seed=0) != validation_pick(labels, fraction=0.1, seed=1)
    by_label = Counter(labels[i][0] for i in pick)
    assert by_label == {"Bark": 10, "Walk_and_footsteps": 10, "Slam": 10, "Bathtub_(filling_or_washing)": 10, "Accordion": 2}
    assert validation_pick(labels, fraction=0.0, seed=0) == set()


def test_kaggle_layout_without_test_labels_and_options(tmp_path):
    root = tmp_path / "kaggle"
    write_csv(root / "train_curated.csv", ["fname", "labels"], [row[:2] for row in curated_rows(10)])
    write_csv(root / "train_noisy.csv", ["fname", "labels"], [["n1.wav", "Bark"]])
    (root / "train_curated").mkdir()
    report = make_manifest(
        get_corpus("fsd-kaggle2019"), source=root, output=tmp_path / "m.csv", allow_missing=True, no_noisy=True, keep_known_bad=True, valid_fraction=0.2
    )
    paths = {t.path for t in read_manifest(tmp_path / "m.csv").tracks}
    assert str(root / "train_curated" / "f76181c4.wav") in paths and len(paths) == 11
    assert report.rows_per_split["test"] == 0 and report.rows_per_split["valid"] == 2
    text = report.format()
    assert "noisy set left out (--no-noisy)" in text and "test: no test_post_competition.csv found; no rows" in text


@pytest.mark.parametrize(
    "row, message",
    [
        (["x.wav", "Bark;Slam", "1", "CC0"], r"train_curated_post_competition.csv:43: tag 'Bark;Slam' contains ';'"),
        (["x.wav", "Bark", "Slam", "1", "CC0"], r"train_curated_post_competition.csv:43: 5 fields, the header has 4 \(labels must be one quoted field\)"),
        (["00000001.wav", "Bark", "1", "CC0"], r"curated_post_competition.csv:43: 00000001.wav is listed twice \(first on line 3\)"),
        (["x.wav", "Bark,", "1", "CC0"], r"csv:43: empty tag"),
    ],
)
def test_malformed_label_csvs_name_file_and_line(tmp_path, row, message):
    root = write_zenodo(tmp_path / "fsd")
    path = root / "FSDKaggle2019.meta" / "train_curated_post_competition.csv"
    with path.open("a", newline="") as f:
        csv.writer(f, lineterminator="\n").writerow(row)
    with pytest.raises(CorpusError, match=message):
        make_manifest(get_corpus("fsd-kaggle2019"), source=root, output=tmp_path / "m.csv")


def test_missing_curated_labels_and_bad_fraction(tmp_path):
    with pytest.raises(CorpusError, match="no train_curated_post_competition.csv or train_curated.csv"):
        make_manifest(get_corpus("fsd-kaggle2019"), source=tmp_path, output=tmp_path / "m.csv")
    with pytest.raises(CorpusError, match="--valid-fraction 1.0"):
        make_manifest(get_corpus("fsd-kaggle2019"), source=tmp_path, output=tmp_path / "m.csv", valid_fraction=1.0)
