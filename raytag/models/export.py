"""The exported-model format: one folder that holds a trained tagger anyone can rebuild.

::

    best_model/
      model.json   {"format": 2, "name": preset, "args": {...}, "tags": [...],
                    "sample_rate": Hz, "crop_samples": n,
                    "thresholds": {tag: threshold} (optional),
                    "thresholds_labels": {"labels": "noisy"|"verified"|"clean", "tracks": n},
                    "scoring": {"max_chunks": n | null} (optional: how it was evaluated),
                    ...training info ("best_epoch": its number, from 1, ...)}
      model.pt     the weights (a state dict; read with ``torch.load(weights_only=True)``)

Format 1 numbered ``best_epoch`` from 0; :func:`read_exported` renumbers it (epochs are
numbered from 1 everywhere, see :mod:`raytag.engine.state`).

This module is the only one that writes, reads or checks the format and names its folder. It
works on local folders; the cluster layer copies a folder to or from remote storage. Importing
it does not import torch (a job's config names exported folders), only reading weights does.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from raytag.errors import InputError
from raytag.locations import run_location

FORMAT_VERSION = 2
"""2: ``best_epoch`` numbered from 1; 1: numbered from 0 (read as if it were 2)."""
BEST_MODEL_DIR = "best_model"
META_FILE = "model.json"
WEIGHTS_FILE = "model.pt"
THRESHOLDS_KEY = "thresholds"  # {tag: threshold} in model.json, when the model has them
THRESHOLDS_LABELS_KEY = "thresholds_labels"  # {"labels": noisy|verified|clean, "tracks": n}
RUN_ID_KEY = "mlflow_run_id"  # the MLflow run that trained the model (kept when a later run only evaluates it)
SCORING_KEY = "scoring"  # {"max_chunks": n | null}: the scoring settings the model was evaluated with


class ExportError(InputError):
    """An exported model that is missing, malformed, or does not fit the job that uses it."""


@dataclass(frozen=True)
class ModelRecipe:
    """What rebuilds a trained model: preset name, argument overrides, tag vocabulary, head."""

    name: str
    args: dict[str, Any]
    tags: tuple[str, ...]
    head: str = "sigmoid"

    def build(self):
        """A freshly initialised ``nn.Module`` of this recipe (weights not loaded)."""
        from raytag.models.heads import attach_head
        from raytag.models.registry import create_model

        return attach_head(create_model(self.name, num_tags=len(self.tags), **self.args), self.head)


@dataclass(frozen=True)
class ExportedModel:
    """An exported model's description (``model.json``); weights are read separately."""

    folder: Path
    recipe: ModelRecipe
    sample_rate: int
    crop_samples: int
    info: dict[str, Any] = field(default_factory=dict)


def best_model_location(storage: str, job_name: str) -> str:
    """Where a job's best epoch is exported: ``<storage>/<job>/best_model``."""
    return f"{run_location(storage, job_name)}/{BEST_MODEL_DIR}"


def write_exported(
    folder: str | Path, recipe: ModelRecipe, weights: dict, *, sample_rate: int, crop_samples: int,
    scoring: Mapping[str, Any] | None = None, **info: Any
) -> Path:
    """Writes ``weights`` and their description to ``folder`` (created if needed).

    Args:
        folder: local folder.
        recipe: how to rebuild the model.
        weights: the model's state dict (CPU tensors).
        sample_rate, crop_samples: the model's input rate (Hz) and training crop (samples).
        scoring: the scoring settings the model is evaluated with
            (:meth:`raytag.scoring.options.ScoringOptions.recorded`: ``max_chunks``), which
            ``raytag predict`` and the MLflow model then use by default (its thresholds are
            chosen on scores made so). None: not recorded.
        **info: JSON-able extras (best epoch, selection metric, run id, thresholds, ...).
    """
    import torch

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    torch.save(weights, folder / WEIGHTS_FILE)
    meta = {
        "format": FORMAT_VERSION,
        "name": recipe.name,
        "args": recipe.args,
        "tags": list(recipe.tags),
        "head": recipe.head,
        "sample_rate": int(sample_rate),
        "crop_samples": int(crop_samples),
        **({SCORING_KEY: dict(scoring)} if scoring is not None else {}),
        **info,
    }
    (folder / META_FILE).write_text(json.dumps(meta, indent=1))
    return folder


def read_exported(folder: str | Path | None, key: str = "model") -> ExportedModel:
    """Reads an exported model's description; ``key`` names where the folder came from
    (a config key such as ``semi.teacher``) in error messages.

    Raises:
        ExportError: no folder given, no ``model.json``, or one that is not of this format.
    """
    if folder is None:
        raise ExportError(f"{key} is required here (an exported model folder, or a pipeline stage's teacher)")
    folder = Path(folder)
    path = folder / META_FILE
    if not path.is_file() or not (folder / WEIGHTS_FILE).is_file():
        raise ExportError(f"{key}: {folder} is not an exported raytag model (no {META_FILE} and {WEIGHTS_FILE})")
    try:
        meta = json.loads(path.read_text())
        recipe = ModelRecipe(
            str(meta.pop("name")), dict(meta.pop("args")), tuple(meta.pop("tags")), str(meta.pop("head", "sigmoid"))
        )
        sample_rate, crop_samples = int(meta.pop("sample_rate")), int(meta.pop("crop_samples"))
    except (ValueError, KeyError, TypeError) as exc:
        raise ExportError(f"{key}: {path} is not a raytag model description ({exc!r})") from None
    if meta.pop("format", 1) == 1 and isinstance(meta.get("best_epoch"), int):
        meta["best_epoch"] += 1  # format 1 numbered epochs from 0
    return ExportedModel(folder, recipe, sample_rate, crop_samples, meta)


def is_exported(folder: str | Path) -> bool:
    """Whether ``folder`` holds an exported model's description (its ``model.json``)."""
    return (Path(folder) / META_FILE).is_file()


def description_path(folder: str = BEST_MODEL_DIR) -> str:
    """Where an exported model's description lies inside ``folder`` (e.g. an MLflow artifact
    path): ``best_model/model.json`` by default."""
    return f"{folder}/{META_FILE}"


def exported_run_id(text: str | None) -> str | None:
    """The MLflow run that trained a model, from its ``model.json`` text (:data:`RUN_ID_KEY`),
    or None when there is no description, it is unreadable or names no run."""
    try:
        value = json.loads(text).get(RUN_ID_KEY) if text else None
    except (ValueError, AttributeError):
        return None
    return str(value) if value else None


def description_tags(path: str | Path) -> list[str]:
    """The tags named by a model description file alone (no weights needed), or ``[]`` when
    the file is not a readable description."""
    try:
        return [str(tag) for tag in json.loads(Path(path).read_text()).get("tags", [])]
    except (OSError, ValueError, AttributeError, TypeError):
        return []


def weights_bytes(folder: str | Path) -> bytes:
    """The exported weights file's bytes (what a cache key over a teacher hashes)."""
    return (Path(folder) / WEIGHTS_FILE).read_bytes()


def read_weights(folder: str | Path) -> dict:
    """The exported state dict, loaded on the CPU with ``weights_only=True``."""
    import torch

    return torch.load(Path(folder) / WEIGHTS_FILE, map_location="cpu", weights_only=True)


def read_thresholds(model: ExportedModel) -> dict[str, float] | None:
    """The model's per-tag decision thresholds (``model.json``'s ``thresholds``, chosen on the
    validation split with :func:`raytag.thresholds.choose_thresholds`), or None when it has
    none. Tags without a threshold are absent from the map.

    Raises:
        ExportError: thresholds that are not a map of the model's tags to finite numbers.
    """
    from raytag.thresholds import check_thresholds

    values = model.info.get(THRESHOLDS_KEY)
    if values is None:
        return None
    try:
        return check_thresholds(values, model.recipe.tags)
    except ValueError as exc:
        raise ExportError(f"{model.folder / META_FILE}: {exc}") from None


def recorded_scoring(model: ExportedModel) -> dict[str, Any]:
    """The scoring settings the model records (``model.json``'s ``scoring``: ``max_chunks``, an
    integer of at least 1 or null for whole tracks); ``{}`` when it records none.

    Raises:
        ExportError: a ``scoring`` entry that is not such a mapping.
    """
    value = model.info.get(SCORING_KEY)
    if value is None:
        return {}
    chunks = value.get("max_chunks") if isinstance(value, dict) else 0
    if not isinstance(value, dict) or not (chunks is None or (type(chunks) is int and chunks >= 1)):
        raise ExportError(f"{model.folder / META_FILE}: '{SCORING_KEY}' must be a mapping with max_chunks "
                          f"(a whole number of at least 1, or null); got {value!r}")
    return dict(value)


def write_thresholds(folder: str | Path, thresholds: dict[str, float], *, labels: str, tracks: int) -> None:
    """Adds per-tag decision thresholds to a local exported model's ``model.json``
    (:func:`description_with_thresholds`).

    Raises:
        ExportError: ``folder`` is not an exported model, or a threshold for a tag it lacks.
    """
    path = read_exported(folder).folder / META_FILE
    path.write_text(description_with_thresholds(path.read_text(), thresholds, labels=labels, tracks=tracks,
                                                where=str(path)))


def description_with_thresholds(text: str, thresholds: dict[str, float], *, labels: str, tracks: int,
                                 where: str) -> str:
    """The text of a ``model.json`` (read from ``where``, named in errors) with per-tag decision
    thresholds added and what they were chosen on (``labels``: ``"noisy"``, ``"verified"`` or
    ``"clean"``; ``tracks``: how many validation tracks). Works on the text alone, so a model in
    object storage is updated without moving its weights.

    Raises:
        ExportError: not a model description, or a threshold for a tag it lacks.
    """
    from raytag.thresholds import check_thresholds

    try:
        meta = json.loads(text)
        checked = check_thresholds(thresholds, [str(tag) for tag in meta["tags"]])
    except (ValueError, KeyError, TypeError) as exc:
        raise ExportError(f"{where}: {exc}") from None
    meta[THRESHOLDS_KEY] = checked
    meta[THRESHOLDS_LABELS_KEY] = {"labels": str(labels), "tracks": int(tracks)}
    return json.dumps(meta, indent=1)


def thresholds_labels(model: ExportedModel) -> dict[str, Any] | None:
    """What the model's thresholds were chosen on (``{"labels": ..., "tracks": n}``), or None
    (no thresholds, or a model exported before this was recorded)."""
    value = model.info.get(THRESHOLDS_LABELS_KEY)
    return dict(value) if isinstance(value, dict) else None


def check_fits(
    model: ExportedModel,
    *,
    key: str,
    tags: Sequence[str] | None = None,
    sample_rate: int | None = None,
    recipe: ModelRecipe | None = None,
) -> ExportedModel:
    """Checks that an exported model can serve a job: trained on ``tags`` (in that order),
    running at ``sample_rate``, and (to start a training from it) built from ``recipe``;
    returns it.

    Raises:
        ExportError: naming ``key`` and what does not fit.
    """
    if recipe is not None and model.recipe != recipe:
        raise ExportError(f"{key}: {model.folder} is a {_describe(model.recipe)}, this job's model a {_describe(recipe)}")
    if tags is not None and tuple(model.recipe.tags) != tuple(tags):
        raise ExportError(f"{key}: {model.folder} was trained on other tags than this job's vocabulary")
    if sample_rate is not None and model.sample_rate != sample_rate:
        raise ExportError(f"{key}: {model.folder} runs at {model.sample_rate} Hz but this job's model at {sample_rate} Hz")
    return model


def _describe(recipe: ModelRecipe) -> str:
    return f"{recipe.name} {recipe.args or ''} with a {recipe.head} head on {len(recipe.tags)} tags".replace("  ", " ")
