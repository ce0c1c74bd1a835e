"""Training methods: registered by name, one engine for all, needs declared, teachers owned."""

import numpy as np
import pytest
import torch

from raytag.config import ConfigError, validate_job
from raytag.engine.loop import train_epoch, with_unlabeled
from raytag.methods import accepted_wrappers, build_method, check_declarations, method_names, methods, wrappers
from raytag.methods.base import Epoch, Method, Wrapper
from raytag.models.peers import PeerPair
from raytag.models import create_model
from raytag.objectives import REDUCTIONS, bce

CPU = torch.device("cpu")
TAGS = ["a", "b", "c"]


def job(**objective):
    semi = objective.pop("semi", {})
    return validate_job({"name": "t", "data": {"manifest": "m.csv"}, "model": {"name": "mtt-tiny"},
                     "objective": objective, "semi": semi})


def batches(n=2, batch=6, samples=8000, keep=None):
    gen = torch.Generator().manual_seed(0)
    out = []
    for _ in range(n):
        b = {
            "audio": 0.1 * torch.randn(batch, samples, generator=gen),
            "labels": torch.randint(0, 2, (batch, len(TAGS)), generator=gen).float(),
            "decoded": torch.ones(batch, dtype=torch.bool),
            "verified": (torch.arange(batch) % 2).float(),
            "noisy": torch.full((batch,), -1.0),
        }
        if keep is not None:
            b["keep"] = keep.clone()
        out.append(b)
    return out


def tiny():
    return create_model("mtt-tiny", num_tags=len(TAGS), crop_seconds=0.5)


def start(method, model, epoch=0, seed=0, steps=2):
    method.start_epoch(Epoch(epoch, torch.Generator().manual_seed(seed), model, steps))
    return method


def test_the_registry_finds_every_method_module_and_class():
    """Every module of raytag/methods (but base, settings and catalog) holds a registered class."""
    import pkgutil

    import raytag.methods

    modules = {m.name for m in pkgutil.iter_modules(raytag.methods.__path__)} - {"base", "settings", "catalog"}
    found = {cls.__module__.rsplit(".", 1)[1] for cls in [*methods().values(), *wrappers().values()]}
    assert found == modules
    assert method_names() == sorted(methods()) and "bce" in methods() and "mean_teacher" in wrappers()
    for name, cls in methods().items():
        assert issubclass(cls, Method) and not issubclass(cls, Wrapper) and cls.name == name and cls.summary
    for name, cls in wrappers().items():
        assert issubclass(cls, Wrapper) and cls.name == name and cls.switch
    with pytest.raises(ConfigError, match="unknown method 'nope'; choose one of balanced_masking"):
        job(name="nope")
    check_declarations([*methods().values(), *wrappers().values()], list(wrappers()))

    class Typo(Method):
        name = "typo"
        accepts = frozenset({"mean_teachr"})

    with pytest.raises(RuntimeError, match="'typo' accepts unknown wrapper\\(s\\) mean_teachr"):
        check_declarations([Typo], list(wrappers()))


def test_the_readme_tables_are_the_ones_the_methods_generate():
    """README.md's method and objective-settings tables are generated; edit the methods and run
    `raytag methods --update-readme README.md` when this fails."""
    from pathlib import Path

    from raytag.methods.catalog import updated_readme

    readme = Path(__file__).resolve().parents[1] / "README.md"
    text = readme.read_text()
    assert updated_readme(text) == text, "README.md is stale: run `raytag methods --update-readme README.md`"


def teacher_settings(name):
    """Settings that make the method runnable: a teacher folder for one that needs a teacher."""
    cls = methods()[name]
    return {} if cls.teacher_key is None else {cls.teacher_key.split(".", 1)[1]: "t"}


@pytest.mark.parametrize("name", method_names())
def test_every_method_trains_a_step_with_the_engine(name):
    torch.manual_seed(0)
    method = build_method(job(name=name, **teacher_settings(name)), tags=TAGS)
    model = method.build_network(tiny)
    before = [p.detach().clone() for p in model.parameters()]
    start(method, model, epoch=3)
    stats = train_epoch(model, batches(keep=torch.ones(6, 3)), torch.optim.SGD(model.parameters(), lr=0.1),
                        method=method, device=CPU)
    assert np.isfinite(stats.loss) and stats.steps == 2
    changed = [not torch.equal(a, b) for a, b in zip(before, model.parameters())]
    assert sum(changed) > len(changed) // 2
    assert method.evaluated(model) is (model.first if isinstance(model, PeerPair) else model)


def test_needs_are_declared_not_guessed():
    assert build_method(job(name="bce"), tags=TAGS).needs.scores_teacher is None
    masking = build_method(job(name="balanced_masking", teacher="/t"), tags=TAGS).needs
    assert masking.scores_teacher.folder == "/t" and masking.columns == ("keep",)
    semi = build_method(job(name="balanced_masking", teacher="/t",
                            semi={"enabled": True, "teacher": "/s"}), tags=TAGS).needs
    assert semi.unlabeled_teacher.folder == "/s" and semi.unlabeled_teacher.key == "semi.teacher"
    assert semi.scores_teacher.folder == "/t"  # a wrapper keeps the needs of what it wraps


def test_balanced_masking_counts_suspected_missing_entries_per_tag():
    keep = torch.ones(6, 3)
    keep[:, 1] = 0  # tag b: every entry suspected missing
    method = start(build_method(job(name="balanced_masking", teacher="t"), tags=TAGS), None)
    mask = method.mask(batches(1, keep=keep)[0])
    assert torch.all(mask[:, 1] == 0)
    metrics = method.epoch_metrics()
    assert metrics["mask/masked/b"] == 6 and 0 < metrics["mask/masked_fraction"] <= 1


def test_balanced_training_draws_come_from_the_epoch_generator():
    method = build_method(job(name="balanced_training"), tags=TAGS)
    batch = batches(1)[0]
    first = start(method, None, seed=1).mask(batch)
    assert torch.equal(first, start(method, None, seed=1).mask(batch))
    assert not torch.equal(first, start(method, None, seed=2).mask(batch))


def test_mean_teacher_joins_after_warmup_and_follows_the_student():
    torch.manual_seed(0)
    model = tiny()
    method = build_method(job(name="bce", mean_teacher={"enabled": True, "eta": 0.5, "t0": 4, "warmup_epochs": 1}),
                          tags=TAGS)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    train_epoch(model, batches(), opt, method=start(method, model, epoch=0), device=CPU)
    assert method.teacher is None and method.steps == 0  # warm-up: the student alone

    start(method, model, epoch=1)
    batch = batches(1)[0]
    parts = method.loss(model(method.inputs(batch)), batch)
    assert method.teacher is not None and "consistency" in parts
    assert all(not p.requires_grad for p in method.teacher.parameters())
    parts["loss"].backward()
    assert all(p.grad is None for p in method.teacher.parameters())  # no gradient reaches the teacher
    opt.step()
    teacher_before = {k: v.clone() for k, v in method.teacher.state_dict().items()}
    method.after_step(model)
    key = next(k for k, v in teacher_before.items() if v.dtype.is_floating_point and v.ndim == 2)
    expected = 0.5 * teacher_before[key] + 0.5 * model.state_dict()[key]
    assert torch.allclose(method.teacher.state_dict()[key], expected, atol=1e-6)
    assert method.steps == 1


def test_mean_teacher_state_survives_a_checkpoint():
    torch.manual_seed(0)
    model = tiny()
    config = job(name="bce", mean_teacher={"enabled": True, "eta": 0.9, "t0": 4, "warmup_epochs": 0})
    method = build_method(config, tags=TAGS)
    train_epoch(model, batches(), torch.optim.SGD(model.parameters(), lr=0.1), method=start(method, model),
                device=CPU)
    restored = build_method(config, tags=TAGS)
    restored.load_state_dict(method.state_dict())
    start(restored, model, epoch=1)  # the teacher is rebuilt from the saved weights
    assert restored.steps == method.steps == 2
    for key, value in method.teacher.state_dict().items():
        assert torch.equal(restored.teacher.state_dict()[key], value)


def test_noisy_student_adds_the_unlabeled_loss_in_one_forward():
    torch.manual_seed(0)
    model = tiny()
    labelled = batches(2, batch=4)
    unlabeled = [{"u_audio": 0.1 * torch.randn(2, 8000), "u_soft": torch.rand(2, 3),
                  "u_decoded": torch.ones(2, dtype=torch.bool)}]
    merged = list(with_unlabeled(labelled, lambda: unlabeled))  # the unlabeled stream restarts
    assert len(merged) == 2 and all(b["u_audio"].shape == (2, 8000) for b in merged)

    method = build_method(job(name="bce", semi={"enabled": True, "weight": 0.5, "teacher": "t"}), tags=TAGS)
    calls = []
    handle = model.register_forward_hook(lambda m, i, o: calls.append(i[0].shape[0]))
    model.eval()  # deterministic forward for the comparison below
    batch = merged[0]
    parts = method.loss(model(method.inputs(batch)), batch)
    handle.remove()
    assert calls == [6]  # labelled + unlabeled in a single forward (one DDP forward per step)
    with torch.no_grad():
        logits = model(torch.cat([batch["audio"], batch["u_audio"]]))
    expected = bce(logits[:4], batch["labels"]) + 0.5 * bce(logits[4:], batch["u_soft"])
    assert torch.allclose(parts["loss"], expected, atol=1e-6)


def test_soft_labeler_is_a_frozen_teacher_in_eval_mode():
    from raytag.cluster.inference.actor_pool import SoftLabeler
    from raytag.models.export import ModelRecipe

    recipe = ModelRecipe("mtt-tiny", {"crop_seconds": 0.5}, ("a", "b", "c"))
    weights = recipe.build().state_dict()
    labeler = SoftLabeler(recipe, weights)
    assert not labeler.model.training
    audio = np.random.default_rng(0).normal(size=(3, 8000)).astype(np.float32)
    out = labeler({"audio": audio, "track": np.arange(3), "decoded": np.ones(3, bool)})
    assert out["soft"].shape == (3, 3) and np.all((out["soft"] > 0) & (out["soft"] < 1))
    assert np.array_equal(out["audio"], audio)  # the crop passes through untouched
    for key, value in labeler.model.state_dict().items():
        assert torch.equal(value, weights[key])  # labelling never changes the teacher


@pytest.mark.parametrize("name", method_names())
def test_added_terms_take_the_base_loss_reduction(name):
    """β (mean teacher) and the unlabeled weight (noisy student) mean the same next to any base:
    a wrapper adds its term with the reduction of the method it wraps."""
    base = build_method(job(name=name, **teacher_settings(name)), tags=TAGS)
    assert base.reduction in REDUCTIONS
    switches = {"mean_teacher": {"mean_teacher": {"enabled": True}},
                "noisy_student": {"semi": {"enabled": True, "teacher": "t"}}}
    for wrapper in accepted_wrappers(methods()[name]):
        if wrapper in switches:
            wrapped = build_method(job(name=name, **teacher_settings(name), **switches[wrapper]), tags=TAGS)
            assert wrapped.name == wrapper and wrapped.reduction == base.reduction


def test_the_unlabeled_term_matches_a_clip_reduced_base():
    torch.manual_seed(0)
    model = tiny().eval()  # deterministic outputs
    batch = {**batches(1, batch=4)[0], "u_decoded": torch.ones(4, dtype=torch.bool)}
    with torch.no_grad():
        logits = model(batch["audio"])
    probs = torch.sigmoid(logits)
    batch["labels"] = probs  # base targets = the student's own probabilities
    batch["u_audio"], batch["u_soft"] = batch["audio"], probs
    ns = build_method(job(name="balanced_training", semi={"enabled": True, "teacher": "t", "weight": 1.0}), tags=TAGS)
    start(ns, model)
    with torch.no_grad():
        out = model(ns.inputs(batch))
    parts = ns.loss(out, batch)
    # Balanced-Training drops some entries, so compare to the unmasked clip-reduced base: the
    # unlabeled term sums over all K tags per clip, like eq. 2 does.
    expected = bce(logits, probs, reduction="clip")
    assert torch.allclose(parts["unlabeled_loss"], expected, atol=1e-5)
    assert parts["unlabeled_loss"] > 1.5 * bce(logits, probs)  # K = 3 times the entry mean


def test_reloading_the_best_epoch_restores_student_teacher_steps_and_optimizer():
    """Lu et al.'s selection window: "load the best model and train another N epochs" continues
    from the best epoch's whole training state, not from its student alone."""
    from raytag.engine import checkpoint as ckpt

    torch.manual_seed(0)
    model = tiny()
    method = build_method(job(name="bce", mean_teacher={"enabled": True, "eta": 0.9, "t0": 4, "warmup_epochs": 0}),
                          tags=TAGS)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    train_epoch(model, batches(), opt, method=start(method, model, epoch=0), device=CPU)
    best = ckpt.Snapshot.capture(model, opt, method)
    teacher_at_best = {k: v.clone() for k, v in method.teacher.state_dict().items()}
    train_epoch(model, batches(), opt, method=start(method, model, epoch=1), device=CPU)  # drifts on
    assert method.steps == 4
    best.restore(model, opt, method)
    assert method.steps == 2  # β(T) continues from the best epoch's T
    assert all(torch.equal(method.teacher.state_dict()[k], v) for k, v in teacher_at_best.items())
    assert all(torch.equal(model.state_dict()[k], v) for k, v in best.model.items())
    step_counts = {s["step"].item() for s in opt.state_dict()["state"].values()}
    assert step_counts == {2.0}  # Adam's moments are those of the best epoch


def test_a_best_epoch_inside_the_warm_up_sends_the_teacher_back():
    torch.manual_seed(0)
    model = tiny()
    method = build_method(job(name="bce", mean_teacher={"enabled": True, "warmup_epochs": 1}), tags=TAGS)
    start(method, model, epoch=0)
    warm_up_state = method.state_dict()
    start(method, model, epoch=1)
    assert method.teacher is not None
    method.load_state_dict(warm_up_state)
    assert method.teacher is None  # it rejoins as a copy of the student at the next epoch
    start(method, model, epoch=1)
    assert method.teacher is not None


def test_mean_teacher_settings_in_epochs_follow_the_real_steps_per_epoch():
    method = build_method(job(name="bce", mean_teacher={"enabled": True, "window_epochs": 2, "ramp_epochs": 3}),
                          tags=TAGS)
    start(method, tiny(), epoch=0, steps=9)  # e.g. 18 steps of data shared by 2 ranks
    assert method.eta == pytest.approx(1 - 1 / 18) and method.t0 == 27
    paper = build_method(job(name="bce", mean_teacher={"enabled": True}), tags=TAGS)
    start(paper, tiny(), steps=9)
    assert paper.eta == 0.999 and paper.t0 == 40000  # the paper's values, in steps, stay expressible
    both = build_method(job(name="bce", mean_teacher={"enabled": True, "eta": 0.99, "window_epochs": 2}), tags=TAGS)
    start(both, tiny(), steps=9)
    assert both.eta == pytest.approx(1 - 1 / 18)  # the epoch-based setting takes precedence


def _verified_batch(verified, noisy=None, batch=6):
    b = batches(1, batch=batch)[0]
    b["verified"] = torch.tensor(verified, dtype=torch.float32)
    b["noisy"] = torch.tensor(noisy if noisy is not None else [-1.0] * batch, dtype=torch.float32)
    return b


def test_staged_training_ignores_only_unverified_clips_above_the_threshold():
    torch.manual_seed(0)
    method = build_method(job(name="staged_training", k=2, alpha=0.5), tags=TAGS)
    assert method.needs.columns == ("verified", "noisy") and method.reduction == "entry"
    start(method, None)
    logits = torch.tensor([[4.0, 4.0, 4.0]] * 3 + [[-4.0, -4.0, -4.0]] * 3)
    batch = _verified_batch([1, 0, 0, 1, 0, 0], noisy=[0, 1, 0, 0, 0, 0])
    batch["labels"] = torch.tensor([[0.0, 0.0, 0.0]] * 3 + [[0.0, 0.0, 0.0]] * 3)  # the first 3 clips are wrong
    parts = method.loss(logits, batch)
    # Clip losses (mean over tags): 3 high (~4.02) and 3 low (~0.018); T_1 = the 2nd largest = high.
    high = torch.nn.functional.softplus(torch.tensor(4.0))
    assert torch.isclose(method.threshold, high)
    # Nothing exceeds eta yet (ties are kept): the loss is the mean of all clip losses.
    low = torch.nn.functional.softplus(torch.tensor(-4.0))
    assert torch.isclose(parts["loss"], (3 * high + 3 * low) / 6)
    method.threshold = torch.tensor(1.0)  # a lower eta: the unverified high-loss clips are ignored
    parts = method.loss(logits, batch)
    assert torch.isclose(parts["loss"], (high + 3 * low) / 4, atol=1e-5)  # clip 0 is verified: kept
    metrics = method.epoch_metrics()
    assert metrics["staged/ignored"] == 2 and metrics["staged/ignored_precision"] == 0.5  # clip 1 was noisy
    restored = build_method(job(name="staged_training"), tags=TAGS)
    restored.load_state_dict(method.state_dict())
    assert torch.isclose(restored.threshold, method.threshold)


def test_staged_training_reports_what_the_tested_diagnostics_compute():
    """One owner: the running method's noise columns and ignore counts are the diagnostics
    functions' (noisy_clips, ignored_noise_report) on the same clips."""
    from raytag.diagnostics import ignored_noise_report, noisy_clips

    labels = np.array([[1, 0, 0], [0, 1, 0], [0, 0, 1], [1, 1, 0], [0, 0, 0], [1, 0, 1]], dtype=np.float32)
    clean = labels.copy()
    clean[[1, 4], 2] = 1.0  # clips 1 and 4 are missing a tag
    verified = np.array([True, False, False, False, False, True])
    method = build_method(job(name="staged_training", k=2, alpha=0.5), tags=TAGS)
    columns = method.track_columns(labels=labels, verified=verified, scores=None, clean=clean).columns
    assert np.array_equal(columns["noisy"] > 0.5, noisy_clips(labels, clean))
    start(method, None)
    batch = {"labels": torch.tensor(labels), "decoded": torch.tensor([True, True, True, True, False, True]),
             "verified": torch.tensor(columns["verified"]), "noisy": torch.tensor(columns["noisy"])}
    method.threshold = torch.tensor(0.1)
    logits = torch.tensor(4.0 - 8.0 * labels)  # every clip far from its labels: unverified ones are ignored
    method.loss(logits, batch)
    decoded = batch["decoded"].numpy()
    ignored = ~verified & decoded
    expected = ignored_noise_report(ignored[decoded], labels[decoded], clean[decoded], verified[decoded])
    assert expected.ignored == 3 and expected.ignored_noisy == 1  # clip 4, noisy, did not decode
    assert method.report == expected
    assert method.epoch_metrics() | expected.as_metrics() == method.epoch_metrics()


def test_staged_training_weighs_the_sparsemax_term_as_its_stages_1_and_3_do():
    # He et al.'s three stages on the same batch: stages 1 and 3 are bce + the multi-activation
    # wrapper, stage 2 is staged_training scoring both heads per clip. With every clip kept
    # (verified), the two terms and so their ratio must be the same in every stage.
    from raytag.models.heads import MultiActivationOutput

    generator = torch.Generator().manual_seed(3)
    tags = [f"t{j}" for j in range(8)]
    output = MultiActivationOutput(torch.randn(6, 8, generator=generator), torch.randn(6, 8, generator=generator))
    batch = _verified_batch([1] * 6)
    batch["labels"] = (torch.rand(6, 8, generator=generator) < 0.3).float()
    batch["labels"][0] = 0.0  # a clip with no label: no sparsemax target
    parts = {}
    for stage, name in (("1/3", "bce"), ("2", "staged_training")):
        config = validate_job({"name": "t", "data": {"manifest": "m.csv"}, "objective": {"name": name},
                           "model": {"name": "mtt-tiny", "head": "sigmoid_sparsemax"}})
        method = start(build_method(config, tags=tags), None)
        parts[stage] = {key: value.item() for key, value in method.loss(output, batch).items()}
    ratios = {stage: p["sparsemax_loss"] / (p["loss"] - p["sparsemax_loss"]) for stage, p in parts.items()}
    assert ratios["2"] == pytest.approx(ratios["1/3"], rel=1e-5)
    assert parts["2"]["loss"] == pytest.approx(parts["1/3"]["loss"], rel=1e-5)


def test_the_multi_activation_head_adds_its_sparsemax_term_to_any_method():
    torch.manual_seed(0)
    from raytag.models.export import ModelRecipe

    names = [name for name in method_names() if "multi_activation" in accepted_wrappers(methods()[name])]
    assert "bce" in names and "staged_training" in names
    for name in names:
        config = validate_job({"name": "t", "data": {"manifest": "m.csv"},
                               "objective": {"name": name, **teacher_settings(name)},
                               "model": {"name": "mtt-tiny", "head": "sigmoid_sparsemax", "args": {"crop_seconds": 0.5}}})
        method = build_method(config, tags=TAGS)
        # a method that scores clips with both heads itself (staged training) is left unwrapped
        assert (method.name == "multi_activation") != getattr(method, "handles_multi_activation", False)
        model = ModelRecipe("mtt-tiny", {"crop_seconds": 0.5}, tuple(TAGS), "sigmoid_sparsemax").build()
        batch = {**_verified_batch([1, 0, 1, 0, 1, 0]), "keep": torch.ones(6, len(TAGS))}
        stats = train_epoch(model, [batch], torch.optim.SGD(model.parameters(), lr=0.1),
                            method=start(method, model), device=CPU)
        assert np.isfinite(stats.loss)
        assert model.classifier.sparsemax.weight.grad is not None  # the sparsemax head learned too
    with pytest.raises(Exception, match="cannot be combined"):
        validate_job({"name": "t", "data": {"manifest": "m.csv"}, "objective": {"name": "coteaching"},
                  "model": {"name": "mtt-tiny", "head": "sigmoid_sparsemax"}})
