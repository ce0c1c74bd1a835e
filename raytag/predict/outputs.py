"""``raytag predict``'s outputs: one row per input file (inputs: :mod:`raytag.predict.inputs`).

Every input file gets one output row: its path, a status, a reason (empty when the status is
``ok``), its ``top_k`` most probable tags, the tags at or above the model's per-tag thresholds
(only when the model has thresholds, see :mod:`raytag.thresholds`) and the probability of
every tag. CSV has one column per tag; JSONL a ``probabilities`` object. The rows are the
scoring owner's :class:`~raytag.scoring.status.TrackResult` objects; their statuses and the
rules behind them are in :mod:`raytag.scoring.status`.

Core module: no Ray, no MLflow, no torch.
"""

from __future__ import annotations

import csv
import json
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import IO

from raytag.predict.inputs import PredictError
from raytag.scoring.status import TrackResult
from raytag.thresholds import tags_above, top_tags

FORMATS = ("csv", "jsonl")
DECIMALS = 6


def output_format(path: str | None, requested: str | None) -> str:
    """``requested`` if given, else from the output file's suffix (``.csv``, ``.jsonl``), else
    ``"csv"`` for standard output.

    Raises:
        PredictError: an unknown format, or a file whose suffix names none.
    """
    if requested is not None:
        if requested not in FORMATS:
            raise PredictError(f"unknown output format {requested!r}; use one of {', '.join(FORMATS)}")
        return requested
    if path is None:
        return "csv"
    suffix = Path(path).suffix.lower().lstrip(".")
    if suffix not in FORMATS:
        raise PredictError(f"cannot tell the output format of {path} from its suffix; use .csv or .jsonl, or --format")
    return suffix


def format_mismatch(path: str | None, requested: str | None) -> str | None:
    """A warning when ``--format`` names another format than the output file's suffix
    (``--format csv -o x.jsonl``), else None. The requested format is still written."""
    if requested is None or path is None:
        return None
    suffix = Path(path).suffix.lower().lstrip(".")
    if suffix in FORMATS and suffix != requested:
        return f"--format {requested} writes {requested.upper()} into {path}, whose suffix says {suffix.upper()}"
    return None


def csv_columns(tags: Sequence[str], *, with_thresholds: bool) -> list[str]:
    """The CSV header: path, status, reason, top_tags, top_probabilities, tags (with
    thresholds), then one probability column per tag.

    Raises:
        PredictError: a tag named like one of the fixed columns.
    """
    fixed = ["path", "status", "reason", "top_tags", "top_probabilities"] + (["tags"] if with_thresholds else [])
    clash = sorted(set(fixed) & set(tags))
    if clash:
        raise PredictError(f"tags {clash} have the names of fixed output columns; write JSONL (--format jsonl)")
    return fixed + list(tags)


def prediction_record(
    prediction: TrackResult, *, tags: Sequence[str], top_k: int, thresholds: Mapping[str, float] | None
) -> dict:
    """One file's result as a JSON-able dict: ``path``, ``status``, ``reason``, ``top`` (a list of
    ``{tag, probability}``), ``tags`` (above threshold; only when ``thresholds`` is not None;
    None for a file that was not tagged) and ``probabilities`` (``{tag: p}``, None likewise).
    Probabilities are rounded to 6 decimals."""
    record: dict = {"path": str(prediction.source), "status": str(prediction.status), "reason": prediction.reason,
                    "top": []}
    probabilities = prediction.probabilities
    if thresholds is not None:
        record["tags"] = None if probabilities is None else tags_above(probabilities, tags, thresholds)
    if probabilities is None:
        record["probabilities"] = None
        return record
    record["top"] = [{"tag": tag, "probability": round(p, DECIMALS)} for tag, p in top_tags(probabilities, tags, top_k)]
    record["probabilities"] = {tag: round(float(p), DECIMALS) for tag, p in zip(tags, probabilities)}
    return record


def write_predictions(
    predictions: Sequence[TrackResult],
    stream: IO[str],
    *,
    fmt: str,
    tags: Sequence[str],
    top_k: int,
    thresholds: Mapping[str, float] | None,
) -> None:
    """Writes one row (CSV) or line (JSONL) per prediction to ``stream``.

    CSV: ``top_tags`` and ``top_probabilities`` are ``;``-separated, in the same order;
    ``tags`` (with thresholds) is ``;``-separated; a file that was not tagged has empty cells.
    """
    if fmt == "jsonl":
        for prediction in predictions:
            record = prediction_record(prediction, tags=tags, top_k=top_k, thresholds=thresholds)
            stream.write(json.dumps(record, ensure_ascii=False) + "\n")
        return
    if fmt != "csv":
        raise ValueError(f"unknown output format {fmt!r}; use one of {', '.join(FORMATS)}")
    columns = csv_columns(tags, with_thresholds=thresholds is not None)
    writer = csv.DictWriter(stream, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    for prediction in predictions:
        record = prediction_record(prediction, tags=tags, top_k=top_k, thresholds=thresholds)
        row = {
            "path": record["path"],
            "status": record["status"],
            "reason": record["reason"],
            "top_tags": ";".join(item["tag"] for item in record["top"]),
            "top_probabilities": ";".join(f"{item['probability']:.{DECIMALS}f}" for item in record["top"]),
        }
        if thresholds is not None:
            row["tags"] = ";".join(record["tags"] or ())
        for tag, p in (record["probabilities"] or {}).items():
            row[tag] = f"{p:.{DECIMALS}f}"
        writer.writerow(row)


def write_output(
    predictions: Sequence[TrackResult],
    output: str | Path | None,
    *,
    fmt: str,
    tags: Sequence[str],
    top_k: int,
    thresholds: Mapping[str, float] | None,
) -> None:
    """:func:`write_predictions` to the file ``output`` (its folder must exist: see
    :func:`raytag.output_files.check_output_file`), or to standard output when ``output`` is None."""
    options = dict(fmt=fmt, tags=tags, top_k=top_k, thresholds=thresholds)
    if output is None:
        write_predictions(predictions, sys.stdout, **options)
        return
    with open(output, "w", encoding="utf-8", newline="") as stream:
        write_predictions(predictions, stream, **options)
