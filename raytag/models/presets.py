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

# Pons et al. 2018 (ISMIR), spectrogram model: 15 s of 16 kHz audio, 96 log-mel bands (the paper
# says 90; the authors' code and musicnn use 96, n_fft 512, hop 256), the musically motivated
# front-end with the authors' filter shapes (16 base filters), then the shared back-end.
PONS_SPECTROGRAM = register_family(
    "pons-spectrogram",
    "raytag.models.pons:PonsSpectrogramTagger",
    num_tags=50,
    sample_rate=16000,
    crop_seconds=15.0,
    n_fft=512,
    hop_length=256,
    n_mels=96,
    f_min=0.0,
    f_max=None,
    timbral_heights=(0.9, 0.4),
    timbral_widths=(7, 3, 1),
    timbral_filters=(16, 32, 64),
    temporal_widths=(165, 128, 64, 32),
    temporal_filters=(16, 32, 64, 128),
    backend_filters=512,
    backend_kernel=7,
    dense_units=500,
    dropout=0.5,
)

# Pons et al. 2018, waveform model: Lee et al.'s sample-level front-end (seven layers of 3-sample
# filters, 64-64-64-128-128-128-256) on 15 s of 16 kHz audio, then the shared back-end.
PONS_WAVEFORM = register_family(
    "pons-waveform",
    "raytag.models.pons:PonsWaveformTagger",
    num_tags=50,
    sample_rate=16000,
    crop_seconds=15.0,
    channels=(64, 64, 64, 128, 128, 128, 256),
    backend_filters=512,
    backend_kernel=7,
    dense_units=500,
    dropout=0.5,
)

# He et al. 2020 (ICASSP) CNN-GRU baseline: 80 log-mel bands of 40 ms frames, 50 % overlap, at
# FSDKaggle2019's 44.1 kHz; 512-frame training excerpts; four conv blocks, a BiGRU, mean over
# time, two dense layers (sizes: see raytag.models.crnn).
CNN_GRU = register_family(
    "cnn-gru",
    "raytag.models.crnn:CnnGruTagger",
    num_tags=50,
    sample_rate=44100,
    crop_frames=512,
    n_fft=1764,
    hop_length=882,
    n_mels=80,
    f_min=0.0,
    f_max=None,
    channels=(64, 128, 256, 512),
    gru_units=256,
    dense_units=512,
    dropout=0.5,
)

register_preset(
    "pons-spectrogram", PONS_SPECTROGRAM, "Pons et al. 2018 spectrogram model: timbral + temporal filters"
)
register_preset(
    "pons-spectrogram-tiny",
    PONS_SPECTROGRAM,
    "CPU tests and demos: 3 s crops, 48 mels, few filters, narrow back-end",
    crop_seconds=3.0,
    n_mels=48,
    timbral_filters=(2, 4, 8),
    temporal_widths=(64, 32, 16),
    temporal_filters=(4, 8, 16),
    backend_filters=32,
    dense_units=32,
)
register_preset("pons-waveform", PONS_WAVEFORM, "Pons et al. 2018 waveform model: sample-level front-end")
register_preset(
    "pons-waveform-tiny",
    PONS_WAVEFORM,
    "CPU tests and demos: 3 s crops, narrow sample-level layers and back-end",
    crop_seconds=3.0,
    channels=(8, 8, 8, 16, 16, 16, 32),
    backend_filters=32,
    dense_units=32,
)
register_preset("cnn-gru", CNN_GRU, "He et al. 2020 CNN-GRU baseline (FSDKaggle2019 features, 44.1 kHz)")
register_preset(
    "cnn-gru-tiny",
    CNN_GRU,
    "CPU tests and demos: 16 kHz, 40 ms / 20 ms frames, 3 s crops, 40 mels, narrow blocks",
    sample_rate=16000,
    crop_frames=151,
    n_fft=640,
    hop_length=320,
    n_mels=40,
    channels=(8, 16, 32, 64),
    gru_units=32,
    dense_units=32,
)
