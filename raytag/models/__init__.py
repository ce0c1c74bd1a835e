"""Tagging models: a registry of named presets (see :mod:`raytag.models.presets`).

Every model maps a waveform (B, T) to logits (B, num_tags) and exposes ``sample_rate``,
``crop_samples``, ``min_samples`` and ``num_tags``; and ``embed(waveform) -> (B, num_features)``,
``num_features`` and ``classifier`` (an ``nn.Linear(num_features, num_tags)``), with
``forward = classifier(embed(waveform))``, so that :func:`raytag.models.heads.attach_head` can
replace the classifier. The families: the Music Tagging Transformer and short-chunk ResNet
(Won et al. 2021), Pons et al. 2018's spectrogram and waveform models (:mod:`raytag.models.pons`)
and He et al. 2020's CNN-GRU (:mod:`raytag.models.crnn`). Importing this package registers the
presets without
importing torch; building a model imports its class::

    from raytag.models import create_model, list_models
    model = create_model("mtt", num_tags=50)
"""

from raytag.models import presets as _presets  # noqa: F401  (registers every preset)
from raytag.models.registry import (
    ModelError,
    check_argument_values,
    count_parameters,
    create_model,
    list_models,
    model_arguments,
    preset,
)

__all__ = ["ModelError", "check_argument_values", "count_parameters", "create_model", "list_models", "model_arguments", "preset"]
