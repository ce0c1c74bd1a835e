"""MagnaTagATune adapter on annotations written as published: tab-separated, every field
double-quoted, ``clip_id``, binary tag columns, ``mp3_path`` (fewer tag columns than the real 188)."""

from pathlib import Path

import pytest

from raytag.data.corpora import CorpusError, get_corpus, make_manifest
from raytag.data.corpora.magnatagatune import top_tags
from raytag.data.manifest import read_manifest

TAGS = ["no voice", "singer", "guitar", "classical", "slow", "techno"]
# clip_id, folder, artist, tags present
CLIPS = [
    (2, "f", "American Bach Soloists", {"classical", "singer"}),
    (6, "0", "Jacob Heringman", {"guitar", "classical", "slow"}),
    (10, "3", "Jacob Heringman", {"guitar", "slow"}),
    (11, "b", "Processor", {"techno"}),
    (12, "c", "Processor", {"techno", "guitar"}),
    (15, "d", "Kitka", {"no voice"}),
    (20, "e", "Kitka", set()),
    (21, "1", "Magnatune", {"singer"}),
]


def quoted(fields) -> str:
    return "\t".join(f'"{field}"' for field in fields)


def mp3_path(clip_id: int, folder: str) -> str:
    return f"{folder}/artist-album-{clip_id:02d}-title-30-59.mp3"


def write_corpus(folder: Path, clips=CLIPS) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    lines = [quoted(["clip_id", *TAGS, "mp3_path"])]
    info = [quoted(["clip_id", "track_number", "title", "artist", "album", "url", "segmentStart", "segmentEnd", "original_url", "mp3_path"])]
    for clip_id, folder_name, artist, tags in clips:
        path = mp3_path(clip_id, folder_name)
        lines.append(quoted([clip_id, *("1" if tag in tags else "0" for tag in TAGS), path]))
        info.append(quoted([clip_id, 1, "title", artist, "album", "http://x", 30, 59, "http://y", path]))
    (folder / "annotations_final.csv").write_text("\n".join(lines) + "\n")
    (folder / "clip_info_final.csv").write_text("\n".join(info) + "\n")
    return folder


def test_top_tags_folder_split_and_untagged_clips(tmp_path):
    source = write_corpus(tmp_path / "mtt")
    report = make_manifest(get_corpus("magnatagatune"), source=source, output=tmp_path / "m.csv", allow_missing=True, top=3)
    manifest = read_manifest(tmp_path / "m.csv")
    # Counts: guitar 3, classical 2, singer 2, slow 2, techno 2, no voice 1. Ties at 2 go alphabetically.
    assert set(manifest.vocabulary) == {"guitar", "classical", "singer"}
    by_id = {int(Path(t.path).name.split("-")[2]): t for t in manifest.tracks}
    assert by_id[2].path == str(source / mp3_path(2, "f"))
    assert by_id[6].tags == ("guitar", "classical") and by_id[6].split == "train"
    assert by_id[11].split == "train" and by_id[12].split == "valid" and by_id[15].split == "test"
    assert by_id[11].tags == () and by_id[20].tags == ()  # labelled negatives, kept
    assert by_id[6].artist == "Jacob Heringman" and not by_id[6].verified
    assert report.untagged_rows == 3 and report.rows_per_split == {"train": 4, "valid": 1, "test": 3, "unlabeled": 0}
    assert report.artist_disjoint is False and report.shared_artist_examples == ("Processor",)  # b train, c valid
    text = report.format()
    assert "a tie at 2 clips straddles the cut" in text
    assert "clips with none of the kept tags: train 1, valid 0, test 2; kept as labelled negatives" in text


def test_drop_untagged_counts_what_it_dropped(tmp_path):
    source = write_corpus(tmp_path / "mtt")
    report = make_manifest(get_corpus("magnatagatune"), source=source, output=tmp_path / "m.csv", allow_missing=True, top=3, drop_untagged=True)
    assert sum(report.rows_per_split.values()) == 5 and report.untagged_rows == 0
    assert "dropped (3, --drop-untagged)" in report.format()


def test_without_clip_info_there_are_no_artists(tmp_path):
    source = write_corpus(tmp_path / "mtt")
    (source / "clip_info_final.csv").unlink()
    report = make_manifest(get_corpus("magnatagatune"), source=source, output=tmp_path / "m.csv", allow_missing=True, top=6)
    assert report.artist_disjoint is None and report.tags == 6
    assert "unknown (no artist information)" in report.format()


def test_top_tags_breaks_ties_by_name():
    assert top_tags({"b": 2, "a": 2, "c": 5, "d": 1}, 2) == ["c", "a"]


@pytest.mark.parametrize(
    "edit, message",
    [
        (lambda t: t.replace('"11"\t"0"', '"11"\t"2"', 1), r"annotations_final.csv:5: column 'no voice' is '2', expected 0 or 1"),
        (lambda t: t.replace('"b/artist-album-11', '"g/artist-album-11'), r"annotations_final.csv:5: mp3_path 'g/artist-album-11.*not in one of the folders"),
        (lambda t: t.replace('\t"b/artist-album-11-title-30-59.mp3"', ""), r"annotations_final.csv:5: 7 fields, the header has 8"),
        (lambda t: t.replace('"clip_id"', '"id"', 1), r"annotations_final.csv:1: missing column\(s\) clip_id"),
        (lambda t: t.replace('"guitar"', '"guitar;acoustic"', 1), r"annotations_final.csv:1: tag 'guitar;acoustic' contains ';'"),
        (lambda t: t.replace("\t", ","), r"missing column\(s\) clip_id, mp3_path \(is it tab-separated\?\)"),
    ],
)
def test_malformed_annotations_name_file_and_line(tmp_path, edit, message):
    source = write_corpus(tmp_path / "mtt")
    path = source / "annotations_final.csv"
    path.write_text(edit(path.read_text()))
    with pytest.raises(CorpusError, match=message):
        make_manifest(get_corpus("magnatagatune"), source=source, output=tmp_path / "m.csv", top=3)


def test_top_must_fit_the_tag_columns(tmp_path):
    source = write_corpus(tmp_path / "mtt")
    with pytest.raises(CorpusError, match="--top 50: the file has 6 tag columns"):
        make_manifest(get_corpus("magnatagatune"), source=source, output=tmp_path / "m.csv")
