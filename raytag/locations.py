"""Where a job keeps its files under ``storage``, the one place shared by every node.

``storage`` is a local path, a path on a shared file system, or a URI that pyarrow's file
systems understand (``s3://bucket/prefix``, ``gs://...``). Everything a job writes lives under
it::

    <storage>/<job>/                    Ray Train's run folder: checkpoint_*/, best_model/,
                                        the MLflow run id, a pipeline stage's record, a
                                        request to stop (``raytag stop``)
    <storage>/.raytag-cache/<kind>/     content-addressed caches (teacher scores, audio)

Nothing here touches a file system: these are names. Pure strings, so workers get the same
answer on every node.
"""

from __future__ import annotations

from pathlib import Path

RUN_ID_FILE = "mlflow_run_id"
STOP_REQUEST_FILE = "stop_requested"
STAGE_RECORD = "stage.json"
CACHE_DIR = ".raytag-cache"


def is_uri(location: str) -> bool:
    """Whether ``location`` names a remote file system (``scheme://...``) rather than a path."""
    return "://" in str(location)


def is_mlflow_uri(location: str) -> bool:
    """Whether ``location`` names an MLflow model or run artifact (``models:/...``,
    ``runs:/...``) rather than a path or a storage URI."""
    return str(location).startswith(("models:/", "runs:/"))


def resolve_storage(storage: str | Path) -> str:
    """A storage location every process can use: URIs as given, local paths made absolute."""
    text = str(storage)
    if is_uri(text):
        return text.rstrip("/")
    return str(Path(text).expanduser().resolve())


def run_location(storage: str, job_name: str) -> str:
    """A job's run folder (Ray Train's ``storage_path/name``)."""
    return f"{resolve_storage(storage)}/{job_name}"


def stop_request_location(run_folder: str) -> str:
    """Where ``raytag stop`` asks the job training in ``run_folder`` (:func:`run_location`) to
    stop after its current epoch."""
    return f"{run_folder}/{STOP_REQUEST_FILE}"


def cache_location(storage: str, kind: str) -> str:
    """The folder of one content-addressed cache (``teacher-scores``, ``audio``, ...)."""
    return f"{resolve_storage(storage)}/{CACHE_DIR}/{kind}"
