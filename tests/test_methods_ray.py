"""Integration: runs are reproducible; co-teaching's two networks train under DDP.

Every method's step is tested without Ray (tests/test_methods.py, the engine with each
registered method). On Ray, each kind of cluster need runs once somewhere: plain methods (bce,
tests/test_train_ray.py; balanced training, here), teacher scores (balanced masking) and the mean
teacher (tests/test_pipeline_ray.py), the verified column (He et al.'s staged training,
tests/test_pipeline_ray.py), the unlabeled stream (noisy student, tests/test_semi_ray.py) and a
method's own network (co-teaching, here). Model families under DDP: tests/test_models_pons_crnn.py.
"""

from __future__ import annotations

import pytest
from mlflow.tracking import MlflowClient

from raytag.cluster.training.driver import train
from raytag.config import load_job

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


def test_coteaching_trains_its_two_networks_under_ddp(ray_session, tiny_job):
    """Co-teaching is the one method that builds its own network (two peers in one module):
    both must train under DDP's reducer, whose unused-parameter check fails on the second step."""
    job = load_job(tiny_job("m-coteaching"), ["train.epochs=2", "eval.max_chunks=1", "objective.name=coteaching"])
    outcome = train(job)
    assert outcome.report.tracks == 6 and len(losses(job)) == 2
