"""Tagging models: a registry of named presets over the Music Tagging Transformer and the
short-chunk ResNet baseline. Every model maps a waveform (B, T) to logits (B, num_tags) and
exposes ``sample_rate``, ``crop_samples`` and ``num_tags``.

Importing this package registers all presets::

    from raytag.models import create_model, list_models
    model = create_model("mtt", num_tags=50)
"""

from raytag.models.frontend import LogMelFrontEnd
from raytag.models.registry import (
    ModelError,
    count_parameters,
    create_model,
    list_models,
    model_arguments,
    register_model,
)
from raytag.models.resnet import ShortChunkResNet
from raytag.models.transformer import MusicTaggingTransformer

__all__ = [
    "LogMelFrontEnd",
    "ModelError",
    "MusicTaggingTransformer",
    "ShortChunkResNet",
    "count_parameters",
    "create_model",
    "list_models",
    "model_arguments",
    "register_model",
]
