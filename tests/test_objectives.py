"""Losses: equal to their formulas, masks behave."""

import torch
import torch.nn.functional as F

from raytag.objectives import bce, masked_bce


def test_bce_equals_torch_mean_bce():
    logits, targets = torch.randn(6, 4), torch.randint(0, 2, (6, 4)).float()
    assert torch.allclose(bce(logits, targets), F.binary_cross_entropy_with_logits(logits, targets))


def test_bce_ignores_dropped_rows():
    logits, targets = torch.randn(4, 3), torch.randint(0, 2, (4, 3)).float()
    rows = torch.tensor([True, False, True, False])
    expected = F.binary_cross_entropy_with_logits(logits[rows], targets[rows])
    assert torch.allclose(bce(logits, targets, rows), expected)
    garbage = logits.clone()
    garbage[~rows] = 1e6
    assert torch.allclose(bce(garbage, targets, rows), expected)


def test_bce_with_no_row_kept_is_zero_with_gradient():
    logits = torch.randn(2, 3, requires_grad=True)
    loss = bce(logits, torch.ones(2, 3), torch.zeros(2, dtype=torch.bool))
    loss.backward()
    assert loss.item() == 0 and logits.grad is not None


def test_masked_bce_all_ones_is_bce_times_tags():
    logits, targets = torch.randn(5, 7), torch.randint(0, 2, (5, 7)).float()
    plain = F.binary_cross_entropy_with_logits(logits, targets, reduction="sum") / 5
    assert torch.allclose(masked_bce(logits, targets, torch.ones(5, 7)), plain)


def test_masked_bce_masked_entries_do_not_matter():
    logits, targets = torch.randn(3, 2), torch.zeros(3, 2)
    mask = torch.tensor([[1, 0], [1, 0], [0, 1]])
    changed = logits.clone()
    changed[mask == 0] = 50.0
    assert torch.allclose(masked_bce(logits, targets, mask), masked_bce(changed, targets, mask))
