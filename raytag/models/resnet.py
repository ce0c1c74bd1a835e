"""Short-chunk ResNet baseline (Won et al. 2021, §3.1) and the shared 2-D residual block."""

from __future__ import annotations

import torch
from torch import nn

from raytag.models.frontend import LogMelFrontEnd

__all__ = ["ResidualBlock2d", "ShortChunkResNet"]

_KERNEL_SIZE = 3  # every convolution is 3×3 with "same" padding
_PADDING = _KERNEL_SIZE // 2


class ResidualBlock2d(nn.Module):
    """conv3×3(stride)-BN-ReLU-conv3×3-BN plus a shortcut, summed, then ReLU.

    The shortcut is a conv3×3(stride)+BN where the stride is not 1 or the channel count
    changes, and the identity otherwise. Convolutions have biases.

    Args:
        in_channels: Input channels.
        out_channels: Output channels.
        stride: Stride of the first convolution and of the shortcut, on both axes. Default 1.

    Shapes:
        input: (B, in_channels, F, T).
        output: (B, out_channels, ceil(F / stride), ceil(T / stride)).
    """

    def __init__(self, *, in_channels: int, out_channels: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, _KERNEL_SIZE, stride, _PADDING)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, _KERNEL_SIZE, 1, _PADDING)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.relu = nn.ReLU()
        self.shortcut: nn.Module
        if stride != 1 or in_channels != out_channels:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_channels, out_channels, _KERNEL_SIZE, stride, _PADDING),
                nn.BatchNorm2d(out_channels),
            )
        else:
            self.shortcut = nn.Identity()

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        """Apply the block to (B, C_in, F, T) features; returns (B, C_out, F', T')."""
        residual = self.bn2(self.conv2(self.relu(self.bn1(self.conv1(features)))))
        return self.relu(residual + self.shortcut(features))


class ShortChunkResNet(nn.Module):
    """Short-chunk ResNet: log-mel front-end, strided residual blocks, global max-pool, MLP.

    Waveform -> :class:`LogMelFrontEnd` -> one :class:`ResidualBlock2d` with stride 2 per
    entry of ``channels`` -> max over frequency and time -> Linear(C, C)-BN-ReLU-Dropout
    (``head``; its output is the embedding) -> Linear(C, num_tags) (``classifier``), with
    C = ``channels[-1]``. With the paper's values and 50 tags it has 12,104,244 parameters.

    Args:
        num_tags: Number of output logits. Paper: 50.
        sample_rate: Input sample rate in Hz. Paper: 16000.
        crop_samples: Training crop length in samples (recorded for callers; the forward
            accepts any length). Paper: 59049 (3.69 s at 16 kHz).
        n_fft: FFT size in samples. Paper: 512.
        hop_length: Hop between frames in samples. Paper: 256.
        n_mels: Number of mel bands. Paper: 128.
        f_min: Lowest mel frequency in Hz. Paper: 0.
        f_max: Highest mel frequency in Hz; ``None`` means ``sample_rate / 2``. Paper: 8000.
        channels: Output channels of the residual blocks, one block each.
            Paper: (128, 128, 256, 256, 256, 256, 512).
        dropout: Dropout probability before the output layer. Paper: 0.5.

    Attributes:
        sample_rate, crop_samples, num_tags: As given.
        num_features: Size D of the embedding (:meth:`embed`), equal to ``channels[-1]``.
        classifier: ``nn.Linear(num_features, num_tags)`` on the embedding; ``forward`` is
            ``classifier(embed(waveform))``, so a head can replace it
            (:func:`raytag.models.heads.attach_head`).
        min_samples: Shortest accepted input, ``n_fft // 2 + 1`` samples.

    Shapes:
        input: (B, T) float waveform with T >= n_fft // 2 + 1.
        output: (B, num_tags) logits.
    """

    def __init__(
        self,
        *,
        num_tags: int,
        sample_rate: int,
        crop_samples: int,
        n_fft: int,
        hop_length: int,
        n_mels: int,
        f_min: float,
        f_max: float | None,
        channels: tuple[int, ...],
        dropout: float,
    ) -> None:
        super().__init__()
        channels = tuple(channels)
        if num_tags <= 0:
            raise ValueError(f"num_tags must be positive, got {num_tags}")
        if crop_samples <= 0:
            raise ValueError(f"crop_samples must be positive, got {crop_samples}")
        if not channels or any(count <= 0 for count in channels):
            raise ValueError(
                f"channels must be a non-empty sequence of positive ints, got {channels}"
            )
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {dropout}")
        self.num_tags = num_tags
        self.sample_rate = sample_rate
        self.crop_samples = crop_samples

        self.frontend = LogMelFrontEnd(
            sample_rate=sample_rate,
            n_fft=n_fft,
            hop_length=hop_length,
            n_mels=n_mels,
            f_min=f_min,
            f_max=f_max,
        )
        self.min_samples = self.frontend.min_samples
        in_channels = (1,) + channels[:-1]
        self.blocks = nn.Sequential(
            *(
                ResidualBlock2d(in_channels=cin, out_channels=cout, stride=2)
                for cin, cout in zip(in_channels, channels)
            )
        )
        embedding_size = channels[-1]
        self.head = nn.Sequential(
            nn.Linear(embedding_size, embedding_size),
            nn.BatchNorm1d(embedding_size),
            nn.ReLU(),
            nn.Dropout(dropout),
        )
        self.num_features = embedding_size
        self.classifier = nn.Linear(embedding_size, num_tags)

    def forward(self, waveform: torch.Tensor) -> torch.Tensor:
        """Tag logits for a batch of waveforms: ``classifier(embed(waveform))``.

        Args:
            waveform: (B, T) float tensor at ``sample_rate``.

        Returns:
            (B, num_tags) logits (or what a head attached as ``classifier`` returns).
        """
        return self.classifier(self.embed(waveform))

    def embed(self, waveform: torch.Tensor) -> torch.Tensor:
        """The clip embedding the classifier reads: the MLP's output after dropout.

        Args:
            waveform: (B, T) float tensor at ``sample_rate``.

        Returns:
            (B, num_features) embeddings, ``num_features == channels[-1]``.
        """
        features = self.blocks(self.frontend(waveform))  # (B, C, F', T')
        pooled = features.amax(dim=(2, 3))  # global max over frequency and time: (B, C)
        return self.head(pooled)
