"""MSD adapter on split pickles written as Python 2's cPickle wrote them (protocol 0: ``(lp1``,
``S'TR...'``, ``p2``, ``a``; NumPy arrays via ``numpy.core.multiarray._reconstruct``), and the
restricted unpickler that refuses any other global."""

import pickle
from pathlib import Path

import numpy as np
import pytest

from raytag.data.corpora import CorpusError, get_corpus, make_manifest
from raytag.data.corpora.safe_pickle import PickleRefused, load_pickle
from raytag.data.manifest import read_manifest

TAGS = ["rock", "pop", "Hip-Hop", "female vocalists"]


class Py2Pickler:
    """Writes lists, dicts, str, int and 1-D/2-D int64 arrays as Python 2 cPickle protocol 0."""

    def __init__(self):
        self.out, self.memo = [], 0
        self.globals: dict[str, int] = {}

    def put(self) -> None:
        self.memo += 1
        self.out.append(f"p{self.memo}\n")

    def global_(self, module: str, name: str) -> None:
        key = f"{module}\n{name}"
        if key in self.globals:
            self.out.append(f"g{self.globals[key]}\n")
        else:
            self.out.append(f"c{module}\n{name}\n")
            self.put()
            self.globals[key] = self.memo

    def string(self, raw: bytes) -> None:
        self.out.append("S'" + "".join(chr(b) if 32 <= b < 127 and b not in (39, 92) else f"\\x{b:02x}" for b in raw) + "'\n")
        self.put()

    def dump(self, value) -> None:
        if isinstance(value, str):
            self.string(value.encode())
        elif isinstance(value, bool):
            self.out.append("I01\n" if value else "I00\n")
        elif isinstance(value, int):
            self.out.append(f"I{value}\n")
        elif isinstance(value, list):
            self.out.append("(l")
            self.put()
            for item in value:
                self.dump(item)
                self.out.append("a")
        elif isinstance(value, dict):
            self.out.append("(d")
            self.put()
            for key, item in value.items():
                self.dump(key)
                self.dump(item)
                self.out.append("s")
        elif isinstance(value, np.ndarray):
            self.global_("numpy.core.multiarray", "_reconstruct")
            self.out.append("(")
            self.global_("numpy", "ndarray")
            self.out.append("(I0\ntp")  # shape (0,)
            self.memo += 1
            self.out.append(f"{self.memo}\n")
            self.string(b"b")
            self.out.append("tR")
            self.put()
            self.out.append("(I1\n(" + "".join(f"I{n}\n" for n in value.shape) + "t")
            self.put()
            self.global_("numpy", "dtype")
            self.out.append("(")
            self.string(value.dtype.str[1:].encode())
            self.out.append("I0\nI1\ntR")
            self.put()
            self.out.append("(I3\n")
            self.string(value.dtype.str[:1].encode())
            self.out.append("NNNI-1\nI-1\nI0\ntb")
            self.out.append("I00\n")
            self.string(value.tobytes())
            self.out.append("tb")
        else:
            raise TypeError(type(value))

    def pickle(self, value) -> bytes:
        self.dump(value)
        return ("".join(self.out) + ".").encode("latin1")


def py2_pickle(value) -> bytes:
    return Py2Pickler().pickle(value)


def track_id(i: int) -> str:
    return f"TR{'ABCDEFGHIJ'[i % 10]}{'KLMNO'[i % 5]}Q{i % 100:02d}128F93{i:05d}"


def write_split_dir(folder: Path, *, train=6, test=3, vectors=None) -> tuple[Path, list[str], list[str]]:
    folder.mkdir(parents=True, exist_ok=True)
    train_ids = [track_id(i) for i in range(train)]
    test_ids = [track_id(100 + i) for i in range(test)]
    (folder / "filtered_list_train.cP").write_bytes(py2_pickle(train_ids))
    (folder / "filtered_list_test.cP").write_bytes(py2_pickle(test_ids))
    if vectors is None:
        vectors = {t: np.array([[i % 2], [1], [0], [i % 3 == 0]], dtype=np.int64) for i, t in enumerate(train_ids + test_ids)}
    (folder / "msd_id_to_tag_vector.cP").write_bytes(py2_pickle(vectors))
    (folder / "50tagList.txt").write_text("\n".join(TAGS) + "\n")
    return folder, train_ids, test_ids


def test_py2_pickles_of_lists_and_arrays_load():
    assert py2_pickle(["TRAADIN128F931D672"]).startswith(b"(lp1\nS'TRAADIN128F931D672'\np2\na")
    array = np.arange(6, dtype=np.int64).reshape(3, 2) - 2
    loaded = load_pickle_bytes(py2_pickle({"k": array, "n": [1, "x"]}), allow_arrays=True)
    np.testing.assert_array_equal(loaded["k"], array)
    assert loaded["n"] == [1, "x"] and loaded["k"].dtype == np.int64


@pytest.mark.parametrize("protocol", [2, 4, 5])
def test_python3_numpy_pickles_of_numeric_arrays_load(protocol):
    value = {"a": np.array([0, 1, 1], dtype=np.uint8), "b": np.array([[0.5, 1.0]], dtype=">f8"), "c": np.array([True, False])}
    loaded = load_pickle_bytes(pickle.dumps(value, protocol=protocol), allow_arrays=True)
    for key, array in value.items():
        np.testing.assert_array_equal(loaded[key], array)
    with pytest.raises(PickleRefused, match=r"refused global numpy"):
        load_pickle_bytes(pickle.dumps(value, protocol=protocol))  # arrays not allowed here


def load_pickle_bytes(data: bytes, **kwargs):
    import tempfile

    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "x.cP"
        path.write_bytes(data)
        return load_pickle(path, **kwargs)


def test_a_pickle_that_calls_os_system_is_refused(tmp_path):
    marker = tmp_path / "pwned"
    evil = tmp_path / "msd_id_to_tag_vector.cP"
    evil.write_bytes(f"cos\nsystem\n(S'touch {marker}'\ntR.".encode())
    with pytest.raises(PickleRefused, match=rf"{evil}: refused global os.system"):
        load_pickle(evil, allow_arrays=True)
    assert not marker.exists()
    for module, name in (("builtins", "eval"), ("subprocess", "Popen"), ("numpy", "load"), ("posix", "system")):
        with pytest.raises(PickleRefused, match=rf"refused global {module}.{name}"):
            load_pickle_bytes(f"c{module}\n{name}\n(S'1'\ntR.".encode(), allow_arrays=True)


def test_object_and_string_arrays_are_refused():
    with pytest.raises(PickleRefused, match="refused an array of dtype 'O"):
        load_pickle_bytes(pickle.dumps(np.array([1, "a"], dtype=object), protocol=2), allow_arrays=True)
    with pytest.raises(PickleRefused, match="refused an array of dtype 'U1'"):
        load_pickle_bytes(pickle.dumps(np.array(["a"]), protocol=2), allow_arrays=True)


def test_msd_manifest_from_the_split_pickles(tmp_path):
    split_dir, train_ids, test_ids = write_split_dir(tmp_path / "split")
    audio = tmp_path / "audio"
    first = audio / train_ids[0][2] / train_ids[0][3] / train_ids[0][4] / f"{train_ids[0]}.clip.mp3"
    first.parent.mkdir(parents=True)
    first.write_bytes(b"")
    unique = tmp_path / "unique_tracks.txt"
    unique.write_text("".join(f"{t}<SEP>SO{i:016d}<SEP>Artist {i % 4}<SEP>Title\n" for i, t in enumerate(train_ids + test_ids)))
    report = make_manifest(
        get_corpus("msd"), source=audio, output=tmp_path / "m.csv", split_dir=split_dir, train_count=4, unique_tracks=unique
    )
    assert report.rows_per_split == {"train": 4, "valid": 2, "test": 3, "unlabeled": 0}
    assert report.missing_audio == 8 and report.artist_disjoint is False
    tracks = {Path(t.path).name.split(".")[0]: t for t in read_manifest(tmp_path / "m.csv").tracks}
    assert tracks[train_ids[0]].path == str(first) and tracks[train_ids[0]].artist == "Artist 0"
    assert tracks[train_ids[0]].tags == ("pop", "female vocalists")  # vector [0, 1, 0, 1]
    assert tracks[train_ids[1]].tags == ("rock", "pop") and tracks[train_ids[5]].split == "valid"
    assert tracks[test_ids[0]].split == "test" and not tracks[test_ids[0]].verified
    assert "the first 4 of filtered_list_train.cP train, the other 2 valid" in report.format()
    assert report.tags == 3 and "tags of 50tagList.txt no listed track has: Hip-Hop" in report.format()


def test_seven_digital_path_template(tmp_path):
    split_dir, train_ids, test_ids = write_split_dir(tmp_path / "split", train=2, test=1)
    ids = train_ids + test_ids
    (split_dir / "MSD_id_to_7D_id.pkl").write_bytes(py2_pickle({t: 8947470 + i for i, t in enumerate(ids)}))
    (split_dir / "7D_id_to_path.pkl").write_bytes(py2_pickle({8947470 + i: f"8/9/{8947470 + i}.clip.mp3" for i in range(3)}))
    make_manifest(get_corpus("msd"), source=tmp_path, output=tmp_path / "m.csv", allow_missing=True, split_dir=split_dir, train_count=1, path_template="{path7}")
    assert sorted(Path(t.path).name for t in read_manifest(tmp_path / "m.csv").tracks) == [f"{8947470 + i}.clip.mp3" for i in range(3)]
    make_manifest(get_corpus("msd"), source=tmp_path, output=tmp_path / "n.csv", allow_missing=True, split_dir=split_dir, train_count=1, path_template="{id7}.mp3")
    assert str(tmp_path / "8947470.mp3") in {t.path for t in read_manifest(tmp_path / "n.csv").tracks}


@pytest.mark.parametrize(
    "template, message",
    [("{id.__class__}", r"field \{id.__class__\} not allowed"), ("audio.mp3", "names no track"), ("{id[30]}", "an index is past the end")],
)
def test_bad_templates(tmp_path, template, message):
    split_dir, _, _ = write_split_dir(tmp_path / "split", train=2, test=1)
    with pytest.raises(CorpusError, match=message):
        make_manifest(get_corpus("msd"), source=tmp_path, output=tmp_path / "m.csv", split_dir=split_dir, train_count=1, path_template=template)


def test_bad_split_files(tmp_path):
    split_dir, train_ids, test_ids = write_split_dir(tmp_path / "split", train=2, test=1)
    run = lambda: make_manifest(get_corpus("msd"), source=tmp_path, output=tmp_path / "m.csv", split_dir=split_dir, train_count=1)  # noqa: E731
    (split_dir / "msd_id_to_tag_vector.cP").write_bytes(py2_pickle({train_ids[0]: np.ones(4, dtype=np.int64)}))
    with pytest.raises(CorpusError, match=rf"no tag vector for 2 listed tracks, e.g. {train_ids[1]}"):
        run()
    (split_dir / "msd_id_to_tag_vector.cP").write_bytes(py2_pickle({t: np.full(4, 2, dtype=np.int64) for t in train_ids + test_ids}))
    with pytest.raises(CorpusError, match=r"tag vector values must be 0 or 1"):
        run()
    (split_dir / "msd_id_to_tag_vector.cP").write_bytes(py2_pickle({t: np.ones(3, dtype=np.int64) for t in train_ids + test_ids}))
    with pytest.raises(CorpusError, match=r"the tag vector has 3 entries, the tag list 4"):
        run()
    (split_dir / "filtered_list_test.cP").write_bytes(py2_pickle([train_ids[0]]))
    with pytest.raises(CorpusError, match="1 tracks are in both filtered_list_train.cP and filtered_list_test.cP"):
        run()
    (split_dir / "filtered_list_test.cP").write_bytes(py2_pickle(["not-an-id"]))
    with pytest.raises(CorpusError, match=r"filtered_list_test.cP\[0\]: 'not-an-id' is not an MSD track id"):
        run()
    (split_dir / "filtered_list_test.cP").write_bytes(b"cos\nsystem\n(S'true'\ntR.")
    with pytest.raises(CorpusError, match=r"filtered_list_test.cP: refused global os.system"):
        run()
