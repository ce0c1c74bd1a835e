"""He et al. 2020 staged training: per-clip losses, the updatable threshold (eq. 3) and the
keep mask (eqs. 1-2), checked against values worked out by hand."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from raytag.objectives import clip_losses, staged_keep_mask, update_threshold


def test_clip_losses_sum_bce_over_tags():
    logits = torch.tensor([[0.0, 0.0], [2.0, -1.0]], requires_grad=True)
    labels = torch.tensor([[1.0, 0.0], [1.0, 1.0]])
    losses = clip_losses(logits, labels)
    # Row 0: two entries of log 2. Row 1: log(1 + e^-2) + log(1 + e^1).
    expected = torch.tensor([2 * math.log(2), math.log1p(math.exp(-2)) + math.log1p(math.e)])
    torch.testing.assert_close(losses, expected)
    losses.sum().backward()
    assert logits.grad is not None
    torch.testing.assert_close(clip_losses(logits, labels, reduction="entry"), expected / 2)
    with pytest.raises(ValueError, match="reduction"):
        clip_losses(logits, labels, reduction="sum")
    with pytest.raises(ValueError, match="logits"):
        clip_losses(logits, labels[:, :1])


def test_threshold_starts_at_the_first_kth_largest_and_then_smooths():
    losses = torch.arange(1.0, 13.0)  # 1..12: the 3rd largest is 10
    eta = update_threshold(None, losses, k=3, alpha=0.9)
    assert eta.item() == pytest.approx(10.0)
    # Next batch: 3rd largest of 20..31 is 29 -> 0.9 * 10 + 0.1 * 29 = 11.9
    eta = update_threshold(eta, torch.arange(20.0, 32.0), k=3, alpha=0.9)
    assert eta.item() == pytest.approx(11.9)
    # Paper values k = 10, alpha = 0.9 on a batch of 64 (losses 0..63): 10th largest is 54.
    eta = update_threshold(eta, torch.arange(64.0), k=10, alpha=0.9)
    assert eta.item() == pytest.approx(0.9 * 11.9 + 0.1 * 54.0)
    assert update_threshold(None, torch.arange(64.0)).item() == 54.0  # defaults are the paper's


def test_threshold_ignores_rows_left_out_and_short_batches():
    losses = torch.tensor([5.0, 100.0, 3.0, 4.0, 1.0])
    rows = torch.tensor([True, False, True, True, True])
    assert update_threshold(None, losses, k=2, rows=rows).item() == 4.0  # 100 does not count
    # Fewer than k counted clips: no k-th largest, eta unchanged (or still undefined).
    assert update_threshold(None, losses, k=5, rows=rows) is None
    previous = torch.tensor(7.0)
    assert update_threshold(previous, losses, k=6) is previous
    # alpha = 0 follows the batch alone; alpha = 1 freezes eta.
    assert update_threshold(previous, losses, k=2, alpha=0.0).item() == 5.0
    assert update_threshold(previous, losses, k=2, alpha=1.0).item() == 7.0
    for bad in ({"k": 0}, {"alpha": 1.5}):
        with pytest.raises(ValueError, match=next(iter(bad))):
            update_threshold(None, losses, **bad)


def test_keep_mask_never_ignores_verified_clips():
    losses = torch.tensor([0.5, 2.0, 3.0, 2.0, 9.0])
    verified = torch.tensor([False, False, True, False, True])
    keep = staged_keep_mask(losses, verified=verified, threshold=torch.tensor(2.0))
    # eta = 2: the unverified losses 0.5, 2.0, 2.0 are not > eta (kept); 3.0 and 9.0 are
    # above eta but verified (kept).
    assert keep.tolist() == [True, True, True, True, True]
    keep = staged_keep_mask(losses, verified=verified, threshold=torch.tensor(1.0))
    # eta = 1: the two unverified 2.0 go.
    assert keep.tolist() == [True, False, True, False, True]
    # No threshold yet: everything counts.
    assert staged_keep_mask(losses, verified=verified, threshold=None).all()
    with pytest.raises(ValueError, match="verified"):
        staged_keep_mask(losses, verified=verified[:2], threshold=None)


def test_one_stage_two_step_by_hand():
    # 4 clips, 1 tag. Unverified clip 3 is labelled 1 but the model says -4: a large loss.
    logits = torch.tensor([[3.0], [-3.0], [2.0], [-4.0]], requires_grad=True)
    labels = torch.tensor([[1.0], [0.0], [0.0], [1.0]])
    verified = torch.tensor([True, False, True, False])
    losses = clip_losses(logits, labels)  # [l(3,1), l(-3,0), l(2,0), l(-4,1)]
    eta = update_threshold(None, losses.detach(), k=2)
    # 2nd largest: l(2, 0) = log(1 + e^2) = 2.127 < l(-4, 1) = 4.018
    assert eta.item() == pytest.approx(math.log1p(math.exp(2.0)), rel=1e-6)
    keep = staged_keep_mask(losses, verified=verified, threshold=eta)
    assert keep.tolist() == [True, True, True, False]
    loss = (losses * keep).sum() / keep.sum()
    loss.backward()
    assert logits.grad[3].item() == 0.0 and logits.grad[2].item() != 0.0
    expected = F.binary_cross_entropy_with_logits(logits[:3, 0], labels[:3, 0], reduction="sum") / 3
    torch.testing.assert_close(loss, expected)
