"""Sigmoid-sparsemax multi-activation head (He et al. 2020 §3.2): sparsemax and its loss
against a brute-force simplex projection, the head's two output modes, the ensemble."""

from __future__ import annotations

import itertools

import entmax
import pytest
import torch

from requirements import needs_cuda_device
from raytag.models import count_parameters, create_model
from raytag.models.heads import (
    MultiActivationOutput,
    SigmoidSparsemaxHead,
    attach_head,
    ensemble_logits,
    ensemble_probabilities,
    head_kind,
)
from raytag.objectives import (
    label_distribution,
    multi_activation_clip_losses,
    multi_activation_losses,
    sparsemax_loss,
)

pytestmark = pytest.mark.filterwarnings("ignore:At least one mel filterbank has all zero values")


def _brute_force_projection(z: torch.Tensor) -> tuple[torch.Tensor, float]:
    """Euclidean projection of a 1-D z onto the simplex, by trying every support S:
    p_S = z_S − τ with τ = (Σ z_S − 1)/|S|, feasible if p_S ≥ 0; the closest feasible p wins.
    Returns (p, τ)."""
    values = z.double().tolist()
    best, best_distance, best_tau = None, float("inf"), 0.0
    for size in range(1, len(values) + 1):
        for support in itertools.combinations(range(len(values)), size):
            tau = (sum(values[j] for j in support) - 1.0) / size
            p = [0.0] * len(values)
            for j in support:
                p[j] = values[j] - tau
            if min(p) < -1e-12:
                continue
            distance = sum((a - b) ** 2 for a, b in zip(p, values))
            if distance < best_distance:
                best, best_distance, best_tau = p, distance, tau
    return torch.tensor(best, dtype=torch.float64), best_tau


def _eq9(z: torch.Tensor, q: torch.Tensor) -> float:
    """He et al. eq. 9 with the brute-force support and τ: −q·z + ½Σ_S(z_j² − τ²) + ½‖q‖²."""
    p, tau = _brute_force_projection(z)
    z, q = z.double(), q.double()
    support = p > 0
    return float(-(q * z).sum() + 0.5 * (z[support] ** 2 - tau**2).sum() + 0.5 * (q**2).sum())


def _random_scores(rows: int, tags: int, seed: int) -> torch.Tensor:
    return 1.5 * torch.randn(rows, tags, generator=torch.Generator().manual_seed(seed))


def test_entmax_sparsemax_is_the_simplex_projection():
    scores = _random_scores(20, 6, 0)
    projected = entmax.sparsemax(scores, dim=-1)
    for row in range(len(scores)):
        expected, _ = _brute_force_projection(scores[row])
        torch.testing.assert_close(projected[row].double(), expected, atol=1e-6, rtol=0)
    assert (projected == 0).any()  # sparse: some tags get exactly 0
    torch.testing.assert_close(projected.sum(dim=1), torch.ones(20))


def test_sparsemax_loss_is_eq9_and_its_gradient_is_p_minus_q():
    scores = _random_scores(12, 5, 1).requires_grad_(True)
    labels = (torch.rand(12, 5, generator=torch.Generator().manual_seed(2)) < 0.4).float()
    labels[:, 4] = 1.0  # every clip has a label
    labels[0] = 0.0
    labels[0, 3] = 1.0  # one clip with a single label
    labels[1] = 1.0  # one with every label
    labels[2] = 0.0
    labels[2, :2] = 1.0
    target, labelled = label_distribution(labels)
    assert labelled.all()
    losses = sparsemax_loss(scores, target)
    for row in range(12):
        assert losses[row].item() == pytest.approx(_eq9(scores[row].detach(), target[row]), abs=1e-5)
    assert (losses >= -1e-6).all()
    losses.sum().backward()
    torch.testing.assert_close(scores.grad, entmax.sparsemax(scores.detach(), dim=-1) - target, atol=1e-6, rtol=0)


def test_sparsemax_loss_matches_entmax_for_one_label_and_vanishes_at_the_target():
    scores = _random_scores(8, 7, 3)
    classes = torch.arange(8) % 7
    one_hot = torch.nn.functional.one_hot(classes, 7).float()
    torch.testing.assert_close(sparsemax_loss(scores, one_hot), entmax.sparsemax_loss(scores, classes))
    # z = q itself projects onto q: zero loss.
    target, _ = label_distribution(torch.tensor([[1.0, 1.0, 0.0, 0.0], [0.0, 1.0, 1.0, 1.0]]))
    torch.testing.assert_close(sparsemax_loss(target.clone(), target), torch.zeros(2), atol=1e-7, rtol=0)


def test_clips_without_labels_are_left_out_of_the_sparsemax_term():
    sigmoid_logits = torch.randn(4, 3, requires_grad=True)
    scores = torch.randn(4, 3, requires_grad=True)
    labels = torch.tensor([[1.0, 0.0, 0.0], [0.0, 0.0, 0.0], [0.0, 1.0, 1.0], [0.0, 0.0, 0.0]])
    losses = multi_activation_losses(MultiActivationOutput(sigmoid_logits, scores), labels)
    target, _ = label_distribution(labels)
    expected = sparsemax_loss(scores, target)[[0, 2]].mean()
    torch.testing.assert_close(losses.sparsemax, expected)
    expected_bce = torch.nn.functional.binary_cross_entropy_with_logits(sigmoid_logits, labels)
    torch.testing.assert_close(losses.sigmoid, expected_bce)
    (losses.sigmoid + losses.sparsemax).backward()
    assert torch.all(scores.grad[[1, 3]] == 0) and torch.any(scores.grad[[0, 2]] != 0)
    assert torch.all(sigmoid_logits.grad[[1, 3]] != 0)  # the sigmoid head learns "nothing here"


def test_weights_ignore_clips_in_both_terms_and_clip_losses_add_up():
    generator = torch.Generator().manual_seed(4)
    output = MultiActivationOutput(torch.randn(5, 4, generator=generator), torch.randn(5, 4, generator=generator))
    labels = (torch.rand(5, 4, generator=generator) < 0.5).float()
    labels[:, 0] = 1.0
    keep = torch.tensor([True, False, True, True, False])
    kept = multi_activation_losses(output, labels, weights=keep, reduction="clip")
    subset = multi_activation_losses(MultiActivationOutput(output[0][keep], output[1][keep]), labels[keep], reduction="clip")
    torch.testing.assert_close(kept.sigmoid, subset.sigmoid)
    torch.testing.assert_close(kept.sparsemax, subset.sparsemax)
    per_clip = multi_activation_clip_losses(output, labels, reduction="clip")
    torch.testing.assert_close((per_clip.sigmoid + per_clip.sparsemax)[keep].mean(), kept.sigmoid + kept.sparsemax)
    # The default ("entry") averages the sigmoid term over tags, as multi_activation_losses does.
    per_entry = multi_activation_clip_losses(output, labels)
    torch.testing.assert_close(per_entry.sigmoid, per_clip.sigmoid / 4)
    torch.testing.assert_close(per_entry.sigmoid[keep].mean(), multi_activation_losses(output, labels, weights=keep).sigmoid)
    nothing = multi_activation_losses(output, labels, weights=torch.zeros(5, dtype=torch.bool))
    assert nothing.sigmoid.item() == 0.0 and nothing.sparsemax.item() == 0.0
    with pytest.raises(ValueError, match="eval mode"):
        multi_activation_losses(output[0], labels)


def test_ensemble_logits_are_finite_and_their_sigmoid_is_the_ensemble():
    sigmoid_logits = torch.tensor([[100.0, -100.0, 0.0, 3.0], [-30.0, 30.0, -2.0, 0.5]])
    scores = torch.tensor([[50.0, 0.0, 0.0, 0.0], [0.2, 0.1, 0.0, -5.0]])  # row 0: sparsemax is one-hot
    probabilities = ensemble_probabilities(sigmoid_logits, scores)
    logits = ensemble_logits(sigmoid_logits, scores)
    assert torch.isfinite(logits).all()
    assert ((probabilities >= 0) & (probabilities <= 1)).all()
    torch.testing.assert_close(torch.sigmoid(logits), probabilities, atol=1e-6, rtol=0)
    expected = 0.5 * (torch.sigmoid(sigmoid_logits) + entmax.sparsemax(scores, dim=-1))
    torch.testing.assert_close(probabilities, expected)


@pytest.mark.parametrize("name", ["mtt-tiny", "shortres-tiny"])
def test_attached_head_modes_gradients_and_parameters(name):
    torch.manual_seed(0)
    model = create_model(name, num_tags=6)
    before = count_parameters(model)
    old_classifier = model.classifier
    assert head_kind(model) == "sigmoid" and attach_head(model, "sigmoid") is model
    assert attach_head(model, "sigmoid_sparsemax", generator=torch.Generator().manual_seed(1)) is model
    assert head_kind(model) == "sigmoid_sparsemax"
    assert isinstance(model.classifier, SigmoidSparsemaxHead) and model.classifier.sigmoid is old_classifier
    assert count_parameters(model) == before + (model.num_features + 1) * 6
    waveform = 0.1 * torch.randn(3, model.sample_rate, generator=torch.Generator().manual_seed(2))  # 1 s

    model.train()
    output = model(waveform)
    assert isinstance(output, MultiActivationOutput)
    assert output.sigmoid_logits.shape == output.sparsemax_scores.shape == (3, 6)
    labels = torch.tensor([[1.0, 0, 0, 0, 0, 1], [0, 1, 0, 0, 0, 0], [0, 0, 0, 0, 0, 0]])
    losses = multi_activation_losses(output, labels)
    (losses.sigmoid + losses.sparsemax).backward()
    for head in (model.classifier.sigmoid, model.classifier.sparsemax):
        assert head.weight.grad is not None and head.weight.grad.abs().sum() > 0
    missing = [n for n, p in model.named_parameters() if p.grad is None]
    assert not missing

    model.eval()
    with torch.no_grad():
        logits = model(waveform)
        embedding = model.embed(waveform)
        heads = (model.classifier.sigmoid(embedding), model.classifier.sparsemax(embedding))
    assert logits.shape == (3, 6) and torch.isfinite(logits).all()
    probabilities = torch.sigmoid(logits)
    torch.testing.assert_close(probabilities, ensemble_probabilities(*heads), atol=1e-6, rtol=0)
    assert ((probabilities >= 0) & (probabilities <= 1)).all()


def test_attach_head_is_seeded_and_checks_its_model():
    first = attach_head(create_model("mtt-tiny", num_tags=4), "sigmoid_sparsemax", generator=torch.Generator().manual_seed(5))
    second = attach_head(create_model("mtt-tiny", num_tags=4), "sigmoid_sparsemax", generator=torch.Generator().manual_seed(5))
    assert torch.equal(first.classifier.sparsemax.weight, second.classifier.sparsemax.weight)
    bound = 1.0 / first.num_features**0.5
    assert first.classifier.sparsemax.weight.abs().max() <= bound
    with pytest.raises(ValueError, match="already"):
        attach_head(first, "sigmoid_sparsemax")
    with pytest.raises(ValueError, match="unknown head 'softmax'"):
        attach_head(first, "softmax")
    with pytest.raises(ValueError, match="contract"):
        attach_head(torch.nn.Linear(3, 2), "sigmoid_sparsemax")


@needs_cuda_device
def test_head_on_cuda_with_a_cpu_generator():
    model = create_model("mtt-tiny", num_tags=4).cuda()
    attach_head(model, "sigmoid_sparsemax", generator=torch.Generator().manual_seed(0))
    assert model.classifier.sparsemax.weight.device.type == "cuda"
    model.train()
    output = model(torch.randn(2, model.sample_rate, device="cuda"))
    labels = torch.tensor([[1.0, 0, 0, 0], [0, 0, 0, 0]], device="cuda")
    losses = multi_activation_losses(output, labels, weights=torch.tensor([True, True], device="cuda"))
    (losses.sigmoid + losses.sparsemax).backward()
    model.eval()
    with torch.no_grad():
        assert torch.isfinite(model(torch.randn(2, model.sample_rate, device="cuda"))).all()
