"""Two networks trained side by side as one module (co-teaching's pair)."""

from __future__ import annotations

import torch
from torch import nn


class PeerPair(nn.Module):
    """Two networks trained together. In training mode ``forward`` returns both networks' logits,
    so one DDP wrapper syncs both; in eval mode the first network's, which is what is evaluated
    and exported."""

    def __init__(self, first: nn.Module, second: nn.Module):
        super().__init__()
        self.first, self.second = first, second
        self.sample_rate = first.sample_rate
        self.crop_samples = first.crop_samples
        self.num_tags = first.num_tags

    def forward(self, audio: torch.Tensor):
        if self.training:
            return self.first(audio), self.second(audio)
        return self.first(audio)
