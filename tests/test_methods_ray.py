"""Integration: every registered method trains a DDP epoch on local Ray; runs are reproducible."""

from __future__ import annotations

import pytest
from mlflow.tracking import MlflowClient

from raytag.cluster.driver import train
from raytag.config import load_job
from raytag.methods import BASE_METHODS
from raytag.models.export import ModelRecipe, write_exported

pytestmark = pytest.mark.ray


def losses(job) -> list[float]:
    client = MlflowClient(job.tracking.uri)
    experiment = client.get_experiment_by_name(job.tracking.experiment)
    run = client.search_runs([experiment.experiment_id], filter_string=f"attributes.run_name = '{job.name}'")[0]
    return [m.value for m in sorted(client.get_metric_history(run.info.run_id, "train/loss"), key=lambda m: m.step)]


def test_two_runs_of_a_job_give_the_same_losses_and_another_seed_does_not(ray_session, tiny_job):
    """Crops, order, augmentation, masks and dropout all follow the seed: per-epoch training
    losses of two 2-worker runs agree to 1e-5; a different seed gives different ones."""
    overrides = ["train.epochs=2", "eval.max_chunks=1", "augment.enabled=true", "objective.name=balanced_training"]
    first = load_job(tiny_job("repro-a"), overrides)
    second = load_job(tiny_job("repro-b"), overrides)
    other = load_job(tiny_job("repro-c"), [*overrides, "seed=1"])
    for job in (first, second, other):
        train(job)
    a, b, c = losses(first), losses(second), losses(other)
    assert len(a) == 2
    assert a == pytest.approx(b, abs=1e-5)
    assert all(abs(x - y) > 1e-4 for x, y in zip(a, c))


@pytest.fixture(scope="module")
def untrained_teacher(tmp_path_factory, tiny_corpus):
    """An exported (untrained) teacher on the tiny corpus's tags: enough to serve the methods'
    teacher needs without training one first."""
    import csv

    tags = sorted({t for row in csv.DictReader((tiny_corpus / "manifest.csv").open()) for t in row["tags"].split(";") if t})
    recipe = ModelRecipe("mtt-tiny", {"crop_seconds": 1.0}, tuple(tags))
    folder = tmp_path_factory.mktemp("teacher")
    model = recipe.build()
    write_exported(folder, recipe, model.state_dict(), sample_rate=model.sample_rate, crop_samples=model.crop_samples)
    return str(folder)


@pytest.mark.parametrize("name", sorted(BASE_METHODS))
def test_every_registered_method_trains_a_ddp_epoch(ray_session, tiny_job, untrained_teacher, name):
    job = load_job(tiny_job(f"m-{name}"), [
        "train.epochs=1", "eval.max_chunks=1", f"objective.name={name}",
        f"objective.masking.teacher={untrained_teacher}",
    ])
    outcome = train(job)
    assert outcome.report.tracks == 6 and len(losses(job)) == 1


def test_wrappers_train_a_ddp_epoch(ray_session, tiny_job, untrained_teacher, tiny_corpus):
    """The mean teacher (after a zero-epoch warm-up) and noisy student on top of a base method."""
    mean_teacher = load_job(tiny_job("m-mean-teacher"), [
        "train.epochs=1", "eval.max_chunks=1", "objective.name=bootstrap_soft",
        "objective.mean_teacher.enabled=true", "objective.mean_teacher.warmup_epochs=0",
    ])
    noisy_student = load_job(tiny_job("m-noisy-student"), [
        "train.epochs=1", "eval.max_chunks=1", "semi.enabled=true", f"semi.teacher={untrained_teacher}",
        f"semi.unlabeled_dir={tiny_corpus / 'audio'}", "augment.enabled=true",
    ])
    for job, part in ((mean_teacher, "train/consistency"), (noisy_student, "train/unlabeled_loss")):
        train(job)
        client = MlflowClient(job.tracking.uri)
        experiment = client.get_experiment_by_name(job.tracking.experiment)
        run = client.search_runs([experiment.experiment_id], filter_string=f"attributes.run_name = '{job.name}'")[0]
        assert run.data.metrics[part] > 0


@pytest.mark.parametrize("model", ["pons-spectrogram-tiny", "pons-waveform-tiny", "cnn-gru-tiny"])
def test_every_new_model_family_trains_a_ddp_epoch(ray_session, tiny_job, model):
    """Pons et al.'s two front-ends and He et al.'s CNN-GRU, through the whole job path."""
    job = load_job(tiny_job(f"family-{model}"), ["train.epochs=1", "eval.max_chunks=1", f"model.name={model}",
                                                 "model.args={}"])
    outcome = train(job)
    assert outcome.report.tracks == 6 and len(losses(job)) == 1
