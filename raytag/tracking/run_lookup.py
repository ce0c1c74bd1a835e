"""Finding the runs ``raytag review`` shows: those of an experiment or of a parent run, or the
ones a person names by a full MLflow run id or a unique prefix of one (the 8 characters the
review prints), in any experiment of the store."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field

from raytag.errors import InputError
from raytag.text import plural
from raytag.tracking import run_tags as tag_names

FULL_RUN_ID = 32  # characters of an MLflow run id
MIN_ID_PREFIX = 4  # shortest run-id prefix accepted (review prints 8 characters)
SHORT_ID = 8  # characters of a run id the review prints
DEFAULT_MAX_RUNS = 50
MAX_NAMED_AUDITS = 5  # audit runs named in the note on an experiment's review; the rest counted


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


@dataclass(frozen=True)
class RunSelection:
    """The runs to review (MLflow ``Run`` entities, oldest first, or in the order given), their
    parent run (or None), a title, and notes on runs of the selection that are not shown."""

    runs: list
    parent: object | None
    title: str
    notes: list[str] = field(default_factory=list)


def select_runs(
    client,
    *,
    experiment: str | None = None,
    parent_run_id: str | None = None,
    run_ids: Sequence[str] = (),
    max_runs: int = DEFAULT_MAX_RUNS,
) -> RunSelection:
    """The runs that exactly one of ``run_ids``, ``parent_run_id`` or ``experiment`` selects
    (see :func:`raytag.tracking.review.review_runs`).

    An experiment's newest ``max_runs`` training or evaluation runs are listed; pipeline and
    sweep parent runs are left out (their children are listed), and so are label-noise audit
    runs (``raytag audit``), which hold no training or evaluation and do not count toward
    ``max_runs``: a note names those started since the oldest listed run (all of them when
    fewer than ``max_runs`` runs are listed) and how to review them.

    Raises:
        ReviewError: not exactly one selection, an unknown experiment or run, nothing to show
            (an experiment with only audit runs says so and names them).
    """
    from mlflow.exceptions import MlflowException

    chosen = [bool(experiment), bool(parent_run_id), bool(run_ids)]
    if sum(chosen) != 1:
        raise ReviewError("give exactly one of: run ids, --experiment NAME or --parent RUN_ID")
    if run_ids:
        runs = list({run.info.run_id: run for run in (find_run(client, run_id) for run_id in run_ids)}.values())
        return RunSelection(runs, None, "runs " + ", ".join(run.info.run_name or run.info.run_id[:SHORT_ID] for run in runs))
    if parent_run_id:
        parent = find_run(client, parent_run_id)
        runs = client.search_runs(
            [parent.info.experiment_id],
            filter_string=f"tags.`{tag_names.PARENT_RUN}` = '{parent.info.run_id}'",
            max_results=max_runs,
            order_by=["attributes.start_time ASC"],
        )
        if not runs:
            raise ReviewError(f"run {parent.info.run_id} ({parent.info.run_name}) has no child runs")
        kind = parent.data.tags.get(tag_names.KIND, "parent")
        return RunSelection(list(runs), parent, f"{parent.info.run_name} ({kind})")
    try:
        found = client.get_experiment_by_name(experiment)
    except MlflowException as exc:
        raise ReviewError(f"experiment {experiment!r}: {exc.message}") from None
    if found is None:
        raise ReviewError(f"no experiment named {experiment!r} in this tracking store")
    newest = ["attributes.start_time DESC"]
    kind = f"tags.`{tag_names.KIND}`"
    runs = list(reversed(client.search_runs(
        [found.experiment_id], filter_string=f"{kind} IS NULL", max_results=max_runs, order_by=newest)))
    audits_shown_span = f"{kind} = '{tag_names.KIND_AUDIT}'"
    if len(runs) == max_runs:  # older runs are left out too: name only the audits among the listed ones
        audits_shown_span += f" AND attributes.start_time >= {runs[0].info.start_time}"
    audits = _all_runs(client, found.experiment_id, audits_shown_span, newest)
    if not runs:
        only = f"; it holds only {audits_left_out(audits)}" if audits else ""
        raise ReviewError(f"experiment {experiment!r} has no training or evaluation runs{only}")
    notes = [f"not listed: {audits_left_out(audits)}"] if audits else []
    return RunSelection(runs, None, f"experiment {experiment}", notes)


def _all_runs(client, experiment_id: str, filter_string: str, order_by: list[str]) -> list:
    """Every run of the experiment that ``filter_string`` selects, page by page."""
    found, token = [], None
    while True:
        page = client.search_runs([experiment_id], filter_string=filter_string, max_results=1000,
                                  order_by=order_by, page_token=token)
        found.extend(page)
        token = page.token
        if not token:
            return found


def audits_left_out(audits: Sequence) -> str:
    """``"N label-noise audit run(s) (see them with `raytag review ID ...`)"``: the newest
    :data:`MAX_NAMED_AUDITS` of ``audits`` (newest first) by their short ids, the rest counted."""
    ids = " ".join(run.info.run_id[:SHORT_ID] for run in audits[:MAX_NAMED_AUDITS])
    more = f", and {len(audits) - MAX_NAMED_AUDITS} older ones" if len(audits) > MAX_NAMED_AUDITS else ""
    return f"{plural(len(audits), 'label-noise audit run')} (see them with `raytag review {ids}`{more})"
