"""Losses: equal to their formulas, masks behave, added terms share a reduction."""

import pytest
import torch
import torch.nn.functional as F

from raytag.objectives import bce, bootstrap_loss, consistency_loss, masked_bce, reduce_losses


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


# --- reductions: a term added to a loss takes that loss's reduction ---------------------------


def _tiled(columns: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Student and teacher logits (6, columns): the same 6 values repeated in every column, so
    every K has the same per-entry losses."""
    generator = torch.Generator().manual_seed(21)
    student, teacher = torch.randn(6, 1, generator=generator), torch.randn(6, 1, generator=generator)
    return student.repeat(1, columns), teacher.repeat(1, columns)


@pytest.mark.parametrize("reduction", ["entry", "clip"])
def test_consistency_over_base_is_independent_of_the_number_of_tags(reduction):
    ratios = []
    for tags in (1, 5, 50):
        student, teacher = _tiled(tags)
        # Base loss with the teacher's probabilities as labels: the same per-entry BCE values.
        base = bce(student, torch.sigmoid(teacher), reduction=reduction)
        ratios.append((consistency_loss(student, teacher, reduction=reduction) / base).item())
    assert ratios == pytest.approx([1.0, 1.0, 1.0])
    # masked_bce (eq. 2) with nothing masked is the "clip" reduction.
    student, teacher = _tiled(5)
    eq2 = masked_bce(student, torch.sigmoid(teacher), torch.ones(6, 5))
    assert torch.allclose(eq2, bce(student, torch.sigmoid(teacher), reduction="clip"))


def test_mismatched_reductions_scale_consistency_by_the_number_of_tags():
    # The defect the reduction argument fixes: a per-clip L_con next to a per-entry base loss
    # (bce, bootstrapping) weighs K times more than β says.
    for tags in (1, 5, 50):
        student, teacher = _tiled(tags)
        base = bootstrap_loss(student, torch.sigmoid(teacher), beta=1.0, mode="soft")
        ratio = consistency_loss(student, teacher, reduction="clip") / base
        assert ratio.item() == pytest.approx(tags, rel=1e-5)
        assert (consistency_loss(student, teacher, reduction="entry") / base).item() == pytest.approx(1.0)


def test_bce_clip_reduction_is_per_clip_sum_over_kept_rows():
    logits, targets = torch.randn(4, 3), torch.randint(0, 2, (4, 3)).float()
    rows = torch.tensor([True, False, True, True])
    per_entry = F.binary_cross_entropy_with_logits(logits, targets, reduction="none")
    expected = per_entry[rows].sum() / 3
    assert torch.allclose(bce(logits, targets, rows, reduction="clip"), expected)
    assert torch.allclose(bce(logits, targets, reduction="clip"), per_entry.sum() / 4)
    assert torch.allclose(bce(logits, targets, rows, reduction="clip"), 3 * bce(logits, targets, rows))
    empty = torch.zeros(4, dtype=torch.bool)
    assert bce(logits, targets, empty, reduction="clip").item() == 0.0


def test_reduce_losses_rejects_bad_arguments():
    with pytest.raises(ValueError, match="reduction"):
        reduce_losses(torch.zeros(2, 2), reduction="mean")
    with pytest.raises(ValueError, match="rows"):
        reduce_losses(torch.zeros(2, 2), reduction="entry", rows=torch.ones(3))
    with pytest.raises(ValueError, match="reduction"):
        consistency_loss(torch.zeros(2, 2), torch.zeros(2, 2), reduction="sum")
