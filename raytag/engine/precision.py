"""Mixed precision: the one autocast rule, for training steps and for scoring alike."""

from __future__ import annotations

import contextlib

import torch


def autocast(device: torch.device, amp: str) -> contextlib.AbstractContextManager:
    """bf16 autocast on CUDA when ``amp`` is "auto" or "bf16"; bf16 on CPU only when asked
    ("bf16"); nothing with "off"."""
    if amp == "off" or (amp == "auto" and device.type != "cuda"):
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=torch.bfloat16)
