"""The label audit's tables on storage: where they go, how they are written and read.

``raytag audit`` writes ``per_tag.csv`` and ``suspicious.csv`` (:func:`raytag.audit.audit_labels`'s
two tables) to ``<storage>/<job>/audit`` by default; ``raytag verify`` reads the suspicious rows
back to put those tracks first. Both go through this module only.

Core module: no Ray, no MLflow.
"""

from __future__ import annotations

import csv
import io
import math
from dataclasses import dataclass

from raytag import storage
from raytag.errors import InputError
from raytag.locations import run_location

AUDIT_DIR = "audit"
PER_TAG_FILE = "per_tag.csv"
SUSPICIOUS_FILE = "suspicious.csv"
SUSPECT_KINDS = ("missing", "spurious")


class AuditFileError(InputError):
    """An audit table that cannot be read, with the place of the problem."""


@dataclass(frozen=True)
class Suspect:
    """One row of ``suspicious.csv``: the label of ``tag`` on ``track`` is suspected to be
    ``missing`` (labelled negative) or ``spurious`` (labelled positive) with probability
    ``p_wrong``; ``rank`` 1 is the most suspicious."""

    rank: int
    track: str
    tag: str
    suspected: str
    p_wrong: float


def audit_location(storage_root: str, job_name: str) -> str:
    """Where a job's audit tables go by default: ``<storage>/<job>/audit``."""
    return f"{run_location(storage_root, job_name)}/{AUDIT_DIR}"


def write_audit_tables(folder: str, *, per_tag, suspicious) -> None:
    """Writes the two tables (pandas DataFrames) into ``folder`` (a path or storage URI)."""
    storage.write_text(f"{folder}/{PER_TAG_FILE}", per_tag.to_csv(index=False))
    storage.write_text(f"{folder}/{SUSPICIOUS_FILE}", suspicious.to_csv(index=False))


def read_suspects(folder: str) -> list[Suspect] | None:
    """The suspicious rows in ``folder``, most suspicious first; None when there is no
    ``suspicious.csv`` there.

    Raises:
        AuditFileError: a missing column or a malformed row, naming the file and line.
    """
    location = f"{folder.rstrip('/')}/{SUSPICIOUS_FILE}"
    text = storage.read_text(location)
    if text is None:
        return None
    reader = csv.DictReader(io.StringIO(text, newline=""))
    missing = [c for c in ("rank", "track", "tag", "suspected", "p_wrong") if c not in (reader.fieldnames or [])]
    if missing:
        raise AuditFileError(f"{location}: missing column(s) {', '.join(missing)}; is it raytag audit's table?")
    suspects = []
    for row in reader:
        where = f"{location}:{reader.line_num}"
        try:
            rank, p_wrong = int(row["rank"]), float(row["p_wrong"])
        except (TypeError, ValueError):
            raise AuditFileError(f"{where}: rank and p_wrong must be numbers") from None
        if row["suspected"] not in SUSPECT_KINDS or not row["track"] or not row["tag"] or not math.isfinite(p_wrong):
            raise AuditFileError(f"{where}: a row needs a track, a tag, a p_wrong and suspected missing or spurious")
        suspects.append(Suspect(rank, row["track"], row["tag"], row["suspected"], p_wrong))
    return sorted(suspects, key=lambda s: s.rank)
