"""Exported raytag models as MLflow models: loadable with ``mlflow.pyfunc.load_model``, and
registered in the model registry with their lineage.

Why a ``pyfunc.PythonModel`` and not ``mlflow.pytorch``: the pytorch flavour pickles the whole
``nn.Module`` (loading it unpickles arbitrary objects) and its ``predict`` returns the module's
raw output, which for raytag models are logits of one crop. The wrapper here carries the
exported folder (``model.json`` + ``model.pt``) as an artifact, rebuilds the model from its
recipe and loads the weights with ``torch.load(weights_only=True)``
(:func:`raytag.models.export.read_weights`); ``predict`` returns tag probabilities and applies
raytag's evaluation protocol to inputs longer than a crop. The model is saved "from code" (a
two-line script that names the wrapper class), so nothing is pickled at all. Loading needs
``raytag`` importable (its version is in the metadata); the raytag code is not copied into the
model (``code_paths``), because loading such a model prepends its copy to ``sys.path`` of the
loading process.

Logging goes through ``MlflowClient`` against an explicit tracking URI and run id (no global
active run, no global tracking URI), with MLflow 3's logged-model API:
``create_logged_model(source_run_id=...)`` → ``pyfunc.save_model`` locally →
``log_model_artifacts`` → ``finalize_logged_model`` → ``log_outputs`` (links the model to the
run as its output). The model's URI is ``models:/<model_id>``.
"""

from __future__ import annotations

import importlib.metadata
import logging
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
from mlflow.entities import LoggedModelOutput
from mlflow.models.signature import ModelSignature
from mlflow.types.schema import ParamSchema, ParamSpec, Schema, TensorSpec

from raytag.models.export import META_FILE, ExportError, read_exported
from raytag.tracking import tags as tag_names
from raytag.tracking.client import existing_store

log = logging.getLogger(__name__)
MODEL_NAME = "tagger"  # the logged model's name within its run
EXPORTED_ARTIFACT = "exported_model"  # the pyfunc artifact key of the exported folder
MODEL_TYPE = "raytag-tagger"
INPUT_EXAMPLE_SAMPLES = 1024  # a short silent row (zero-padded to a crop): small, and serving-valid
DEFAULT_MAX_CHUNKS = 16
DEFAULT_BATCH_SIZE = 16
# MLflow's "models from code": the saved model names this class in a two-line script instead
# of holding a pickled object, so loading it unpickles nothing.
LOADER_FILE = "raytag_tagger.py"
LOADER_CODE = (
    "from mlflow.models import set_model\n"
    "from raytag.tracking.mlflow_model import RaytagTagger\n\n"
    "set_model(RaytagTagger())\n"
)


class RaytagTagger(mlflow.pyfunc.PythonModel):
    """pyfunc wrapper of an exported raytag model.

    ``predict(waveforms)``: waveforms (B, T) float32, mono, at the model's sample rate
    (``metadata["sample_rate"]``) → tag probabilities (B, K) float32, columns in
    ``metadata["tags"]`` order. Per row, as raytag evaluates a track: T equal to the crop
    length (``metadata["crop_samples"]``) is one forward pass; shorter input is zero-padded
    to a crop; longer input is cut into chunks spread over the whole row (at most
    ``max_chunks``, a param, default 16) whose probabilities are averaged.
    """

    def load_context(self, context) -> None:
        from raytag.models.export import read_weights

        folder = context.artifacts[EXPORTED_ARTIFACT]
        exported = read_exported(folder, key="MLflow model artifact")
        model = exported.recipe.build()
        model.load_state_dict(read_weights(folder))
        self._model = model.eval()
        self._crop_samples = exported.crop_samples

    def predict(self, context, model_input: np.ndarray, params: dict[str, Any] | None = None) -> np.ndarray:
        params = params or {}
        return tag_probabilities(
            self._model,
            np.asarray(model_input, dtype=np.float32),
            crop_samples=self._crop_samples,
            max_chunks=int(params.get("max_chunks", DEFAULT_MAX_CHUNKS)),
            batch_size=int(params.get("batch_size", DEFAULT_BATCH_SIZE)),
        )


def tag_probabilities(
    model, waveforms: np.ndarray, *, crop_samples: int, max_chunks: int = DEFAULT_MAX_CHUNKS,
    batch_size: int = DEFAULT_BATCH_SIZE,
) -> np.ndarray:
    """Track-level tag probabilities of a batch of waveforms (see :class:`RaytagTagger`).

    Args:
        model: a raytag tagger in eval mode (waveforms (n, crop) → logits (n, K)).
        waveforms: (B, T) float32 at the model's rate.
        crop_samples: the model's crop length in samples.
        max_chunks: most chunks per row for T > crop. Default 16.
        batch_size: crops per forward pass. Default 16.

    Returns:
        (B, K) float32 probabilities.

    Raises:
        ValueError: input that is not (B, T) or holds non-finite samples.
    """
    import torch

    from raytag.audio.io import chunk_starts

    if waveforms.ndim != 2 or waveforms.shape[1] == 0:
        raise ValueError(f"waveforms must be (batch, samples); got shape {waveforms.shape}")
    if not np.isfinite(waveforms).all():
        raise ValueError("waveforms hold NaN or infinite samples")
    length = waveforms.shape[1]
    if length < crop_samples:
        waveforms = np.pad(waveforms, ((0, 0), (0, crop_samples - length)))
        length = crop_samples
    starts = chunk_starts(length, crop_samples, max_chunks)
    crops = np.stack([waveforms[:, s : s + crop_samples] for s in starts], axis=1)  # (B, C, crop)
    flat = torch.from_numpy(np.ascontiguousarray(crops.reshape(-1, crop_samples)))
    with torch.no_grad():
        probabilities = torch.cat([torch.sigmoid(model(part).float()) for part in flat.split(batch_size)])
    return probabilities.reshape(len(waveforms), len(starts), -1).mean(dim=1).numpy().astype(np.float32)


@dataclass(frozen=True)
class LoggedTagger:
    """Where a logged model lives: ``uri`` (``models:/<model_id>``) loads it anywhere the
    tracking store is reachable."""

    model_id: str
    run_id: str
    uri: str


def model_signature(num_tags: int) -> ModelSignature:
    """Waveforms (B, T) float32 in, probabilities (B, K) float32 out, and the chunking params."""
    return ModelSignature(
        inputs=Schema([TensorSpec(np.dtype(np.float32), (-1, -1))]),
        outputs=Schema([TensorSpec(np.dtype(np.float32), (-1, num_tags))]),
        params=ParamSchema([
            ParamSpec("max_chunks", "long", DEFAULT_MAX_CHUNKS),
            ParamSpec("batch_size", "long", DEFAULT_BATCH_SIZE),
        ]),
    )


def log_tagger(
    *,
    tracking_uri: str,
    run_id: str,
    model_dir: str | Path,
    name: str = MODEL_NAME,
    tags: Mapping[str, str] | None = None,
) -> LoggedTagger:
    """Logs an exported model folder as an MLflow model, the output of run ``run_id``.

    Args:
        tracking_uri: the tracking store (``sqlite:///...``, ``http://host:port``).
        run_id: the existing run that trained the model.
        model_dir: the exported folder (``best_model/``).
        name: the logged model's name. Default ``"tagger"``.
        tags: extra tags on the logged model (e.g. lineage).

    Returns:
        The :class:`LoggedTagger`.

    Raises:
        raytag.models.export.ExportError: ``model_dir`` is not an exported model.
    """
    from mlflow.tracking import MlflowClient

    exported = read_exported(model_dir, key="model_dir")
    client = MlflowClient(tracking_uri=tracking_uri)
    run = client.get_run(run_id)
    metadata = {
        "tags": list(exported.recipe.tags),
        "sample_rate": exported.sample_rate,
        "crop_samples": exported.crop_samples,
        "model_name": exported.recipe.name,
        "model_args": dict(exported.recipe.args),
        "raytag_version": _version("raytag"),
        "training": {k: v for k, v in exported.info.items() if isinstance(v, (str, int, float, bool))},
    }
    logged = client.create_logged_model(
        experiment_id=run.info.experiment_id,
        name=name,
        source_run_id=run_id,
        tags={tag_names.MODEL: exported.recipe.name, **dict(tags or {})},
        params={"sample_rate": str(exported.sample_rate), "crop_samples": str(exported.crop_samples),
                "tags": str(len(exported.recipe.tags))},
        model_type=MODEL_TYPE,
    )
    try:
        with tempfile.TemporaryDirectory() as scratch:
            local = Path(scratch) / "model"
            loader = Path(scratch) / LOADER_FILE
            loader.write_text(LOADER_CODE)
            mlflow.pyfunc.save_model(
                path=str(local),
                python_model=str(loader),
                artifacts={EXPORTED_ARTIFACT: str(Path(model_dir).resolve())},
                signature=model_signature(len(exported.recipe.tags)),
                input_example=np.zeros((1, INPUT_EXAMPLE_SAMPLES), dtype=np.float32),
                metadata=metadata,
                pip_requirements=[f"{p}=={_version(p)}" for p in ("torch", "torchaudio", "numpy")],
                mlflow_model=mlflow.models.Model(model_id=logged.model_id, run_id=run_id),
            )
            client.log_model_artifacts(logged.model_id, str(local))
        client.finalize_logged_model(logged.model_id, "READY")
    except Exception:
        client.finalize_logged_model(logged.model_id, "FAILED")
        raise
    client.log_outputs(run_id, [LoggedModelOutput(logged.model_id, step=0)])
    client.set_tag(run_id, tag_names.LOGGED_MODEL_ID, logged.model_id)
    return LoggedTagger(logged.model_id, run_id, f"models:/{logged.model_id}")


def register_tagger(
    *,
    tracking_uri: str,
    logged: LoggedTagger,
    registered_name: str,
    lineage: Mapping[str, str] | None = None,
    description: str = "",
) -> Any:
    """Registers a logged model as a new version of ``registered_name`` (created if needed).

    Args:
        tracking_uri: the tracking store holding the registry.
        logged: what :func:`log_tagger` returned.
        registered_name: the registered model's name (the job's ``tracking.register_as``).
        lineage: version tags, e.g. ``{raytag.teacher_run_id: ..., raytag.teacher_model: ...}``
            (names from :mod:`raytag.tracking.tags`); the source run id is always added.
        description: the version's description.

    Returns:
        The ``ModelVersion`` (``.version`` is its number; load it as
        ``models:/<registered_name>/<version>``).
    """
    from mlflow.exceptions import MlflowException
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
    try:
        client.create_registered_model(registered_name)
    except MlflowException as exc:
        if exc.error_code != "RESOURCE_ALREADY_EXISTS":
            raise
    version_tags = {tag_names.SOURCE_RUN_ID: logged.run_id, **{k: str(v) for k, v in (lineage or {}).items()}}
    return client.create_model_version(
        registered_name,
        source=logged.uri,
        run_id=logged.run_id,
        tags=version_tags,
        description=description or None,
        model_id=logged.model_id,
    )


def publish_model(
    tracker,
    model_dir: str | Path,
    *,
    register_as: str | None = None,
    lineage: Mapping[str, str] | None = None,
) -> LoggedTagger | None:
    """For the driver: logs a run's exported model (and registers it when ``register_as`` is
    set), best effort like all tracking: a failure is a warning and None, never the job's end.

    Args:
        tracker: the run's :class:`raytag.tracking.client.Tracker`.
        model_dir: the exported ``best_model/`` folder.
        register_as: the job's ``tracking.register_as`` (None: log only).
        lineage: tags for the logged model and the registered version (teacher run, model, stage).
    """
    if tracker.failed:
        return None
    try:
        logged = log_tagger(tracking_uri=tracker.uri, run_id=tracker.run_id, model_dir=model_dir, tags=lineage)
        if register_as:
            version = register_tagger(tracking_uri=tracker.uri, logged=logged, registered_name=register_as, lineage=lineage)
            log.info("registered %s as %s version %s", logged.uri, register_as, version.version)
        return logged
    except Exception as exc:  # noqa: BLE001 - publishing must never fail a finished job
        log.warning("could not log the model of run %s to MLflow (%s: %s)", tracker.run_id, type(exc).__name__, exc)
        return None


def download_exported(model_uri: str, *, tracking_uri: str | None, dst: str | Path) -> Path:
    """Downloads the exported raytag model behind an MLflow URI; returns its local folder.

    Everything is resolved against ``tracking_uri`` (which also serves as the registry), never
    against MLflow's global state.

    Args:
        model_uri: ``models:/<model_id>`` (a logged model, what :func:`log_tagger` returns),
            ``models:/<name>/<version>`` or ``models:/<name>@<alias>`` (a registered version),
            or ``runs:/<run_id>/<path>`` (a run's artifact folder, e.g. the ``best_model``
            folder a training run logs, or a model logged by the run under that name).
        tracking_uri: the tracking store (None: ``MLFLOW_TRACKING_URI``, else the default
            store in the cwd; see :func:`raytag.tracking.client.resolve_uri`). It must exist.
        dst: an empty local folder to download into.

    Returns:
        The exported folder (``model.json`` + ``model.pt``) inside ``dst``: the pyfunc
        model's ``exported_model`` artifact, or the downloaded folder itself.

    Raises:
        raytag.models.export.ExportError: an unknown model, version, alias or run, a malformed
            URI, or artifacts that are not a raytag model.
        raytag.tracking.client.StoreError: no store at ``tracking_uri`` (none is created), or a
            server that does not answer.
    """
    from mlflow.exceptions import MlflowException
    from mlflow.tracking import MlflowClient

    tracking_uri = existing_store(tracking_uri, option="--tracking-uri")
    client = MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
    try:
        location = _model_location(client, model_uri) if model_uri.startswith("models:/") else model_uri
        local = Path(mlflow.artifacts.download_artifacts(
            artifact_uri=location, dst_path=str(dst), tracking_uri=tracking_uri, registry_uri=tracking_uri
        ))
    except MlflowException as exc:
        raise ExportError(f"{model_uri}: {str(exc).splitlines()[0]} (tracking URI {tracking_uri})") from None
    return _exported_folder(local, model_uri)


def _model_location(client, model_uri: str) -> str:
    """The artifact location of a ``models:/`` URI's logged model."""
    body = model_uri[len("models:/"):].strip("/")
    name, _, rest = body.partition("/")
    if "@" in name:
        name, alias = name.split("@", 1)
        version = client.get_model_version_by_alias(name, alias).version
    elif rest:
        if not rest.isdigit():
            raise ExportError(f"{model_uri}: name a version number or an alias (models:/NAME/VERSION, models:/NAME@ALIAS)")
        version = rest
    else:
        return client.get_logged_model(body).artifact_location
    return client.get_model_version_download_uri(name, version)


def _exported_folder(local: Path, model_uri: str) -> Path:
    if (local / META_FILE).is_file():
        return local
    mlmodel = local / "MLmodel"
    if mlmodel.is_file():
        import yaml

        flavor = (yaml.safe_load(mlmodel.read_text()) or {}).get("flavors", {}).get("python_function", {})
        artifact = (flavor.get("artifacts") or {}).get(EXPORTED_ARTIFACT) or {}
        if artifact.get("path") and (local / artifact["path"] / META_FILE).is_file():
            return local / artifact["path"]
    raise ExportError(
        f"{model_uri} is not a raytag model: neither an exported folder ({META_FILE}) nor an MLflow "
        f"model with an '{EXPORTED_ARTIFACT}' artifact"
    )


def _version(package: str) -> str:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return "unknown"
