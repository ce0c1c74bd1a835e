"""Waveform augmentations of Won et al. 2021 §3.4, as pure functions on ``(B, T)`` batches.

Every function takes ``audio`` (B, T) floating point at ``sample_rate`` Hz and returns a new
(B, T) tensor of the same dtype; the input is never modified. Random functions draw their
parameter per row, uniform over a configurable range (paper defaults), as their *first* draw
from ``generator``: exactly ``draw_uniform(B, range, generator=generator)`` (integers for pitch),
then any noise they need. Each also takes that per-row parameter explicitly (``gain_db=``,
``cutoff_hz_per_row=``, ...), in which case nothing is drawn for it: so a caller or a test can
know or fix what was applied. Silent rows stay finite: divisions by a std or RMS are guarded.
"""

from __future__ import annotations

import math
import numpy as np
import torch
from torch import Tensor

from raytag.audio.augment_spec import AugmentSpec, Range, check_bounds

Generator = torch.Generator
_TINY = 1e-12
_LN_1000 = math.log(1000.0)  # natural log of a 60 dB amplitude decay


def draw_uniform(batch_size: int, bounds: Range, *, generator: Generator | None, integer: bool = False) -> Tensor:
    """Draws one value per row, uniform on ``[low, high]`` (integers ``low..high`` inclusive if
    ``integer``), on the generator's device. Returns (B,) float32. ``generator`` is required."""
    low, high = check_bounds("bounds", bounds)
    if generator is None:
        raise ValueError("generator is required to draw random parameters")
    if integer:
        values = torch.randint(int(low), int(high) + 1, (batch_size,), generator=generator, device=generator.device)
        return values.float()
    return low + (high - low) * torch.rand(batch_size, generator=generator, device=generator.device)


def polarity_inversion(audio: Tensor) -> Tensor:
    """Flips the sign of every sample: (B, T) → (B, T). Nothing random."""
    _check_audio(audio)
    return -audio


def add_noise(
    audio: Tensor, *, sample_rate: int, generator: Generator | None = None, snr_scale: Range = (0.3, 0.5),
    noise_scale: Tensor | None = None,
) -> Tensor:
    """Adds white Gaussian noise with std ``k * std(row)``: ``audio + k * std * N(0, 1)``.

    Args:
        audio: (B, T) waveform; a silent row stays silent.
        sample_rate: Hz (white noise needs none; taken for a uniform call).
        generator: draws ``k`` (unless given), then the (B, T) noise; required.
        snr_scale: range of ``k``; default (paper) 0.3-0.5.
        noise_scale: (B,) explicit ``k`` per row.
    """
    _check_audio(audio)
    if generator is None:
        raise ValueError("generator is required to draw noise")
    k = _per_row(audio, noise_scale, snr_scale, generator)
    noise = torch.randn(audio.shape, generator=generator, device=generator.device).to(audio)
    if audio.shape[-1] == 0:
        return audio.clone()
    return audio + (k[:, None] * audio.std(dim=-1, correction=0, keepdim=True)).to(audio.dtype) * noise


def gain(audio: Tensor, *, generator: Generator | None = None, db: Range = (-20.0, -1.0),
         gain_db: Tensor | None = None) -> Tensor:
    """Scales each row by ``10 ** (dB / 20)``.

    Args:
        audio: (B, T) waveform.
        generator: draws the gain unless ``gain_db`` is given.
        db: gain range in dB; default (paper) -20 to -1.
        gain_db: (B,) explicit gains in dB.
    """
    _check_audio(audio)
    return audio * torch.pow(10.0, _per_row(audio, gain_db, db, generator) / 20.0).to(audio.dtype)[:, None]


def high_pass(
    audio: Tensor, *, sample_rate: int, generator: Generator | None = None, cutoff_hz: Range = (200.0, 1200.0),
    order: int = 4, cutoff_hz_per_row: Tensor | None = None,
) -> Tensor:
    """Zero-phase Butterworth-shaped high-pass, ``|H(f)| = 1 / sqrt(1 + (fc / f) ** (2 * order))``.

    Same method as :func:`low_pass`. Default range 200-1200 Hz: the paper's augmentation library
    (its text swaps the high- and low-pass ranges).

    Args:
        audio: (B, T) waveform.
        sample_rate: Hz.
        generator: draws the cut-off unless ``cutoff_hz_per_row`` is given.
        cutoff_hz: cut-off range in Hz.
        order: slope ``6 * order`` dB per octave below the cut-off; default 4 (24 dB/octave).
        cutoff_hz_per_row: (B,) explicit cut-offs in Hz.
    """
    _check_audio(audio)
    cutoff = _per_row(audio, cutoff_hz_per_row, cutoff_hz, generator)
    return _butterworth(audio, sample_rate, cutoff, order, high=True)


def low_pass(
    audio: Tensor, *, sample_rate: int, generator: Generator | None = None, cutoff_hz: Range = (2200.0, 4000.0),
    order: int = 4, cutoff_hz_per_row: Tensor | None = None,
) -> Tensor:
    """Zero-phase Butterworth-shaped low-pass, ``|H(f)| = 1 / sqrt(1 + (f / fc) ** (2 * order))``.

    Applied as a gain on the real FFT of each row (one cut-off per row), after zero-padding by
    up to 0.1 s so the filter's ringing does not wrap around: -3 dB at ``fc``, -24 dB an octave
    above it at order 4. Default range 2200-4000 Hz (see :func:`high_pass`).

    Args:
        audio: (B, T) waveform.
        sample_rate: Hz.
        generator: draws the cut-off unless ``cutoff_hz_per_row`` is given.
        cutoff_hz: cut-off range in Hz.
        order: slope ``6 * order`` dB per octave above the cut-off; default 4.
        cutoff_hz_per_row: (B,) explicit cut-offs in Hz.
    """
    _check_audio(audio)
    cutoff = _per_row(audio, cutoff_hz_per_row, cutoff_hz, generator)
    return _butterworth(audio, sample_rate, cutoff, order, high=False)


def delay(
    audio: Tensor, *, sample_rate: int, generator: Generator | None = None, ms: Range = (200.0, 500.0),
    mix: float = 0.5, delay_ms: Tensor | None = None,
) -> Tensor:
    """Adds an echo: ``y[t] = x[t] + mix * x[t - d]``, ``d = round(ms * sample_rate / 1000)``.

    Args:
        audio: (B, T) waveform; the echo's tail past T is cut off.
        sample_rate: Hz.
        generator: draws the delay unless ``delay_ms`` is given.
        ms: delay range in milliseconds; default (paper) 200-500.
        mix: level of the delayed copy; default (paper) 0.5.
        delay_ms: (B,) explicit delays in ms.
    """
    _check_audio(audio)
    lag = torch.round(_per_row(audio, delay_ms, ms, generator) * sample_rate / 1000.0).long()
    source = torch.arange(audio.shape[-1], device=audio.device)[None, :] - lag[:, None]
    return audio + mix * (audio.gather(-1, source.clamp(min=0)) * (source >= 0))


def pitch_shift(
    audio: Tensor, *, sample_rate: int, generator: Generator | None = None, semitones: tuple[int, int] = (-7, 7),
    shift_semitones: Tensor | None = None,
) -> Tensor:
    """Shifts pitch by ``n`` semitones (drawn as whole numbers), keeping the length.

    A peak-locked phase vocoder (after Laroche & Dolson, 1999) with ``r = 2 ** (n / 12)``: in
    every STFT frame each bin joins its nearest magnitude peak ``p``; that region moves rigidly
    to bins ``+ round(p * r) - p`` (keeping the bins' relative phases, hence the timbre), and an
    accumulated phase rotation of ``(r - 1)`` times the peak's measured instantaneous frequency
    makes its frequency exactly ``r`` times the original. Content moved past Nyquist is dropped.
    Each row is rescaled to its input RMS; rows with ``n = 0`` are returned as they are. STFT:
    Hann window of ~64 ms rounded to a power of two (1024 at 16-22.05 kHz), hop a quarter of it.

    Args:
        audio: (B, T) waveform.
        sample_rate: Hz.
        generator: draws ``n`` unless ``shift_semitones`` is given.
        semitones: inclusive integer range; default (paper) -7 to 7.
        shift_semitones: (B,) explicit shifts in semitones (fractions allowed).
    """
    _check_audio(audio)
    ratio = torch.pow(2.0, _per_row(audio, shift_semitones, semitones, generator, integer=True) / 12.0)
    if bool((ratio == 1).all()) or audio.shape[-1] == 0:
        return audio.clone()
    x, length = _working(audio), audio.shape[-1]
    n_fft = 2 ** round(math.log2(0.064 * sample_rate))
    hop = n_fft // 4
    padded = torch.nn.functional.pad(x, (0, max(0, n_fft - length)))
    window = torch.hann_window(n_fft, dtype=x.dtype, device=x.device)
    spec = torch.stft(padded, n_fft, hop, window=window, center=True, pad_mode="constant", return_complex=True)
    magnitude, phase = spec.abs(), spec.angle()  # (B, F, N)
    bins = spec.shape[1]
    index = torch.arange(bins, device=x.device)[None, :, None].expand_as(magnitude)
    bin_advance = (2 * math.pi * hop / n_fft) * index[0, :, :1].to(x.dtype)  # (F, 1) radians per hop
    advance = _wrap(phase[..., 1:] - phase[..., :-1] - bin_advance) + bin_advance
    advance = torch.cat([bin_advance.expand(x.shape[0], -1, 1), advance], dim=-1)  # instantaneous frequency
    left = torch.nn.functional.pad(magnitude[:, :-1], (0, 0, 1, 0), value=-1.0)
    right = torch.nn.functional.pad(magnitude[:, 1:], (0, 0, 0, 1), value=-1.0)
    is_peak = (magnitude > left) & (magnitude >= right)
    below = torch.where(is_peak, index, -1).cummax(dim=1).values  # -1: no peak below
    above = (bins - 1) - torch.where(is_peak, bins - 1 - index, -1).flip(1).cummax(dim=1).values.flip(1)  # F: none
    use_below = (below >= 0) & ((above >= bins) | (index - below <= above - index))
    peak = torch.where(use_below, below, above).clamp(0, bins - 1)
    r = ratio.to(x)[:, None, None]
    target = index + torch.round(peak * r).long() - peak
    keep = (target >= 0) & (target < bins)
    target = target.clamp(0, bins - 1)
    moved = torch.view_as_real(spec * keep)
    moved = torch.zeros_like(moved).scatter_add_(1, target[..., None].expand_as(moved), moved)
    extra = _wrap((r - 1) * advance.gather(1, peak)) * keep  # phase per hop added to each moved bin
    extra = torch.zeros_like(extra).scatter_reduce_(1, target, extra, reduce="amax", include_self=False)
    rotation = torch.polar(torch.ones_like(extra), extra.cumsum(-1))
    shifted = torch.istft(torch.view_as_complex(moved) * rotation, n_fft, hop, window=window, length=padded.shape[-1])
    shifted = _match_rms(shifted[..., :length], x).to(audio.dtype)
    return torch.where((ratio == 1).to(audio.device)[:, None], audio, shifted)


def reverb(
    audio: Tensor, *, sample_rate: int, generator: Generator | None = None, room_size: Range = (0.0, 100.0),
    rt60_s: Range = (0.1, 2.0), wet: float = 0.5, room_sizes: Tensor | None = None,
) -> Tensor:
    """Convolves with a synthetic room, exponentially decaying Gaussian noise, mixed wet/dry.

    Room size ``s`` (0-100) maps linearly to the 60 dB decay time
    ``RT60 = rt60_s[0] + (rt60_s[1] - rt60_s[0]) * s / 100`` (default 0.1 s to 2 s). The impulse
    response ``h[t] = N(0, 1) * exp(-ln(1000) * t / RT60)``, ``h[0] = 0``, unit energy, lasts
    ``rt60_s[1]`` (at most T). ``(1 - wet) * x + wet * (x * h)`` (FFT convolution cut to T) is
    rescaled to each row's input RMS, so the level stays the same.

    Args:
        audio: (B, T) waveform.
        sample_rate: Hz.
        generator: draws the room size (unless given), then the impulse responses; required.
        room_size: range within 0-100; default (paper) 0-100.
        rt60_s: RT60 in seconds at room sizes 0 and 100.
        wet: share of the reverberant signal, 0-1; default 0.5.
        room_sizes: (B,) explicit room sizes.
    """
    _check_audio(audio)
    if generator is None:
        raise ValueError("generator is required to draw impulse responses")
    size = _per_row(audio, room_sizes, room_size, generator)
    batch, length = audio.shape
    taps = min(length, math.ceil(max(rt60_s) * sample_rate))
    noise = torch.randn(batch, taps, generator=generator, device=generator.device)
    if length == 0:
        return audio.clone()
    x = _working(audio)
    rt60 = (rt60_s[0] + (rt60_s[1] - rt60_s[0]) * size / 100.0).clamp_min(1e-3).to(x)
    time = torch.arange(taps, device=x.device, dtype=x.dtype) / sample_rate
    response = noise.to(x) * torch.exp(-_LN_1000 * time[None, :] / rt60[:, None])
    response[:, 0] = 0.0
    response = response / response.norm(dim=-1, keepdim=True).clamp_min(_TINY)
    n_fft = _fft_size(length + taps - 1)
    reverberant = torch.fft.irfft(torch.fft.rfft(x, n_fft) * torch.fft.rfft(response, n_fft), n_fft)[..., :length]
    return _match_rms((1 - wet) * x + wet * reverberant, x).to(audio.dtype)


def high_or_low_pass(audio: Tensor, *, sample_rate: int, generator: Generator, spec: AugmentSpec) -> Tensor:
    """One filter per row: high-pass with probability ``spec.high_pass_share``, else low-pass.

    The choice is the step's first draw, B uniform numbers from ``generator``; then the
    high-pass rows are filtered (drawing their cut-offs), then the low-pass rows. A row never
    gets both, so no band-pass can erase a whole register.
    """
    _check_audio(audio)
    high = (torch.rand(audio.shape[0], generator=generator, device=generator.device) < spec.high_pass_share)
    high = high.to(audio.device)
    out = audio.clone()
    if bool(high.any()):
        out[high] = high_pass(audio[high], sample_rate=sample_rate, generator=generator,
                              cutoff_hz=spec.high_pass_hz, order=spec.filter_order)
    if bool((~high).any()):
        out[~high] = low_pass(audio[~high], sample_rate=sample_rate, generator=generator,
                              cutoff_hz=spec.low_pass_hz, order=spec.filter_order)
    return out


def augment_batch(audio: Tensor, *, sample_rate: int, spec: AugmentSpec, generator: Generator) -> Tensor:
    """Applies the chain, each step to each row independently with the step's probability.

    Fixed order (the paper's list): polarity inversion → noise → gain → one filter (high-pass or
    low-pass, see :func:`high_or_low_pass`) → delay → pitch shift → reverb. Before each step, B
    uniform numbers (always drawn) choose the rows that take it; only those rows are processed,
    the others pass through untouched.

    Args:
        audio: (B, T) waveform.
        sample_rate: Hz.
        spec: probabilities and ranges; ``enabled=False`` returns a copy of the input.
        generator: the only source of randomness.

    Returns:
        (B, T), same dtype.
    """
    _check_audio(audio)
    out = audio.clone()
    if not spec.enabled:
        return out
    sr, g, s = sample_rate, generator, spec
    steps = [
        (s.polarity_p, polarity_inversion),
        (s.noise_p, lambda x: add_noise(x, sample_rate=sr, generator=g, snr_scale=s.noise_snr_scale)),
        (s.gain_p, lambda x: gain(x, generator=g, db=s.gain_db)),
        (s.filter_p, lambda x: high_or_low_pass(x, sample_rate=sr, generator=g, spec=s)),
        (s.delay_p, lambda x: delay(x, sample_rate=sr, generator=g, ms=s.delay_ms, mix=s.delay_mix)),
        (s.pitch_p, lambda x: pitch_shift(x, sample_rate=sr, generator=g, semitones=s.pitch_semitones)),
        (s.reverb_p, lambda x: reverb(x, sample_rate=sr, generator=g, room_size=s.reverb_room_size,
                                      rt60_s=s.reverb_rt60_s, wet=s.reverb_wet)),
    ]
    for probability, step in steps:
        chosen = (torch.rand(out.shape[0], generator=g, device=g.device) < probability).to(out.device)
        if bool(chosen.any()):
            out[chosen] = step(out[chosen])
    return out


def augment_numpy_batch(
    batch: dict[str, np.ndarray], *, sample_rate: int, spec: AugmentSpec, seed: int | None
) -> dict[str, np.ndarray]:
    """Ray Data ``map_batches`` adapter: a new dict with ``audio`` (B, T) augmented, other keys as given.

    Args:
        batch: column name → array; ``audio`` is (B, T) float32 (computed in float32, returned in
            its own dtype).
        sample_rate: Hz.
        spec: the chain's settings; disabled → the batch unchanged.
        seed: seeds a fresh ``torch.Generator``; ``None`` seeds it nondeterministically.
    """
    audio = np.asarray(batch["audio"])
    if not spec.enabled or audio.size == 0:
        return dict(batch)
    generator = torch.Generator()
    if seed is None:
        generator.seed()
    else:
        generator.manual_seed(seed)
    augmented = augment_batch(torch.tensor(audio, dtype=torch.float32), sample_rate=sample_rate, spec=spec,
                              generator=generator)
    return {**batch, "audio": augmented.numpy().astype(audio.dtype, copy=False)}


def _check_audio(audio: Tensor) -> None:
    if not isinstance(audio, Tensor) or audio.dim() != 2 or not audio.is_floating_point():
        got = f"{tuple(audio.shape)} {audio.dtype}" if isinstance(audio, Tensor) else type(audio).__name__
        raise ValueError(f"audio must be a floating point (B, T) tensor, got {got}")


def _per_row(audio: Tensor, given: Tensor | None, bounds: Range, generator: Generator | None,
             integer: bool = False) -> Tensor:
    """The (B,) float32 parameter on the audio's device: ``given``, or drawn from ``bounds``."""
    if given is None:
        given = draw_uniform(audio.shape[0], bounds, generator=generator, integer=integer)
    given = torch.as_tensor(given, dtype=torch.float32).to(audio.device).reshape(-1)
    if given.shape[0] != audio.shape[0]:
        raise ValueError(f"expected one parameter per row ({audio.shape[0]}), got {given.shape[0]}")
    return given


def _working(audio: Tensor) -> Tensor:
    """float32/float64 as they are; lower precisions in float32 (CPU FFTs need it)."""
    return audio if audio.dtype in (torch.float32, torch.float64) else audio.float()


def _wrap(angle: Tensor) -> Tensor:
    """Angles in radians wrapped to [-pi, pi]."""
    return angle - 2 * math.pi * torch.round(angle / (2 * math.pi))


def _match_rms(signal: Tensor, reference: Tensor) -> Tensor:
    """Rescales each row of ``signal`` to the RMS of ``reference`` (at most 1000x; silence stays 0)."""
    target = reference.pow(2).mean(-1, keepdim=True).sqrt()
    current = signal.pow(2).mean(-1, keepdim=True).sqrt()
    return signal * (target / torch.maximum(current, 1e-3 * target).clamp_min(_TINY))


def _fft_size(n: int) -> int:
    """The smallest 2^a * 3^b * 5^c >= n: a fast FFT length."""
    best, power5 = 1 << max(0, (n - 1).bit_length()), 1
    while power5 < best:
        power35 = power5
        while power35 < best:
            size = power35
            while size < n:
                size *= 2
            best, power35 = min(best, size), power35 * 3
        power5 *= 5
    return best


def _butterworth(audio: Tensor, sample_rate: int, cutoff: Tensor, order: int, *, high: bool) -> Tensor:
    """A Butterworth magnitude response with one cut-off per row, as a gain on a zero-padded rfft."""
    length = audio.shape[-1]
    if length == 0:
        return audio.clone()
    x = _working(audio)
    n_fft = _fft_size(length + min(length, math.ceil(0.1 * sample_rate)))
    freqs = torch.fft.rfftfreq(n_fft, d=1.0 / sample_rate, device=x.device, dtype=x.dtype)[None, :]
    cutoff = cutoff.to(x).clamp_min(_TINY)[:, None]
    ratio = cutoff / freqs if high else freqs / cutoff  # (B, F); inf at DC for a high-pass
    response = torch.rsqrt(1 + ratio.pow(2 * order))  # 0 where ratio is inf
    return torch.fft.irfft(torch.fft.rfft(x, n_fft) * response, n_fft)[..., :length].to(audio.dtype)
