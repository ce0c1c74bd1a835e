"""Integration: noisy student training (teacher → student on unlabeled audio) on local Ray."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf
from mlflow.tracking import MlflowClient

from raytag.audio.augment import AugmentSpec
from raytag.config import load_job
from raytag.cluster.data.datasets import labelled_by_teacher, scan_tracks, track_table
from raytag.data.manifest import Track
from raytag.data.rows import epoch_rows
from raytag.cluster.training.pipeline import run_pipeline

pytestmark = pytest.mark.ray

STAGES = """
augment: {enabled: true, probability: 0.5}
stages:
  - name: teacher
  - name: student
    teacher: teacher
    overrides:
      model: {args: {crop_seconds: 1.0, width: 16, heads: 2}}
      semi: {enabled: true, ratio: 1.0, unlabeled_dir: %s}
"""


def test_teacher_to_student_run_with_lineage(ray_session, tiny_job, tiny_corpus):
    path = tiny_job("semi")
    path.write_text(path.read_text() + STAGES % (tiny_corpus / "audio"))
    job = load_job(path, ["train.epochs=1", "scaling.num_workers=1"])

    results = run_pipeline(job)

    client = MlflowClient(job.tracking.uri)
    experiment = client.get_experiment_by_name(job.tracking.experiment)
    runs = {r.info.run_name: r for r in client.search_runs([experiment.experiment_id])}
    teacher, student = runs["semi-teacher"], runs["semi-student"]
    assert student.data.tags["raytag.teacher_run_id"] == teacher.info.run_id
    assert student.data.tags["mlflow.parentRunId"] == runs["semi"].info.run_id
    assert student.data.metrics["data/unlabeled_tracks"] == 40
    assert student.data.metrics["train/unlabeled_loss"] > 0  # the student learned from soft labels
    assert student.data.params["model.args.width"] == "16"  # a smaller (KD) student
    assert [r.name for r in results] == ["teacher", "student"]


def test_teacher_labels_come_from_the_clean_crop(ray_session, tmp_path):
    class RmsLabeler:
        """A stand-in teacher that 'labels' a crop with its RMS, to see which audio it was given.

        Defined in the test so Ray pickles it by value (workers cannot import test modules).
        """

        def __init__(self, num_tags: int):
            self.num_tags = num_tags

        def __call__(self, batch):
            rms = np.sqrt(np.mean(batch["audio"] ** 2, axis=1, keepdims=True))
            return {**batch, "soft": np.repeat(rms, self.num_tags, axis=1)}

    rate = 8000
    tracks = []
    for i in range(6):  # clips exactly one crop long: the crop is the whole clip
        audio = (0.1 + 0.1 * i) * np.sin(2 * np.pi * 220 * np.arange(rate) / rate)
        sf.write(tmp_path / f"{i}.wav", audio, rate)
        tracks.append(Track(str(tmp_path / f"{i}.wav"), (), "unlabeled"))
    scan = scan_tracks(tracks, num_cpus=0.25)
    always_gain = AugmentSpec.from_settings(probability=0.0, gain_p=1.0)
    table, _ = track_table(tracks, np.zeros((6, 2), np.float32), scan)
    rows = epoch_rows(table, seed=0, epoch=0, rank=0, world_size=1, stream="unlabeled")
    ds = labelled_by_teacher(
        rows, sample_rate=rate, crop_samples=rate, num_cpus=0.25,
        labeler=RmsLabeler, labeler_kwargs={"num_tags": 2}, teacher_cpus=0.25, teacher_gpus=0.0,
        augment=always_gain,
    )
    rows = ds.take_all()
    assert len(rows) == 6
    clean = sorted(0.1 * (1 + i) / np.sqrt(2) for i in range(6))
    labelled_rms = sorted(float(r["u_soft"][0]) for r in rows)
    np.testing.assert_allclose(labelled_rms, clean, rtol=1e-3)  # the teacher saw the clean crop
    for row in rows:
        student_rms = float(np.sqrt(np.mean(row["u_audio"] ** 2)))
        assert student_rms < float(row["u_soft"][0]) * 0.9  # the student sees the augmented one
