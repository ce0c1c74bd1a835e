"""``raytag predict``'s segment outputs: taggrams (tag activations over time), their heat maps,
and embeddings per file or per segment.

- Taggram: one row per segment, ``path, start_s, end_s`` and one probability column per tag
  (CSV), or one JSON object per line with a ``probabilities`` object (JSONL).
- Heat map: one PNG per file, tags × time, the probability as colour.
- Embeddings: ``.npy`` (a float32 (rows, D) matrix, with a ``<name>.rows.csv`` beside it naming
  each row's file and, per segment, its times), ``.csv`` (``path[, start_s, end_s], e0 … e{D-1}``)
  or ``.jsonl`` (``{"path", ["start_s", "end_s"], "embedding": [...]}``).

Core module: no Ray, no MLflow, no torch (matplotlib only for the heat maps).
"""

from __future__ import annotations

import csv
import json
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from raytag.predict.inputs import PredictError

if TYPE_CHECKING:  # the type only: importing the segment scorer would import torch
    from raytag.scoring.segments import SegmentScores

TAGGRAM_FORMATS = ("csv", "jsonl")
EMBEDDING_FORMATS = ("npy", "csv", "jsonl")
EMBEDDING_UNITS = ("file", "segment")
DECIMALS = 6
TIME_DECIMALS = 3
TIME_COLUMNS = ("path", "start_s", "end_s")


def file_format(path: str | Path, allowed: Sequence[str], option: str) -> str:
    """The format named by ``path``'s suffix, one of ``allowed``.

    Raises:
        PredictError: another suffix (the message names ``option``).
    """
    suffix = Path(path).suffix.lower().lstrip(".")
    if suffix not in allowed:
        raise PredictError(f"{option} {path}: use a file ending in {', '.join('.' + f for f in allowed)}")
    return suffix


def taggram_columns(tags: Sequence[str]) -> list[str]:
    """The taggram CSV header: path, start_s, end_s, one column per tag.

    Raises:
        PredictError: a tag named like one of the fixed columns.
    """
    clash = sorted(set(TIME_COLUMNS) & set(tags))
    if clash:
        raise PredictError(f"tags {clash} have the names of fixed taggram columns; write JSONL (.jsonl)")
    return [*TIME_COLUMNS, *tags]


def write_taggram(path: str | Path, scores: SegmentScores, paths: Sequence[str], tags: Sequence[str]) -> int:
    """Writes one row per segment to ``path`` (``.csv`` or ``.jsonl``; its folder exists).

    Args:
        scores: the segments' outputs.
        paths: the scored table's paths (``scores.track`` indexes them).
        tags: the model's tags, in output order.

    Returns:
        The number of rows written.
    """
    fmt = file_format(path, TAGGRAM_FORMATS, "--taggram")
    with open(path, "w", encoding="utf-8", newline="") as stream:
        if fmt == "csv":
            writer = csv.writer(stream, lineterminator="\n")
            writer.writerow(taggram_columns(tags))
        for i, track in enumerate(scores.track):
            times = [round(float(scores.start_s[i]), TIME_DECIMALS), round(float(scores.end_s[i]), TIME_DECIMALS)]
            values = [round(float(p), DECIMALS) for p in scores.probabilities[i]]
            if fmt == "csv":
                writer.writerow([paths[track], *times, *(f"{v:.{DECIMALS}f}" for v in values)])
            else:
                record = {"path": paths[track], "start_s": times[0], "end_s": times[1],
                          "probabilities": dict(zip(tags, values))}
                stream.write(json.dumps(record, ensure_ascii=False) + "\n")
    return len(scores.track)


def embedding_rows(
    scores: SegmentScores, paths: Sequence[str], *, per: str
) -> tuple[list[dict], np.ndarray]:
    """What an embeddings file holds: one descriptor per row (``path``, and ``start_s``/``end_s``
    per segment) and the (rows, D) float32 matrix.

    Args:
        per: ``"file"`` (the mean over each file's segments) or ``"segment"``.
    """
    if per not in EMBEDDING_UNITS:
        raise PredictError(f"--embeddings-per must be one of {', '.join(EMBEDDING_UNITS)}; got {per!r}")
    if per == "segment":
        rows = [
            {"path": paths[track], "start_s": round(float(scores.start_s[i]), TIME_DECIMALS),
             "end_s": round(float(scores.end_s[i]), TIME_DECIMALS)}
            for i, track in enumerate(scores.track)
        ]
        return rows, scores.embeddings.astype(np.float32)
    kept = np.unique(scores.track)
    sums = np.zeros((len(paths), scores.embeddings.shape[1]), dtype=np.float64)
    np.add.at(sums, scores.track, scores.embeddings)
    counts = np.bincount(scores.track, minlength=len(paths))
    means = (sums[kept] / counts[kept, None]).astype(np.float32)
    return [{"path": paths[int(track)]} for track in kept], means


def rows_file(path: str | Path) -> Path:
    """The CSV that names the rows of the ``.npy`` embeddings file ``path``."""
    path = Path(path)
    return path.with_name(path.stem + ".rows.csv")


def write_embeddings(path: str | Path, scores: SegmentScores, paths: Sequence[str], *, per: str) -> int:
    """Writes embeddings per file or per segment to ``path`` (``.npy``, ``.csv`` or ``.jsonl``;
    see the module docstring). Returns the number of rows."""
    fmt = file_format(path, EMBEDDING_FORMATS, "--embeddings")
    rows, matrix = embedding_rows(scores, paths, per=per)
    path = Path(path)
    if fmt == "npy":
        np.save(path, matrix)
        path, fmt = rows_file(path), "index"
    with open(path, "w", encoding="utf-8", newline="") as stream:
        if fmt == "jsonl":
            for row, vector in zip(rows, matrix):
                record = {**row, "embedding": [round(float(v), DECIMALS) for v in vector]}
                stream.write(json.dumps(record, ensure_ascii=False) + "\n")
            return len(rows)
        names = list(TIME_COLUMNS if per == "segment" else TIME_COLUMNS[:1])
        writer = csv.writer(stream, lineterminator="\n")
        writer.writerow(names + ([] if fmt == "index" else [f"e{i}" for i in range(matrix.shape[1])]))
        for row, vector in zip(rows, matrix):
            values = [] if fmt == "index" else [f"{v:.{DECIMALS}f}" for v in vector]
            writer.writerow([row[name] for name in names] + values)
    return len(rows)


def heat_map_names(paths: Sequence[str]) -> list[str]:
    """A distinct PNG name per file: its stem, with ``-2``, ``-3`` … for repeated stems."""
    seen: dict[str, int] = {}
    names = []
    for path in paths:
        stem = Path(path).stem
        seen[stem] = seen.get(stem, 0) + 1
        names.append(f"{stem}.png" if seen[stem] == 1 else f"{stem}-{seen[stem]}.png")
    return names


def write_heat_maps(folder: str | Path, scores: SegmentScores, paths: Sequence[str], tags: Sequence[str]) -> list[Path]:
    """One tags × time heat map per file with decoded segments, in ``folder`` (created if
    missing, in an existing parent: :func:`raytag.output_files.check_output_folder`).

    Column i spans from segment i's start to segment i+1's (the last one to its end), so
    overlapping segments tile the time axis; rows are the tags in model order. Returns the
    files written.
    """
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    folder = Path(folder)
    folder.mkdir(exist_ok=True)  # one new folder at most: its parent was checked to exist
    names = heat_map_names(paths)
    written = []
    for track in np.unique(scores.track):
        mine = scores.track == track
        starts, ends, values = scores.start_s[mine], scores.end_s[mine], scores.probabilities[mine]
        edges = np.append(starts, ends[-1])
        height = max(2.5, 0.28 * len(tags) + 1.2)
        fig, ax = plt.subplots(figsize=(max(6.0, min(16.0, 0.25 * len(starts) + 4)), height))
        mesh = ax.pcolormesh(edges, np.arange(len(tags) + 1), values.T, vmin=0.0, vmax=1.0, cmap="viridis")
        ax.set_yticks(np.arange(len(tags)) + 0.5, labels=list(tags))
        ax.invert_yaxis()
        ax.set_xlabel("time (s)")
        ax.set_title(f"taggram: {Path(paths[track]).name}")
        fig.colorbar(mesh, ax=ax, label="probability")
        fig.tight_layout()
        out = folder / names[int(track)]
        fig.savefig(out, dpi=100)
        plt.close(fig)
        written.append(out)
    return written
