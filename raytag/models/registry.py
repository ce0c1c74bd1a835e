"""Registry of named model variants.

A *builder* is a function that returns a freshly initialised ``nn.Module``. It takes
``num_tags`` and the keyword arguments it wants to fix (sample rate, crop length, width, ...)
with the preset's values as defaults, and may accept ``**kwargs`` that it forwards to the
model class; in that case its return annotation must name the model class, so that the
registry can list every argument the preset accepts::

    @register_model("mtt")
    def mtt(num_tags: int = 50, width: int = 256, **kwargs: Any) -> MusicTaggingTransformer:
        return MusicTaggingTransformer(num_tags=num_tags, width=width, **kwargs)

``create_model("mtt", width=128)`` then builds the preset with an override, and
``model_arguments("mtt")`` returns every accepted argument with its effective default (the
preset's value where the preset sets one, the model class's default otherwise).
"""

from __future__ import annotations

import difflib
import inspect
import typing
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from torch import nn

__all__ = [
    "ModelError",
    "count_parameters",
    "create_model",
    "list_models",
    "model_arguments",
    "register_model",
]

ModelBuilder = Callable[..., nn.Module]


class ModelError(ValueError):
    """An unknown model name, an unknown model argument, or a bad registration."""


@dataclass(frozen=True)
class _Entry:
    """A registered builder and the keyword arguments it accepts, with their defaults."""

    builder: ModelBuilder
    arguments: dict[str, Any]


_REGISTRY: dict[str, _Entry] = {}


def _keyword_defaults(
    function: Callable[..., Any], skip_first: bool
) -> tuple[dict[str, Any], bool]:
    """Return ``function``'s keyword parameters with defaults, and whether it takes ``**kwargs``.

    Raises:
        ModelError: if a keyword parameter has no default (builders must be callable with
            overrides only) or the function takes ``*args``.
    """
    parameters = list(inspect.signature(function).parameters.values())
    if skip_first:
        parameters = parameters[1:]
    defaults: dict[str, Any] = {}
    takes_kwargs = False
    for parameter in parameters:
        if parameter.kind is inspect.Parameter.VAR_KEYWORD:
            takes_kwargs = True
        elif parameter.kind is inspect.Parameter.VAR_POSITIONAL:
            raise ModelError(f"{function.__qualname__} must not take *{parameter.name}")
        elif parameter.default is inspect.Parameter.empty:
            raise ModelError(
                f"{function.__qualname__}: argument {parameter.name!r} needs a default value"
            )
        else:
            defaults[parameter.name] = parameter.default
    return defaults, takes_kwargs


def _builder_arguments(builder: ModelBuilder) -> dict[str, Any]:
    """All keyword arguments ``builder`` accepts, mapped to their effective defaults."""
    own_defaults, takes_kwargs = _keyword_defaults(builder, skip_first=False)
    if not takes_kwargs:
        return own_defaults
    model_class = typing.get_type_hints(builder).get("return")
    if not (inspect.isclass(model_class) and issubclass(model_class, nn.Module)):
        raise ModelError(
            f"builder {builder.__qualname__} takes **kwargs, so its return annotation must be "
            f"the nn.Module subclass it builds (got {model_class!r})"
        )
    class_defaults, _ = _keyword_defaults(model_class.__init__, skip_first=True)
    return {**class_defaults, **own_defaults}


def register_model(name: str) -> Callable[[ModelBuilder], ModelBuilder]:
    """Decorator that registers a model builder under ``name``.

    Args:
        name: The preset's name, e.g. ``"mtt"``; must be unused.

    Returns:
        A decorator that records the builder and returns it unchanged.

    Raises:
        ModelError: if ``name`` is already registered or the builder's signature cannot be
            read (see the module docstring for the contract).
    """

    def decorator(builder: ModelBuilder) -> ModelBuilder:
        if name in _REGISTRY:
            raise ModelError(f"model {name!r} is already registered")
        arguments = _builder_arguments(builder)
        if "num_tags" not in arguments:
            raise ModelError(f"builder for {name!r} must accept a num_tags argument")
        _REGISTRY[name] = _Entry(builder=builder, arguments=arguments)
        return builder

    return decorator


def _entry(name: str) -> _Entry:
    """Look up ``name``, raising a ModelError that lists the registered names."""
    try:
        return _REGISTRY[name]
    except KeyError:
        raise ModelError(
            f"unknown model {name!r}{_suggestion(name, _REGISTRY)}; "
            f"available models: {', '.join(list_models())}"
        ) from None


def _suggestion(word: str, candidates: typing.Iterable[str]) -> str:
    """`` (did you mean 'x'?)`` for the closest candidate, or an empty string."""
    matches = difflib.get_close_matches(word, list(candidates), n=1)
    return f" (did you mean {matches[0]!r}?)" if matches else ""


def list_models() -> list[str]:
    """Names of all registered models, sorted."""
    return sorted(_REGISTRY)


def model_arguments(name: str) -> dict[str, Any]:
    """Keyword arguments accepted by ``create_model(name, ...)`` and their defaults.

    Args:
        name: A registered model name.

    Returns:
        A new dict mapping argument name to the value the preset uses when it is not
        overridden (e.g. ``{"num_tags": 50, "sample_rate": 22050, "width": 256, ...}``).

    Raises:
        ModelError: if ``name`` is not registered.
    """
    return dict(_entry(name).arguments)


def create_model(name: str, **overrides: Any) -> nn.Module:
    """Build a freshly initialised model from a registered preset.

    Args:
        name: A registered model name (see :func:`list_models`).
        **overrides: Values that replace the preset's, e.g. ``num_tags=10, width=128``.

    Returns:
        The model; it maps a waveform (B, T) to logits (B, num_tags).

    Raises:
        ModelError: if ``name`` is unknown or an override is not an argument of the preset;
            the message names the offender and lists the allowed values.
        ValueError: if the model rejects an argument's value.
    """
    entry = _entry(name)
    unknown = [key for key in overrides if key not in entry.arguments]
    if unknown:
        hints = "".join(_suggestion(key, entry.arguments) for key in unknown)
        raise ModelError(
            f"model {name!r} got unknown argument(s) {', '.join(map(repr, unknown))}{hints}; "
            f"allowed arguments: {', '.join(sorted(entry.arguments))}"
        )
    return entry.builder(**overrides)


def count_parameters(module: nn.Module) -> int:
    """Number of trainable (``requires_grad``) parameter elements in ``module``."""
    return sum(parameter.numel() for parameter in module.parameters() if parameter.requires_grad)
