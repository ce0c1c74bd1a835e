"""Co-teaching (Han et al. 2018) for multi-label tagging: the peer selection, per tag and label
class, and the forget-rate schedule."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from requirements import needs_cuda_device
from raytag.objectives import coteaching_losses, coteaching_selection, forget_rate


def _labels_with_positive_counts(n: int, positives: list[int]) -> torch.Tensor:
    """(n, len(positives)) labels whose column j has its first positives[j] rows positive."""
    rows = torch.arange(n).unsqueeze(1)
    return (rows < torch.tensor(positives).unsqueeze(0)).float()


def test_coteaching_with_no_forgetting_is_plain_bce():
    generator = torch.Generator().manual_seed(12)
    a, b = torch.randn(6, 4, generator=generator), torch.randn(6, 4, generator=generator)
    labels = (torch.rand(6, 4, generator=generator) < 0.3).float()
    loss_a, loss_b = coteaching_losses(a, b, labels, forget_rate=0.0)
    torch.testing.assert_close(loss_a, F.binary_cross_entropy_with_logits(a, labels))
    torch.testing.assert_close(loss_b, F.binary_cross_entropy_with_logits(b, labels))


def test_coteaching_uses_the_peer_selection():
    labels = torch.zeros(2, 3)
    # Net a has small losses on row 0, net b on row 1 (labels 0: low logit = small loss).
    a = torch.tensor([[-5.0, -4.0, -6.0], [5.0, 6.0, 4.0]], requires_grad=True)
    b = torch.tensor([[5.0, 4.0, 6.0], [-5.0, -6.0, -4.0]], requires_grad=True)
    loss_a, loss_b = coteaching_losses(a, b, labels, forget_rate=0.5)
    torch.testing.assert_close(loss_a, F.binary_cross_entropy_with_logits(a[1], labels[1]))
    torch.testing.assert_close(loss_b, F.binary_cross_entropy_with_logits(b[0], labels[0]))
    (loss_a + loss_b).backward()
    # Each loss covers exactly half of the 6 entries: those its peer selected.
    assert torch.equal(a.grad != 0, torch.tensor([[False] * 3, [True] * 3]))
    assert torch.equal(b.grad != 0, torch.tensor([[True] * 3, [False] * 3]))


def test_coteaching_ties_and_minimum_selection():
    labels = torch.zeros(2, 2)
    a = torch.zeros(2, 2, requires_grad=True)  # all losses tie
    b = torch.zeros(2, 2, requires_grad=True)
    loss_a, _ = coteaching_losses(a, b, labels, forget_rate=0.5)
    loss_a.backward()
    # Ties go to the lowest row-major indices: entries (0, 0) and (0, 1).
    assert torch.equal(a.grad != 0, torch.tensor([[True, True], [False, False]]))
    a.grad = None
    # Forgetting everything (R = 1) selects nothing: a zero loss, still on the graph.
    loss_a, loss_b = coteaching_losses(a, b, labels, forget_rate=1.0)
    loss_a.backward()
    assert loss_a.item() == 0.0 and loss_b.item() == 0.0
    assert torch.equal(a.grad, torch.zeros_like(a))


def test_coteaching_forgets_the_same_share_of_positives_and_negatives_per_tag():
    # 40 clips, 4 tags with 2, 5, 10 and 30 positives; every positive has a higher loss than
    # every negative of its tag (the imbalanced-tagging situation). A pooled small-loss rule
    # would forget positives first; the per tag and class rule forgets R of each pool.
    generator = torch.Generator().manual_seed(13)
    labels = _labels_with_positive_counts(40, [2, 5, 10, 30])
    losses = torch.rand(40, 4, generator=generator) + 2.0 * labels  # positives in [2, 3)
    for rate in (0.0, 0.1, 0.25, 0.5):
        selected = coteaching_selection(losses, labels, forget_rate=rate)
        for j in range(4):
            positive = labels[:, j] == 1
            for pool in (positive, ~positive):
                count = int(pool.sum())
                kept = int(selected[pool, j].sum())
                assert kept == count - math.floor(rate * count + 1e-9)
                # the kept entries of a pool are its smallest losses
                if 0 < kept < count:
                    assert losses[pool, j][selected[pool, j]].max() <= losses[pool, j][~selected[pool, j]].min()
            share_pos = selected[positive, j].float().mean().item()
            share_neg = selected[~positive, j].float().mean().item()
            # equal up to rounding to whole entries of the smaller pool
            assert abs(share_pos - share_neg) < 1.0 / min(int(positive.sum()), int((~positive).sum()))
    # The pooled rule this replaces (keep the smallest 75 % of all entries) drops positives only.
    pooled = losses.flatten().argsort()[: int(0.75 * losses.numel())]
    pooled_mask = torch.zeros(losses.numel(), dtype=torch.bool)
    pooled_mask[pooled] = True
    assert pooled_mask.view(40, 4)[labels == 1].float().mean() < 0.2


def test_coteaching_selection_forgets_the_largest_loss_of_each_pool_and_checks_input():
    labels = torch.tensor([[1.0], [1.0], [0.0], [0.0], [0.0], [0.0]])
    losses = torch.tensor([[0.3], [0.9], [0.1], [0.8], [0.2], [0.2]])
    selected = coteaching_selection(losses, labels, forget_rate=0.5)
    # positives: forget 1 of 2 (the 0.9); negatives: forget 2 of 4 (0.8, then the later 0.2)
    assert selected[:, 0].tolist() == [True, False, True, False, True, False]
    with pytest.raises(ValueError, match="forget_rate"):
        coteaching_selection(losses, labels, forget_rate=1.5)
    with pytest.raises(ValueError, match="losses"):
        coteaching_selection(losses[:, 0], labels[:, 0], forget_rate=0.5)


def test_forget_rate_schedule():
    assert forget_rate(0, tau=0.2, num_gradual=10) == 0.0
    assert forget_rate(5, tau=0.2, num_gradual=10) == pytest.approx(0.1)
    assert forget_rate(10, tau=0.2, num_gradual=10) == pytest.approx(0.2)
    assert forget_rate(30, tau=0.2, num_gradual=10) == pytest.approx(0.2)
    assert forget_rate(5, tau=0.2, num_gradual=10, exponent=2.0) == pytest.approx(0.05)
    assert forget_rate(0, tau=0.2, num_gradual=0) == pytest.approx(0.2)
    with pytest.raises(ValueError):
        forget_rate(1, tau=1.5, num_gradual=10)


@needs_cuda_device
def test_coteaching_selection_on_cuda_matches_cpu():
    generator = torch.Generator().manual_seed(14)
    labels = (torch.rand(32, 6, generator=generator) < 0.3).float()
    losses = torch.rand(32, 6, generator=generator)
    on_cpu = coteaching_selection(losses, labels, forget_rate=0.3)
    on_cuda = coteaching_selection(losses.cuda(), labels.cuda(), forget_rate=0.3)
    assert on_cuda.device.type == "cuda" and torch.equal(on_cuda.cpu(), on_cpu)
