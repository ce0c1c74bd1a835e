"""MTG-Jamendo adapter on split files written in the published format (CRLF, one tag per extra
tab-separated field), the manifest it writes, its report, and the ``raytag corpus`` command."""

import subprocess
import sys
from pathlib import Path

import pytest

from raytag.cli import main
from raytag.data.corpora import CorpusError, get_corpus, list_corpora, make_manifest
from raytag.data.corpora.mtg_jamendo import split_file
from raytag.data.manifest import read_manifest

HEADER = "TRACK_ID\tARTIST_ID\tALBUM_ID\tPATH\tDURATION\tTAGS"
SPLITS = {
    "train": [
        ("track_0000241", "artist_000005", "album_000033", "41/241.mp3", "340.1", ["genre---rock"]),
        ("track_0000242", "artist_000005", "album_000033", "42/242.mp3", "248.5", ["genre---rock", "instrument---guitar", "mood/theme---energetic"]),
        ("track_0000300", "artist_000010", "album_000040", "00/300.mp3", "201.0", ["genre---pop", "instrument---piano"]),
    ],
    "validation": [
        ("track_0000773", "artist_000104", "album_000126", "73/773.mp3", "275.3", ["genre---electronic", "mood/theme---sad"]),
    ],
    "test": [
        ("track_0000215", "artist_000014", "album_000031", "15/215.mp3", "151.4", ["genre---metal", "genre---rock"]),
    ],
}


def write_split_dir(folder: Path, splits=SPLITS, subset: str = "top50tags") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for part, rows in splits.items():
        lines = [HEADER] + ["\t".join([*fields[:5], *fields[5]]) for fields in rows]
        split_file(folder, subset, part).write_bytes(("\r\n".join(lines) + "\r\n").encode())
    return folder


@pytest.fixture
def corpus(tmp_path):
    audio = tmp_path / "audio"
    for relative in ("41/241.mp3", "42/242.mp3", "15/215.mp3"):  # two tracks are not downloaded
        (audio / relative).parent.mkdir(parents=True, exist_ok=True)
        (audio / relative).write_bytes(b"")
    return audio, write_split_dir(tmp_path / "splits" / "split-0")


def test_every_tag_of_every_row_reaches_the_manifest(corpus, tmp_path):
    audio, split_dir = corpus
    report = make_manifest(get_corpus("mtg-jamendo"), source=audio, output=tmp_path / "m.csv", split_dir=split_dir)
    manifest = read_manifest(tmp_path / "m.csv")
    by_path = {Path(t.path).relative_to(audio).as_posix(): t for t in manifest.tracks}
    assert by_path["42/242.mp3"].tags == ("genre---rock", "instrument---guitar", "mood/theme---energetic")
    assert by_path["73/773.mp3"].split == "valid" and by_path["15/215.mp3"].split == "test"
    assert by_path["41/241.mp3"].artist == "artist_000005" and not by_path["41/241.mp3"].verified
    assert all(Path(t.path).is_absolute() for t in manifest.tracks)
    assert report.rows_per_split == {"train": 3, "valid": 1, "test": 1, "unlabeled": 0}
    assert report.tags == 8 and report.tag_occurrences == 10 and report.untagged_rows == 0
    assert report.missing_audio == 2 and report.missing_examples == (str(audio / "00/300.mp3"), str(audio / "73/773.mp3"))
    assert report.artist_disjoint is True
    text = report.format()
    assert "rows: 5 (train 3, valid 1, test 1)" in text and "audio missing on disk: 2 of 5" in text
    assert "tags per category: genre 4, instrument 2, mood/theme 2" in text


def test_shared_artists_and_low_quality_audio(tmp_path):
    splits = {**SPLITS, "test": [("track_0000999", "artist_000005", "a", "99/999.mp3", "100.0", ["genre---rock"])]}
    split_dir = write_split_dir(tmp_path / "split", splits)
    report = make_manifest(
        get_corpus("mtg-jamendo"), source=tmp_path, output=tmp_path / "m.csv", allow_missing=True, split_dir=split_dir, low_quality=True
    )
    assert report.artist_disjoint is False and report.shared_artist_examples == ("artist_000005",)
    assert str(tmp_path / "99/999.low.mp3") in {t.path for t in read_manifest(tmp_path / "m.csv").tracks}


def test_other_subsets_use_their_own_files(tmp_path):
    split_dir = write_split_dir(tmp_path / "split", subset="all")
    assert split_file(split_dir, "all", "train").name == "autotagging-train.tsv"
    report = make_manifest(get_corpus("mtg-jamendo"), source=tmp_path, output=tmp_path / "m.csv", allow_missing=True, split_dir=split_dir, subset="all")
    assert sum(report.rows_per_split.values()) == 5
    with pytest.raises(CorpusError, match=r"autotagging_moodtheme-train.tsv: split file not found"):
        make_manifest(get_corpus("mtg-jamendo"), source=tmp_path, output=tmp_path / "x.csv", split_dir=split_dir, subset="moodtheme")


@pytest.mark.parametrize(
    "edit, message",
    [
        (lambda text: text.replace(HEADER, HEADER.lower()), r"train.tsv:1: expected the header TRACK_ID"),
        (lambda text: text.replace("\t340.1\tgenre---rock", "\t340.1"), r"train.tsv:2: 5 fields; a row needs"),
        (lambda text: text.replace("genre---pop", "genre---pop;rock"), r"train.tsv:4: tag 'genre---pop;rock' contains ';'"),
        (lambda text: text.replace("\t340.1\t", "\tgenre---rock\t"), r"train.tsv:2: DURATION 'genre---rock' is not a number"),
        (lambda text: text.replace("41/241.mp3", "../241.mp3"), r"train.tsv:2: PATH '../241.mp3' is not a path under"),
        (lambda text: text.replace("track_0000300", "track_0000241"), r"train.tsv:4: track track_0000241 is listed twice \(first at .*train.tsv:2\)"),
    ],
)
def test_malformed_split_files_name_file_and_line(corpus, tmp_path, edit, message):
    audio, split_dir = corpus
    train = split_file(split_dir, "top50tags", "train")
    train.write_bytes(edit(train.read_bytes().decode()).encode())
    with pytest.raises(CorpusError, match=message):
        make_manifest(get_corpus("mtg-jamendo"), source=audio, output=tmp_path / "m.csv", split_dir=split_dir)
    assert not (tmp_path / "m.csv").exists()


def test_registry_and_existing_output(corpus, tmp_path):
    assert [a.name for a in list_corpora()] == ["fsd-kaggle2019", "magnatagatune", "msd", "mtg-jamendo"]
    with pytest.raises(CorpusError, match="unknown corpus 'jamendo'; known: fsd-kaggle2019"):
        get_corpus("jamendo")
    audio, split_dir = corpus
    out = tmp_path / "m.csv"
    make_manifest(get_corpus("mtg-jamendo"), source=audio, output=out, split_dir=split_dir)
    with pytest.raises(CorpusError, match="exists; pass --overwrite"):
        make_manifest(get_corpus("mtg-jamendo"), source=audio, output=out, split_dir=split_dir)
    make_manifest(get_corpus("mtg-jamendo"), source=audio, output=out, split_dir=split_dir, overwrite=True)


def test_corpus_command(corpus, tmp_path, capsys):
    audio, split_dir = corpus
    out = tmp_path / "manifest.csv"
    argv = ["corpus", "mtg-jamendo", "--from", str(audio), "--split-dir", str(split_dir), "-o", str(out)]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert f"mtg-jamendo: wrote {out}" in printed and "artist-disjoint splits: yes" in printed
    assert len(read_manifest(out).tracks) == 5
    assert main(argv) == 2  # the manifest exists
    assert "exists; pass --overwrite" in capsys.readouterr().err
    assert main([*argv, "--overwrite", "--subset", "genre"]) == 2
    assert "autotagging_genre-train.tsv: split file not found" in capsys.readouterr().err


def test_corpus_adapters_are_core_code():
    # Writing a manifest needs neither Ray, MLflow nor torch (nor the audio decoders).
    code = (
        "import sys; import raytag.data.corpora; from raytag.cli import build_parser; build_parser(); "
        "print(sorted(m for m in ('ray', 'mlflow', 'torch', 'av') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_a_wrong_from_is_an_error_unless_missing_audio_is_allowed(tmp_path, capsys):
    """Every audio file missing almost always means a wrong --from: exit 2, one line naming the
    folder and the count, and no manifest; --allow-missing writes it anyway."""
    split_dir = write_split_dir(tmp_path / "split", SPLITS)
    wrong = tmp_path / "not-the-audio"
    wrong.mkdir()
    argv = ["corpus", "mtg-jamendo", "--from", str(wrong), "--split-dir", str(split_dir), "-o", str(tmp_path / "m.csv")]
    assert main(argv) == 2
    error = capsys.readouterr().err.strip()
    assert len(error.splitlines()) == 1
    assert f"{wrong}: none of the 5 audio files the corpus lists is there" in error and "--allow-missing" in error
    assert not (tmp_path / "m.csv").exists()
    assert main([*argv, "--allow-missing"]) == 0
    assert "audio missing on disk: 5 of 5" in capsys.readouterr().out
