"""The model ``raytag predict`` scores with: an exported folder (a path or a storage URI) or an
MLflow model (``models:/...``, ``runs:/...``, downloaded from the tracking store), read into memory.

No Ray; MLflow is imported only to download an MLflow model.
"""

from __future__ import annotations

import contextlib
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from raytag import storage
from raytag.locations import is_mlflow_uri
from raytag.models.export import ExportedModel, read_exported, read_thresholds, read_weights, recorded_scoring
from raytag.predict.inputs import PredictError


@dataclass(frozen=True)
class LoadedModel:
    """An exported model read into memory: description, weights, per-tag thresholds (None when
    the model has none) and the scoring settings it was evaluated with (``{}`` when it records
    none; :func:`raytag.models.export.recorded_scoring`)."""

    exported: ExportedModel
    weights: dict
    thresholds: dict[str, float] | None
    scoring: dict[str, Any]

    @property
    def tags(self) -> tuple[str, ...]:
        return self.exported.recipe.tags


@contextlib.contextmanager
def model_folder(model: str, *, tracking_uri: str | None = None, option: str = "--tracking-uri") -> Iterator[Path]:
    """A local exported folder for ``model``: an MLflow URI is downloaded (tracking store
    ``tracking_uri``, default :func:`raytag.tracking.client.resolve_uri`; ``option`` names the
    setting it came from in errors), a storage URI copied, a local folder used in place;
    temporary copies are removed on exit.

    Raises:
        PredictError: nothing at ``model``.
    """
    if is_mlflow_uri(model):
        from raytag.tracking.mlflow_model import download_exported

        with tempfile.TemporaryDirectory(prefix="raytag-model-") as scratch:
            yield download_exported(model, tracking_uri=tracking_uri, dst=scratch, option=option)
        return
    if not storage.exists(model):
        raise PredictError(f"MODEL: no exported model at {model} (a folder, a storage URI, models:/... or runs:/...)")
    with storage.local_folder(model) as folder:
        yield folder


def load_model(model: str, *, tracking_uri: str | None = None) -> LoadedModel:
    """Reads the exported model named by ``model`` (see :func:`model_folder`).

    Raises:
        raytag.models.export.ExportError: not an exported model, or malformed thresholds or
            scoring settings.
        PredictError: nothing at ``model``.
    """
    with model_folder(model, tracking_uri=tracking_uri) as folder:
        exported = read_exported(folder, "MODEL")
        return LoadedModel(exported, read_weights(folder), read_thresholds(exported), recorded_scoring(exported))
