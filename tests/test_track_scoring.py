"""The scoring owner without Ray: options and their defaults, the status rules, waveforms as a
source like any file, the per-track tally, and the in-process scorer's statuses."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from teachers import write_random_tagger

from raytag.audio.io import AudioError, chunk_starts, load_crop, probe
from raytag.audio.waveform import Waveform, WaveformError
from raytag.models.export import ExportError, read_exported, read_weights, recorded_scoring, write_exported
from raytag.scoring.options import (
    DEFAULT_BATCH_SIZE, DEFAULT_MAX_CHUNKS, DEFAULT_RAY_ABOVE, ScoringError, ScoringOptions,
)
from raytag.scoring.scorer import Tagger, score_sources
from raytag.scoring.status import MIN_CROP_FRACTION, TrackStatus, silence_reason, too_short_reason
from raytag.scoring.tracks import ChunkPlan, TrackTally, plan_chunks, probe_sources, source_results, table_results

TAGS = ("piano", "guitar", "voice")


@pytest.fixture(scope="module")
def tagger(tmp_path_factory) -> Tagger:
    """An untrained mtt-tiny (16 kHz, 1 s crops)."""
    folder = write_random_tagger(tmp_path_factory.mktemp("model") / "tagger", tags=TAGS)
    return Tagger.from_exported(read_exported(folder), read_weights(folder))


def test_too_short_means_under_half_a_crop_at_any_rate():
    crop = dict(crop_samples=48000, sample_rate=16000)  # a 3 s crop
    assert too_short_reason(frames=round(2.97 * 44100), rate=44100, **crop) is None  # 1 % padding: tagged
    assert too_short_reason(frames=66150, rate=44100, **crop) is None  # exactly 1.5 s: half a crop
    reason = too_short_reason(frames=66149, rate=44100, **crop)
    assert reason == "1.50 s of audio; the model's crop is 3.00 s and a track must last at least half of one"
    assert too_short_reason(frames=11999, rate=8000, **crop) is not None and MIN_CROP_FRACTION == Fraction(1, 2)


def test_silence_is_a_peak_at_or_below_minus_60_dbfs():
    assert silence_reason(0.0) == "peak level -inf dBFS (at most -60 dBFS)"
    assert silence_reason(1e-3).startswith("peak level -60.0 dBFS")
    assert silence_reason(1.01e-3) is None and silence_reason(0.5) is None


def test_options_hold_the_defaults_and_a_model_records_its_max_chunks(tmp_path):
    options = ScoringOptions()
    assert (options.max_chunks, options.batch_size, options.ray_above) == (16, 16, 300)
    assert (DEFAULT_MAX_CHUNKS, DEFAULT_BATCH_SIZE, DEFAULT_RAY_ABOVE) == (16, 16, 300)
    assert options.recorded() == {"max_chunks": 16}
    # Given settings win over the model's, the model's over the defaults.
    assert ScoringOptions.for_model({"max_chunks": 4}).max_chunks == 4
    assert ScoringOptions.for_model({"max_chunks": None}).max_chunks is None
    assert ScoringOptions.for_model({"max_chunks": 4}, max_chunks=8, batch_size=2) == ScoringOptions(8, 2, 300)
    assert ScoringOptions.for_model({}).max_chunks == 16
    for bad, message in (({"max_chunks": 0}, "max_chunks must be at least 1"), ({"batch_size": 0}, "batch_size"),
                         ({"ray_above": -1}, "ray_above must be at least 0"), ({"max_chunks": True}, "max_chunks")):
        with pytest.raises(ScoringError, match=message):
            ScoringOptions(**bad)
    recipe = read_exported(write_random_tagger(tmp_path / "m", tags=TAGS)).recipe
    weights = {"w": torch.zeros(1)}
    def exported(name: str, **scoring):
        return read_exported(write_exported(tmp_path / name, recipe, weights, sample_rate=16000, crop_samples=16000,
                                            **scoring))

    assert recorded_scoring(exported("a", scoring={"max_chunks": 4})) == {"max_chunks": 4}
    assert recorded_scoring(exported("b")) == {}
    with pytest.raises(ExportError, match="'scoring' must be a mapping with max_chunks"):
        recorded_scoring(exported("c", scoring={"max_chunks": "all"}))


def test_a_waveform_is_probed_and_cropped_like_the_wav_file_of_its_samples(tmp_path):
    rate = 44100
    samples = np.random.default_rng(0).uniform(-0.5, 0.5, int(rate * 2.3)).astype(np.float32)
    path = tmp_path / "noise.wav"
    sf.write(path, samples, rate, subtype="FLOAT")
    waveform = Waveform(samples, rate, name="noise")
    assert probe(waveform) == probe(str(path))
    for start in (0, 12345, len(samples) - 1000):  # the last crop runs past the end: zero-padded alike
        np.testing.assert_array_equal(load_crop(waveform, start, 16000, 16000, rate),
                                      load_crop(str(path), start, 16000, 16000, rate))
    with pytest.raises(AudioError, match="no audio frames"):
        probe(Waveform(np.zeros(0), rate))
    with pytest.raises(AudioError, match="not finite"):
        probe(Waveform(np.full(4000, np.nan), rate))
    with pytest.raises(WaveformError, match="1-D array"):
        Waveform(np.zeros((2, 100)), rate)
    for bad_rate in (0, 16000.5, float("nan"), None):
        with pytest.raises(WaveformError, match="sample rate"):
            Waveform(samples, bad_rate)


def test_a_file_and_its_samples_as_a_waveform_get_the_same_numbers_and_statuses(tagger, tmp_path):
    rng = np.random.default_rng(1)
    clips = {  # name: (samples, rate)
        "music-44k.wav": (rng.uniform(-0.5, 0.5, int(44100 * 3.3)).astype(np.float32), 44100),
        "music-16k.wav": (rng.uniform(-0.5, 0.5, 16000 * 2).astype(np.float32), 16000),
        "almost-a-crop.wav": (rng.uniform(-0.5, 0.5, 22050 * 97 // 100).astype(np.float32), 22050),
        "short.wav": (rng.uniform(-0.5, 0.5, 22050 * 2 // 5).astype(np.float32), 22050),
        "silent.wav": (np.zeros(16000 * 2, dtype=np.float32), 16000),
    }
    paths, waveforms = [], []
    for name, (samples, rate) in clips.items():
        sf.write(tmp_path / name, samples, rate, subtype="FLOAT")
        paths.append(str(tmp_path / name))
        waveforms.append(Waveform(sf.read(tmp_path / name, dtype="float32")[0], rate, name=name))
    by_path = score_sources(tagger, [*paths, str(tmp_path / "gone.wav")], max_chunks=16, batch_size=3).results
    by_waveform = score_sources(tagger, [*waveforms, Waveform(np.zeros(0), 16000)], max_chunks=16, batch_size=5).results
    statuses = [r.status for r in by_path]
    assert statuses == [TrackStatus.OK, TrackStatus.OK, TrackStatus.OK, TrackStatus.TOO_SHORT, TrackStatus.SILENT,
                        TrackStatus.UNREADABLE]
    assert [r.status for r in by_waveform] == statuses
    assert [r.reason for r in by_waveform[:5]] == [r.reason for r in by_path[:5]]
    assert "no audio frames" in by_waveform[5].reason and "No such file" in by_path[5].reason
    for mine, theirs in zip(by_path[:3], by_waveform[:3]):
        np.testing.assert_allclose(theirs.probabilities, mine.probabilities, atol=1e-6, rtol=0)
    # The 3.3 s clip at 44.1 kHz: 4 chunks of 44,100 frames from the chunk starts, then resampled.
    starts = chunk_starts(int(44100 * 3.3), 44100, 16)
    assert len(starts) == 4 and starts[-1] == int(44100 * 3.3) - 44100
    crops = np.stack([load_crop(paths[0], start, 16000, 16000, 44100) for start in starts])
    with torch.no_grad():
        expected = torch.sigmoid(tagger.model(torch.from_numpy(crops))).mean(dim=0).numpy()
    np.testing.assert_allclose(by_path[0].probabilities, expected, atol=1e-6)


def test_the_tally_averages_decoded_chunks_only_and_keeps_each_tracks_peak():
    tally = TrackTally(num_tracks=3, num_tags=2)
    tally.add({"track": np.array([0, 0, 1]), "probs": np.array([[0.2, 0.4], [0.4, 0.8], [0.9, 0.9]]),
               "decoded": np.array([True, True, False]), "peak": np.array([0.1, 0.3, 0.9], np.float32)})
    tally.add({"track": np.array([2, 1]), "probs": np.array([[0.5, 0.5], [0.1, 0.3]]),
               "decoded": np.array([True, True]), "peak": np.array([0.0, 0.2], np.float32)})
    scores = tally.result()
    assert scores.kept.tolist() == [0, 1, 2] and scores.failed_by_track.tolist() == [0, 1, 0]
    np.testing.assert_allclose(scores.scores, [[0.3, 0.6], [0.1, 0.3], [0.5, 0.5]])
    np.testing.assert_allclose(scores.peaks, [0.3, 0.2, 0.0])
    second = scores.part(1, 3)
    assert second.kept.tolist() == [0, 1] and second.failed_chunks == 1
    np.testing.assert_allclose(second.peaks, [0.2, 0.0])


def test_results_give_each_track_its_status_and_each_source_its_row(tmp_path):
    rate = 16000
    for name, seconds in (("a.wav", 2.0), ("b.wav", 0.3), ("c.wav", 1.0), ("d.wav", 1.0)):
        sf.write(tmp_path / name, np.full(int(rate * seconds), 0.25, dtype=np.float32), rate)
    sources = [str(tmp_path / n) for n in ("a.wav", "b.wav", "c.wav", "d.wav", "e.wav")]
    table, reasons = probe_sources(sources, num_tags=2)
    plan = plan_chunks(table, sample_rate=rate, crop_samples=rate, max_chunks=None)
    assert plan.too_short == {1: "0.30 s of audio; the model's crop is 1.00 s and a track must last at least half of one"}
    assert sorted({row["track"] for row in plan.rows}) == [0, 2, 3]  # no rows for the too-short track
    tally = TrackTally(len(table), 2)
    tally.add({"track": np.array([0, 0, 2, 3]), "probs": np.full((4, 2), 0.5), "decoded": np.array([1, 1, 1, 0], bool),
               "peak": np.array([0.25, 0.25, 1e-4, 0.0], np.float32)})
    results = source_results(sources, table_results(plan, tally.result()), reasons)
    assert [str(r.status) for r in results] == ["ok", "too short", "silent", "unreadable", "unreadable"]
    assert results[3].reason == "no chunk of the track could be decoded" and "No such file" in results[4].reason
    assert results[0].probabilities.tolist() == [0.5, 0.5] and results[2].probabilities is None
    with pytest.raises(ValueError, match="neither scored nor reported"):
        source_results(["/elsewhere.wav"], [], {})
    assert isinstance(plan, ChunkPlan)


def test_the_pyfunc_params_override_the_models_scoring():
    from raytag.tracking.pyfunc_tagger import max_chunks_param, options_from_params

    model = ScoringOptions(max_chunks=4)
    assert options_from_params(model, None) == model
    assert options_from_params(model, {"max_chunks": 0, "batch_size": 2}) == ScoringOptions(None, 2)
    assert options_from_params(model, {"max_chunks": 8}).max_chunks == 8
    assert max_chunks_param(ScoringOptions(max_chunks=None)) == 0 and max_chunks_param(model) == 4
    with pytest.raises(ScoringError, match="param max_chunks must be a whole number"):
        options_from_params(model, {"max_chunks": "many"})
    with pytest.raises(ScoringError, match="max_chunks must be at least 1"):
        options_from_params(model, {"max_chunks": -3})


def test_the_job_config_takes_its_scoring_defaults_from_the_owner(tmp_path: Path):
    from raytag.config import validate_job

    job = validate_job({"name": "j", "data": {"manifest": "m.csv"}})
    assert job.eval.scoring_options() == ScoringOptions()
    assert validate_job({"name": "j", "data": {"manifest": "m.csv"},
                         "eval": {"max_chunks": None}}).eval.scoring_options().max_chunks is None
