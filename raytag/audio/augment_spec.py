"""The settings of the augmentation chain, readable without torch (a job file sets them).

:class:`AugmentSpec` says what :func:`raytag.audio.augment.augment_batch` applies: per step a
probability (``*_p``) and the ranges its parameters are drawn from.

Defaults and their source. The ranges are Won et al. 2021 §3.4 (noise k 0.3-0.5, gain -20 to
-1 dB, delay 200-500 ms, pitch ±7 semitones, reverb room size 0-100), with the filter cut-offs
of the library the paper used (high-pass 200-1200 Hz, low-pass 2200-4000 Hz; the paper's text
swaps them). The paper only says each step is applied "with a probability p in {0.3, 0.7}";
the per-step probabilities are those of the authors' released training code
(minzwon/semi-supervised-music-tagging-transformer, ``src/data_loader.py``): polarity 0.8,
noise 0.3, gain 0.2, filter 0.8, delay 0.5, pitch 0.4, reverb 0.3. The filter step is *one*
filter, high-pass or low-pass with equal chance (the library's ``HighLowPass``), never both.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields, replace
from typing import Any

Range = tuple[float, float]


@dataclass(frozen=True)
class AugmentSpec:
    """Probabilities and ranges of the chain's eight steps; see the module docstring.

    Ranges are ``(low, high)``; lists are accepted and stored as tuples. A bad value raises
    ValueError naming its field.
    """

    enabled: bool = True
    polarity_p: float = 0.8
    noise_p: float = 0.3
    noise_snr_scale: Range = (0.3, 0.5)
    gain_p: float = 0.2
    gain_db: Range = (-20.0, -1.0)
    filter_p: float = 0.8
    high_pass_share: float = 0.5
    high_pass_hz: Range = (200.0, 1200.0)
    low_pass_hz: Range = (2200.0, 4000.0)
    filter_order: int = 4
    delay_p: float = 0.5
    delay_ms: Range = (200.0, 500.0)
    delay_mix: float = 0.5
    pitch_p: float = 0.4
    pitch_semitones: tuple[int, int] = (-7, 7)
    reverb_p: float = 0.3
    reverb_room_size: Range = (0.0, 100.0)
    reverb_rt60_s: Range = (0.1, 2.0)
    reverb_wet: float = 0.5

    def __post_init__(self) -> None:
        if not isinstance(self.enabled, bool):
            raise ValueError(f"augment enabled must be true or false, got {self.enabled!r}")
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name.endswith(("_p", "_share")) and not (_is_number(value) and 0 <= value <= 1):
                raise ValueError(f"augment {f.name} must be a probability in [0, 1], got {value!r}")
            if isinstance(f.default, tuple):
                object.__setattr__(self, f.name, check_bounds(f"augment {f.name}", value))
        valid = {
            "noise_snr_scale": self.noise_snr_scale[0] >= 0,
            "high_pass_hz": self.high_pass_hz[0] > 0,
            "low_pass_hz": self.low_pass_hz[0] > 0,
            "filter_order": type(self.filter_order) is int and self.filter_order >= 1,
            "delay_ms": self.delay_ms[0] >= 0,
            "delay_mix": _is_number(self.delay_mix) and 0 <= self.delay_mix,
            "pitch_semitones": all(v.is_integer() for v in self.pitch_semitones),
            "reverb_room_size": 0 <= self.reverb_room_size[0] and self.reverb_room_size[1] <= 100,
            "reverb_rt60_s": self.reverb_rt60_s[0] > 0,
            "reverb_wet": _is_number(self.reverb_wet) and 0 <= self.reverb_wet <= 1,
        }
        for name, ok in valid.items():
            if not ok:
                raise ValueError(f"augment {name} is out of range: {getattr(self, name)!r}")
        object.__setattr__(self, "pitch_semitones", tuple(int(v) for v in self.pitch_semitones))

    @classmethod
    def from_settings(cls, *, enabled: bool = True, probability: float | None = None, **params: Any) -> AugmentSpec:
        """A spec where ``probability`` (if given) sets every step's ``*_p`` and ``params`` set
        fields by name.

        Raises:
            ValueError: an unknown parameter (the message lists the allowed ones) or a bad value.
        """
        names = [f.name for f in fields(cls)]
        unknown = sorted(set(params) - set(names[1:]))
        if unknown:
            raise ValueError(f"unknown augment parameter(s) {unknown}; allowed: {names[1:]}")
        if probability is not None:
            params = {**{name: probability for name in names if name.endswith("_p")}, **params}
        return replace(cls(enabled=enabled), **params)


def check_bounds(name: str, bounds: Any) -> Range:
    """``bounds`` as a float ``(low, high)`` pair; ValueError naming ``name`` otherwise."""
    values = list(bounds) if isinstance(bounds, (tuple, list)) else []
    if len(values) != 2 or not all(_is_number(v) for v in values) or values[0] > values[1]:
        raise ValueError(f"{name} must be a (low, high) pair of numbers with low <= high, got {bounds!r}")
    return float(values[0]), float(values[1])


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
