"""Model registry, parameter counts and forward-pass invariants of every registered model."""

from __future__ import annotations

import inspect
import subprocess
import sys

import pytest
import torch
from torch import nn

from raytag.models import ModelError, count_parameters, create_model, list_models, model_arguments, preset
from raytag.models.frontend import LogMelFrontEnd
from raytag.models.registry import register_family, register_preset

# The paper's short-chunk ResNet (16 kHz, n_fft 512, 128 mels) has empty mel filters: that is
# the published configuration, and torchaudio says so with a UserWarning.
pytestmark = pytest.mark.filterwarnings("ignore:At least one mel filterbank has all zero values")

BATCH_SIZE = 3
# Forward tests on the full-size presets use short inputs to stay fast on CPU.
SHORT_SECONDS = 2.0


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)


def _waveform(
    model: nn.Module, batch_size: int = BATCH_SIZE, seconds: float | None = None
) -> torch.Tensor:
    """Random (batch_size, T) audio: one crop, or ``seconds`` of audio when given."""
    num_samples = model.crop_samples if seconds is None else round(model.sample_rate * seconds)
    generator = torch.Generator().manual_seed(1)
    return 0.1 * torch.randn(batch_size, num_samples, generator=generator)


def _is_small(name: str) -> bool:
    return name.endswith("-tiny")


@pytest.mark.parametrize(
    ("name", "expected"),
    [("mtt", 4_567_732), ("mtt-compact", 1_108_852), ("shortres", 12_104_244)],
)
def test_reference_parameter_counts(name: str, expected: int) -> None:
    assert count_parameters(create_model(name, num_tags=50)) == expected


def test_presets_registered() -> None:
    assert {
        "mtt", "mtt-compact", "mtt-tiny", "shortres", "shortres-tiny",
        "pons-spectrogram", "pons-spectrogram-tiny", "pons-waveform", "pons-waveform-tiny",
        "cnn-gru", "cnn-gru-tiny",
    } <= set(list_models())
    assert list_models() == sorted(list_models())


@pytest.mark.parametrize("name", list_models())
def test_preset_attributes_match_arguments(name: str) -> None:
    model = create_model(name)
    arguments = model_arguments(name)
    assert model.num_tags == arguments["num_tags"] == 50
    assert model.sample_rate == arguments["sample_rate"]
    assert isinstance(model.crop_samples, int) and model.crop_samples > 0
    assert isinstance(model.min_samples, int) and 0 < model.min_samples <= model.crop_samples


def test_crop_lengths() -> None:
    assert create_model("mtt").crop_samples == 220_500
    assert create_model("mtt-tiny").crop_samples == 48_000
    assert create_model("shortres").crop_samples == 59_049
    assert create_model("shortres-tiny").crop_samples == 32_000


@pytest.mark.parametrize("name", list_models())
def test_forward_backward(name: str) -> None:
    model = create_model(name, num_tags=7)
    model.train()
    waveform = _waveform(model, seconds=None if _is_small(name) else SHORT_SECONDS)
    logits = model(waveform)
    assert logits.shape == (BATCH_SIZE, 7)
    assert logits.dtype == torch.float32
    assert torch.isfinite(logits).all()
    logits.square().mean().backward()
    missing = [n for n, p in model.named_parameters() if p.requires_grad and p.grad is None]
    assert not missing, f"no gradient for {missing}"
    assert all(torch.isfinite(p.grad).all() for p in model.parameters())


@pytest.mark.parametrize("name", [name for name in list_models() if _is_small(name)])
def test_batch_consistency(name: str) -> None:
    model = create_model(name).eval()
    waveform = _waveform(model, batch_size=4)
    with torch.no_grad():
        batched = model(waveform)
        stacked = torch.cat([model(item.unsqueeze(0)) for item in waveform])
    torch.testing.assert_close(batched, stacked, atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("name", [name for name in list_models() if _is_small(name)])
def test_eval_is_deterministic_and_input_length_is_free(name: str) -> None:
    model = create_model(name).eval()
    shortest = model.min_samples
    with torch.no_grad():
        for num_samples in (shortest, shortest + 1, 3 * shortest + 7, model.crop_samples + 123):
            waveform = torch.randn(2, num_samples)
            first, second = model(waveform), model(waveform)
            assert first.shape == (2, model.num_tags)
            assert torch.isfinite(first).all()
            torch.testing.assert_close(first, second, atol=0, rtol=0)


@pytest.mark.parametrize("name", [name for name in list_models() if _is_small(name)])
def test_too_short_input_is_a_clear_error(name: str) -> None:
    model = create_model(name).eval()
    with pytest.raises(ValueError, match=f"at least {model.min_samples}"):
        model(torch.randn(1, model.min_samples - 1))


def test_too_long_input_names_max_frames() -> None:
    model = create_model("mtt-tiny", max_frames=8).eval()
    with torch.no_grad():
        assert model(torch.randn(1, model.max_samples)).shape == (1, 50)
        with pytest.raises(ValueError, match="max_frames"):
            model(torch.randn(1, model.max_samples + 1))


def test_mtt_limit_is_about_46_seconds() -> None:
    model = create_model("mtt")
    assert model.max_frames == 500
    assert 46.0 < model.max_samples / model.sample_rate < 46.5
    with pytest.raises(ValueError, match="max_frames=500"):
        model(torch.zeros(1, model.max_samples + 1))


def test_unknown_model_error_names_it_and_lists_choices() -> None:
    with pytest.raises(ModelError, match="'no-such-model'") as info:
        create_model("no-such-model")
    for name in list_models():
        assert name in str(info.value)
    assert isinstance(info.value, ValueError)
    with pytest.raises(ModelError, match="'no-such-model'"):
        model_arguments("no-such-model")


def test_unknown_argument_error_names_it_and_lists_choices() -> None:
    with pytest.raises(ModelError, match="'widht'") as info:
        create_model("mtt", widht=128)
    message = str(info.value)
    assert "did you mean 'width'" in message
    for argument in model_arguments("mtt"):
        assert argument in message


def test_overrides_change_the_model() -> None:
    base = count_parameters(create_model("mtt-tiny"))
    fewer_tags = create_model("mtt-tiny", num_tags=10)
    assert fewer_tags.num_tags == 10
    assert count_parameters(fewer_tags) == base - 40 * (32 + 1)
    wider = create_model("mtt", width=128)
    assert wider.projection.out_features == 128
    assert count_parameters(create_model("shortres", num_tags=10)) == 12_104_244 - 40 * (512 + 1)


def test_model_arguments_merge_preset_and_family_defaults() -> None:
    arguments = model_arguments("mtt-compact")
    assert arguments["width"] == 64
    assert arguments["depth"] == 4
    assert arguments["max_frames"] == 500  # family default
    assert model_arguments("mtt")["width"] == 256
    assert model_arguments("shortres-tiny")["channels"] == (16, 16, 32, 32, 32, 32, 64)
    arguments["width"] = 1
    assert model_arguments("mtt-compact")["width"] == 64  # a copy is returned


@pytest.mark.parametrize("name", list_models())
def test_family_defaults_are_exactly_the_class_arguments(name: str) -> None:
    """A default lives in the family table only: the class takes the same keyword-only
    arguments, none with a default of its own, so the two cannot drift apart."""
    family = preset(name).family
    parameters = list(inspect.signature(family.load().__init__).parameters.values())[1:]
    assert all(p.kind is inspect.Parameter.KEYWORD_ONLY for p in parameters)
    assert all(p.default is inspect.Parameter.empty for p in parameters)
    assert [p.name for p in parameters] == list(family.defaults)


@pytest.mark.parametrize(
    ("overrides", "match"),
    [
        ({"n_mels": 60}, "n_mels"),
        ({"width": 30}, "heads"),
        ({"dropout": 1.5}, "dropout"),
        ({"depth": 0}, "depth"),
    ],
)
def test_invalid_transformer_arguments(overrides: dict[str, object], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        create_model("mtt-tiny", **overrides)


def test_registration_rejects_duplicates_and_unknown_overrides() -> None:
    family = preset("mtt").family
    with pytest.raises(ModelError, match="already registered"):
        register_preset("mtt", family, "again")
    with pytest.raises(ModelError, match="'widht'"):
        register_preset("test-misspelt", family, "typo", widht=3)
    assert "test-misspelt" not in list_models()
    with pytest.raises(ModelError, match="num_tags"):
        register_family("test-no-tags", "torch.nn:Linear", in_features=1)


def test_the_registry_is_read_without_torch() -> None:
    code = (
        "import sys; from raytag.models import list_models, model_arguments; "
        "assert model_arguments('mtt')['width'] == 256 and 'mtt-tiny' in list_models(); "
        "print('torch' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


def test_frontend_runs_in_float32_under_autocast() -> None:
    frontend = LogMelFrontEnd(sample_rate=16000, n_fft=512, hop_length=256, n_mels=64)
    waveform = torch.randn(2, 16000)
    reference = frontend(waveform)
    assert reference.shape == (2, 1, 64, 16000 // 256 + 1)
    with torch.autocast(device_type="cpu", dtype=torch.bfloat16):
        under_autocast = frontend(waveform.bfloat16())
    assert under_autocast.dtype == torch.float32
    torch.testing.assert_close(under_autocast, frontend(waveform.bfloat16().float()))


def test_tiny_model_under_bf16_autocast() -> None:
    model = create_model("mtt-tiny").eval()
    with torch.no_grad(), torch.autocast(device_type="cpu", dtype=torch.bfloat16):
        logits = model(_waveform(model))
    assert logits.shape == (BATCH_SIZE, 50)
    assert torch.isfinite(logits.float()).all()


@pytest.mark.parametrize("name", [name for name in list_models() if _is_small(name)])
def test_forward_is_classifier_of_embed(name: str) -> None:
    model = create_model(name, num_tags=5).eval()
    waveform = _waveform(model, batch_size=2)
    with torch.no_grad():
        embedding = model.embed(waveform)
        assert embedding.shape == (2, model.num_features)
        assert isinstance(model.classifier, nn.Linear)
        assert model.classifier.in_features == model.num_features
        torch.testing.assert_close(model(waveform), model.classifier(embedding), atol=0, rtol=0)
