"""The decisions file: what a person decided on a verification page, one row per track.

The page (:mod:`raytag.verify.page`) exports it; ``raytag verify --apply`` reads it here. A CSV
with the header ``path,tags,decided,note,shown_tags`` (:data:`DECISION_COLUMNS`):

- ``path``: the track, as the manifest reader resolves it (absolute path or URI);
- ``tags``: ``;``-separated tags the person says the track has (vocabulary tags only);
- ``decided``: ``true`` when the person marked the track as checked, else ``false`` (its row
  stays as it was);
- ``note``: free text (may be empty; quoted when it holds a comma, quote or line break);
- ``shown_tags``: the track's tags when the page was made, so applying can tell that the
  manifest changed since (optional column).

Every problem is an error naming the file and line: a missing or unknown column, a row with
the wrong number of fields, an empty or repeated path, a ``decided`` value other than
true/false, a tag outside the vocabulary.

Core module: no Ray, no MLflow, no numpy.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from dataclasses import dataclass

from raytag.errors import InputError

DECISION_COLUMNS = ("path", "tags", "decided", "note", "shown_tags")
REQUIRED_COLUMNS = ("path", "tags", "decided")
TAG_SEPARATOR = ";"
_TRUE, _FALSE = ("true", "1", "yes"), ("false", "0", "no")


class DecisionsError(InputError):
    """A decisions file that cannot be applied, with the place of the problem."""


@dataclass(frozen=True)
class Decision:
    """One track's decision.

    Attributes:
        path: the track as the file names it.
        tags: the tags the person kept or added, in the file's order.
        decided: whether the person marked the track as checked.
        note: the person's note ("" when none).
        shown_tags: the tags the page showed, or None when the file has no ``shown_tags``.
        line: the line of the file the row starts on.
    """

    path: str
    tags: tuple[str, ...]
    decided: bool
    note: str
    shown_tags: tuple[str, ...] | None
    line: int


def decode_decisions(data: bytes, *, source: str) -> str:
    """A decisions file's bytes as text (UTF-8).

    Raises:
        DecisionsError: bytes that are not UTF-8, naming ``source`` and the line.
    """
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise DecisionsError(f"{source}:{line}: not UTF-8 text ({exc.reason})") from None


def split_tags(text: str) -> tuple[str, ...]:
    """``"a;b; c"`` -> ``("a", "b", "c")``: stripped, empty items and repeats left out."""
    return tuple(dict.fromkeys(t.strip() for t in text.split(TAG_SEPARATOR) if t.strip()))


def parse_decisions(text: str, *, source: str, vocabulary: Sequence[str]) -> list[Decision]:
    """Reads a decisions CSV (see the module docstring).

    Args:
        text: the file's text (a leading byte-order mark and CRLF line ends are accepted).
        source: the file's name, for messages.
        vocabulary: the tags a decision may name.

    Returns:
        One :class:`Decision` per row, in file order.

    Raises:
        DecisionsError: naming ``source`` and the line of the first problem.
    """
    reader = csv.reader(io.StringIO(text.removeprefix("\ufeff"), newline=""))
    try:
        header = [c.strip() for c in next(reader, [])]
        missing = [c for c in REQUIRED_COLUMNS if c not in header]
        unknown = [c for c in header if c not in DECISION_COLUMNS]
        if missing or unknown or len(set(header)) != len(header):
            raise DecisionsError(
                f"{source}:1: the header must name the columns {', '.join(DECISION_COLUMNS)} "
                f"(the last two optional), each once; got {', '.join(header) or 'nothing'}"
            )
        known, seen, decisions = set(vocabulary), {}, []
        next_line = reader.line_num + 1
        for fields in reader:
            line, next_line = next_line, reader.line_num + 1  # a quoted note may span lines
            if not fields:
                continue
            if len(fields) != len(header):
                raise DecisionsError(f"{source}:{line}: {len(fields)} fields, the header has {len(header)}")
            row = dict(zip(header, fields))
            decision = _decision(row, f"{source}:{line}", line, known)
            if decision.path in seen:
                raise DecisionsError(f"{source}:{line}: {decision.path} again (first on line {seen[decision.path]})")
            seen[decision.path] = line
            decisions.append(decision)
    except csv.Error as exc:
        raise DecisionsError(f"{source}:{reader.line_num}: malformed CSV ({exc})") from None
    if not decisions:
        raise DecisionsError(f"{source}: no decisions (only a header)")
    return decisions


def _decision(row: dict[str, str], where: str, line: int, known: set[str]) -> Decision:
    path = row["path"].strip()
    if not path:
        raise DecisionsError(f"{where}: empty path")
    flag = row["decided"].strip().lower()
    if flag not in _TRUE + _FALSE:
        raise DecisionsError(f"{where}: 'decided' must be true or false; got {row['decided']!r}")
    tags = split_tags(row["tags"])
    shown = split_tags(row["shown_tags"]) if "shown_tags" in row else None
    for tag in tags + (shown or ()):
        if tag not in known:
            raise DecisionsError(f"{where}: tag {tag!r} is not in the job's vocabulary")
    return Decision(path, tags, flag in _TRUE, row.get("note", "").strip(), shown, line)
