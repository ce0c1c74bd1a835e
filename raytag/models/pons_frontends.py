"""The two front-ends Pons et al. 2018 compare: musically motivated (spectrogram) and
sample-level (waveform).

Pons, Nieto, Prockup, Schmidt, Ehmann, Serra, "End-to-end learning for music audio tagging at
scale" (ISMIR 2018), §2 and Figure 2. Filter shapes and counts where the paper's text leaves
them open are the ones the authors publish with the paper (github.com/jordipons/
music-audio-tagging-at-scale-models, ``spec_frontend`` with 16 base filters, and
``wave_frontend``); the code here is written from those facts, not taken from it.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional

from raytag.models.checks import check_channels, check_positive

__all__ = ["MusicallyMotivatedFrontEnd", "SampleLevelFrontEnd", "timbral_kernel_height"]

# Lee et al. 2017's sample-level CNN: filters of 3 samples, a first convolution with stride 3,
# then max-pooling by 3 after each later convolution, so every layer divides the rate by 3.
_SAMPLE_LEVEL_SIZE = 3


def timbral_kernel_height(*, share: float, n_mels: int) -> int:
    """Mel bands a timbral filter spans: ``floor(share · n_mels)`` (0.9 · 96 -> 86 bands).

    Raises:
        ValueError: the share is not in (0, 1] or spans no band.
    """
    if not 0.0 < share <= 1.0:
        raise ValueError(f"timbral filter heights are shares of the mel axis in (0, 1], got {share}")
    height = int(share * n_mels)
    if height < 1:
        raise ValueError(f"a timbral filter of share {share} spans no band of {n_mels} mels")
    return height


class _TimbralConv(nn.Module):
    """One timbral filter shape: conv(height × width)-ReLU-BN, then max over frequency.

    The convolution is "valid" over frequency (it slides over every position where the filter
    fits, so a pattern is found at any pitch) and "same" over time; the max over the remaining
    frequency positions makes the feature pitch-invariant.
    """

    def __init__(self, *, height: int, width: int, filters: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, filters, (height, width))
        self.relu = nn.ReLU()
        self.norm = nn.BatchNorm2d(filters)
        self.time_padding = ((width - 1) // 2, width // 2)

    def forward(self, spectrogram: torch.Tensor) -> torch.Tensor:
        """(B, 1, n_mels, T) -> (B, filters, T)."""
        padded = functional.pad(spectrogram, self.time_padding)
        return self.norm(self.relu(self.conv(padded))).amax(dim=2)


class _TemporalConv(nn.Module):
    """One temporal filter length: 1-D conv over the envelope ("same" over time)-ReLU-BN."""

    def __init__(self, *, width: int, filters: int) -> None:
        super().__init__()
        self.conv = nn.Conv1d(1, filters, width)
        self.relu = nn.ReLU()
        self.norm = nn.BatchNorm1d(filters)
        self.time_padding = ((width - 1) // 2, width // 2)

    def forward(self, envelope: torch.Tensor) -> torch.Tensor:
        """(B, 1, T) -> (B, filters, T)."""
        return self.norm(self.relu(self.conv(functional.pad(envelope, self.time_padding))))


class MusicallyMotivatedFrontEnd(nn.Module):
    """A single CNN layer of many filter shapes in two branches (Pons et al. 2018, Fig. 2 right).

    *Timbral* branch: for every height share h and every (width w, filter count f) pair, f
    filters of ``floor(h · n_mels)`` bands × w frames, conv-ReLU-BN, max-pooled over the whole
    remaining frequency axis (pitch invariance). *Temporal* branch: the energy envelope, i.e.
    the spectrogram mean-pooled over the mel axis (B, 1, T), and for every (width w, filter count
    f) pair f 1-D filters of w frames over it, conv-ReLU-BN (no frequency convolution at all).
    The branches' feature maps are concatenated along the feature axis; time keeps its length.

    Paper (authors' code, 16 base filters, 96 mels): heights 0.9 and 0.4 of the mel axis (86
    and 38 bands) × widths 7, 3, 1 frames with 16, 32, 64 filters; temporal widths 165, 128,
    64, 32 frames with 16, 32, 64, 128 filters: 2·112 + 240 = 464 features per frame.

    Args:
        n_mels: Mel bands of the input spectrogram.
        timbral_heights: Filter heights as shares of the mel axis, in (0, 1].
        timbral_widths: Filter widths in frames; every height is used with every width.
        timbral_filters: Filters per width (same length as ``timbral_widths``).
        temporal_widths: Temporal filter lengths in frames.
        temporal_filters: Filters per temporal length (same length as ``temporal_widths``).

    Attributes:
        timbral_kernel_heights: Bands each height share spans, in the order given.
        num_features: Features per frame of the output, M'.

    Shapes:
        input: (B, 1, n_mels, T) normalised log-mel spectrogram.
        output: (B, num_features, T).
    """

    def __init__(
        self,
        *,
        n_mels: int,
        timbral_heights: tuple[float, ...],
        timbral_widths: tuple[int, ...],
        timbral_filters: tuple[int, ...],
        temporal_widths: tuple[int, ...],
        temporal_filters: tuple[int, ...],
    ) -> None:
        super().__init__()
        _check_pairs("timbral_widths", timbral_widths, "timbral_filters", timbral_filters)
        _check_pairs("temporal_widths", temporal_widths, "temporal_filters", temporal_filters)
        if not timbral_heights:
            raise ValueError("timbral_heights must name at least one share of the mel axis")
        self.n_mels = n_mels
        self.timbral_kernel_heights = tuple(
            timbral_kernel_height(share=share, n_mels=n_mels) for share in timbral_heights
        )
        self.timbral = nn.ModuleList(
            _TimbralConv(height=height, width=width, filters=filters)
            for height in self.timbral_kernel_heights
            for width, filters in zip(timbral_widths, timbral_filters)
        )
        self.temporal = nn.ModuleList(
            _TemporalConv(width=width, filters=filters)
            for width, filters in zip(temporal_widths, temporal_filters)
        )
        self.num_features = len(timbral_heights) * sum(timbral_filters) + sum(temporal_filters)

    def timbral_features(self, spectrogram: torch.Tensor) -> torch.Tensor:
        """The timbral branch alone: (B, 1, n_mels, T) -> (B, timbral features, T)."""
        return torch.cat([branch(spectrogram) for branch in self.timbral], dim=1)

    def temporal_features(self, spectrogram: torch.Tensor) -> torch.Tensor:
        """The temporal branch alone, on the mel-mean envelope: -> (B, temporal features, T)."""
        envelope = spectrogram.mean(dim=2)  # (B, 1, T)
        return torch.cat([branch(envelope) for branch in self.temporal], dim=1)

    def forward(self, spectrogram: torch.Tensor) -> torch.Tensor:
        """(B, 1, n_mels, T) -> (B, num_features, T).

        Raises:
            ValueError: the input does not have ``n_mels`` bands.
        """
        if spectrogram.dim() != 4 or spectrogram.shape[1] != 1 or spectrogram.shape[2] != self.n_mels:
            raise ValueError(
                f"expected a (batch, 1, {self.n_mels}, frames) spectrogram, got {tuple(spectrogram.shape)}"
            )
        return torch.cat([self.timbral_features(spectrogram), self.temporal_features(spectrogram)], dim=1)


class SampleLevelFrontEnd(nn.Module):
    """Lee et al. 2017's sample-level CNN as Pons et al. 2018 use it (Fig. 2 top left).

    A stack of 1-D convolutions with filters of 3 samples, each followed by batch norm and ReLU:
    the first has stride 3, every later one is followed by a max-pool of 3, so each layer
    divides the time axis by 3 and the output has one frame per 3^len(channels) samples
    (2187 samples, 137 ms at 16 kHz, for the paper's seven layers). Later convolutions pad by
    one sample to keep their length, as in Lee et al.

    Paper: seven layers of 64, 64, 64, 128, 128, 128, 256 filters on 16 kHz audio.

    Args:
        channels: Filters of each layer, first to last.

    Attributes:
        min_samples: Samples per output frame, ``3 ** len(channels)``: the shortest input.
        num_features: Features per output frame, ``channels[-1]``.

    Shapes:
        input: (B, T) waveform with T >= min_samples.
        output: (B, channels[-1], T // min_samples).
    """

    def __init__(self, *, channels: tuple[int, ...]) -> None:
        super().__init__()
        channels = tuple(channels)
        check_channels("channels", channels)
        size = _SAMPLE_LEVEL_SIZE
        layers: list[nn.Module] = [
            nn.Conv1d(1, channels[0], size, stride=size),
            nn.BatchNorm1d(channels[0]),
            nn.ReLU(),
        ]
        for in_channels, out_channels in zip(channels[:-1], channels[1:]):
            layers += [
                nn.Conv1d(in_channels, out_channels, size, padding=size // 2),
                nn.BatchNorm1d(out_channels),
                nn.ReLU(),
                nn.MaxPool1d(size),
            ]
        self.layers = nn.Sequential(*layers)
        self.min_samples = size ** len(channels)
        self.num_features = channels[-1]

    def forward(self, waveform: torch.Tensor) -> torch.Tensor:
        """(B, T) -> (B, channels[-1], T // min_samples).

        Raises:
            ValueError: the input is not 2-D or shorter than ``min_samples``.
        """
        if waveform.dim() != 2:
            raise ValueError(f"expected a (batch, samples) waveform, got shape {tuple(waveform.shape)}")
        if waveform.shape[-1] < self.min_samples:
            raise ValueError(
                f"input has {waveform.shape[-1]} samples; the sample-level front-end needs at "
                f"least {self.min_samples} (3 ** layers, one output frame)"
            )
        return self.layers(waveform.unsqueeze(1))


def _check_pairs(width_name: str, widths: tuple[int, ...], filter_name: str, filters: tuple[int, ...]) -> None:
    """Raise a ValueError unless two parallel sequences are non-empty, positive and equally long."""
    if not widths or len(widths) != len(filters):
        raise ValueError(
            f"{width_name} and {filter_name} must be non-empty and equally long, got {widths} and {filters}"
        )
    for name, values in ((width_name, widths), (filter_name, filters)):
        for value in values:
            check_positive(**{name: value})
