"""Exported raytag models as MLflow models: loadable with ``mlflow.pyfunc.load_model``, and
registered in the model registry with their lineage.

Why a ``pyfunc.PythonModel`` and not ``mlflow.pytorch``: the pytorch flavour pickles the whole
``nn.Module`` (loading it unpickles arbitrary objects) and its ``predict`` returns the module's
raw output, which for raytag models are logits of one crop. The wrapper here carries the
exported folder (``model.json`` + ``model.pt``) as an artifact, rebuilds the model from its
recipe and loads the weights with ``torch.load(weights_only=True)``
(:func:`raytag.models.export.read_weights`); ``predict`` takes audio files or waveforms with
their sample rate and returns a DataFrame of per-tag probabilities and thresholded tags,
scoring each track as raytag evaluates one (:mod:`raytag.tracking.pyfunc_tagger`). The model is
saved "from code" (a short loader script), so nothing is pickled at all.

The model is self-contained: it carries a copy of the raytag package (an artifact, not
``code_paths``, which would put the copy first on ``sys.path`` of every loading process and
shadow an installed raytag) and lists what that code imports as its requirements
(:data:`MODEL_REQUIREMENTS`, pinned). Where raytag is importable the loader uses it; elsewhere
it appends the copy to ``sys.path``.

Logging goes through ``MlflowClient`` against an explicit tracking URI and run id (no global
active run, no global tracking URI), with MLflow 3's logged-model API:
``create_logged_model(source_run_id=...)`` → ``pyfunc.save_model`` locally →
``log_model_artifacts`` → ``finalize_logged_model`` → ``log_outputs`` (links the model to the
run as its output). The model's URI is ``models:/<model_id>``.
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import pandas as pd
from mlflow.entities import LoggedModelOutput
from mlflow.models.signature import ModelSignature
from mlflow.types import DataType
from mlflow.types.schema import Array, ColSpec, ParamSchema, ParamSpec, Schema

from raytag import package_version
from raytag.models.export import ExportError, is_exported, read_exported, read_thresholds, recorded_scoring
from raytag.scoring.options import ScoringOptions
from raytag.tracking import run_tags as tag_names
from raytag.tracking.client import existing_store
from raytag.tracking.pyfunc_tagger import (  # noqa: F401  (RaytagTagger: what models logged before the loader name)
    EXPORTED_ARTIFACT, OUTPUT_COLUMNS, PATH_COLUMN, RATE_COLUMN, WAVEFORM_COLUMN, RaytagTagger, max_chunks_param,
)

log = logging.getLogger(__name__)
MODEL_NAME = "tagger"  # the logged model's name within its run
MODEL_TYPE = "raytag-tagger"
CODE_ARTIFACT = "raytag_code"  # the pyfunc artifact key of the copy of the raytag package
INPUT_EXAMPLE_SAMPLES = 1024  # a short silent waveform: small and serving-valid (its row's status says too short)
# What the pyfunc code imports, besides MLflow (which MLflow adds itself): the model's
# requirements, pinned to the versions it was logged with.
MODEL_REQUIREMENTS = ("torch", "torchaudio", "numpy", "pandas", "soundfile", "av", "entmax")
# MLflow's "models from code": the saved model names its wrapper in this script instead of
# holding a pickled object, so loading it unpickles nothing. An installed raytag is used as it
# is; where none is installed (a serving image, a colleague's notebook) the copy of the
# package logged with the model is appended to sys.path (appended, so it never shadows one).
LOADER_FILE = "raytag_tagger.py"
LOADER_CODE = f'''import importlib.util
import sys

import mlflow
import pandas as pd
from mlflow.models import set_model


class RaytagLoader(mlflow.pyfunc.PythonModel):
    def load_context(self, context):
        if importlib.util.find_spec("raytag") is None:
            sys.path.append(context.artifacts["{CODE_ARTIFACT}"])
        from raytag.tracking.pyfunc_tagger import RaytagTagger

        self.tagger = RaytagTagger()
        self.tagger.load_context(context)

    def predict(self, context, model_input: pd.DataFrame, params=None):
        return self.tagger.predict(context, model_input, params)


set_model(RaytagLoader())
'''


@dataclass(frozen=True)
class LoggedTagger:
    """Where a logged model lives: ``uri`` (``models:/<model_id>``) loads it anywhere the
    tracking store is reachable."""

    model_id: str
    run_id: str
    uri: str


def model_signature(tags: list[str], scoring: ScoringOptions) -> ModelSignature:
    """Rows of ``path`` or ``waveform`` + ``sample_rate`` in; per-tag probabilities, ``tags``
    and ``status`` out (:mod:`raytag.tracking.pyfunc_tagger`); the chunking params, whose
    defaults are ``scoring``'s (the model's own, :meth:`ScoringOptions.for_model`)."""
    return ModelSignature(
        inputs=Schema([
            ColSpec(DataType.string, PATH_COLUMN, required=False),
            ColSpec(Array(DataType.double), WAVEFORM_COLUMN, required=False),
            ColSpec(DataType.long, RATE_COLUMN, required=False),
        ]),
        outputs=Schema([ColSpec(DataType.float, tag) for tag in tags]
                       + [ColSpec(DataType.string, column) for column in OUTPUT_COLUMNS]),
        params=ParamSchema([
            ParamSpec("max_chunks", "long", max_chunks_param(scoring)),
            ParamSpec("batch_size", "long", scoring.batch_size),
        ]),
    )


def copy_code(dst: Path) -> Path:
    """A copy of the installed raytag package (its ``.py`` files) in ``dst/raytag``; returns
    ``dst``, the folder to put on ``sys.path``."""
    import shutil

    import raytag

    shutil.copytree(Path(raytag.__file__).parent, dst / "raytag", ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    return dst


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
    clash = sorted(set(exported.recipe.tags) & set(OUTPUT_COLUMNS))
    if clash:
        raise ExportError(f"model_dir: tags {clash} have the names of the MLflow model's output columns")
    scoring = ScoringOptions.for_model(recorded_scoring(exported))
    client = MlflowClient(tracking_uri=tracking_uri)
    run = client.get_run(run_id)
    metadata = {
        "tags": list(exported.recipe.tags),
        "sample_rate": exported.sample_rate,
        "crop_samples": exported.crop_samples,
        "model_name": exported.recipe.name,
        "model_args": dict(exported.recipe.args),
        "raytag_version": package_version("raytag"),
        "thresholds": read_thresholds(exported),
        "scoring": scoring.recorded(),
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
            code = copy_code(Path(scratch) / CODE_ARTIFACT)
            example = pd.DataFrame({WAVEFORM_COLUMN: [np.zeros(INPUT_EXAMPLE_SAMPLES, dtype=np.float32)],
                                    RATE_COLUMN: [exported.sample_rate]})
            mlflow.pyfunc.save_model(
                path=str(local),
                python_model=str(loader),
                artifacts={EXPORTED_ARTIFACT: str(Path(model_dir).resolve()), CODE_ARTIFACT: str(code)},
                signature=model_signature(list(exported.recipe.tags), scoring),
                input_example=example,
                metadata=metadata,
                pip_requirements=model_requirements(),
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
            (names from :mod:`raytag.tracking.run_tags`); the source run id and the logged model id
            are always added.
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
    version_tags = {tag_names.SOURCE_RUN_ID: logged.run_id, tag_names.LOGGED_MODEL_ID: logged.model_id,
                    **{k: str(v) for k, v in (lineage or {}).items()}}
    # The logged model's artifact location, not its models:/ URI: MLflow's SQL registry looks a
    # models:/ source up in the global (cwd default) store, where it is not, creating ./mlflow.db
    # there; the version then has no model_id of its own, so the id goes into its tags.
    return client.create_model_version(
        registered_name,
        source=client.get_logged_model(logged.model_id).artifact_location,
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


def download_exported(model_uri: str, *, tracking_uri: str | None, dst: str | Path,
                      option: str = "--tracking-uri") -> Path:
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
        option: the setting that names ``tracking_uri``, for the error when there is no store.

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

    tracking_uri = existing_store(tracking_uri, option=option)
    client = MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
    try:
        location = (_model_location(client, model_uri) if model_uri.startswith("models:/")
                    else _run_location(client, model_uri))
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


def _run_location(client, model_uri: str) -> str:
    """The artifact location of a ``runs:/<run_id>/<path>`` URI: the run's artifact at
    ``path`` (e.g. ``best_model``), else the model the run logged under that name (e.g.
    ``tagger``; the newest if several). Resolved here through ``client``, not by MLflow's
    ``runs:/`` repository, which looks logged models up in the default store of the cwd."""
    run_id, _, path = model_uri[len("runs:/"):].strip("/").partition("/")
    if not run_id or not path:
        raise ExportError(f"{model_uri}: name a run and a path in it (runs:/RUN_ID/{MODEL_NAME} or runs:/RUN_ID/best_model)")
    run = client.get_run(run_id)
    parent = path.rpartition("/")[0]
    if any(item.path == path for item in client.list_artifacts(run_id, parent or None)):
        return f"{run.info.artifact_uri}/{path}"
    name, _, inside = path.partition("/")
    models = [model for model in client.search_logged_models(
        experiment_ids=[run.info.experiment_id], filter_string=f"name = '{name}'", max_results=1000,
    ) if model.source_run_id == run_id]
    if not models:
        raise ExportError(f"{model_uri}: run {run_id} has no artifact {path!r} and logged no model named {name!r}")
    newest = max(models, key=lambda model: model.creation_timestamp)
    return f"{newest.artifact_location}/{inside}" if inside else newest.artifact_location


def _exported_folder(local: Path, model_uri: str) -> Path:
    if is_exported(local):
        return local
    mlmodel = local / "MLmodel"
    if mlmodel.is_file():
        import yaml

        flavor = (yaml.safe_load(mlmodel.read_text()) or {}).get("flavors", {}).get("python_function", {})
        artifact = (flavor.get("artifacts") or {}).get(EXPORTED_ARTIFACT) or {}
        if artifact.get("path") and is_exported(local / artifact["path"]):
            return local / artifact["path"]
    raise ExportError(
        f"{model_uri} is not a raytag model: neither an exported folder (model.json) nor an MLflow "
        f"model with an '{EXPORTED_ARTIFACT}' artifact"
    )


def model_requirements() -> list[str]:
    """:data:`MODEL_REQUIREMENTS` pinned to the installed versions (``pip`` form)."""
    return [f"{package}=={package_version(package)}" for package in MODEL_REQUIREMENTS]
