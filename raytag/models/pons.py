"""Pons et al. 2018's two taggers: a spectrogram model and a waveform model on one back-end.

Pons, Nieto, Prockup, Schmidt, Ehmann, Serra, "End-to-end learning for music audio tagging at
scale" (ISMIR 2018). Both models take 15 s of 16 kHz audio in training and, thanks to the
back-end's global pooling, any length at least ``min_samples`` long at inference. Both are
≈ 5.5 M-parameter models in the paper; with the shapes of the authors' code and 50 tags the
spectrogram model has 5,926,200 parameters (+8 %) and the waveform model 5,379,126 (-2 %);
the class docstrings show how they add up.
"""

from __future__ import annotations

import torch
from torch import nn

from raytag.models.checks import check_positive
from raytag.models.frontend import LogMelFrontEnd
from raytag.models.pons_backend import PonsBackEnd
from raytag.models.pons_frontends import MusicallyMotivatedFrontEnd, SampleLevelFrontEnd

__all__ = ["PonsSpectrogramTagger", "PonsWaveformTagger"]


class PonsSpectrogramTagger(nn.Module):
    """Log-mel spectrogram -> musically motivated front-end -> shared back-end -> tag logits.

    Waveform -> :class:`LogMelFrontEnd` (dB, batch-normalised to zero mean and unit variance,
    float32 outside autocast) -> :class:`MusicallyMotivatedFrontEnd` (timbral + temporal
    branches, M' features per frame) -> :class:`PonsBackEnd` (embedding of ``dense_units``)
    -> ``classifier`` Linear(dense_units, num_tags).

    With the paper's values and 50 tags: 5,926,200 parameters = the spectrogram's batch norm 2
    + the front-end 50,048 (timbral 34,400 and temporal 15,648, convolutions with biases and
    batch norms) + the back-end 5,851,100 (3,674,624 + 3,584·464 + 513,500, see
    :class:`PonsBackEnd`) + the tag layer 25,050.

    Args:
        num_tags: Number of output logits. Paper: not stated (Pandora's tag set); raytag: 50.
        sample_rate: Input sample rate in Hz. Paper: 16000.
        crop_seconds: Training crop length in seconds. Paper: 15.0.
        n_fft: FFT size in samples. Authors' code (musicnn): 512.
        hop_length: Hop between frames in samples. Authors' code: 256 (16 ms).
        n_mels: Mel bands. Paper: 90; the authors' code: 96.
        f_min: Lowest mel frequency in Hz. Default 0.
        f_max: Highest mel frequency in Hz; ``None`` means ``sample_rate / 2``.
        timbral_heights: Timbral filter heights as shares of the mel axis. Authors: (0.9, 0.4).
        timbral_widths: Timbral filter widths in frames. Authors: (7, 3, 1).
        timbral_filters: Filters per timbral width. Authors: (16, 32, 64).
        temporal_widths: Temporal filter lengths in frames. Authors: (165, 128, 64, 32).
        temporal_filters: Filters per temporal length. Authors: (16, 32, 64, 128).
        backend_filters: Filters of each back-end convolution. Paper: 512.
        backend_kernel: Frames each back-end convolution spans. Paper: 7.
        dense_units: Units of the back-end's dense layer (the embedding). Paper: 500.
        dropout: Dropout before every dense layer. Paper: 0.5.

    Attributes:
        sample_rate, num_tags: As given.
        crop_samples: ``round(sample_rate * crop_seconds)``.
        min_samples: Shortest accepted input, ``n_fft // 2 + 1`` samples.
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
        crop_seconds: float,
        n_fft: int,
        hop_length: int,
        n_mels: int,
        f_min: float,
        f_max: float | None,
        timbral_heights: tuple[float, ...],
        timbral_widths: tuple[int, ...],
        timbral_filters: tuple[int, ...],
        temporal_widths: tuple[int, ...],
        temporal_filters: tuple[int, ...],
        backend_filters: int,
        backend_kernel: int,
        dense_units: int,
        dropout: float,
    ) -> None:
        super().__init__()
        check_positive(num_tags=num_tags, crop_seconds=crop_seconds)
        self.num_tags = num_tags
        self.sample_rate = sample_rate
        self.crop_samples = round(sample_rate * crop_seconds)
        self.spectrogram = LogMelFrontEnd(
            sample_rate=sample_rate,
            n_fft=n_fft,
            hop_length=hop_length,
            n_mels=n_mels,
            f_min=f_min,
            f_max=f_max,
        )
        self.min_samples = self.spectrogram.min_samples
        self.frontend = MusicallyMotivatedFrontEnd(
            n_mels=n_mels,
            timbral_heights=tuple(timbral_heights),
            timbral_widths=tuple(timbral_widths),
            timbral_filters=tuple(timbral_filters),
            temporal_widths=tuple(temporal_widths),
            temporal_filters=tuple(temporal_filters),
        )
        self.backend = PonsBackEnd(
            in_features=self.frontend.num_features,
            filters=backend_filters,
            kernel_size=backend_kernel,
            dense_units=dense_units,
            dropout=dropout,
        )
        self.num_features = self.backend.num_features
        self.classifier = nn.Linear(self.num_features, num_tags)

    def embed(self, waveform: torch.Tensor) -> torch.Tensor:
        """Features before the tag layer: (B, T) waveform -> (B, num_features).

        Raises:
            ValueError: the input is not 2-D or shorter than ``min_samples``.
        """
        return self.backend(self.frontend(self.spectrogram(waveform)))

    def forward(self, waveform: torch.Tensor) -> torch.Tensor:
        """Tag logits (B, num_tags) for a (B, T) waveform at ``sample_rate``."""
        return self.classifier(self.embed(waveform))


class PonsWaveformTagger(nn.Module):
    """Raw waveform -> sample-level front-end -> shared back-end -> tag logits.

    Waveform -> :class:`SampleLevelFrontEnd` (one frame of ``channels[-1]`` features per
    3^len(channels) samples) -> :class:`PonsBackEnd` -> ``classifier`` Linear(dense_units,
    num_tags).

    With the paper's values and 50 tags: 5,379,126 parameters = the front-end 248,448
    (convolutions with biases and batch norms) + the back-end 5,105,628 (3,674,624 + 3,584·256
    + 513,500, see :class:`PonsBackEnd`) + the tag layer 25,050.

    Args:
        num_tags: Number of output logits. Paper: not stated; raytag: 50.
        sample_rate: Input sample rate in Hz. Paper: 16000.
        crop_seconds: Training crop length in seconds. Paper: 15.0.
        channels: Filters of the sample-level layers. Paper: (64, 64, 64, 128, 128, 128, 256).
        backend_filters: Filters of each back-end convolution. Paper: 512.
        backend_kernel: Frames each back-end convolution spans. Paper: 7.
        dense_units: Units of the back-end's dense layer (the embedding). Paper: 500.
        dropout: Dropout before every dense layer. Paper: 0.5.

    Attributes:
        sample_rate, num_tags: As given.
        crop_samples: ``round(sample_rate * crop_seconds)``.
        min_samples: Shortest accepted input, ``3 ** len(channels)`` samples (2187 for the
            paper's seven layers).
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
        crop_seconds: float,
        channels: tuple[int, ...],
        backend_filters: int,
        backend_kernel: int,
        dense_units: int,
        dropout: float,
    ) -> None:
        super().__init__()
        check_positive(num_tags=num_tags, sample_rate=sample_rate, crop_seconds=crop_seconds)
        self.num_tags = num_tags
        self.sample_rate = sample_rate
        self.crop_samples = round(sample_rate * crop_seconds)
        self.frontend = SampleLevelFrontEnd(channels=tuple(channels))
        self.min_samples = self.frontend.min_samples
        self.backend = PonsBackEnd(
            in_features=self.frontend.num_features,
            filters=backend_filters,
            kernel_size=backend_kernel,
            dense_units=dense_units,
            dropout=dropout,
        )
        self.num_features = self.backend.num_features
        self.classifier = nn.Linear(self.num_features, num_tags)

    def embed(self, waveform: torch.Tensor) -> torch.Tensor:
        """Features before the tag layer: (B, T) waveform -> (B, num_features).

        Raises:
            ValueError: the input is not 2-D or shorter than ``min_samples``.
        """
        return self.backend(self.frontend(waveform))

    def forward(self, waveform: torch.Tensor) -> torch.Tensor:
        """Tag logits (B, num_tags) for a (B, T) waveform at ``sample_rate``."""
        return self.classifier(self.embed(waveform))
