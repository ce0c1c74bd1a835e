"""Music Tagging Transformer (Won, Choi, Serra 2021, §3.2 and Table 1)."""

from __future__ import annotations

import math
import torch
from torch import nn

from raytag.models.frontend import LogMelFrontEnd
from raytag.models.resnet import ResidualBlock2d

__all__ = ["MusicTaggingTransformer"]

# Max-pool kernel (= stride) after each of the three CNN blocks, over (frequency, time): the
# frequency axis shrinks by 8 and the time axis by 4 (paper Table 1).
_POOL_SIZES: tuple[tuple[int, int], ...] = ((2, 2), (2, 2), (2, 1))
_FREQUENCY_REDUCTION = math.prod(frequency for frequency, _ in _POOL_SIZES)
_TIME_REDUCTION = math.prod(time for _, time in _POOL_SIZES)
# Standard deviation of the normal initialisation of the [CLS] and positional embeddings.
_EMBEDDING_INIT_STD = 0.02


class MusicTaggingTransformer(nn.Module):
    """CNN front end over a log-mel spectrogram, then a Transformer encoder with a [CLS] token.

    Waveform -> :class:`LogMelFrontEnd` -> three :class:`ResidualBlock2d` (``conv_channels``
    channels, each followed by max-pooling (2,2), (2,2), (2,1) over (frequency, time)) ->
    reshape to (B, T/4, conv_channels·n_mels/8) -> Linear to ``width`` -> prepend the learned
    [CLS] embedding, add the learned positional embedding, dropout -> ``depth`` pre-norm
    Transformer layers (GELU, FFN ``ffn_multiplier``·width) -> LayerNorm + Linear on [CLS].

    The time max-pools round up (``ceil_mode``), so every frame is seen and any input of at
    least ``n_fft // 2 + 1`` samples gives at least one step. A 10 s crop at 22.05 kHz / hop
    512 has 431 frames and 108 Transformer steps (about 0.1 s each).

    With the paper's values (width 256, depth 4) and 50 tags the model has 4,567,732 parameters;
    width 64 gives 1,108,852.

    Args:
        num_tags: Number of output logits. Paper: 50.
        sample_rate: Input sample rate in Hz. Paper: 22050.
        crop_seconds: Training crop length in seconds; ``crop_samples`` is
            ``round(sample_rate * crop_seconds)``. The forward accepts any length up to
            ``max_samples``. Paper: 10.0 (220,500 samples).
        n_fft: FFT size in samples. Paper: 1024.
        hop_length: Hop between frames in samples. Paper: 512.
        f_min: Lowest mel frequency in Hz. Paper: 0.
        f_max: Highest mel frequency in Hz; ``None`` means ``sample_rate / 2``. Paper: None.
        n_mels: Number of mel bands; must be divisible by 8. Paper: 128.
        conv_channels: Channels C of the CNN blocks. Paper: 128.
        width: Transformer model dimension C'; must be divisible by ``heads``. Paper: 256.
        depth: Number of Transformer layers. Paper: 4.
        heads: Attention heads per layer. Paper: 8.
        dropout: Dropout probability after the embeddings and inside the Transformer
            layers. Paper: 0.1.
        max_frames: Longest Transformer sequence (steps after the CNN, [CLS] excluded); the
            positional embedding has ``max_frames + 1`` rows. Paper: 500 (about 46 s at
            22.05 kHz, hop 512).
        ffn_multiplier: Feed-forward size as a multiple of ``width``. Paper: 4.

    Attributes:
        sample_rate, crop_samples, num_tags, max_frames: As described above.
        min_samples: Shortest accepted input, ``n_fft // 2 + 1`` samples.
        max_samples: Longest accepted input in samples.
        num_features: Size D of the embedding (:meth:`embed`), equal to ``width``.
        classifier: ``nn.Linear(num_features, num_tags)`` on the embedding; ``forward`` is
            ``classifier(embed(waveform))``, so a head can replace it
            (:func:`raytag.models.heads.attach_head`).

    Shapes:
        input: (B, T) float waveform, ``n_fft // 2 + 1 <= T <= max_samples``.
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
        f_min: float,
        f_max: float | None,
        n_mels: int,
        conv_channels: int,
        width: int,
        depth: int,
        heads: int,
        dropout: float,
        max_frames: int,
        ffn_multiplier: int,
    ) -> None:
        super().__init__()
        _check_arguments(
            num_tags=num_tags,
            crop_seconds=crop_seconds,
            n_mels=n_mels,
            conv_channels=conv_channels,
            width=width,
            depth=depth,
            heads=heads,
            dropout=dropout,
            max_frames=max_frames,
            ffn_multiplier=ffn_multiplier,
        )
        self.num_tags = num_tags
        self.sample_rate = sample_rate
        self.crop_samples = round(sample_rate * crop_seconds)
        self.max_frames = max_frames
        # Frames f give ceil(f / 4) steps and T samples give T // hop + 1 frames.
        self.max_samples = (max_frames * _TIME_REDUCTION - 1) * hop_length + hop_length - 1

        self.frontend = LogMelFrontEnd(
            sample_rate=sample_rate,
            n_fft=n_fft,
            hop_length=hop_length,
            n_mels=n_mels,
            f_min=f_min,
            f_max=f_max,
        )
        self.min_samples = self.frontend.min_samples
        block_inputs = (1,) + (conv_channels,) * (len(_POOL_SIZES) - 1)
        self.cnn = nn.Sequential(
            *(
                nn.Sequential(
                    ResidualBlock2d(in_channels=in_channels, out_channels=conv_channels),
                    nn.MaxPool2d(pool_size, ceil_mode=True),
                )
                for in_channels, pool_size in zip(block_inputs, _POOL_SIZES)
            )
        )
        self.projection = nn.Linear(conv_channels * (n_mels // _FREQUENCY_REDUCTION), width)
        self.cls_embedding = nn.Parameter(torch.empty(width))
        self.position_embedding = nn.Parameter(torch.empty(max_frames + 1, width))
        self.embedding_dropout = nn.Dropout(dropout)
        self.layers = nn.ModuleList(
            nn.TransformerEncoderLayer(
                d_model=width,
                nhead=heads,
                dim_feedforward=ffn_multiplier * width,
                dropout=dropout,
                activation="gelu",
                batch_first=True,
                norm_first=True,
            )
            for _ in range(depth)
        )
        self.final_norm = nn.LayerNorm(width)
        self.num_features = width
        self.classifier = nn.Linear(width, num_tags)
        nn.init.normal_(self.cls_embedding, std=_EMBEDDING_INIT_STD)
        nn.init.normal_(self.position_embedding, std=_EMBEDDING_INIT_STD)

    def forward(self, waveform: torch.Tensor) -> torch.Tensor:
        """Tag logits for a batch of waveforms: ``classifier(embed(waveform))``.

        Args:
            waveform: (B, T) float tensor at ``sample_rate``.

        Returns:
            (B, num_tags) logits (or what a head attached as ``classifier`` returns).

        Raises:
            ValueError: as :meth:`embed`.
        """
        return self.classifier(self.embed(waveform))

    def embed(self, waveform: torch.Tensor) -> torch.Tensor:
        """The clip embedding the classifier reads: the [CLS] token after the final LayerNorm.

        Args:
            waveform: (B, T) float tensor at ``sample_rate``.

        Returns:
            (B, num_features) embeddings, ``num_features == width``.

        Raises:
            ValueError: if T exceeds ``max_samples`` (more than ``max_frames`` steps after
                the CNN) or is shorter than the front-end accepts.
        """
        num_samples = waveform.shape[-1]
        if num_samples > self.max_samples:
            raise ValueError(
                f"input of {num_samples} samples is too long: it gives more than "
                f"max_frames={self.max_frames} Transformer steps; the limit is "
                f"{self.max_samples} samples ({self.max_samples / self.sample_rate:.1f} s). "
                "Split long audio into chunks or build the model with a larger max_frames."
            )
        features = self.cnn(self.frontend(waveform))  # (B, C, F/8, steps)
        batch, channels, bands, steps = features.shape
        tokens = features.permute(0, 3, 1, 2).reshape(batch, steps, channels * bands)
        tokens = self.projection(tokens)  # (B, steps, width)
        cls = self.cls_embedding.expand(batch, 1, -1)
        sequence = torch.cat([cls, tokens], dim=1) + self.position_embedding[: steps + 1]
        sequence = self.embedding_dropout(sequence)
        for layer in self.layers:
            sequence = layer(sequence)
        return self.final_norm(sequence[:, 0])


def _check_arguments(
    *,
    num_tags: int,
    crop_seconds: float,
    n_mels: int,
    conv_channels: int,
    width: int,
    depth: int,
    heads: int,
    dropout: float,
    max_frames: int,
    ffn_multiplier: int,
) -> None:
    """Raise a ValueError naming the first inconsistent MusicTaggingTransformer argument."""
    positive = {
        "num_tags": num_tags,
        "crop_seconds": crop_seconds,
        "n_mels": n_mels,
        "conv_channels": conv_channels,
        "width": width,
        "depth": depth,
        "heads": heads,
        "max_frames": max_frames,
        "ffn_multiplier": ffn_multiplier,
    }
    for name, value in positive.items():
        if value <= 0:
            raise ValueError(f"{name} must be positive, got {value}")
    if n_mels % _FREQUENCY_REDUCTION:
        raise ValueError(
            f"n_mels must be divisible by {_FREQUENCY_REDUCTION} (the CNN halves the "
            f"frequency axis three times), got {n_mels}"
        )
    if width % heads:
        raise ValueError(f"width must be divisible by heads, got width={width}, heads={heads}")
    if not 0.0 <= dropout < 1.0:
        raise ValueError(f"dropout must be in [0, 1), got {dropout}")
