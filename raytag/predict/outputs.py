"""``raytag predict``'s outputs: one row per input file (inputs: :mod:`raytag.predict.inputs`).

Every input file gets one output row: its path, a status, a reason (empty when the status is
``ok``), its ``top_k`` most probable tags, the tags at or above the model's per-tag thresholds
(only when the model has thresholds, see :mod:`raytag.thresholds`) and the probability of
every tag. CSV has one column per tag; JSONL a ``probabilities`` object.

Statuses (:data:`STATUSES`); only ``ok`` rows have tags and probabilities, so a file that holds
no music to tag never gets confident tags:

- ``ok``: tagged.
- ``silent``: every decoded chunk peaks at or below :data:`SILENT_PEAK_DBFS` (-60 dBFS).
- ``too short``: the track is shorter than one of the model's crops (it would be mostly
  zero padding).
- ``unreadable``: missing, empty, corrupt, truncated, or no chunk decoded (the reason says which).

Core module: no Ray, no MLflow, no torch.
"""

from __future__ import annotations

import csv
import json
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import numpy as np

from raytag.audio.io import source_frames
from raytag.thresholds import tags_above, top_tags

STATUS_OK = "ok"
STATUS_SILENT = "silent"
STATUS_TOO_SHORT = "too short"
STATUS_UNREADABLE = "unreadable"
STATUSES = (STATUS_OK, STATUS_SILENT, STATUS_TOO_SHORT, STATUS_UNREADABLE)
SILENT_PEAK_DBFS = -60.0
"""A track whose decoded chunks never go above this peak level is ``silent`` (digital silence,
dither, a metadata-only file padded with zeros)."""
FORMATS = ("csv", "jsonl")
DECIMALS = 6
NO_CHUNK_DECODED = "no chunk of the track could be decoded"


@dataclass(frozen=True)
class TrackPrediction:
    """One input file's result: ``status`` (one of :data:`STATUSES`), ``reason`` (why it was
    not tagged; "" when ok) and ``probabilities`` (K,) when ``status`` is ``"ok"``, else None."""

    path: str
    status: str
    probabilities: np.ndarray | None = None
    reason: str = ""


def gather_predictions(
    paths: Sequence[str],
    *,
    scored_paths: Sequence[str],
    scores: np.ndarray,
    kept: np.ndarray,
    reasons: Mapping[str, str],
    peaks: np.ndarray | None = None,
    too_short: Mapping[str, str] | None = None,
) -> list[TrackPrediction]:
    """One :class:`TrackPrediction` per input path, in input order.

    Args:
        paths: every input file.
        scored_paths: the files that were chunked and scored (a track table's paths).
        scores: (N', K) track-level probabilities of ``scored_paths[kept]``.
        kept: (N',) indices into ``scored_paths`` of the tracks with a score.
        reasons: why each file that is not in ``scored_paths`` could not be read.
        peaks: (N',) the largest absolute sample of each scored track's chunks (None: no
            silence check).
        too_short: ``{path: reason}`` of the files shorter than one crop.

    Raises:
        ValueError: an input path that is neither scored nor given a reason.
    """
    scored = {scored_paths[int(i)]: row for row, i in enumerate(kept)}
    chunked = set(scored_paths)
    too_short = too_short or {}
    out = []
    for path in paths:
        if path in reasons:
            out.append(TrackPrediction(path, STATUS_UNREADABLE, reason=reasons[path]))
        elif path in too_short:
            out.append(TrackPrediction(path, STATUS_TOO_SHORT, reason=too_short[path]))
        elif path in scored:
            row = scored[path]
            level = _dbfs(float(peaks[row])) if peaks is not None else None
            if level is not None and level <= SILENT_PEAK_DBFS:
                out.append(TrackPrediction(path, STATUS_SILENT, reason=f"peak level {level:.1f} dBFS "
                                                                       f"(at most {SILENT_PEAK_DBFS:.0f} dBFS)"))
            else:
                out.append(TrackPrediction(path, STATUS_OK, np.asarray(scores[row], dtype=np.float64)))
        elif path in chunked:
            out.append(TrackPrediction(path, STATUS_UNREADABLE, reason=NO_CHUNK_DECODED))
        else:
            raise ValueError(f"{path} was neither scored nor reported unreadable")
    return out


def too_short_files(table, *, crop_samples: int, sample_rate: int) -> dict[str, str]:
    """``{path: reason}`` of the tracks of ``table`` (a :class:`raytag.data.rows.TrackTable`)
    shorter than one crop of ``crop_samples`` at the model's ``sample_rate`` (Hz)."""
    out = {}
    for path, frames, rate in zip(table.paths, table.frames, table.rates):
        if int(frames) < source_frames(crop_samples, int(rate), sample_rate):
            out[path] = (f"{int(frames) / int(rate):.2f} s of audio; the model's crop is "
                         f"{crop_samples / sample_rate:.2f} s")
    return out


def _dbfs(peak: float) -> float:
    """A peak sample value in dB relative to full scale (-inf for 0)."""
    return 20.0 * float(np.log10(peak)) if peak > 0 else float("-inf")


def output_format(path: str | None, requested: str | None) -> str:
    """``requested`` if given, else from the output file's suffix (``.csv``, ``.jsonl``), else
    ``"csv"`` for standard output.

    Raises:
        ValueError: an unknown format, or a file whose suffix names none.
    """
    if requested is not None:
        if requested not in FORMATS:
            raise ValueError(f"unknown output format {requested!r}; use one of {', '.join(FORMATS)}")
        return requested
    if path is None:
        return "csv"
    suffix = Path(path).suffix.lower().lstrip(".")
    if suffix not in FORMATS:
        raise ValueError(f"cannot tell the output format of {path} from its suffix; use .csv or .jsonl, or --format")
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
        ValueError: a tag named like one of the fixed columns.
    """
    fixed = ["path", "status", "reason", "top_tags", "top_probabilities"] + (["tags"] if with_thresholds else [])
    clash = sorted(set(fixed) & set(tags))
    if clash:
        raise ValueError(f"tags {clash} have the names of fixed output columns; write JSONL (--format jsonl)")
    return fixed + list(tags)


def prediction_record(
    prediction: TrackPrediction, *, tags: Sequence[str], top_k: int, thresholds: Mapping[str, float] | None
) -> dict:
    """One file's result as a JSON-able dict: ``path``, ``status``, ``reason``, ``top`` (a list of
    ``{tag, probability}``), ``tags`` (above threshold; only when ``thresholds`` is not None;
    None for a file that was not tagged) and ``probabilities`` (``{tag: p}``, None likewise).
    Probabilities are rounded to 6 decimals."""
    record: dict = {"path": prediction.path, "status": prediction.status, "reason": prediction.reason, "top": []}
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
    predictions: Sequence[TrackPrediction],
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
    predictions: Sequence[TrackPrediction],
    output: str | Path | None,
    *,
    fmt: str,
    tags: Sequence[str],
    top_k: int,
    thresholds: Mapping[str, float] | None,
) -> None:
    """:func:`write_predictions` to the file ``output`` (its folder created if needed), or to
    standard output when ``output`` is None."""
    options = dict(fmt=fmt, tags=tags, top_k=top_k, thresholds=thresholds)
    if output is None:
        write_predictions(predictions, sys.stdout, **options)
        return
    Path(output).parent.mkdir(parents=True, exist_ok=True)
    with open(output, "w", encoding="utf-8", newline="") as stream:
        write_predictions(predictions, stream, **options)
