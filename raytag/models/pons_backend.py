"""The back-end Pons et al. 2018 share between their waveform and spectrogram models.

Pons, Nieto, Prockup, Schmidt, Ehmann, Serra, "End-to-end learning for music audio tagging at
scale" (ISMIR 2018), §2 "Shared back-end" and Figure 2 (bottom left): three 1-D CNN layers of
512 filters, each spanning 7 frames × all the front-end's features, the second and third with
a residual connection; a ×2 temporal max-pool between them; global max and mean pooling over
time (so any input length works); a dense layer of 500 units; then the tag logits, with 50 %
dropout before every dense layer.
"""

from __future__ import annotations

import torch
from torch import nn

from raytag.models.checks import check_dropout, check_positive

__all__ = ["PonsBackEnd"]


class PonsBackEnd(nn.Module):
    """Frame features (B, M', T') to a fixed-size embedding (B, ``dense_units``).

    conv(k)-ReLU-BN -> [conv(k)-ReLU-BN + residual] -> max-pool ×2 over time ->
    [conv(k)-ReLU-BN + residual] -> concat(max over time, mean over time) -> dropout ->
    Linear(2·filters, dense_units)-ReLU-BN -> dropout. Each convolution is a 1-D convolution
    over time whose filters span ``kernel_size`` frames and all input features (the paper's
    "7 × M'" filters). The layer order conv-ReLU-BN and the residual sum after the BN follow the
    authors' published code.

    Two choices where the paper leaves the detail open: every convolution pads to keep the
    number of frames (the authors' code leaves the first one unpadded, which only trims
    ``kernel_size - 1`` frames and has the same parameters), and the ×2 max-pool rounds up, so
    an odd last frame is pooled alone instead of dropped and a single frame is accepted.

    Parameters: ``(k·M' + 1)·F + 2·(k·F² + F) + 3·2F`` in the convolutions and their batch
    norms, plus ``(2F + 1)·D + 2D`` in the dense layer and its batch norm, for F = ``filters``,
    k = ``kernel_size``, D = ``dense_units``. With F = 512, k = 7, D = 500 that is
    3,674,624 + 3,584·M' + 513,500.

    Args:
        in_features: Features per frame from the front-end, M'.
        filters: Filters of each convolution. Paper: 512.
        kernel_size: Frames each convolution spans. Paper: 7.
        dense_units: Units of the dense layer, the embedding size. Paper: 500.
        dropout: Dropout probability before the dense layer and before the tag layer that
            follows the back-end. Paper: 0.5.

    Shapes:
        input: (B, in_features, T') with T' >= 1.
        output: (B, dense_units).
    """

    def __init__(
        self, *, in_features: int, filters: int, kernel_size: int, dense_units: int, dropout: float
    ) -> None:
        super().__init__()
        check_positive(
            in_features=in_features, filters=filters, kernel_size=kernel_size, dense_units=dense_units
        )
        check_dropout(dropout)
        self.conv_in = _conv_relu_bn(in_features, filters, kernel_size)
        self.conv_residual = _conv_relu_bn(filters, filters, kernel_size)
        self.pool = nn.MaxPool1d(2, ceil_mode=True)
        self.conv_pooled_residual = _conv_relu_bn(filters, filters, kernel_size)
        self.dense = nn.Sequential(
            nn.Dropout(dropout),
            nn.Linear(2 * filters, dense_units),
            nn.ReLU(),
            nn.BatchNorm1d(dense_units),
            nn.Dropout(dropout),
        )
        self.num_features = dense_units

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        """Embed (B, M', T') frame features; returns (B, dense_units)."""
        hidden = self.conv_in(features)
        hidden = hidden + self.conv_residual(hidden)
        hidden = self.pool(hidden)
        hidden = hidden + self.conv_pooled_residual(hidden)  # (B, filters, ceil(T' / 2))
        pooled = torch.cat([hidden.amax(dim=-1), hidden.mean(dim=-1)], dim=1)  # (B, 2·filters)
        return self.dense(pooled)


def _conv_relu_bn(in_channels: int, out_channels: int, kernel_size: int) -> nn.Sequential:
    """1-D convolution over time with "same" padding, then ReLU, then batch norm."""
    return nn.Sequential(
        nn.Conv1d(in_channels, out_channels, kernel_size, padding="same"),
        nn.ReLU(),
        nn.BatchNorm1d(out_channels),
    )
