"""Waveform augmentations (Won et al. §3.4): shapes, determinism, and what each one does to audio."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from raytag.audio.augment import (
    AugmentSpec,
    add_noise,
    augment_batch,
    augment_numpy_batch,
    delay,
    draw_uniform,
    gain,
    high_pass,
    low_pass,
    pitch_shift,
    polarity_inversion,
    reverb,
)

SR = 16000


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """These tensors are small: on a shared 2-core CI machine intra-op threads only contend."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def white(batch: int = 4, seconds: float = 1.0, seed: int = 0, sr: int = SR) -> torch.Tensor:
    return 0.1 * torch.randn(batch, int(seconds * sr), generator=gen(seed))


AUGMENTATIONS = {
    "polarity": lambda x, g: polarity_inversion(x),
    "noise": lambda x, g: add_noise(x, sample_rate=SR, generator=g),
    "gain": lambda x, g: gain(x, generator=g),
    "high_pass": lambda x, g: high_pass(x, sample_rate=SR, generator=g),
    "low_pass": lambda x, g: low_pass(x, sample_rate=SR, generator=g),
    "delay": lambda x, g: delay(x, sample_rate=SR, generator=g),
    "pitch_shift": lambda x, g: pitch_shift(x, sample_rate=SR, generator=g),
    "reverb": lambda x, g: reverb(x, sample_rate=SR, generator=g),
}
RANDOM = [name for name in AUGMENTATIONS if name != "polarity"]


def band_db(audio: torch.Tensor, low_hz: torch.Tensor, high_hz: torch.Tensor, sr: int = SR) -> torch.Tensor:
    """Energy (dB) of each row between its own ``low_hz`` and ``high_hz``."""
    power = torch.fft.rfft(audio.double()).abs().pow(2)
    freqs = torch.fft.rfftfreq(audio.shape[-1], 1 / sr, dtype=torch.float64)
    inside = (freqs[None] >= low_hz[:, None]) & (freqs[None] < high_hz[:, None])
    return 10 * torch.log10((power * inside).sum(-1))


def rms(audio: torch.Tensor) -> torch.Tensor:
    return audio.double().pow(2).mean(-1).sqrt()


@pytest.mark.parametrize("name", list(AUGMENTATIONS))
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.float16])
def test_shape_dtype_finite_and_pure(name, dtype):
    fn = AUGMENTATIONS[name]
    x = white().to(dtype)
    before = x.clone()
    for audio in (x, torch.zeros(3, 4000, dtype=dtype), white(2, 0.01).to(dtype)):
        out = fn(audio, gen(1))
        assert out.shape == audio.shape and out.dtype == dtype
        assert torch.isfinite(out).all()
    assert torch.equal(x, before)  # the input is not modified
    assert torch.equal(fn(torch.zeros(2, 4000, dtype=dtype), gen(1)), torch.zeros(2, 4000, dtype=dtype))
    assert fn(torch.zeros(2, 0, dtype=dtype), gen(1)).shape == (2, 0)


@pytest.mark.parametrize("name", RANDOM)
def test_same_seed_same_output_other_seed_differs(name):
    fn = AUGMENTATIONS[name]
    x = white()
    assert torch.equal(fn(x, gen(3)), fn(x, gen(3)))
    assert not torch.allclose(fn(x, gen(3)), fn(x, gen(4)))


def test_rows_draw_their_own_parameters():
    out = gain(torch.ones(8, 10), generator=gen(0))
    assert out[:, 0].unique().numel() == 8


def test_polarity_flips_the_sign():
    x = white()
    assert torch.equal(polarity_inversion(x), -x)


def test_gain_changes_rms_by_the_drawn_db():
    x = white(8)
    drawn = draw_uniform(8, (-20.0, -1.0), generator=gen(5))
    out = gain(x, generator=gen(5))
    measured = 20 * torch.log10(rms(out) / rms(x))
    assert torch.allclose(measured, drawn.double(), atol=1e-4)
    assert ((drawn >= -20) & (drawn <= -1)).all()
    assert torch.equal(out, gain(x, gain_db=drawn))  # the explicit path applies the same values


def test_noise_std_is_k_times_signal_std():
    x = white(8, 2.0)
    out = add_noise(x, sample_rate=SR, generator=gen(6))
    ratio = (out - x).std(-1) / x.std(-1)
    drawn = draw_uniform(8, (0.3, 0.5), generator=gen(6))
    assert ((ratio > 0.3 * 0.98) & (ratio < 0.5 * 1.02)).all()
    assert torch.allclose(ratio, drawn, rtol=0.02)
    fixed = add_noise(x, sample_rate=SR, generator=gen(0), noise_scale=torch.full((8,), 0.4))
    assert torch.allclose((fixed - x).std(-1) / x.std(-1), torch.tensor(0.4), rtol=0.02)


def attenuation_db(before, after, low_hz, high_hz, sr: int = SR) -> torch.Tensor:
    """How many dB each row lost between its own ``low_hz`` and ``high_hz``."""
    return band_db(before, low_hz, high_hz, sr) - band_db(after, low_hz, high_hz, sr)


def test_low_pass_removes_energy_an_octave_above_the_cutoff():
    sr = 22050  # Nyquist above 2 x 4000 Hz, so the octave above every cut-off is in band
    x = white(8, 2.0, sr=sr)
    out = low_pass(x, sample_rate=sr, generator=gen(7))
    cutoff = draw_uniform(8, (2200.0, 4000.0), generator=gen(7)).double()
    stop = attenuation_db(x, out, 2 * cutoff, torch.full_like(cutoff, sr / 2), sr)
    passband = attenuation_db(x, out, torch.zeros_like(cutoff), cutoff / 2, sr)
    assert (stop > 10).all(), stop
    assert (passband.abs() < 1).all(), passband


def test_high_pass_removes_energy_an_octave_below_the_cutoff():
    x = white(8, 2.0)
    out = high_pass(x, sample_rate=SR, generator=gen(8))
    cutoff = draw_uniform(8, (200.0, 1200.0), generator=gen(8)).double()
    stop = attenuation_db(x, out, torch.zeros_like(cutoff), cutoff / 2)
    passband = attenuation_db(x, out, 2 * cutoff, torch.full_like(cutoff, SR / 2))
    assert (stop > 10).all(), stop
    assert (passband.abs() < 1).all(), passband


def test_filter_cutoffs_can_be_given():
    x = white(2, 2.0)
    out = low_pass(x, sample_rate=SR, cutoff_hz_per_row=torch.tensor([1000.0, 3000.0]))
    above = band_db(out, torch.tensor([2000.0, 2000.0]), torch.tensor([3000.0, 3000.0]))
    assert above[0] < above[1] - 10


def test_delay_adds_a_copy_at_the_drawn_lag():
    x = white(4, 1.0)
    out = delay(x, sample_rate=SR, generator=gen(9))
    lag = torch.round(draw_uniform(4, (200.0, 500.0), generator=gen(9)) * SR / 1000).long()
    size = 2 * x.shape[-1]
    xcorr = torch.fft.irfft(torch.fft.rfft(out, size) * torch.fft.rfft(x, size).conj(), size)[..., : x.shape[-1]]
    peak = xcorr[..., 10:].argmax(-1) + 10  # skip the direct path at lag 0
    assert torch.equal(peak, lag)
    d = int(lag[0])
    assert torch.allclose(out[0, d:], x[0, d:] + 0.5 * x[0, :-d])
    assert torch.equal(out[0, :d], x[0, :d])


def peak_hz(audio: torch.Tensor) -> torch.Tensor:
    window = torch.hann_window(audio.shape[-1], dtype=audio.dtype)
    return torch.fft.rfft(audio * window).abs().argmax(-1) * SR / audio.shape[-1]


def test_pitch_shift_moves_a_sine_by_the_drawn_semitones():
    time = torch.arange(3 * SR) / SR
    sine = 0.5 * torch.sin(2 * math.pi * 440 * time).repeat(8, 1)
    out = pitch_shift(sine, sample_rate=SR, generator=gen(10))
    semitones = draw_uniform(8, (-7, 7), generator=gen(10), integer=True)
    assert torch.equal(semitones, semitones.round()) and (semitones.abs() <= 7).all()
    assert semitones.unique().numel() > 2
    assert torch.allclose(peak_hz(out), 440 * 2 ** (semitones / 12), rtol=0.02)
    assert torch.allclose(rms(out), rms(sine), rtol=0.05)  # the level is kept


@pytest.mark.parametrize("semitones", [-7, -3, -1, 1, 5, 7])
def test_pitch_shift_explicit_semitones(semitones):
    time = torch.arange(2 * SR) / SR
    sine = torch.sin(2 * math.pi * 440 * time)[None]
    out = pitch_shift(sine, sample_rate=SR, shift_semitones=torch.tensor([float(semitones)]))
    assert peak_hz(out).item() == pytest.approx(440 * 2 ** (semitones / 12), rel=0.02)


def test_pitch_shift_keeps_the_balance_of_partials():
    time = torch.arange(2 * SR) / SR
    partials = (220.0, 660.0, 1320.0)  # levels 0, -6, -12 dB
    tone = sum(0.5**i * torch.sin(2 * math.pi * hz * time) for i, hz in enumerate(partials))[None].repeat(2, 1)
    semitones = torch.tensor([-5.0, 5.0])
    out = pitch_shift(tone, sample_rate=SR, shift_semitones=semitones)
    spectrum = torch.fft.rfft(out * torch.hann_window(out.shape[-1])).abs()
    for row, ratio in enumerate(2 ** (semitones / 12)):
        bins = [round(float(hz * ratio) * 2) for hz in partials]  # 0.5 Hz bins
        levels = torch.stack([spectrum[row, b - 2 : b + 3].max() for b in bins])
        relative = 20 * torch.log10(levels / levels[0])
        assert torch.allclose(relative[1:], torch.tensor([-6.0, -12.0]), atol=1.5), relative


def test_pitch_shift_by_zero_is_identity():
    x = white(2)
    assert torch.equal(pitch_shift(x, sample_rate=SR, shift_semitones=torch.zeros(2)), x)


def test_reverb_lengthens_the_decay_of_an_impulse():
    impulse = torch.zeros(3, SR)
    impulse[:, 100] = 1.0
    out = reverb(impulse, sample_rate=SR, generator=gen(11), room_sizes=torch.tensor([0.0, 50.0, 100.0]))
    total = out.pow(2).sum(-1)
    tail_10ms = out[:, 100 + SR // 100 :].pow(2).sum(-1) / total
    tail_300ms = out[:, 100 + int(0.3 * SR) :].pow(2).sum(-1) / total
    assert (tail_10ms > 0.05).all()  # the dry impulse had no energy there at all
    assert tail_300ms[0] < tail_300ms[1] < tail_300ms[2]  # bigger rooms decay longer
    assert torch.allclose(rms(out), rms(impulse), rtol=1e-4)  # level kept


EXPLICIT = {  # name -> (default range, keyword of the explicit per-row value, integer draw)
    "noise": ((0.3, 0.5), "noise_scale", False),
    "gain": ((-20.0, -1.0), "gain_db", False),
    "high_pass": ((200.0, 1200.0), "cutoff_hz_per_row", False),
    "low_pass": ((2200.0, 4000.0), "cutoff_hz_per_row", False),
    "delay": ((200.0, 500.0), "delay_ms", False),
    "pitch_shift": ((-7, 7), "shift_semitones", True),
    "reverb": ((0.0, 100.0), "room_sizes", False),
}


@pytest.mark.parametrize("name", list(EXPLICIT))
def test_drawn_parameter_is_the_documented_first_draw(name):
    """Each function first draws ``draw_uniform(B, range)``; passing that value explicitly to a
    generator that has made the same draw reproduces the output exactly."""
    bounds, keyword, integer = EXPLICIT[name]
    kwargs = {} if name == "gain" else {"sample_rate": SR}
    fn = {"noise": add_noise, "gain": gain, "high_pass": high_pass, "low_pass": low_pass, "delay": delay,
          "pitch_shift": pitch_shift, "reverb": reverb}[name]
    x = white(4)
    drawn_inside = fn(x, generator=gen(12), **kwargs)
    g = gen(12)
    values = draw_uniform(4, bounds, generator=g, integer=integer)
    assert ((values >= bounds[0]) & (values <= bounds[1])).all()
    assert torch.equal(drawn_inside, fn(x, generator=g, **kwargs, **{keyword: values}))


def all_probabilities(p: float, **params) -> AugmentSpec:
    return AugmentSpec.from_settings(probability=p, **params)


def test_chain_with_zero_probability_is_identity():
    x = white(6)
    assert torch.equal(augment_batch(x, sample_rate=SR, spec=all_probabilities(0.0), generator=gen(0)), x)
    disabled = AugmentSpec(enabled=False)
    assert torch.equal(augment_batch(x, sample_rate=SR, spec=disabled, generator=gen(0)), x)


def test_chain_with_probability_one_changes_every_row_and_keeps_length():
    x = white(6, 1.5)
    out = augment_batch(x, sample_rate=SR, spec=all_probabilities(1.0), generator=gen(0))
    assert out.shape == x.shape and out.dtype == x.dtype and torch.isfinite(out).all()
    assert ((out - x).abs().amax(-1) > 1e-3).all()
    silence = augment_batch(torch.zeros(3, SR), sample_rate=SR, spec=all_probabilities(1.0), generator=gen(0))
    assert torch.isfinite(silence).all()


def test_chain_is_deterministic_per_seed():
    x = white(6)
    spec = AugmentSpec()
    a = augment_batch(x, sample_rate=SR, spec=spec, generator=gen(21))
    assert torch.equal(a, augment_batch(x, sample_rate=SR, spec=spec, generator=gen(21)))
    assert not torch.equal(a, augment_batch(x, sample_rate=SR, spec=spec, generator=gen(22)))


def test_chain_applies_each_step_per_example():
    x = white(64, 0.1)
    spec = all_probabilities(0.0, polarity_p=0.5)
    out = augment_batch(x, sample_rate=SR, spec=spec, generator=gen(0))
    flipped = (out == -x).all(-1)
    untouched = (out == x).all(-1)
    assert (flipped | untouched).all()
    assert 10 < int(flipped.sum()) < 54
    # The selection is the documented draw: one uniform number per row for each step, in order.
    g = gen(0)
    expected = torch.rand(64, generator=g) < 0.5
    assert torch.equal(flipped, expected)


def test_numpy_adapter_replaces_audio_only():
    audio = white(4).numpy()
    batch = {"audio": audio, "labels": np.arange(4), "path": np.array(["a", "b", "c", "d"])}
    out = augment_numpy_batch(batch, sample_rate=SR, spec=all_probabilities(1.0), seed=3)
    assert out["audio"].shape == audio.shape and out["audio"].dtype == np.float32
    assert not np.allclose(out["audio"], audio)
    assert out["labels"] is batch["labels"] and out["path"] is batch["path"]
    again = augment_numpy_batch(batch, sample_rate=SR, spec=all_probabilities(1.0), seed=3)
    np.testing.assert_array_equal(out["audio"], again["audio"])
    unseeded = augment_numpy_batch(batch, sample_rate=SR, spec=all_probabilities(1.0), seed=None)
    assert np.isfinite(unseeded["audio"]).all()
    off = augment_numpy_batch(batch, sample_rate=SR, spec=AugmentSpec(enabled=False), seed=3)
    np.testing.assert_array_equal(off["audio"], audio)


def test_numpy_adapter_accepts_read_only_arrays():
    audio = white(2).numpy()
    audio.setflags(write=False)
    out = augment_numpy_batch({"audio": audio}, sample_rate=SR, spec=all_probabilities(1.0), seed=0)
    assert out["audio"].shape == audio.shape


def test_spec_defaults_follow_the_paper():
    spec = AugmentSpec()
    assert spec.high_pass_hz == (200.0, 1200.0) and spec.low_pass_hz == (2200.0, 4000.0)
    assert spec.gain_db == (-20.0, -1.0) and spec.noise_snr_scale == (0.3, 0.5)
    assert spec.delay_ms == (200.0, 500.0) and spec.pitch_semitones == (-7, 7)
    assert spec.reverb_room_size == (0.0, 100.0)
    # Per-step probabilities of the authors' released code (the paper: "p in {0.3, 0.7}").
    probabilities = {n: getattr(spec, n) for n in ("polarity_p", "noise_p", "gain_p", "filter_p", "delay_p",
                                                   "pitch_p", "reverb_p")}
    assert probabilities == {"polarity_p": 0.8, "noise_p": 0.3, "gain_p": 0.2, "filter_p": 0.8,
                             "delay_p": 0.5, "pitch_p": 0.4, "reverb_p": 0.3}


def _band_energy(x: torch.Tensor, low_hz: float, high_hz: float) -> torch.Tensor:
    spectrum = torch.fft.rfft(x).abs().square()
    freqs = torch.fft.rfftfreq(x.shape[-1], 1 / SR)
    return spectrum[:, (freqs >= low_hz) & (freqs < high_hz)].sum(-1)


def test_the_filter_step_is_one_filter_high_or_low_never_both():
    """A band-pass (both filters) would remove the bass *and* the top of a row; one filter
    keeps one of them. Every filtered row keeps at least one end of the spectrum."""
    x = white(200)
    spec = all_probabilities(0.0, filter_p=1.0)
    out = augment_batch(x, sample_rate=SR, spec=spec, generator=gen(5))
    bass = _band_energy(out, 20, 150) / _band_energy(x, 20, 150)
    top = _band_energy(out, 5000, 8000) / _band_energy(x, 5000, 8000)
    high_passed, low_passed = bass < 0.2, top < 0.2
    assert not (high_passed & low_passed).any()  # never both
    assert (high_passed | low_passed).all()  # every row got one of them
    assert 60 < int(high_passed.sum()) < 140  # high or low with equal chance
    only_high = augment_batch(x, sample_rate=SR, spec=all_probabilities(0.0, filter_p=1.0, high_pass_share=1.0),
                              generator=gen(5))
    assert (_band_energy(only_high, 20, 150) / _band_energy(x, 20, 150) < 0.2).all()


def test_from_settings_sets_probabilities_and_overrides():
    spec = AugmentSpec.from_settings(probability=0.3, pitch_p=0.7, pitch_semitones=[-3, 3])
    assert spec.gain_p == 0.3 and spec.pitch_p == 0.7
    assert spec.pitch_semitones == (-3, 3)
    hash(spec)  # lists became tuples: the spec stays hashable


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"gain_p": 1.5}, "gain_p"),
        ({"noise_p": -0.1}, "noise_p"),
        ({"gain_db": (-1.0, -20.0)}, "gain_db"),
        ({"high_pass_hz": (0.0, 100.0)}, "high_pass_hz"),
        ({"delay_ms": [200.0]}, "delay_ms"),
        ({"pitch_semitones": (-7.5, 7)}, "pitch_semitones"),
        ({"reverb_room_size": (0.0, 150.0)}, "reverb_room_size"),
        ({"reverb_wet": 2.0}, "reverb_wet"),
        ({"filter_order": 0}, "filter_order"),
        ({"pitch_semitone": (-7, 7)}, "pitch_semitone"),
    ],
)
def test_spec_validation_names_the_bad_field(params, field):
    with pytest.raises(ValueError, match=field):
        AugmentSpec.from_settings(**params)


def test_bad_audio_is_a_clear_error():
    with pytest.raises(ValueError, match=r"\(B, T\)"):
        gain(torch.zeros(10), generator=gen(0))
    with pytest.raises(ValueError, match="generator"):
        gain(torch.zeros(2, 10))
