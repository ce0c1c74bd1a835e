"""He et al. 2020's CNN-GRU baseline tagger (§2.2, Fig. 1).

He, Shen, Zhang, Liu, "Staged training strategy and multi-activation for audio tagging with
noisy and sparse multi-label data" (ICASSP 2020). The paper gives the structure in words:
four convolutional blocks, one bidirectional GRU, pooling over time and two fully connected
layers, on 80-band log-mel energies of 40 ms frames with 50 % overlap, trained on random
512-frame excerpts. Its Fig. 1, which holds the layer sizes, is not in raytag's copy of the
paper, so the sizes follow the CRNN of the reference it cites for the structure, Iqbal et al.,
DCASE 2018 ("General-purpose audio tagging from noisy labels using convolutional neural
networks"): blocks of two 3×3 conv-BN-ReLU layers and a 2×2 max-pool, doubling from 64
channels (64, 128, 256, 512: Iqbal's first four), the mean over frequency feeding the GRU,
and the mean over time after it. The GRU (256 units per direction, so its output is as wide
as the last block) and the first dense layer (512 units, ReLU, 50 % dropout before the tag
layer) are raytag's choices; every one of them is an argument.
"""

from __future__ import annotations

import torch
from torch import nn

from raytag.models.checks import check_channels, check_dropout, check_positive
from raytag.models.frontend import LogMelFrontEnd

__all__ = ["CnnGruTagger", "ConvBlock"]

_KERNEL_SIZE = 3  # every convolution is 3×3 with "same" padding
_POOL_SIZE = 2  # each block halves frequency and time


class ConvBlock(nn.Module):
    """Two conv3×3-BN-ReLU layers, then a 2×2 max-pool that rounds up.

    The convolutions have no bias (the batch norm that follows has one). Rounding the pool up
    keeps an odd last frame or band instead of dropping it and lets a single frame through.

    Args:
        in_channels: Input channels.
        out_channels: Output channels of both convolutions.

    Shapes:
        input: (B, in_channels, F, T).
        output: (B, out_channels, ceil(F / 2), ceil(T / 2)).
    """

    def __init__(self, *, in_channels: int, out_channels: int) -> None:
        super().__init__()
        padding = _KERNEL_SIZE // 2
        self.layers = nn.Sequential(
            nn.Conv2d(in_channels, out_channels, _KERNEL_SIZE, padding=padding, bias=False),
            nn.BatchNorm2d(out_channels),
            nn.ReLU(),
            nn.Conv2d(out_channels, out_channels, _KERNEL_SIZE, padding=padding, bias=False),
            nn.BatchNorm2d(out_channels),
            nn.ReLU(),
            nn.MaxPool2d(_POOL_SIZE, ceil_mode=True),
        )

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        """(B, C_in, F, T) -> (B, C_out, ceil(F / 2), ceil(T / 2))."""
        return self.layers(features)


class CnnGruTagger(nn.Module):
    """Log-mel -> conv blocks -> mean over frequency -> BiGRU -> mean over time -> 2 dense.

    Waveform -> :class:`LogMelFrontEnd` -> one :class:`ConvBlock` per entry of ``channels``
    -> mean over the (pooled) frequency axis -> bidirectional GRU with ``gru_units`` per
    direction over the remaining frames -> mean over time (B, 2·gru_units) ->
    Linear(2·gru_units, dense_units)-ReLU-Dropout (the embedding) -> ``classifier``
    Linear(dense_units, num_tags).

    With the values below and 50 tags: 6,157,172 parameters = convolutions 4,682,304 + their
    batch norms 3,840 + the GRU 1,182,720 + the dense layers 262,656 + 25,650 + the
    spectrogram's batch norm 2. With the paper's 80 FSDKaggle2019 tags: 6,172,562.

    Args:
        num_tags: Number of output logits. Paper: 80 (FSDKaggle2019); raytag: 50.
        sample_rate: Input sample rate in Hz. Paper: 44100 (FSDKaggle2019's rate).
        crop_frames: Training crop length in spectrogram frames. Paper: 512 (about 10.2 s).
        n_fft: FFT size (= window) in samples. Paper: 40 ms, 1764 samples at 44.1 kHz.
        hop_length: Hop between frames in samples. Paper: 50 % overlap, 882 samples.
        n_mels: Mel bands. Paper: 80.
        f_min: Lowest mel frequency in Hz. Default 0.
        f_max: Highest mel frequency in Hz; ``None`` means ``sample_rate / 2``.
        channels: Output channels of the conv blocks. raytag: (64, 128, 256, 512).
        gru_units: GRU hidden units per direction. raytag: 256.
        dense_units: Units of the first dense layer (the embedding). raytag: 512.
        dropout: Dropout before the tag layer. raytag: 0.5.

    Attributes:
        sample_rate, num_tags: As given.
        crop_samples: ``(crop_frames - 1) * hop_length``, the samples that give
            ``crop_frames`` frames (450,702 at 44.1 kHz).
        min_samples: Shortest accepted input, ``n_fft // 2 + 1`` samples (one frame).
        num_features: Embedding size, ``dense_units``.

    Shapes:
        input: (B, T) float waveform with T >= min_samples.
        output: (B, num_tags) logits.
    """

    def __init__(
        self,
        *,
        num_tags: int,
        sample_rate: int,
        crop_frames: int,
        n_fft: int,
        hop_length: int,
        n_mels: int,
        f_min: float,
        f_max: float | None,
        channels: tuple[int, ...],
        gru_units: int,
        dense_units: int,
        dropout: float,
    ) -> None:
        super().__init__()
        channels = tuple(channels)
        check_positive(num_tags=num_tags, gru_units=gru_units, dense_units=dense_units)
        if crop_frames < 2:
            raise ValueError(f"crop_frames must be at least 2, got {crop_frames}")
        check_channels("channels", channels)
        check_dropout(dropout)
        self.num_tags = num_tags
        self.sample_rate = sample_rate
        self.crop_samples = (crop_frames - 1) * hop_length
        self.frontend = LogMelFrontEnd(
            sample_rate=sample_rate,
            n_fft=n_fft,
            hop_length=hop_length,
            n_mels=n_mels,
            f_min=f_min,
            f_max=f_max,
        )
        self.min_samples = self.frontend.min_samples
        block_inputs = (1,) + channels[:-1]
        self.blocks = nn.Sequential(
            *(ConvBlock(in_channels=cin, out_channels=cout) for cin, cout in zip(block_inputs, channels))
        )
        self.gru = nn.GRU(channels[-1], gru_units, batch_first=True, bidirectional=True)
        self.dense = nn.Sequential(nn.Linear(2 * gru_units, dense_units), nn.ReLU(), nn.Dropout(dropout))
        self.num_features = dense_units
        self.classifier = nn.Linear(dense_units, num_tags)

    def embed(self, waveform: torch.Tensor) -> torch.Tensor:
        """Features before the tag layer: (B, T) waveform -> (B, num_features).

        Raises:
            ValueError: the input is not 2-D or shorter than ``min_samples``.
        """
        features = self.blocks(self.frontend(waveform))  # (B, C, F', T')
        sequence = features.mean(dim=2).transpose(1, 2)  # (B, T', C)
        states, _ = self.gru(sequence)  # (B, T', 2·gru_units)
        return self.dense(states.mean(dim=1))

    def forward(self, waveform: torch.Tensor) -> torch.Tensor:
        """Tag logits (B, num_tags) for a (B, T) waveform at ``sample_rate``."""
        return self.classifier(self.embed(waveform))
