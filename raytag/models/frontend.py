"""Log-mel spectrogram front-end shared by the models."""

from __future__ import annotations

import torch
import torchaudio
from torch import nn

__all__ = ["LogMelFrontEnd"]


class LogMelFrontEnd(nn.Module):
    """Waveform to batch-normalised log-mel spectrogram in decibels.

    MelSpectrogram (power 2, centred frames with reflect padding, HTK mel scale) ->
    AmplitudeToDB (10·log10, no top_db clamp) -> BatchNorm2d(1). The spectrogram and the dB
    conversion always run in float32 with autocast disabled, so bf16/fp16 autocast on a GPU
    cannot wreck them; the window and the mel filter bank are buffers, so the module works on
    whatever device it is moved to.

    Args:
        sample_rate: Input sample rate in Hz.
        n_fft: FFT size in samples (also the window length).
        hop_length: Hop between frames in samples.
        n_mels: Number of mel bands.
        f_min: Lowest mel filter edge in Hz. Default 0.
        f_max: Highest mel filter edge in Hz; ``None`` means ``sample_rate / 2``.

    Attributes:
        min_samples: Shortest accepted input, ``n_fft // 2 + 1`` samples (reflect padding
            needs more samples than it pads).

    Shapes:
        input: (B, T) float waveform, any float dtype.
        output: (B, 1, n_mels, T // hop_length + 1) float32.
    """

    def __init__(
        self,
        *,
        sample_rate: int,
        n_fft: int,
        hop_length: int,
        n_mels: int,
        f_min: float = 0.0,
        f_max: float | None = None,
    ) -> None:
        super().__init__()
        nyquist = sample_rate / 2
        f_max = nyquist if f_max is None else f_max
        if sample_rate <= 0 or n_fft <= 0 or hop_length <= 0 or n_mels <= 0:
            raise ValueError(
                "sample_rate, n_fft, hop_length and n_mels must be positive, got "
                f"{sample_rate}, {n_fft}, {hop_length}, {n_mels}"
            )
        if not 0.0 <= f_min < f_max <= nyquist:
            raise ValueError(
                f"need 0 <= f_min < f_max <= sample_rate / 2 = {nyquist}, "
                f"got f_min={f_min}, f_max={f_max}"
            )
        self.hop_length = hop_length
        self.n_mels = n_mels
        self.min_samples = n_fft // 2 + 1
        self.mel = torchaudio.transforms.MelSpectrogram(
            sample_rate=sample_rate,
            n_fft=n_fft,
            hop_length=hop_length,
            f_min=f_min,
            f_max=f_max,
            n_mels=n_mels,
            power=2.0,
        )
        self.to_db = torchaudio.transforms.AmplitudeToDB(stype="power")
        self.norm = nn.BatchNorm2d(1)

    def num_frames(self, num_samples: int) -> int:
        """Number of spectrogram frames for an input of ``num_samples`` samples."""
        return num_samples // self.hop_length + 1

    def forward(self, waveform: torch.Tensor) -> torch.Tensor:
        """Compute the normalised log-mel spectrogram.

        Args:
            waveform: (B, T) float tensor.

        Returns:
            (B, 1, n_mels, frames) float32 tensor in (batch-normalised) dB.

        Raises:
            ValueError: if the input is not 2-D or shorter than ``min_samples``.
        """
        if waveform.dim() != 2:
            raise ValueError(
                f"expected a (batch, samples) waveform, got shape {tuple(waveform.shape)}"
            )
        if waveform.shape[-1] < self.min_samples:
            raise ValueError(
                f"input has {waveform.shape[-1]} samples; the front-end needs at least "
                f"{self.min_samples} (n_fft // 2 + 1)"
            )
        with torch.autocast(device_type=waveform.device.type, enabled=False):
            spectrogram = self.to_db(self.mel(waveform.float()))
            return self.norm(spectrogram.unsqueeze(1))
