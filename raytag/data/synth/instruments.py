"""Instruments of the synthetic corpus: scores, their renderers and the tag registry.

An instrument renders a :class:`Score` (onsets, pitches and levels of one monophonic part)
into a float32 waveform with pure DSP helpers; :data:`INSTRUMENTS` maps each tag of the
vocabulary :data:`TAGS` to one; :func:`draw_score` draws a part for an instrument. Every
random choice takes a :class:`numpy.random.Generator`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
from scipy.signal import lfilter, sosfilt

_VOWELS = ((730, 1090, 2440), (530, 1840, 2480), (270, 2290, 3010), (570, 840, 2410), (300, 870, 2240))
_TWO_PI = np.float32(2.0 * np.pi)


@dataclass(frozen=True)
class Score:
    """The notes (or drum hits) of one monophonic part.

    Attributes:
        onsets: (n_notes,) int note starts in samples, strictly increasing, in
            [0, n_samples), n_notes >= 1. A note sounds until the next onset at the latest.
        durations: (n_notes,) int held (gate) length in samples; the release follows.
            Drums ignore it.
        pitches: (n_notes,) float Hz. Drums read it as tuning: kick end pitch, snare body
            tone, hi-hat high-pass cut-off.
        velocities: (n_notes,) float linear gains in (0, 1].
        n_samples: length of the rendered part, samples (< 2**31).
        sample_rate: Hz.
    """

    onsets: np.ndarray
    durations: np.ndarray
    pitches: np.ndarray
    velocities: np.ndarray
    n_samples: int
    sample_rate: int


class _Timeline(NamedTuple):
    """Per-sample view of a score; every field (n_samples,) float32."""

    t: np.ndarray  # seconds since the sounding note's onset (0 before the first onset)
    freq: np.ndarray  # Hz of the sounding note
    held: np.ndarray  # gate length of the sounding note, seconds
    left: np.ndarray  # seconds until the next onset or the end of the part
    vel: np.ndarray  # velocity of the sounding note, 0 before the first onset


def _timeline(score: Score) -> _Timeline:
    n, inv_sr = score.n_samples, np.float32(1.0 / score.sample_rate)
    onsets = np.asarray(score.onsets, dtype=np.int32)
    ends = np.append(onsets[1:], np.int32(n))
    first, seg = int(onsets[0]), ends - onsets

    def per_sample(values: np.ndarray, dtype: type = np.float32) -> np.ndarray:
        out = np.zeros(n, dtype=dtype)
        out[first:] = np.repeat(np.asarray(values, dtype=dtype), seg)
        return out

    index = np.arange(n, dtype=np.int32)
    t = (index - per_sample(onsets, np.int32)).astype(np.float32)
    t[:first] = 0.0
    left = (per_sample(ends, np.int32) - index).astype(np.float32)
    left[:first] = 1.0
    freq = per_sample(score.pitches)
    freq[:first] = 1.0
    held = per_sample(score.durations)
    return _Timeline(t * inv_sr, freq, held * inv_sr, left * inv_sr, per_sample(score.velocities))


def _envelope(tl: _Timeline, attack: float, release: float, edge: float = 0.01) -> np.ndarray:
    """Linear attack, hold for the gate, linear release, and an ``edge``-second fade before
    the next onset (no click where a note is cut); times in seconds, scaled by velocity."""
    rise = np.minimum(tl.t / np.float32(attack), np.float32(1.0))
    fall = np.clip(1.0 - (tl.t - tl.held) / np.float32(release), 0.0, 1.0)
    cut = np.clip(tl.left / np.float32(edge), 0.0, 1.0)
    return rise * fall * cut * tl.vel


def _additive(
    cycles: np.ndarray,
    ratios: Sequence[float],
    amps: Sequence[float],
    t: np.ndarray | None = None,
    rates: Sequence[float] | None = None,
) -> np.ndarray:
    """Sum of partials: Σ_k amps[k]·sin(2π·frac(ratios[k]·cycles))·exp(−rates[k]·t).

    Args:
        cycles: (n,) float32 phase of the fundamental, in cycles.
        ratios: frequency of each partial relative to the fundamental.
        amps: linear amplitude of each partial.
        t: (n,) float32 seconds since onset; needed with ``rates``.
        rates: exponential decay rate of each partial, 1/s; None for no decay.
    """
    out, phase, scratch = np.zeros_like(cycles), np.empty_like(cycles), np.empty_like(cycles)
    for k, (ratio, amp) in enumerate(zip(ratios, amps)):
        np.multiply(cycles, np.float32(ratio), out=phase)
        phase -= np.floor(phase, out=scratch)  # small sin arguments: fast and exact in float32
        phase *= _TWO_PI
        np.sin(phase, out=phase)
        if rates is not None:
            np.multiply(t, np.float32(-rates[k]), out=scratch)
            phase *= np.exp(scratch, out=scratch)
        phase *= np.float32(amp)
        out += phase
    return out


def _vibrato_cycles(tl: _Timeline, rate_hz: float, depth: float) -> np.ndarray:
    """Phase (cycles) of f·(1 + depth·sin(2π·rate·t)), integrated analytically."""
    omega = 2.0 * np.pi * rate_hz
    swing = (1.0 - np.cos(tl.t * np.float32(omega))) * np.float32(depth / omega)
    return tl.freq * (tl.t + swing)


def _saw(cycles: np.ndarray, freq: np.ndarray, sample_rate: int) -> np.ndarray:
    """Band-limited (PolyBLEP) sawtooth in [-1, 1]: all harmonics, amplitude 1/k.

    Args:
        cycles: (n,) float32 phase in cycles.
        freq: (n,) float32 instantaneous frequency, Hz (sets the smoothing width).
        sample_rate: Hz.
    """
    phase = cycles - np.floor(cycles)
    step = np.minimum(freq / np.float32(sample_rate), np.float32(0.5))
    rise = phase / step  # in [0, 1) just after the wrap
    fall = (phase - np.float32(1.0)) / step  # in (-1, 0] just before it
    out = 2.0 * phase - 1.0
    out -= np.where(phase < step, rise * (2.0 - rise) - 1.0, 0.0)
    out -= np.where(phase > 1.0 - step, fall * (fall + 2.0) + 1.0, 0.0)
    return out


def _partials(score: Score, limit: int) -> np.ndarray:
    """Harmonic numbers 1..K as float64, 1 <= K <= limit, keeping K·(highest pitch) under
    0.45·sample rate."""
    top = 0.45 * score.sample_rate / float(np.max(score.pitches))
    return np.arange(1, max(1, min(limit, int(top))) + 1, dtype=np.float64)


def _noise(n: int, rng: np.random.Generator) -> np.ndarray:
    """(n,) float32 white noise, uniform in [-1, 1)."""
    return rng.random(n, dtype=np.float32) * np.float32(2.0) - np.float32(1.0)


_BIQUAD_NUMERATORS = {
    "lowpass": lambda c, alpha: ((1 - c) / 2, 1 - c, (1 - c) / 2),
    "highpass": lambda c, alpha: ((1 + c) / 2, -(1 + c), (1 + c) / 2),
    "bandpass": lambda c, alpha: (alpha, 0.0, -alpha),  # 0 dB peak gain
}


def _biquad(kind: str, freq: float, q: float, sample_rate: int) -> tuple[np.ndarray, np.ndarray]:
    """RBJ-cookbook biquad (b, a) for ``lowpass``/``highpass``/``bandpass``; freq in Hz,
    clamped below 0.48·sample rate."""
    w = 2.0 * math.pi * min(freq, 0.48 * sample_rate) / sample_rate
    c, alpha = math.cos(w), math.sin(w) / (2.0 * q)
    a = np.array([1.0 + alpha, -2.0 * c, 1.0 - alpha])
    return np.array(_BIQUAD_NUMERATORS[kind](c, alpha)) / a[0], a / a[0]


def _filter(ba: tuple[np.ndarray, np.ndarray], x: np.ndarray) -> np.ndarray:
    """``lfilter`` with coefficients ``ba``, returning float32."""
    return lfilter(ba[0], ba[1], x).astype(np.float32)


def _formant_sos(formants_hz: Sequence[float], sample_rate: int) -> np.ndarray:
    """(3, 6) second-order sections: a cascade of unit-peak two-pole resonators, one per
    formant, bandwidth 60 Hz + 6 % of the formant frequency."""
    rows = []
    for freq in formants_hz:
        r = math.exp(-math.pi * (60.0 + 0.06 * freq) / sample_rate)
        theta = 2.0 * math.pi * min(freq, 0.45 * sample_rate) / sample_rate
        gain = (1.0 - r) * math.sqrt(1.0 - 2.0 * r * math.cos(2.0 * theta) + r * r)
        rows.append([gain, 0.0, 0.0, 1.0, -2.0 * r * math.cos(theta), r * r])
    return np.array(rows)


def _hits(score: Score, render_hit: Callable[[float, int], np.ndarray]) -> np.ndarray:
    """Places one-shot hits: ``render_hit(pitch_hz, room_samples)`` returns at most ``room``
    samples, added at each onset scaled by its velocity. Returns (n_samples,) float32."""
    out = np.zeros(score.n_samples, dtype=np.float32)
    for onset, pitch, vel in zip(score.onsets, score.pitches, score.velocities):
        hit = render_hit(float(pitch), score.n_samples - int(onset))
        out[onset : onset + len(hit)] += np.float32(vel) * hit
    return out


def _hit_time(room: int, seconds: float, sample_rate: int) -> np.ndarray:
    """(min(room, seconds·sample_rate),) float32 times of a hit's samples, seconds."""
    return np.arange(min(room, int(seconds * sample_rate)), dtype=np.float32) / np.float32(sample_rate)


# --- instruments: (score, rng) -> (n_samples,) float32 waveform, any scale ---------------------


def piano(score: Score, rng: np.random.Generator) -> np.ndarray:
    """Struck strings: slightly stretched (inharmonic) partials that decay, the higher ones
    faster (bright attack, mellow tail, 1/e time 0.5-1 s), plus a short hammer knock."""
    tl = _timeline(score)
    k = _partials(score, 12)
    stretch = k * np.sqrt(1.0 + rng.uniform(3e-4, 1e-3) * k**2)
    rates = (1.0 + 0.6 * (k - 1.0)) / rng.uniform(0.5, 1.0)
    tone = _additive(tl.freq * tl.t, stretch, k**-1.1, tl.t, rates)
    knock = _filter(_biquad("bandpass", 2500.0, 0.8, score.sample_rate), _noise(score.n_samples, rng))
    knock *= np.exp(tl.t * np.float32(-250.0))
    return (tone + 0.4 * knock) * _envelope(tl, attack=0.002, release=0.15)


def strings(score: Score, rng: np.random.Generator) -> np.ndarray:
    """Bowed strings: a band-limited sawtooth softened above 3-6 kHz, 5-6 Hz vibrato, a slow
    attack (0.12-0.3 s) and no decay while held."""
    tl = _timeline(score)
    cycles = _vibrato_cycles(tl, rng.uniform(5.0, 6.0), rng.uniform(0.004, 0.008))
    soften = _biquad("lowpass", rng.uniform(3000.0, 6000.0), 0.7, score.sample_rate)
    tone = _filter(soften, _saw(cycles, tl.freq, score.sample_rate))
    return tone * _envelope(tl, attack=rng.uniform(0.12, 0.3), release=0.25)


def guitar(score: Score, rng: np.random.Generator) -> np.ndarray:
    """Plucked strings: harmonics shaped by the pluck position that die fast (1/e 0.25-0.6 s),
    each higher harmonic faster than the one below."""
    tl = _timeline(score)
    k = _partials(score, 14)
    amps = np.abs(np.sin(np.pi * k * rng.uniform(0.08, 0.25))) / k
    rates = (1.0 + rng.uniform(0.6, 1.2) * (k - 1.0) ** 1.3) / rng.uniform(0.25, 0.6)
    return _additive(tl.freq * tl.t, k, amps, tl.t, rates) * _envelope(tl, attack=0.001, release=0.05)


def voice(score: Score, rng: np.random.Generator) -> np.ndarray:
    """Sung vowels: a glottal-like source (band-limited sawtooth) with 5-6.5 Hz vibrato, through
    a cascade of three formant resonators; each note draws a vowel (a, e, i, o, u)."""
    tl = _timeline(score)
    cycles = _vibrato_cycles(tl, rng.uniform(5.0, 6.5), rng.uniform(0.01, 0.02))
    source = _saw(cycles, tl.freq, score.sample_rate)
    out = np.zeros_like(source)
    ends = np.append(score.onsets[1:], score.n_samples)
    tract = rng.uniform(0.95, 1.15)  # formant shift of the singer's vocal tract
    for start, end, vowel in zip(score.onsets, ends, rng.integers(0, len(_VOWELS), len(ends))):
        sos = _formant_sos([f * tract for f in _VOWELS[vowel]], score.sample_rate)
        out[start:end] = sosfilt(sos, source[start:end])
    return out * _envelope(tl, attack=rng.uniform(0.04, 0.08), release=0.12)


def bass(score: Score, rng: np.random.Generator) -> np.ndarray:
    """Bass guitar (40-110 Hz): mostly fundamental and 2nd harmonic, a little 3rd, slow decay."""
    tl = _timeline(score)
    amps = (1.0, rng.uniform(0.3, 0.6), rng.uniform(0.05, 0.15))
    rates = np.array([1.0, 1.5, 2.0]) / rng.uniform(0.6, 1.5)
    return _additive(tl.freq * tl.t, (1, 2, 3), amps, tl.t, rates) * _envelope(tl, attack=0.004, release=0.06)


def kick(score: Score, rng: np.random.Generator) -> np.ndarray:
    """Kick drum: a sine thump whose pitch drops from 100-150 Hz to the score's pitch."""
    sr, start_hz = score.sample_rate, rng.uniform(100.0, 150.0)
    drop_s, decay_s = rng.uniform(0.02, 0.045), rng.uniform(0.08, 0.18)

    def hit(pitch: float, room: int) -> np.ndarray:
        t = _hit_time(room, 6.0 * decay_s, sr)
        glide = np.float32((start_hz - pitch) * drop_s) * (1.0 - np.exp(t / np.float32(-drop_s)))
        envelope = np.exp(t / np.float32(-decay_s)) * np.minimum(t / np.float32(0.002), 1.0)
        return np.sin(_TWO_PI * (pitch * t + glide)) * envelope

    return _hits(score, hit)


def snare(score: Score, rng: np.random.Generator) -> np.ndarray:
    """Snare drum: a band-limited noise burst plus a short body tone at the score's pitch."""
    sr = score.sample_rate
    high = _biquad("highpass", rng.uniform(300.0, 600.0), 0.7, sr)
    low = _biquad("lowpass", rng.uniform(5000.0, 8000.0), 0.7, sr)
    noise_s, tone_s, tone_level = rng.uniform(0.05, 0.12), rng.uniform(0.02, 0.05), rng.uniform(0.3, 0.6)

    def hit(pitch: float, room: int) -> np.ndarray:
        t = _hit_time(room, 5.0 * noise_s, sr)
        rattle = _filter(low, _filter(high, _noise(len(t), rng))) * np.exp(t / np.float32(-noise_s))
        body = np.sin(_TWO_PI * np.float32(pitch) * t) * np.exp(t / np.float32(-tone_s))
        return rattle + np.float32(tone_level) * body

    return _hits(score, hit)


def hihat(score: Score, rng: np.random.Generator) -> np.ndarray:
    """Hi-hat: short ticks of noise (1/e 10-40 ms) through a 4th-order high-pass at the
    score's pitch."""
    sr, decay_s = score.sample_rate, rng.uniform(0.01, 0.04)

    def hit(pitch: float, room: int) -> np.ndarray:
        t = _hit_time(room, 6.0 * decay_s, sr)
        high = _biquad("highpass", min(pitch, 0.4 * sr), 0.7, sr)
        return _filter(high, _filter(high, _noise(len(t), rng))) * np.exp(t / np.float32(-decay_s))

    return _hits(score, hit)


def flute(score: Score, rng: np.random.Generator) -> np.ndarray:
    """Flute: a near-sine (weak 2nd and 3rd harmonics), gentle vibrato, breath noise."""
    tl = _timeline(score)
    cycles = _vibrato_cycles(tl, rng.uniform(4.5, 5.5), rng.uniform(0.002, 0.005))
    tone = _additive(cycles, (1, 2, 3), (1.0, rng.uniform(0.08, 0.2), rng.uniform(0.02, 0.06)))
    band = _biquad("bandpass", rng.uniform(1500.0, 3000.0), 0.8, score.sample_rate)
    breath = _filter(band, _noise(score.n_samples, rng)) * np.float32(rng.uniform(0.15, 0.3))
    return (tone + breath) * _envelope(tl, attack=rng.uniform(0.05, 0.1), release=0.08)


_DRAWBAR_RATIOS = (0.5, 1.5, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 8.0)  # 16', 5 1/3', 8', 4', ... 1'


def organ(score: Score, rng: np.random.Generator) -> np.ndarray:
    """Drawbar organ: nine additive partials at random drawbar levels (8' always out), fast
    attack, no decay while held."""
    tl = _timeline(score)
    levels = rng.integers(0, 9, len(_DRAWBAR_RATIOS)) / 8.0
    levels[2] = max(levels[2], 0.75)
    top = 0.45 * score.sample_rate / float(np.max(score.pitches))
    keep = [i for i, ratio in enumerate(_DRAWBAR_RATIOS) if ratio <= top]
    tone = _additive(tl.freq * tl.t, [_DRAWBAR_RATIOS[i] for i in keep], levels[keep])
    return tone * _envelope(tl, attack=0.008, release=0.04)


@dataclass(frozen=True)
class Instrument:
    """A tag's renderer and how its parts are played.

    Attributes:
        render: (score, rng) -> (n_samples,) float32 waveform, any scale.
        low_hz, high_hz: pitch range; drums draw one tuning in it per part.
        beats: choices of the time between onsets, in beats.
        rest: probability that a slot is silent (the first slot always plays).
        held: range of the gate as a fraction of the slot.
        offset_beats: first onset, in beats (used only if it falls in the first half).
        drum: one tuning per part (±1 % per hit) instead of notes of the clip's scale.
    """

    render: Callable[[Score, np.random.Generator], np.ndarray]
    low_hz: float
    high_hz: float
    beats: tuple[float, ...]
    rest: float = 0.1
    held: tuple[float, float] = (0.6, 0.9)
    offset_beats: float = 0.0
    drum: bool = False


INSTRUMENTS: dict[str, Instrument] = {
    "piano": Instrument(piano, 110.0, 1047.0, (0.5, 1.0, 1.0, 2.0), held=(0.5, 0.9)),
    "strings": Instrument(strings, 196.0, 880.0, (2.0, 4.0), rest=0.05, held=(0.85, 0.95)),
    "guitar": Instrument(guitar, 82.0, 660.0, (0.5, 0.5, 1.0), rest=0.15),
    "voice": Instrument(voice, 130.0, 520.0, (1.0, 2.0), held=(0.7, 0.9)),
    "bass": Instrument(bass, 41.0, 110.0, (0.5, 1.0, 1.0)),
    "kick": Instrument(kick, 45.0, 65.0, (1.0, 1.0, 0.5, 2.0), rest=0.05, drum=True),
    "snare": Instrument(snare, 160.0, 240.0, (2.0,), rest=0.05, offset_beats=1.0, drum=True),
    "hihat": Instrument(hihat, 6000.0, 8500.0, (0.25, 0.5, 0.5), drum=True),
    "flute": Instrument(flute, 262.0, 1047.0, (0.5, 1.0, 2.0)),
    "organ": Instrument(organ, 131.0, 523.0, (2.0, 4.0), rest=0.05, held=(0.85, 0.95)),
}
"""Tag -> instrument, in vocabulary order."""
TAGS: tuple[str, ...] = tuple(INSTRUMENTS)
"""The tag vocabulary, in its fixed order."""


def draw_score(
    instrument: Instrument,
    *,
    n_samples: int,
    sample_rate: int,
    beat_seconds: float,
    root: int,
    scale: Sequence[int],
    rng: np.random.Generator,
) -> Score:
    """Draws one part: slots of ``instrument.beats`` at the clip's tempo, some left silent,
    pitches from the clip's scale within the instrument's range (or one drum tuning).

    Args:
        instrument: the part's instrument.
        n_samples: part length, samples (>= 1).
        sample_rate: Hz.
        beat_seconds: one beat, seconds.
        root: key of the clip, pitch class 0-11 (0 = C).
        scale: pitch classes of the scale relative to ``root``.
        rng: the random generator.

    Returns:
        A score with at least one note, its first onset within the first half of the part.
    """
    seconds = n_samples / sample_rate
    start = instrument.offset_beats * beat_seconds
    start = start if start < 0.5 * seconds else 0.0
    most = int(math.ceil(seconds / (min(instrument.beats) * beat_seconds))) + 1
    slots = rng.choice(np.asarray(instrument.beats), most) * beat_seconds
    onsets = np.round((start + np.cumsum(slots) - slots) * sample_rate).astype(np.int64)
    plays = rng.random(most) >= instrument.rest
    plays[0] = True
    keep = plays & (onsets < n_samples)
    onsets, slots = onsets[keep], slots[keep]
    count = len(onsets)
    durations = np.round(slots * rng.uniform(*instrument.held, count) * sample_rate).astype(np.int64)
    if instrument.drum:
        tuning = rng.uniform(instrument.low_hz, instrument.high_hz)
        pitches = tuning * (1.0 + 0.01 * rng.standard_normal(count))
    else:
        low, high = (69.0 + 12.0 * math.log2(hz / 440.0) for hz in (instrument.low_hz, instrument.high_hz))
        notes = [m for m in range(math.ceil(low), math.floor(high) + 1) if (m - root) % 12 in scale]
        pitches = 440.0 * 2.0 ** ((rng.choice(notes, count) - 69.0) / 12.0)
    return Score(onsets, durations, pitches, rng.uniform(0.6, 1.0, count), n_samples, sample_rate)
