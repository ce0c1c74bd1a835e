"""bench/noise_runner.py and bench/bench_stats.py: the benchmark runner reproduces a run exactly,
cuts the crops the Ray pipeline cuts, and the paired statistics are right on a hand example."""

from __future__ import annotations

import math
import sys
from pathlib import Path

import numpy as np
import pytest

BENCH = Path(__file__).resolve().parents[1] / "bench"
sys.path.insert(0, str(BENCH))

from bench_stats import bootstrap_macro_roc_se, paired_difference, t_interval  # noqa: E402
from noise_runner import load_corpus, memory_batch, run_job  # noqa: E402
from raytag.config import validate_job  # noqa: E402
from raytag.data.batches import decode_batch  # noqa: E402
from raytag.data.rows import epoch_rows  # noqa: E402
from raytag.data.synth.corpus import SynthSpec, write_corpus  # noqa: E402


@pytest.fixture(scope="module")
def corpus_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("bench-corpus")
    spec = SynthSpec(clips=32, unlabeled=8, seconds=0.5, sample_rate=16000, seed=5, valid_fraction=0.25,
                     test_fraction=0.25, verified_fraction=0.5)
    write_corpus(folder, spec)
    return folder


@pytest.fixture(scope="module")
def corpus(corpus_dir):
    return load_corpus(corpus_dir / "manifest.csv", corpus_dir / "clean.csv",
                       splits=("train", "valid", "test", "unlabeled"))


def _job(corpus_dir, seed=0, **objective):
    return validate_job({
        "name": f"tiny-s{seed}", "seed": seed,
        "data": {"manifest": str(corpus_dir / "manifest.csv"), "clean_labels": str(corpus_dir / "clean.csv")},
        "model": {"name": "shortres-tiny", "args": {"crop_samples": 8000}},
        "train": {"epochs": 2, "batch_size": 8, "lr": 1e-3},
        "objective": objective or {"name": "balanced_training"},
        "augment": {"enabled": True},
        "eval": {"batch_size": 16, "average_last": 1},
        "tracking": {"enabled": False},
    })


def test_the_same_job_and_seed_give_the_same_numbers_and_another_seed_does_not(corpus_dir, corpus):
    quiet = lambda line: None  # noqa: E731
    first = run_job(_job(corpus_dir), corpus, log=quiet)
    again = run_job(_job(corpus_dir), corpus, log=quiet)
    other = run_job(_job(corpus_dir, seed=1), corpus, log=quiet)
    losses = [h["train/loss"] for h in first["history"]]
    assert losses == [h["train/loss"] for h in again["history"]]
    assert np.array_equal(first["test_scores"], again["test_scores"])
    assert first["test"] == again["test"] and first["best_epoch"] == again["best_epoch"]
    assert losses != [h["train/loss"] for h in other["history"]]
    assert len(first["history"]) == 2 and "test_epoch/roc_auc" in first["history"][-1]
    assert first["train_tracks"] == len(corpus.split("train").table)


def test_staged_training_gets_the_verified_and_noisy_columns_from_the_corpus(corpus_dir, corpus):
    result = run_job(_job(corpus_dir, name="staged_training", k=2), corpus, log=lambda line: None)
    train = corpus.split("train")
    assert result["columns"]["metrics"]["staged/verified_tracks"] == train.verified.sum() > 0
    assert "staged/ignored_precision" in result["history"][0]


def test_memory_crops_are_the_crops_the_decode_stage_cuts_from_the_files(corpus):
    train = corpus.split("train")
    rows = epoch_rows(train.table, seed=3, epoch=1, rank=0, world_size=1)[:5]
    from_memory = memory_batch(rows, train.audio, crop_samples=3000)  # random crops inside 0.5 s clips
    columns = {key: np.array([row[key] for row in rows]) for key in rows[0]}
    from_files = decode_batch(columns, sample_rate=16000, crop_samples=3000)
    for key in ("audio", "labels", "track", "seed", "decoded"):
        assert np.array_equal(from_memory[key], from_files[key]), key
    assert not np.array_equal(from_memory["audio"][0], train.audio[rows[0]["track"]][:3000])  # not all at 0


def test_paired_differences_on_a_hand_example():
    method = {0: 0.80, 1: 0.82, 2: 0.84, 7: 0.5}
    baseline = {0: 0.79, 1: 0.80, 2: 0.81}
    result = paired_difference(method, baseline)
    assert result.seeds == (0, 1, 2)  # seed 7 has no baseline
    assert np.allclose(result.differences, (0.01, 0.02, 0.03))
    half = 4.302652729911275 * 0.01 / math.sqrt(3)  # t(0.975, 2 df) · sd / √n
    assert result.mean == pytest.approx(0.02)
    assert (result.low, result.high) == (pytest.approx(0.02 - half), pytest.approx(0.02 + half))
    assert result.format() == "+0.0200 [-0.0048, +0.0448]"
    mean, low, high = t_interval([0.3])
    assert mean == 0.3 and math.isnan(low) and math.isnan(high)
    with pytest.raises(ValueError, match="no seed"):
        paired_difference({0: 1.0}, {1: 1.0})


def test_bootstrap_standard_error_is_zero_for_a_perfect_ranking_and_shrinks_with_more_clips():
    rng = np.random.default_rng(0)

    def se(n):
        labels = rng.random((n, 3)) < 0.4
        scores = labels + rng.normal(0.0, 1.0, labels.shape)
        return bootstrap_macro_roc_se(labels, scores, resamples=200)

    labels = rng.random((50, 3)) < 0.5
    assert bootstrap_macro_roc_se(labels, labels.astype(float), resamples=50) == 0.0
    small, large = se(60), se(960)
    assert 0.0 < large < small
    assert large == pytest.approx(small / 4, rel=0.5)  # ~1/√n: 16 times the clips, a quarter of the error


def test_the_rank_formula_macro_roc_auc_is_raytags_metric_with_ties_and_one_sided_tags():
    from bench_stats import macro_roc_auc
    from raytag.metrics import tagging_report

    rng = np.random.default_rng(1)
    labels = rng.random((40, 4)) < 0.3
    labels[:, 3] = False  # no positive: left out of the macro average
    scores = np.round(rng.random((40, 4)), 1)  # many ties
    expected = tagging_report(labels, scores, ["a", "b", "c", "d"]).roc_auc_macro
    assert macro_roc_auc(labels, scores) == pytest.approx(expected, abs=1e-12)


def test_lu_protocol_jobs_choose_in_a_window_then_continue_and_average_the_last_ten(tmp_path):
    import bench_noise

    assert bench_noise.LU_METHODS == ("bce", "btrain", "bmasking", "bmasking_mt")
    jobs = {m: validate_job(bench_noise.lu_protocol_tree(m, 1, tmp_path, tmp_path, window=40, more=30))
            for m in bench_noise.LU_METHODS}
    for job in jobs.values():
        assert (job.train.epochs, job.train.select_until_epoch, job.eval.average_last) == (70, 40, 10)
        assert job.seed == 1 and job.train.select_metric == "roc_auc"
    teacher = jobs["bmasking_mt"].objective.mean_teacher
    assert teacher.enabled and (teacher.warmup_epochs, teacher.ramp_epochs, teacher.beta_max) == (20, 20.0, 0.8)
    assert jobs["bmasking"].objective.teacher.endswith("lup-btrain-s1-w40m30")
    assert jobs["bmasking"].objective.percentile == 80
    # A short tail averages what it has.
    assert validate_job(bench_noise.lu_protocol_tree("bce", 0, tmp_path, tmp_path, window=2, more=2)).eval.average_last == 2


def test_fold_teachers_and_an_out_of_fold_teacher_in_the_runner(corpus_dir, corpus, tmp_path):
    """``train.leave_out`` trains a fold teacher without its fold; a Balanced-Masking run with the
    fold teachers' record as its teacher gets every training track scored by the fold model
    that did not see it; the verified validation rows are scored under their own prefix."""
    from noise_runner import load_teacher, teacher_track_scores, track_scores
    from raytag.folds import OofTeacher, fold_indices, write_oof_teacher

    quiet = lambda line: None  # noqa: E731
    train = corpus.split("train")
    folds = fold_indices(train.table.paths, folds=2, seed=0)
    assert 0 < folds.sum() < len(folds)
    models = []
    for fold in range(2):
        tree = _job(corpus_dir).model_dump(mode="json")
        tree["name"], tree["train"]["epochs"] = f"fold{fold}", 1
        # One batch per epoch: the folds hash the corpus's (temporary) paths, and a last batch of
        # one clip would reach shortres-tiny's 1x1 batch norm on 0.5 s crops.
        tree["train"]["batch_size"] = int((folds != fold).sum())
        tree["train"]["leave_out"] = {"folds": 2, "fold": fold, "seed": 0}
        result = run_job(validate_job(tree), corpus, log=quiet, export_to=tmp_path / f"fold{fold}")
        assert result["train_tracks"] == int((folds != fold).sum())  # trained without its fold
        models.append(str(tmp_path / f"fold{fold}"))
    write_oof_teacher(str(tmp_path / "oof"), OofTeacher(2, 0, tuple(models)))
    evaluation = dict(sample_rate=16000, crop_samples=8000, max_chunks=16, batch_size=16)
    tags = list(corpus.tags)
    scores = teacher_track_scores(str(tmp_path / "oof"), key="t", tags=tags, split=train, evaluation=evaluation)
    for fold in range(2):  # each track's row is its own fold teacher's score
        teacher, _, _ = load_teacher(models[fold], key="t", tags=tags)
        own = track_scores(teacher, train.subset(folds == fold), **evaluation)
        np.testing.assert_allclose(scores[folds == fold], own, rtol=1e-5, atol=1e-6)
    rows = np.zeros(len(corpus.split("valid").table), dtype=bool)
    rows[:3] = True
    masked = run_job(_job(corpus_dir, name="balanced_masking", teacher=str(tmp_path / "oof")), corpus,
                     log=quiet, verified_valid={"valid_verified/": rows})
    assert masked["columns"]["metrics"]["masking/masked_entries"] > 0
    assert all("valid_verified/roc_auc" in h for h in masked["history"])
