"""Strategy objects: the teacher-student object owns its teacher; every mode runs a step."""

import pytest
import torch

from raytag.config import ObjectiveConfig
from raytag.models import create_model
from raytag.engine.loop import train_epoch
from raytag.methods.strategies import (
    Balanced,
    MeanTeacher,
    PeerPair,
    Strategy,
    build_model,
    build_strategy,
    exported,
)

CPU = torch.device("cpu")


def batches(n=2, batch=6, tags=3, samples=8000, keep=None):
    gen = torch.Generator().manual_seed(0)
    out = []
    for _ in range(n):
        b = {
            "audio": 0.1 * torch.randn(batch, samples, generator=gen),
            "labels": torch.randint(0, 2, (batch, tags), generator=gen).float(),
            "valid": torch.ones(batch, dtype=torch.bool),
        }
        if keep is not None:
            b["keep"] = keep.clone()
        out.append(b)
    return out


def tiny(tags=3):
    return create_model("mtt-tiny", num_tags=tags, crop_seconds=0.5)


@pytest.mark.parametrize(
    "name", ["bce", "balanced_training", "balanced_masking", "bootstrap_soft", "bootstrap_hard", "coteaching"]
)
def test_every_objective_trains_a_step(name):
    torch.manual_seed(0)
    cfg = ObjectiveConfig(name=name)
    model = build_model(tiny, cfg)
    strategy = build_strategy(cfg, tags=["a", "b", "c"], seed=0)
    before = [p.detach().clone() for p in model.parameters()]
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    strategy.start_epoch(3)
    stats = train_epoch(model, batches(keep=torch.ones(6, 3)), opt, objective=strategy, device=CPU)
    assert torch.isfinite(torch.tensor(stats.loss))
    changed = [not torch.equal(a, b) for a, b in zip(before, model.parameters())]
    assert sum(changed) > len(changed) // 2
    assert exported(model) is (model.first if isinstance(model, PeerPair) else model)


def test_balanced_masking_counts_suspected_missing_entries_per_tag():
    keep = torch.ones(6, 3)
    keep[:, 1] = 0  # tag b: every entry suspected missing
    strategy = Balanced(tags=["a", "b", "c"], seed=0, use_keep=True)
    strategy.start_epoch(0)
    batch = batches(1, keep=keep)[0]
    mask = strategy.mask(batch)
    assert torch.all(mask[:, 1] == 0)
    metrics = strategy.epoch_metrics()
    assert metrics["mask/masked/b"] == 6 and 0 < metrics["mask/masked_fraction"] <= 1


def test_mean_teacher_joins_after_warmup_and_follows_the_student():
    torch.manual_seed(0)
    model = tiny()
    mt = MeanTeacher(Strategy(), eta=0.5, beta_max=0.8, t0=4, gamma=0.5, warmup_epochs=1)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    mt.start_epoch(0)
    train_epoch(model, batches(), opt, objective=mt, device=CPU)
    assert mt.teacher is None and mt.steps == 0  # warm-up: the student alone

    mt.start_epoch(1)
    parts = mt(model, batches(1)[0])
    assert mt.teacher is not None and "consistency" in parts
    assert all(not p.requires_grad for p in mt.teacher.parameters())
    parts["loss"].backward()
    assert all(p.grad is None for p in mt.teacher.parameters())  # no gradient reaches the teacher
    opt.step()
    teacher_before = {k: v.clone() for k, v in mt.teacher.state_dict().items()}
    mt.after_step(model)
    key = next(k for k, v in teacher_before.items() if v.dtype.is_floating_point and v.ndim == 2)
    expected = 0.5 * teacher_before[key] + 0.5 * model.state_dict()[key]
    assert torch.allclose(mt.teacher.state_dict()[key], expected, atol=1e-6)
    assert mt.steps == 1


def test_mean_teacher_state_survives_a_checkpoint():
    torch.manual_seed(0)
    model = tiny()
    mt = MeanTeacher(Strategy(), eta=0.9, beta_max=0.8, t0=4, gamma=0.5, warmup_epochs=0)
    mt.start_epoch(0)
    train_epoch(model, batches(), torch.optim.SGD(model.parameters(), lr=0.1), objective=mt, device=CPU)
    state = mt.state_dict()
    restored = MeanTeacher(Strategy(), eta=0.9, beta_max=0.8, t0=4, gamma=0.5, warmup_epochs=0)
    restored.load_state_dict(state)
    restored.start_epoch(1)
    restored(model, batches(1)[0])  # the teacher is rebuilt from the saved weights
    assert restored.steps == mt.steps == 2
    for key, value in mt.teacher.state_dict().items():
        assert torch.equal(restored.teacher.state_dict()[key], value)


def test_coteaching_cannot_take_a_mean_teacher():
    with pytest.raises(ValueError, match="co-teaching cannot be combined"):
        ObjectiveConfig(name="coteaching", mean_teacher={"enabled": True})


def test_noisy_student_adds_the_unlabeled_loss_in_one_forward():
    from raytag.objectives import bce
    from raytag.engine.loop import with_unlabeled

    torch.manual_seed(0)
    model = tiny()
    labelled = batches(2, batch=4)
    unlabeled = [
        {"u_audio": 0.1 * torch.randn(2, 8000), "u_soft": torch.rand(2, 3), "u_valid": torch.ones(2, dtype=torch.bool)}
    ]
    merged = list(with_unlabeled(labelled, lambda: unlabeled))  # the unlabeled stream restarts
    assert len(merged) == 2 and all(b["u_audio"].shape == (2, 8000) for b in merged)

    cfg = ObjectiveConfig(name="bce")
    from raytag.config import SemiConfig

    strategy = build_strategy(cfg, tags=["a", "b", "c"], seed=0, semi=SemiConfig(enabled=True, weight=0.5))
    calls = []
    handle = model.register_forward_hook(lambda m, i, o: calls.append(i[0].shape[0]))
    model.eval()  # deterministic forward for the comparison below
    parts = strategy(model, merged[0])
    handle.remove()
    assert calls == [6]  # labelled + unlabeled in a single forward (one DDP forward per step)
    with torch.no_grad():
        logits = model(torch.cat([merged[0]["audio"], merged[0]["u_audio"]]))
    expected = bce(logits[:4], merged[0]["labels"]) + 0.5 * bce(logits[4:], merged[0]["u_soft"])
    assert torch.allclose(parts["loss"], expected, atol=1e-6)


def test_soft_labeler_is_a_frozen_teacher_in_eval_mode():
    import numpy as np

    from raytag.cluster.inference import SoftLabeler
    from raytag.models.export import ModelRecipe

    recipe = ModelRecipe("mtt-tiny", {"crop_seconds": 0.5}, ("a", "b", "c"))
    weights = recipe.build().state_dict()
    labeler = SoftLabeler(recipe, weights)
    assert not labeler.model.training
    audio = np.random.default_rng(0).normal(size=(3, 8000)).astype(np.float32)
    out = labeler({"audio": audio, "track": np.arange(3), "valid": np.ones(3, bool)})
    assert out["soft"].shape == (3, 3) and np.all((out["soft"] > 0) & (out["soft"] < 1))
    assert np.array_equal(out["audio"], audio)  # the crop passes through untouched
    for key, value in labeler.model.state_dict().items():
        assert torch.equal(value, weights[key])  # labelling never changes the teacher
