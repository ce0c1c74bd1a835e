"""Finding the runs a person names for ``raytag review``: a full MLflow run id, or a unique
prefix of one (the 8 characters the review prints), in any experiment of the store."""

from __future__ import annotations

import re

from raytag.errors import InputError

FULL_RUN_ID = 32  # characters of an MLflow run id
MIN_ID_PREFIX = 4  # shortest run-id prefix accepted (review prints 8 characters)


class ReviewError(InputError):
    """Runs that cannot be reviewed as asked (unknown experiment or run, nothing selected)."""


def find_run(client, run_id: str):
    """The run with id ``run_id``, or the one run whose id starts with it (the 8-character ids
    the review prints, at least :data:`MIN_ID_PREFIX` characters), in any experiment.

    Raises:
        ReviewError: no such run, a prefix that is too short, or one that several runs share
            (they are listed).
    """
    from mlflow.exceptions import MlflowException

    if len(run_id) == FULL_RUN_ID or not re.fullmatch(r"[0-9a-f]+", run_id):
        try:
            return client.get_run(run_id)
        except MlflowException:
            raise ReviewError(f"no run {run_id!r} in this tracking store") from None
    if len(run_id) < MIN_ID_PREFIX:
        raise ReviewError(f"run id {run_id!r} is too short: give at least {MIN_ID_PREFIX} of its characters")
    found = runs_with_prefix(client, run_id)
    if not found:
        raise ReviewError(f"no run whose id starts with {run_id!r} in this tracking store")
    if len(found) > 1:
        shown = "; ".join(f"{run.info.run_id} ({run.info.run_name or 'no name'})" for run in found[:10])
        more = f" and {len(found) - 10} more" if len(found) > 10 else ""
        raise ReviewError(f"run id {run_id!r} is ambiguous: {len(found)} runs start with it: {shown}{more}")
    return found[0]


def runs_with_prefix(client, prefix: str) -> list:
    """Every run (active or deleted) of every experiment whose id starts with ``prefix``
    (lower-case hex digits only, so it is safe inside a filter string)."""
    from mlflow.entities import ViewType

    experiments, token = [], None
    while True:
        page = client.search_experiments(view_type=ViewType.ALL, max_results=1000, page_token=token)
        experiments.extend(e.experiment_id for e in page)
        token = page.token
        if not token:
            break
    found = []
    for start in range(0, len(experiments), 100):
        found.extend(client.search_runs(experiments[start:start + 100], filter_string=f"attributes.run_id LIKE '{prefix}%'",
                                        run_view_type=ViewType.ALL, max_results=1000))
    return found
