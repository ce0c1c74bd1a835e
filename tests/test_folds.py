"""Out-of-fold teachers, Ray-free (issue 25 item 2): the fold of a track, the fold teachers'
jobs and training tracks, the record of a stage's fold models and the assembly of their scores
(every training track scored exactly once, by a teacher that did not see it)."""

from __future__ import annotations

import numpy as np
import pytest

from raytag.cluster.training.oof import fold_concurrency, fold_jobs
from raytag.config import ConfigError, validate_job
from raytag.data.manifest import read_manifest
from raytag.folds import (FoldError, OofTeacher, assemble_fold_scores, fold_indices, oof_teacher_location,
                          read_oof_teacher, track_fold, write_oof_teacher)
from raytag.plan import training_tracks

FOLDS = 3


def test_a_tracks_fold_is_a_seeded_hash_of_its_path():
    paths = [f"/music/track{i:04d}.mp3" for i in range(3000)]
    folds = fold_indices(paths, folds=FOLDS, seed=0)
    assert folds.tolist() == fold_indices(list(paths), folds=FOLDS, seed=0).tolist()  # stable
    assert fold_indices(paths[::-1], folds=FOLDS, seed=0).tolist() == folds[::-1].tolist()  # order-free
    # Pinned: the same fold in every run and on every machine (SHA-256, not Python's hash()).
    assert [track_fold(p, folds=5, seed=0) for p in paths[:6]] == PINNED
    counts = np.bincount(folds, minlength=FOLDS)
    assert counts.min() > 900  # about 1000 each
    other = fold_indices(paths, folds=FOLDS, seed=1)
    assert 0.5 < (other != folds).mean() < 0.8  # another seed, another assignment (2/3 differ by chance)
    with pytest.raises(ValueError, match="at least 2"):
        track_fold("a", folds=1, seed=0)


PINNED = [track_fold(f"/music/track{i:04d}.mp3", folds=5, seed=0) for i in range(6)]


def test_pinned_folds_do_not_depend_on_the_process():
    import subprocess
    import sys

    code = ("from raytag.folds import track_fold; "
            "print([track_fold(f'/music/track{i:04d}.mp3', folds=5, seed=0) for i in range(6)])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={"PYTHONHASHSEED": "123", "PATH": ""}).stdout
    assert out.strip() == str(PINNED)


def _manifest(tmp_path, tracks: int = 60):
    lines = ["path,tags,split,verified"]
    lines += [f"t{i}.wav,{'a' if i % 2 else 'b'},train,false" for i in range(tracks)]
    lines += ["v0.wav,a,valid,false", "x0.wav,b,test,false"]
    path = tmp_path / "manifest.csv"
    path.write_text("\n".join(lines) + "\n")
    return path


def _stage_job(manifest, folds=FOLDS):
    job = validate_job({"name": "p", "seed": 4, "data": {"manifest": str(manifest)},
                        "stages": [{"name": "teacher", "folds": folds}]})
    from raytag.config import stage_jobs

    (stage, stage_job), = stage_jobs(job)
    return stage, stage_job


def test_fold_teachers_train_without_their_fold_and_scores_assemble_out_of_fold(tmp_path):
    manifest = read_manifest(_manifest(tmp_path))
    stage, stage_job = _stage_job(tmp_path / "manifest.csv")
    assert stage.folds == FOLDS
    jobs = fold_jobs(stage_job, FOLDS)
    assert [j.name for j in jobs] == ["p-teacher-fold0", "p-teacher-fold1", "p-teacher-fold2"]
    assert [(j.train.leave_out.fold, j.train.leave_out.folds, j.train.leave_out.seed) for j in jobs] == [
        (k, FOLDS, 4) for k in range(FOLDS)]
    everything = [t.path for t in training_tracks(stage_job, manifest)]
    seen = [{t.path for t in training_tracks(job, manifest)} for job in jobs]
    folds = fold_indices(everything, folds=FOLDS, seed=4)
    for k in range(FOLDS):
        # Teacher k trained on every track but those of fold k, and fold k is not empty.
        assert seen[k] == {p for p, f in zip(everything, folds) if f != k} and len(seen[k]) < len(everything)
    # Each fold teacher scores its fold: a score that says which teacher gave it.
    parts = {k: np.full((int((folds == k).sum()), 2), float(k), np.float32) for k in range(FOLDS)}
    scores = assemble_fold_scores(folds, parts, num_tags=2)
    assert not np.isnan(scores).any()  # every track scored
    for path, row in zip(everything, scores):
        teacher = int(row[0])
        assert path not in seen[teacher]  # by a teacher that did not train on it
    # Exactly once: the parts' rows are a partition of the tracks.
    assert sum(len(p) for p in parts.values()) == len(everything)


def test_assembly_refuses_a_fold_without_scores_or_of_the_wrong_size():
    folds = np.array([0, 1, 0, 2])
    with pytest.raises(ValueError, match="fold 2 has 1 track"):
        assemble_fold_scores(folds, {0: np.zeros((2, 1)), 1: np.zeros((1, 1))}, num_tags=1)
    with pytest.raises(ValueError, match="fold 0: scores of shape"):
        assemble_fold_scores(folds, {0: np.zeros((3, 1)), 1: np.zeros((1, 1)), 2: np.zeros((1, 1))}, num_tags=1)
    # NaN rows (tracks a teacher could not decode) stay NaN.
    out = assemble_fold_scores(folds, {0: np.array([[np.nan], [0.5]]), 1: [[0.1]], 2: [[0.2]]}, num_tags=1)
    assert np.isnan(out[0, 0]) and out[1:, 0].tolist() == pytest.approx([0.1, 0.5, 0.2])


def test_the_out_of_fold_teacher_record(tmp_path):
    folder = str(tmp_path / "best_model")
    assert read_oof_teacher(folder) is None and read_oof_teacher("models:/m/1") is None
    teacher = OofTeacher(2, 7, ("/s/a/best_model", "/s/b/best_model"))
    write_oof_teacher(folder, teacher)
    assert read_oof_teacher(folder) == teacher
    (tmp_path / "best_model" / "oof-teacher.json").write_text('{"format": 9}')
    with pytest.raises(FoldError, match="format 9"):
        read_oof_teacher(folder)
    (tmp_path / "best_model" / "oof-teacher.json").write_text('{"format": 1, "folds": 3, "seed": 0, "models": ["a"]}')
    with pytest.raises(FoldError, match=r"oof-teacher.json: not an out-of-fold teacher record"):
        read_oof_teacher(folder)
    assert oof_teacher_location("/x/") == "/x/oof-teacher.json"


def test_stage_and_leave_out_settings_are_validated():
    base = {"name": "p", "data": {"manifest": "m.csv"}}
    with pytest.raises(ConfigError, match="train.leave_out: fold 2 is not one of the 2 folds"):
        validate_job({**base, "train": {"leave_out": {"folds": 2, "fold": 2}}})
    with pytest.raises(ConfigError, match="folds cannot be combined with repeat"):
        validate_job({**base, "stages": [{"name": "t", "folds": 2, "repeat": 2}]})
    with pytest.raises(ConfigError, match="folds"):
        validate_job({**base, "stages": [{"name": "t", "folds": 1}]})
    with pytest.raises(ConfigError, match="init_from 't' has folds"):
        validate_job({**base, "stages": [{"name": "t", "folds": 2}, {"name": "s", "init_from": "t"}]})


def test_fold_teachers_run_side_by_side_as_far_as_the_cluster_has_room(tmp_path):
    job = validate_job({"name": "p", "data": {"manifest": "m.csv", "decode_cpus": 0.25},
                        "scaling": {"num_workers": 1, "cpus_per_worker": 0.5}})
    # Each needs 0.5 (worker) + 0.25 (decode) + 0.1 (trial driver) = 0.85 CPU.
    assert fold_concurrency(job, {"CPU": 2.0}, pending=3) == 2
    assert fold_concurrency(job, {"CPU": 16.0}, pending=3) == 3
    assert fold_concurrency(job, {"CPU": 0.5}, pending=3) == 1  # one after another
    gpu = job.model_copy(update={"scaling": job.scaling.model_copy(update={"use_gpu": True})})
    assert fold_concurrency(gpu, {"CPU": 16.0, "GPU": 2.0}, pending=5) == 2
