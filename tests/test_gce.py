"""Generalized cross-entropy (Zhang & Sabuncu 2018): the loss's limits, its gradients, the method."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from raytag.config import ConfigError, validate_job
from raytag.engine.loop import train_epoch
from raytag.methods import build_method
from raytag.methods.base import Epoch
from raytag.models import create_model
from raytag.objectives.robust import generalized_cross_entropy

TAGS = ["a", "b", "c"]


def _logits_and_labels(n=64, k=5, seed=0):
    gen = torch.Generator().manual_seed(seed)
    return 3 * torch.randn(n, k, generator=gen), torch.randint(0, 2, (n, k), generator=gen).float()


def test_q_towards_zero_is_binary_cross_entropy():
    logits, labels = _logits_and_labels()
    soft = torch.rand(labels.shape, generator=torch.Generator().manual_seed(1))
    for targets in (labels, soft):
        bce = F.binary_cross_entropy_with_logits(logits, targets, reduction="none")
        assert torch.allclose(generalized_cross_entropy(logits, targets, q=1e-6), bce, atol=1e-4, rtol=1e-4)
    # and it leaves BCE as q grows: not BCE under another name
    assert not torch.allclose(generalized_cross_entropy(logits, labels, q=0.5),
                              F.binary_cross_entropy_with_logits(logits, labels, reduction="none"), atol=1e-2)


def test_q_one_is_the_mean_absolute_error():
    logits, labels = _logits_and_labels()
    mae = (labels - torch.sigmoid(logits)).abs()
    assert torch.allclose(generalized_cross_entropy(logits, labels, q=1.0), mae, atol=1e-6)


def test_a_closed_form_entry_and_the_bounds():
    # one positive with p = 0.25 at q = 0.5: (1 - 0.25 ** 0.5) / 0.5 = 1
    logit = torch.log(torch.tensor([[0.25 / 0.75]]))
    assert generalized_cross_entropy(logit, torch.ones(1, 1), q=0.5).item() == pytest.approx(1.0, abs=1e-6)
    logits, labels = _logits_and_labels()
    for q in (0.1, 0.7, 1.0):
        losses = generalized_cross_entropy(logits, labels, q=q)
        assert losses.shape == labels.shape and (losses >= 0).all() and (losses <= 1 / q + 1e-6).all()


@pytest.mark.parametrize("q", [1e-6, 0.3, 0.7, 1.0])
def test_gradients_are_finite_where_p_reaches_0_and_1(q):
    logits = torch.tensor([[-200.0, -40.0, 0.0, 40.0, 200.0]] * 2, requires_grad=True)
    labels = torch.tensor([[1.0] * 5, [0.0] * 5])
    losses = generalized_cross_entropy(logits, labels, q=q)
    losses.sum().backward()
    assert torch.isfinite(losses).all() and torch.isfinite(logits.grad).all()
    # d/dx = p^q times BCE's gradient: never steeper than BCE's, whose magnitude is at most 1
    assert (logits.grad.abs() <= 1.0 + 1e-6).all()
    bce_grad = torch.sigmoid(logits.detach()) - labels
    x = logits.detach()
    log_p_label = torch.where(labels > 0.5, F.logsigmoid(x), F.logsigmoid(-x))  # p^q in logs: σ(-200) underflows
    assert torch.allclose(logits.grad, torch.exp(q * log_p_label) * bce_grad, atol=1e-6)


def test_bad_q_and_shapes_are_rejected():
    logits, labels = _logits_and_labels(4, 3)
    for q in (0.0, -0.5, 1.5):
        with pytest.raises(ValueError, match="q must be in"):
            generalized_cross_entropy(logits, labels, q=q)
    with pytest.raises(ValueError, match="differ"):
        generalized_cross_entropy(logits, labels[:, :2], q=0.5)


def job(**objective):
    return validate_job({"name": "t", "data": {"manifest": "m.csv"}, "model": {"name": "mtt-tiny"},
                         "objective": {"name": "gce", **objective}})


def test_the_job_sets_q_and_rejects_one_outside_its_range():
    assert build_method(job(), tags=TAGS).q == 0.7
    assert build_method(job(q=0.4), tags=TAGS).q == 0.4
    for q in (0, 1.5):
        with pytest.raises(ConfigError, match=r"objective\.q: Input should be"):
            job(q=q)


def test_a_tiny_train_step_runs_on_the_engine_and_skips_rows_that_failed_to_decode():
    torch.manual_seed(0)
    method = build_method(job(q=0.7), tags=TAGS)
    model = create_model("mtt-tiny", num_tags=len(TAGS), crop_seconds=0.5)
    before = [p.detach().clone() for p in model.parameters()]
    gen = torch.Generator().manual_seed(0)
    batch = {"audio": 0.1 * torch.randn(6, 8000, generator=gen),
             "labels": torch.randint(0, 2, (6, len(TAGS)), generator=gen).float(),
             "decoded": torch.tensor([True, True, True, True, False, False])}
    method.start_epoch(Epoch(0, torch.Generator().manual_seed(0), model, 1))
    model.eval()
    with torch.no_grad():
        output = model(batch["audio"])
    expected = generalized_cross_entropy(output[:4], batch["labels"][:4], q=0.7).mean()
    assert method.loss(output, batch)["loss"].item() == pytest.approx(expected.item(), rel=1e-6)
    model.train()
    stats = train_epoch(model, [batch], torch.optim.SGD(model.parameters(), lr=0.1), method=method,
                        device=torch.device("cpu"))
    assert np.isfinite(stats.loss) and stats.steps == 1
    assert any(not torch.equal(a, b) for a, b in zip(before, model.parameters()))
