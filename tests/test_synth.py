"""Tests of the synthetic corpus: invariants of the files, the labels and the instruments."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from raytag.data.synth import corpus as synth
from raytag.data.synth.corpus import TAGS, Score, SynthSpec, render_clip, write_corpus
from raytag.data.synth.plan import SynthError

SR = 22050


def _read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8", newline="") as f:
        return list(csv.DictReader(f))


def _tags(cell: str) -> set[str]:
    return set(cell.split(";")) if cell else set()


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, SynthSpec]:
    """200 labelled + 20 unlabeled short clips: enough rows to measure label noise."""
    spec = SynthSpec(clips=200, unlabeled=20, seconds=0.5, seed=3)
    out = tmp_path_factory.mktemp("corpus")
    write_corpus(out, spec)
    return out, spec


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_same_seed_gives_identical_bytes_and_other_seed_differs(tmp_path: Path) -> None:
    spec = SynthSpec(clips=12, unlabeled=3, seconds=0.5, seed=7)
    write_corpus(tmp_path / "a", spec)
    write_corpus(tmp_path / "b", spec)
    write_corpus(tmp_path / "c", SynthSpec(clips=12, unlabeled=3, seconds=0.5, seed=8))
    a, b, c = (_files(tmp_path / name) for name in "abc")
    assert a == b
    assert a.keys() == c.keys()
    assert a["manifest.csv"] != c["manifest.csv"]
    assert all(a[name] != c[name] for name in a if name.startswith("audio/"))


def test_clip_audio_does_not_depend_on_corpus_size(tmp_path: Path) -> None:
    write_corpus(tmp_path / "small", SynthSpec(clips=5, seconds=0.5))
    write_corpus(tmp_path / "large", SynthSpec(clips=9, seconds=0.5))
    for name in ("clip-000000.wav", "clip-000004.wav"):
        small, large = (tmp_path / run / "audio" / name for run in ("small", "large"))
        assert small.read_bytes() == large.read_bytes()


def test_files_and_columns(corpus: tuple[Path, SynthSpec]) -> None:
    out, spec = corpus
    manifest, clean = _read_csv(out / "manifest.csv"), _read_csv(out / "clean.csv")
    clean_of = {r["path"]: r["tags"] for r in clean}
    assert list(manifest[0]) == ["path", "tags", "split", "verified", "artist"]
    assert list(clean[0]) == ["path", "tags"]
    assert (out / "tags.txt").read_text(encoding="utf-8").splitlines() == list(TAGS)
    assert len(manifest) == spec.clips + spec.unlabeled
    assert [r["path"] for r in clean] == [r["path"] for r in manifest if r["split"] != "unlabeled"]
    order = {tag: i for i, tag in enumerate(TAGS)}
    for row in manifest + clean:
        assert (out / row["path"]).is_file()
        tags = row["tags"].split(";") if row["tags"] else []
        assert tags == sorted(tags, key=order.__getitem__) and set(tags) <= set(TAGS)
    assert {r["verified"] for r in manifest} == {"true", "false"}
    assert sum(1 for p in (out / "audio").iterdir()) == len(manifest)
    meta = json.loads((out / "synth.json").read_text(encoding="utf-8"))
    assert meta["complete"] and meta["spec"]["clips"] == spec.clips and meta["tags"] == list(TAGS)
    assert set(meta["rates"]["missing"]) == set(TAGS)
    assert meta["counts"]["clips"] == {"train": 140, "valid": 30, "test": 30, "unlabeled": 20}
    assert meta["spec"]["noise_model"] == "audio" and meta["confusable"]["piano"] == "guitar"
    sources = _read_csv(out / "sources.csv")
    assert list(sources[0]) == ["path", "split", "tag", "level_db", "share_db", "labelled"]
    every_source = sorted((r["path"], t) for r in manifest for t in _tags(clean_of.get(r["path"], "")))
    assert sorted((r["path"], r["tag"]) for r in sources if r["split"] != "unlabeled") == every_source
    assert all(spec.level_db[0] <= float(r["level_db"]) <= spec.level_db[1] for r in sources)
    assert all(float(r["share_db"]) <= 0.0 for r in sources)


def test_splits_artists_verified_and_unlabeled(corpus: tuple[Path, SynthSpec]) -> None:
    out, spec = corpus
    manifest = _read_csv(out / "manifest.csv")
    clean = {r["path"]: _tags(r["tags"]) for r in _read_csv(out / "clean.csv")}
    splits_of_artist: dict[str, set[str]] = {}
    for row in manifest:
        splits_of_artist.setdefault(row["artist"], set()).add(row["split"])
    assert all(len(splits) == 1 for splits in splits_of_artist.values())
    sizes = [sum(r["artist"] == a for r in manifest) for a in splits_of_artist]
    assert max(sizes) <= spec.clips_per_artist[1]
    train = [r for r in manifest if r["split"] == "train"]
    verified = [r for r in manifest if r["verified"] == "true"]
    assert len(verified) == round(spec.verified_fraction * len(train))
    assert all(r["split"] == "train" and _tags(r["tags"]) == clean[r["path"]] for r in verified)
    unlabeled = [r for r in manifest if r["split"] == "unlabeled"]
    assert len(unlabeled) == spec.unlabeled and all(r["tags"] == "" for r in unlabeled)
    assert all(spec.min_sources <= len(tags) <= spec.max_sources for tags in clean.values())


def test_quieter_sources_are_missing_more_often_in_a_written_corpus(corpus: tuple[Path, SynthSpec]) -> None:
    out, _ = corpus
    manifest = {r["path"]: r for r in _read_csv(out / "manifest.csv")}
    sources = [r for r in _read_csv(out / "sources.csv") if r["split"] != "unlabeled"]
    assert all(
        (r["tag"] in _tags(manifest[r["path"]]["tags"])) == (r["labelled"] == "true") for r in sources
    )
    noisy = [r for r in sources if manifest[r["path"]]["verified"] == "false"]
    shares = np.array([float(r["share_db"]) for r in noisy])
    missed = np.array([r["labelled"] == "false" for r in noisy])
    quiet = shares < np.median(shares)
    assert missed[quiet].mean() > 2 * missed[~quiet].mean()


def test_noise_report_matches_the_labels_written(corpus: tuple[Path, SynthSpec], tmp_path: Path) -> None:
    out, spec = corpus
    clean = {r["path"]: _tags(r["tags"]) for r in _read_csv(out / "clean.csv")}
    manifest = [r for r in _read_csv(out / "manifest.csv") if r["split"] != "unlabeled"]
    report = _read_csv(out / "noise.csv")
    assert [(r["split"], r["tag"]) for r in report] == [
        (split, tag) for split in ("train", "valid", "test", "all") for tag in TAGS
    ]
    for line in report:
        rows = [r for r in manifest if line["split"] in ("all", r["split"])]
        tag = line["tag"]
        shown = [tag in _tags(r["tags"]) for r in rows]
        truth = [tag in clean[r["path"]] for r in rows]
        false_pos = sum(s and not t for s, t in zip(shown, truth))
        false_neg = sum(t and not s for s, t in zip(shown, truth))
        assert int(line["clips"]) == len(rows)
        assert int(line["labelled_pos"]) == sum(shown) and int(line["clean_pos"]) == sum(truth)
        assert (int(line["false_pos"]), int(line["false_neg"])) == (false_pos, false_neg)
        assert float(line["err_pos"]) == pytest.approx(false_pos / sum(shown), abs=1e-6)
        assert float(line["err_neg"]) == pytest.approx(false_neg / (len(rows) - sum(shown)), abs=1e-6)
        assert float(line["recall"]) == pytest.approx((sum(shown) - false_pos) / sum(truth), abs=1e-6)
    # Verified rows show their clean labels: they add no error.
    verified = [r for r in manifest if r["verified"] == "true"]
    assert verified and all(_tags(r["tags"]) == clean[r["path"]] for r in verified)
    # The same report comes back from write_corpus (rewritten here: the corpus is pure).
    summary = write_corpus(tmp_path / "again", spec)
    assert [row.split for row in summary["noise"]] == [r["split"] for r in report]
    assert Path(summary["noise_report"]).read_bytes() == (out / "noise.csv").read_bytes()
    assert all(r.split != "all" or r.clips == spec.clips for r in summary["noise"])


def test_label_noise_can_be_switched_off(tmp_path: Path) -> None:
    spec = SynthSpec(clips=30, seconds=0.2, missing_rate=(0.0, 0.0), spurious_rate=(0.0, 0.0))
    write_corpus(tmp_path, spec)
    clean = {r["path"]: r["tags"] for r in _read_csv(tmp_path / "clean.csv")}
    assert all(r["tags"] == clean[r["path"]] for r in _read_csv(tmp_path / "manifest.csv"))


def test_audio_files_are_valid(corpus: tuple[Path, SynthSpec]) -> None:
    out, spec = corpus
    for path in sorted((out / "audio").glob("*.wav"))[:40]:
        audio, rate = sf.read(path, dtype="float32")
        info = sf.info(path)
        assert rate == spec.sample_rate and info.subtype == "PCM_16" and info.channels == 1
        assert audio.shape == (round(spec.seconds * spec.sample_rate),)
        assert np.isfinite(audio).all() and 0.85 < np.abs(audio).max() <= 0.91


@pytest.mark.parametrize("tag", TAGS)
def test_every_instrument_renders_a_clean_part(tag: str) -> None:
    clip = render_clip([tag], seconds=1.0, sample_rate=SR, rng=np.random.default_rng(0))
    assert clip.dtype == np.float32 and clip.shape == (SR,)
    assert np.isfinite(clip).all() and np.sqrt(np.mean(clip**2)) > 0.01
    assert np.abs(clip).max() == pytest.approx(0.9, rel=1e-4)


def test_render_clip_mixes_and_is_seeded() -> None:
    kwargs = dict(seconds=0.7, sample_rate=16000)
    a = render_clip(["bass", "hihat", "voice"], rng=np.random.default_rng(5), **kwargs)
    b = render_clip(["bass", "hihat", "voice"], rng=np.random.default_rng(5), **kwargs)
    assert a.shape == (11200,) and np.array_equal(a, b)
    for bad in ([], ["piano", "piano"], ["tuba"]):
        with pytest.raises(ValueError, match="tags"):
            render_clip(bad, rng=np.random.default_rng(0), **kwargs)


def test_render_clip_plays_sources_at_the_given_levels() -> None:
    def low_over_high(levels: list[float]) -> float:
        clip = render_clip(["bass", "hihat"], seconds=1.0, sample_rate=SR, rng=np.random.default_rng(4), levels_db=levels)
        freqs = np.fft.rfftfreq(len(clip), 1.0 / SR)
        power = np.abs(np.fft.rfft(clip)) ** 2
        return float(power[freqs < 250].sum() / power[freqs > 5000].sum())

    # Same draws, bass 20 dB up then 20 dB down: its power relative to the hi-hat's moves by
    # about 40 dB (10^4).
    ratio = low_over_high([0.0, -20.0]) / low_over_high([-20.0, 0.0])
    assert 10**3.5 < ratio < 10**4.5
    with pytest.raises(ValueError, match="levels_db"):
        render_clip(["bass"], seconds=0.1, sample_rate=SR, rng=np.random.default_rng(0), levels_db=[0.0, 1.0])


def _spectrum(tag: str, seed: int) -> tuple[np.ndarray, np.ndarray]:
    clip = render_clip([tag], seconds=2.0, sample_rate=SR, rng=np.random.default_rng(seed))
    return np.fft.rfftfreq(len(clip), 1.0 / SR), np.abs(np.fft.rfft(clip)) ** 2


def _centroid(tag: str, seed: int) -> float:
    freqs, power = _spectrum(tag, seed)
    return float((freqs * power).sum() / power.sum())


@pytest.mark.parametrize("seed", range(3))
def test_instruments_have_their_own_spectra(seed: int) -> None:
    assert _centroid("hihat", seed) > 10 * _centroid("bass", seed)
    assert _centroid("snare", seed) > 2 * _centroid("kick", seed)
    freqs, power = _spectrum("kick", seed)
    assert power[freqs < 150].sum() > 0.9 * power.sum()
    freqs, power = _spectrum("bass", seed)
    assert power[freqs < 250].sum() > 0.8 * power.sum()


def _note_rms_ratio(tag: str, seed: int) -> float:
    """RMS of the last quarter of a held 1.6 s note over that of its first quarter."""
    held = int(1.6 * SR)
    score = Score(np.array([0]), np.array([held]), np.array([262.0]), np.array([1.0]), 2 * SR, SR)
    note = synth.INSTRUMENTS[tag].render(score, np.random.default_rng(seed))[:held]
    quarter = held // 4
    return float(np.sqrt(np.mean(note[-quarter:] ** 2)) / np.sqrt(np.mean(note[:quarter] ** 2)))


@pytest.mark.parametrize("seed", range(3))
def test_sustained_and_decaying_instruments(seed: int) -> None:
    for tag in ("strings", "organ", "flute", "voice"):
        assert _note_rms_ratio(tag, seed) > 0.7, tag
    for tag in ("piano", "guitar"):
        assert _note_rms_ratio(tag, seed) < 0.35, tag


def test_refuses_foreign_directory_and_overwrites_only_when_asked(tmp_path: Path) -> None:
    (tmp_path / "foreign").mkdir()
    (tmp_path / "foreign" / "notes.txt").write_text("mine")
    with pytest.raises(SynthError, match="not empty"):
        write_corpus(tmp_path / "foreign", SynthSpec(clips=2, seconds=0.1))
    out = tmp_path / "corpus"
    write_corpus(out, SynthSpec(clips=6, seconds=0.1))
    with pytest.raises(SynthError, match="overwrite"):
        write_corpus(out, SynthSpec(clips=3, seconds=0.1))
    calls: list[tuple[int, int]] = []
    summary = write_corpus(out, SynthSpec(clips=3, seconds=0.1), lambda *a: calls.append(a), overwrite=True)
    assert len(list((out / "audio").iterdir())) == 3  # stale clips of the first run are gone
    assert calls[-1] == (3, 3) and sum(summary["clips"].values()) == 3
    assert summary["audio_seconds"] == pytest.approx(0.3)
    assert Path(summary["manifest"]).is_file() and Path(summary["clean"]).is_file()


@pytest.mark.parametrize(
    "field, value",
    [
        ("clips", 0),
        ("clips", 2.5),
        ("unlabeled", -1),
        ("seconds", 0.0),
        ("seconds", float("nan")),
        ("sample_rate", 8000),
        ("seed", -1),
        ("valid_fraction", 1.5),
        ("test_fraction", 0.9),
        ("verified_fraction", -0.1),
        ("min_sources", 0),
        ("max_sources", 11),
        ("missing_rate", (0.5, 0.2)),
        ("spurious_rate", (0.0, 1.2)),
        ("clips_per_artist", (0, 3)),
        ("peak", 1.5),
        ("noise_model", "random"),
        ("missing_slope", -0.1),
        ("level_db", (-5.0, 3.0)),
    ],
)
def test_bad_spec_values_name_the_field(field: str, value: object) -> None:
    with pytest.raises(ValueError, match=field):
        SynthSpec(**{field: value})
