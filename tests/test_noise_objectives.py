"""Noise-robust objectives: Lu et al. masks (Alg. 1, eq. 3), mean teacher (eqs. 4, 5, 7), and the
bootstrapping baseline (Co-teaching: test_coteaching.py). Pure and fast: no Ray."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from requirements import needs_cuda_device
from raytag.objectives import (
    balanced_training_mask,
    bce,
    bootstrap_loss,
    consistency_loss,
    consistency_weight,
    ema_update,
    make_mean_teacher,
    masked_bce,
    negative_thresholds,
    suspected_missing_mask,
)


def _labels_with_positive_counts(n: int, positives: list[int]) -> torch.Tensor:
    """(n, len(positives)) labels whose column j has its first positives[j] rows positive."""
    rows = torch.arange(n).unsqueeze(1)
    return (rows < torch.tensor(positives).unsqueeze(0)).float()


# --- Algorithm 1: balanced-training mask ------------------------------------------------------


def test_negative_majority_drops_only_negatives():
    labels = _labels_with_positive_counts(10, [2, 3, 1])
    generator = torch.Generator().manual_seed(0)
    dropped_any_negative = False
    for _ in range(200):
        mask = balanced_training_mask(labels, generator=generator)
        assert mask.dtype == torch.float32 and mask.shape == labels.shape
        assert set(mask.unique().tolist()) <= {0.0, 1.0}
        assert torch.all(mask[labels == 1] == 1)  # every positive kept
        dropped_any_negative |= bool((mask[labels == 0] == 0).any())
    assert dropped_any_negative


def test_positive_majority_drops_only_positives():
    labels = _labels_with_positive_counts(10, [8, 7, 9])
    generator = torch.Generator().manual_seed(1)
    for _ in range(200):
        mask = balanced_training_mask(labels, generator=generator)
        assert torch.all(mask[labels == 0] == 1)  # every negative kept


def test_expected_kept_majority_equals_minority_count():
    positives = [2, 5, 15, 18]  # N = 20: two negative-majority tags, two positive-majority tags
    labels = _labels_with_positive_counts(20, positives)
    generator = torch.Generator().manual_seed(2)
    draws = torch.stack([balanced_training_mask(labels, generator=generator) for _ in range(2000)])
    kept_pos = (draws * labels).sum(dim=1).mean(dim=0)  # (K,) mean kept positives per tag
    kept_neg = (draws * (1 - labels)).sum(dim=1).mean(dim=0)
    for j, p in enumerate(positives):
        n = 20 - p
        minority = min(p, n)
        # std of the mean over 2000 draws is <= 0.05 here; 0.2 is a safe band.
        assert kept_neg[j].item() == pytest.approx(minority, abs=0.2)
        assert kept_pos[j].item() == pytest.approx(minority, abs=0.2)


def test_balanced_tags_are_untouched_and_degenerate_tags_fully_dropped():
    # Column 0: 3 pos / 3 neg (balanced, nothing dropped). Column 1: no positive, so Algorithm 1
    # drops negatives with probability (n - 0)/n = 1. Column 2: no negative, so positives are
    # dropped with probability (p - 0)/p = 1.
    labels = torch.tensor([[1, 0, 1]] * 3 + [[0, 0, 1]] * 3, dtype=torch.float32)
    mask = balanced_training_mask(labels, generator=torch.Generator().manual_seed(3))
    assert torch.all(mask[:, 0] == 1)
    assert torch.all(mask[:, 1:] == 0)


def test_keep_is_respected_and_defines_the_counts():
    # Column 0: 3 pos / 3 neg, but keep removes two positives -> p=1, n=3 among kept.
    # Column 1: 2 pos / 4 neg, keep removes two negatives -> p=n=2, nothing dropped.
    labels = torch.tensor(
        [[1, 1], [1, 1], [1, 0], [0, 0], [0, 0], [0, 0]], dtype=torch.float32
    )
    keep = torch.tensor([[0, 1], [0, 1], [1, 1], [1, 1], [1, 0], [1, 0]], dtype=torch.float32)
    generator = torch.Generator().manual_seed(4)
    draws = torch.stack(
        [balanced_training_mask(labels, generator=generator, keep=keep) for _ in range(2000)]
    )
    assert torch.all(draws[:, keep == 0] == 0)  # outside keep: always 0
    assert torch.all(draws[:, 2, 0] == 1)  # the only kept positive of tag 0 is the minority
    kept_neg_tag0 = draws[:, 3:, 0].sum(dim=1).mean().item()
    assert kept_neg_tag0 == pytest.approx(1.0, abs=0.1)  # balanced to p_0 = 1, not 3
    assert torch.all(draws[:, :4, 1] == 1)  # tag 1 balanced among kept entries


def test_seeded_generator_is_deterministic():
    labels = (torch.rand(64, 10, generator=torch.Generator().manual_seed(5)) < 0.2).float()
    a = balanced_training_mask(labels, generator=torch.Generator().manual_seed(11))
    b = balanced_training_mask(labels, generator=torch.Generator().manual_seed(11))
    c = balanced_training_mask(labels, generator=torch.Generator().manual_seed(12))
    assert torch.equal(a, b)
    assert not torch.equal(a, c)


@needs_cuda_device
def test_mask_on_cuda_with_either_generator():
    labels = _labels_with_positive_counts(16, [2, 8, 14]).cuda()
    for generator in (torch.Generator().manual_seed(0), torch.Generator("cuda").manual_seed(0)):
        mask = balanced_training_mask(labels, generator=generator, keep=torch.ones_like(labels))
        assert mask.device == labels.device
        assert torch.all(mask[:, 0][labels[:, 0] == 1] == 1)


def test_balanced_mask_composes_with_masked_bce():
    # Every tag balanced (p_j = n_j), so the mask is all ones and eq. 2 is BCE summed over tags.
    labels = torch.tensor([[1, 0, 1], [0, 1, 0], [1, 1, 0], [0, 0, 1]], dtype=torch.float32)
    mask = balanced_training_mask(labels, generator=torch.Generator().manual_seed(6))
    assert torch.all(mask == 1)
    logits = torch.randn(4, 3, generator=torch.Generator().manual_seed(7))
    assert torch.allclose(masked_bce(logits, labels, mask), bce(logits, labels) * 3)


# --- eq. 3: percentile thresholds and the suspected-missing mask -------------------------------


def _threshold_fixture() -> tuple[np.ndarray, np.ndarray]:
    # Tag 0: negatives score 0.1..0.5, one positive scores 0.9. Tag 1: all positive.
    # Tag 2: negatives score 0.3, 0.7, 0.5, 0.6, 0.2 and one positive.
    scores = np.array(
        [
            [0.1, 0.9, 0.3],
            [0.2, 0.8, 0.7],
            [0.3, 0.7, 0.5],
            [0.4, 0.6, 0.6],
            [0.5, 0.5, 0.2],
            [0.9, 0.4, 0.99],
        ]
    )
    labels = np.array([[0, 1, 0]] * 5 + [[1, 1, 1]])
    return scores, labels


def test_negative_thresholds_by_hand():
    scores, labels = _threshold_fixture()
    thresholds = negative_thresholds(scores, labels, 80.0)
    # Tag 0: sorted negatives [0.1, 0.2, 0.3, 0.4, 0.5]; rank 0.8 * (5 - 1) = 3.2, so
    # 0.4 + 0.2 * (0.5 - 0.4) = 0.42 (numpy's linear interpolation). The positive's 0.9 is ignored.
    # Tag 1: no labelled negative -> +inf. Tag 2: sorted [0.2, 0.3, 0.5, 0.6, 0.7] -> 0.62.
    np.testing.assert_allclose(thresholds[[0, 2]], [0.42, 0.62])
    assert math.isinf(thresholds[1]) and thresholds[1] > 0
    # Percentile 50 of tag 0 is the median 0.3; percentile 100 is the max 0.5.
    assert negative_thresholds(scores, labels, 50)[0] == pytest.approx(0.3)
    assert negative_thresholds(scores, labels, 100)[0] == pytest.approx(0.5)


@pytest.mark.parametrize("percentile", [-1.0, 100.5, float("nan")])
def test_negative_thresholds_rejects_bad_percentile(percentile):
    scores, labels = _threshold_fixture()
    with pytest.raises(ValueError, match="percentile"):
        negative_thresholds(scores, labels, percentile)


def test_suspected_missing_mask_by_hand():
    scores, labels = _threshold_fixture()
    mask = suspected_missing_mask(scores, labels, negative_thresholds(scores, labels, 80.0))
    assert mask.dtype == np.float32 and mask.shape == scores.shape
    # Tag 0 (xi = 0.42): only the negative 0.5 is >= xi. Tag 2 (xi = 0.62): only 0.7.
    expected = np.ones_like(mask)
    expected[4, 0] = 0
    expected[1, 2] = 0
    np.testing.assert_array_equal(mask, expected)
    # Positives (row 5, all of tag 1) are never masked despite high scores / an inf threshold.
    assert np.all(mask[labels == 1] == 1)


def test_suspected_missing_mask_masks_score_equal_to_threshold():
    scores, labels = _threshold_fixture()
    thresholds = negative_thresholds(scores, labels, 100.0)  # xi = max negative score
    mask = suspected_missing_mask(scores, labels, thresholds)
    assert mask[4, 0] == 0 and mask[1, 2] == 0  # score == xi counts as suspected
    assert mask.sum() == mask.size - 2


def test_eq3_mask_feeds_balanced_mask_as_keep():
    scores, labels = _threshold_fixture()
    keep = suspected_missing_mask(scores, labels, negative_thresholds(scores, labels, 80.0))
    mask = balanced_training_mask(
        torch.from_numpy(labels), generator=torch.Generator().manual_seed(8),
        keep=torch.from_numpy(keep),
    )
    assert mask[4, 0] == 0 and mask[1, 2] == 0


# --- mean teacher: EMA (eq. 4), consistency (eq. 5), ramp (eq. 7) -----------------------------


def _linear_pair() -> tuple[nn.Linear, nn.Linear]:
    generator = torch.Generator().manual_seed(0)
    student = nn.Linear(3, 2)
    teacher = make_mean_teacher(student)
    with torch.no_grad():  # move the student away from the teacher
        for parameter in student.parameters():
            parameter.add_(torch.randn(parameter.shape, generator=generator))
    return teacher, student


def test_ema_update_math():
    teacher, student = _linear_pair()
    old = {name: p.detach().clone().double() for name, p in teacher.named_parameters()}
    ema_update(teacher, student, 0.9)
    for name, p in teacher.named_parameters():
        expected = 0.9 * old[name] + 0.1 * dict(student.named_parameters())[name].double()
        torch.testing.assert_close(p.double(), expected, rtol=1e-6, atol=1e-7)


def test_ema_update_extremes_and_frozen_teacher():
    teacher, student = _linear_pair()
    before = [p.detach().clone() for p in teacher.parameters()]
    ema_update(teacher, student, 1.0)
    assert all(torch.equal(p, b) for p, b in zip(teacher.parameters(), before))
    ema_update(teacher, student, 0.0)
    assert all(torch.equal(t, s) for t, s in zip(teacher.parameters(), student.parameters()))
    assert all(not p.requires_grad for p in teacher.parameters())
    assert all(p.requires_grad for p in student.parameters())
    assert not teacher.training


def test_ema_update_buffers():
    student = nn.Sequential(nn.Linear(2, 3), nn.BatchNorm1d(3))
    teacher = make_mean_teacher(student)
    student(torch.randn(8, 2))  # moves the student's running stats, counts one batch
    ema_update(teacher, student, 0.5)
    bn_t, bn_s = teacher[1], student[1]
    torch.testing.assert_close(bn_t.running_mean, 0.5 * bn_s.running_mean)  # teacher's was 0
    torch.testing.assert_close(bn_t.running_var, 0.5 + 0.5 * bn_s.running_var)  # was 1
    assert bn_t.num_batches_tracked.item() == bn_s.num_batches_tracked.item() == 1


def test_ema_update_rejects_different_modules():
    with pytest.raises(ValueError, match="names differ"):
        ema_update(nn.Linear(3, 2), nn.Sequential(nn.Linear(3, 2)), 0.9)
    with pytest.raises(ValueError, match="shape"):
        ema_update(nn.Linear(3, 2), nn.Linear(3, 4), 0.9)
    with pytest.raises(ValueError, match="eta"):
        ema_update(nn.Linear(3, 2), nn.Linear(3, 2), 1.5)


def test_mean_teacher_is_an_independent_copy():
    student = nn.Linear(3, 2)
    teacher = make_mean_teacher(student)
    assert torch.equal(teacher.weight, student.weight)
    with torch.no_grad():
        student.weight.add_(1.0)
    assert not torch.equal(teacher.weight, student.weight)


def test_consistency_weight_ramp():
    kwargs = {"beta_max": 0.8, "t0": 40000, "gamma": 0.5}
    assert consistency_weight(0, **kwargs) == 0.0
    assert consistency_weight(10000, **kwargs) == pytest.approx(0.4)  # 0.8 * 0.25 ** 0.5
    assert consistency_weight(40000, **kwargs) == pytest.approx(0.8)
    assert consistency_weight(100000, **kwargs) == pytest.approx(0.8)
    assert consistency_weight(5, beta_max=0.8, t0=0, gamma=0.5) == pytest.approx(0.8)
    with pytest.raises(ValueError):
        consistency_weight(-1, **kwargs)


def test_consistency_loss_equals_formula():
    generator = torch.Generator().manual_seed(9)
    student = torch.randn(4, 5, generator=generator)
    teacher = torch.randn(4, 5, generator=generator)
    t, s = torch.sigmoid(teacher), torch.sigmoid(student)
    expected = -(t * torch.log(s) + (1 - t) * torch.log(1 - s)).sum() / 4  # (1/N) sum_i sum_j
    torch.testing.assert_close(consistency_loss(student, teacher), expected)


def test_consistency_gradient_vanishes_at_agreement_and_spares_the_teacher():
    logits = torch.randn(4, 5, generator=torch.Generator().manual_seed(10))
    student = logits.clone().requires_grad_(True)
    teacher = logits.clone().requires_grad_(True)
    loss = consistency_loss(student, teacher)
    assert loss.item() > 0  # entropy floor of soft targets
    loss.backward()
    torch.testing.assert_close(student.grad, torch.zeros_like(logits), rtol=0, atol=1e-7)
    assert teacher.grad is None or torch.all(teacher.grad == 0)


# --- baseline: bootstrapping --------------------------------------------------------------


def test_bootstrap_targets_by_hand():
    logits = torch.tensor([[0.0, 2.0], [-1.0, 3.0]])
    labels = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    p = torch.sigmoid(logits)
    soft_targets = 0.95 * labels + 0.05 * p
    # Hard: sigmoid(0) = 0.5 is not > 0.5, so only the positive logits count as predicted 1.
    hard_targets = torch.tensor([[0.8, 0.2], [0.0, 1.0]])
    for mode, beta, targets in (("soft", 0.95, soft_targets), ("hard", 0.8, hard_targets)):
        leaf = logits.clone().requires_grad_(True)
        loss = bootstrap_loss(leaf, labels, beta=beta, mode=mode)
        expected = -(targets * torch.log(p) + (1 - targets) * torch.log(1 - p)).mean()
        torch.testing.assert_close(loss, expected)
    # Hard: the thresholded prediction is a constant, d/dlogit = (p - target) / (N K).
    leaf = logits.clone().requires_grad_(True)
    bootstrap_loss(leaf, labels, beta=0.8, mode="hard").backward()
    torch.testing.assert_close(leaf.grad, (p - hard_targets) / 4)


def test_soft_bootstrap_keeps_the_prediction_in_the_gradient_as_reed_et_al():
    # Reed et al. 2015 soft bootstrapping: -Σ [β y + (1 − β) q] log q with q the prediction,
    # differentiated through q too. Autograd through the written-out formula is the reference.
    generator = torch.Generator().manual_seed(0)
    logits = torch.randn(6, 5, generator=generator) * 3
    labels = (torch.rand(6, 5, generator=generator) > 0.6).float()
    beta = 0.95
    reference_leaf = logits.clone().requires_grad_(True)
    q = torch.sigmoid(reference_leaf)
    targets = beta * labels + (1 - beta) * q
    reference = -(targets * torch.log(q) + (1 - targets) * torch.log(1 - q)).mean()
    reference.backward()
    leaf = logits.clone().requires_grad_(True)
    loss = bootstrap_loss(leaf, labels, beta=beta, mode="soft")
    loss.backward()
    torch.testing.assert_close(loss, reference.detach())
    torch.testing.assert_close(leaf.grad, reference_leaf.grad)
    # In closed form: β (p − y) − (1 − β) x p (1 − p), per entry, over N K.
    p = torch.sigmoid(logits)
    closed = (beta * (p - labels) - (1 - beta) * logits * p * (1 - p)) / logits.numel()
    torch.testing.assert_close(leaf.grad, closed)


def test_soft_bootstrap_is_not_a_rescaled_bce():
    # The defect this guards against: with p detached, the gradient was β × BCE's, i.e. BCE.
    generator = torch.Generator().manual_seed(1)
    logits = torch.randn(8, 4, generator=generator) * 2
    labels = (torch.rand(8, 4, generator=generator) > 0.5).float()
    soft_leaf, bce_leaf = logits.clone().requires_grad_(True), logits.clone().requires_grad_(True)
    bootstrap_loss(soft_leaf, labels, beta=0.95, mode="soft").backward()
    F.binary_cross_entropy_with_logits(bce_leaf, labels).backward()
    ratio = soft_leaf.grad / bce_leaf.grad
    assert (ratio.max() - ratio.min()).item() > 0.05  # not one scale factor for all entries
    assert not torch.allclose(soft_leaf.grad, 0.95 * bce_leaf.grad, atol=1e-4)
    # β = 1 is BCE exactly.
    beta_one = logits.clone().requires_grad_(True)
    bootstrap_loss(beta_one, labels, beta=1.0, mode="soft").backward()
    torch.testing.assert_close(beta_one.grad, bce_leaf.grad)


def test_bootstrap_rejects_unknown_mode():
    with pytest.raises(ValueError, match="mode"):
        bootstrap_loss(torch.zeros(1, 1), torch.zeros(1, 1), beta=0.9, mode="medium")
