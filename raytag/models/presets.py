"""Every model family and preset raytag ships, with their defaults (the paper's values).

Torch-free: a job file names a preset and overrides its arguments; this table is all that is
needed to validate them. The classes live in their own modules and take keyword-only
arguments without defaults, so a default is written here and nowhere else.
"""

from __future__ import annotations

from raytag.models.registry import register_family, register_preset

# Music Tagging Transformer, Won et al. 2021 §3.2 / Table 1: 22.05 kHz, 10 s crops, 128 mels,
# 128 CNN channels, width 256, depth 4, 8 heads.
TRANSFORMER = register_family(
    "transformer",
    "raytag.models.transformer:MusicTaggingTransformer",
    num_tags=50,
    sample_rate=22050,
    crop_seconds=10.0,
    n_fft=1024,
    hop_length=512,
    f_min=0.0,
    f_max=None,
    n_mels=128,
    conv_channels=128,
    width=256,
    depth=4,
    heads=8,
    dropout=0.1,
    max_frames=500,
    ffn_multiplier=4,
)

# Short-chunk ResNet, Won et al. 2021 §3.1: 16 kHz, 59,049-sample (3.69 s) crops, 128 mels.
SHORT_CHUNK_RESNET = register_family(
    "shortres",
    "raytag.models.resnet:ShortChunkResNet",
    num_tags=50,
    sample_rate=16000,
    crop_samples=59049,
    n_fft=512,
    hop_length=256,
    n_mels=128,
    f_min=0.0,
    f_max=8000.0,
    channels=(128, 128, 256, 256, 256, 256, 512),
    dropout=0.5,
)

register_preset("mtt", TRANSFORMER, "Music Tagging Transformer (Won et al. 2021 §3.2), width 256, depth 4")
register_preset("mtt-compact", TRANSFORMER, "width 64: the knowledge-distillation student", width=64)
register_preset(
    "mtt-tiny",
    TRANSFORMER,
    "CPU tests and demos: 16 kHz, 3 s crops, 64 mels, width 32, depth 2",
    sample_rate=16000,
    crop_seconds=3.0,
    n_fft=512,
    hop_length=256,
    n_mels=64,
    conv_channels=16,
    width=32,
    depth=2,
    heads=4,
)
register_preset("shortres", SHORT_CHUNK_RESNET, "short-chunk ResNet baseline (Won et al. 2021 §3.1)")
register_preset(
    "shortres-tiny",
    SHORT_CHUNK_RESNET,
    "CPU tests: 16 kHz, 2 s crops, 64 mels, narrow blocks",
    crop_samples=32000,
    n_mels=64,
    channels=(16, 16, 32, 32, 32, 32, 64),
)
