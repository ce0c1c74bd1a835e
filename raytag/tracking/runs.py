"""The MLflow run lifecycle of a job, on the driver: start or resume, params, lineage, end.

A job's run id is kept in its run folder under ``storage`` (:data:`raytag.locations.RUN_ID_FILE`),
so running the same job again (after a failure or an interruption) continues the same MLflow
run. Every tag name comes from :mod:`raytag.tracking.run_tags`.
"""

from __future__ import annotations

import logging
import yaml

from raytag import storage
from raytag.config import flatten
from raytag.locations import RUN_ID_FILE, run_location
from raytag.tracking import run_tags as T
from raytag.tracking.client import Tracker, resolve_uri

log = logging.getLogger("raytag")


def start_run(
    job,
    *,
    parameters: int | None = None,
    parent_run_id: str | None = None,
    run_tags: dict[str, str] | None = None,
) -> Tracker:
    """Starts the job's MLflow run, or resumes it when this job was interrupted.

    A new run gets the flattened resolved config as params (plus ``model.parameters``), the
    config as ``config/job.yaml``, and the model, method and epoch-numbering tags. A finished
    run, or one that numbers its epochs from 0 (written by raytag before epochs were numbered
    from 1), is not continued: the job goes on in a new run, which gets the epochs the
    checkpoint already holds from it (:func:`raytag.tracking.callback.log_missing_epochs`).
    """
    if not job.tracking.enabled:
        return Tracker.disabled()
    id_location = f"{run_location(job.storage, job.name)}/{RUN_ID_FILE}"
    previous = (storage.read_text(id_location) or "").strip() or None
    numbering = {T.EPOCHS_FROM: T.EPOCHS_FROM_1}
    tags = {T.MODEL: job.model.name, T.METHOD: job.objective.name, **numbering, **(run_tags or {})}
    tracker = Tracker.start(
        resolve_uri(job.tracking.uri), job.tracking.experiment, job.name,
        tags=tags, parent_run_id=parent_run_id, resume_run_id=previous, resume_requires=numbering,
    )
    if tracker.run_id and tracker.run_id != previous:
        if previous:
            log.info("MLflow run %s is finished, gone or numbers epochs from 0 (an older raytag): %s goes on in "
                     "a new run, %s", previous, job.name, tracker.run_id)
        storage.write_text(id_location, tracker.run_id)
        resolved = job.resolved()
        params = flatten(resolved)
        if parameters is not None:
            params["model.parameters"] = parameters
        tracker.log_params(params)
        tracker.log_text(yaml.safe_dump(resolved, sort_keys=False), "config/job.yaml")
    elif tracker.run_id:
        log.info("resuming MLflow run %s", tracker.run_id)
    return tracker


def lineage_tags(*, teacher_stage: str, teacher_run_id: str | None, teacher_model: str) -> dict[str, str]:
    """The tags that say which run and model taught a student."""
    return {T.TEACHER_STAGE: teacher_stage, T.TEACHER_RUN_ID: str(teacher_run_id), T.TEACHER_MODEL: teacher_model}
