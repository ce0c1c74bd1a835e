"""Stopping a training job after its current epoch, on request (``raytag stop JOB.yaml``).

The request is a file in the job's run folder under ``storage`` (the one place every node
shares): rank 0 of the Train workers looks for it after every epoch's report and, when it is
there, every rank ends the run (:func:`raytag.engine.run.fit`'s ``stop_requested``); the driver
then exports and evaluates the best epoch as after the last epoch, and takes the request away.
A rerun of the same job resumes from the last checkpoint and trains the remaining epochs.
Imports neither Ray nor torch: ``raytag stop`` is quick.
"""

from __future__ import annotations

import datetime

from raytag import storage
from raytag.locations import stop_request_location


def request_stop(run_folder: str) -> str:
    """Asks the job training in ``run_folder`` to stop after its current epoch; returns the
    request's location."""
    location = stop_request_location(run_folder)
    storage.write_text(location, datetime.datetime.now().astimezone().isoformat() + "\n")
    return location


def stop_requested(run_folder: str) -> bool:
    """Whether a stop has been asked for the job training in ``run_folder``."""
    return storage.is_file(stop_request_location(run_folder))


def take_stop_request(run_folder: str) -> bool:
    """Removes the stop request of ``run_folder``; returns whether there was one (the driver
    calls it before training, for a request left from before the run, and after)."""
    return storage.remove(stop_request_location(run_folder))
