"""Applying a person's decisions to a manifest's rows: the checked rows get the corrected tags
and ``verified = true``; every other row stays as it was.

Works on the rows as written (:func:`raytag.data.manifest.read_manifest_rows`), so the new
manifest keeps the original's row order, columns and values: only the ``tags`` and
``verified`` fields of checked rows change (a ``verified`` column is added, ``false`` on the
other rows, when the manifest had none). Tags outside the job's vocabulary (a job with
``data.tags`` reads only some of the manifest's tags) were not shown on the page, so they are
kept on checked rows too, and counted.

Core module: no Ray, no MLflow.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import PurePath

from raytag.data.manifest import Track
from raytag.locations import is_uri
from raytag.text import plural
from raytag.verify.decisions import TAG_SEPARATOR, Decision, DecisionsError

VERIFIED_COLUMN = "verified"


@dataclass(frozen=True)
class AppliedDecisions:
    """The new rows and what changed.

    Attributes:
        columns: the new manifest's columns (the original's, plus ``verified`` if it had none).
        rows: the new rows, in the original order.
        verified: rows marked verified now (checked decisions).
        reverified: of those, rows that were verified already.
        undecided: decisions not marked as checked (their rows left as they were).
        changed: checked rows whose tags changed.
        added, removed: per tag, how many checked rows gained or lost it.
        outside_vocabulary: tags outside the vocabulary kept on checked rows.
        absolute_paths: relative paths written as absolute ones (the new manifest is elsewhere).
    """

    columns: list[str]
    rows: list[dict]
    verified: int
    reverified: int
    undecided: int
    changed: int
    added: Counter = field(default_factory=Counter)
    removed: Counter = field(default_factory=Counter)
    outside_vocabulary: int = 0
    absolute_paths: int = 0

    def format(self) -> str:
        """A few lines for the console: the counts, then added and removed per tag."""
        lines = [
            f"{plural(self.verified + self.undecided, 'decision')}: {self.verified} checked, now verified "
            f"({self.reverified} of them verified before); {self.undecided} not checked, left as they were",
            f"tags changed on {plural(self.changed, 'row')}: {sum(self.added.values())} added, "
            f"{sum(self.removed.values())} removed; {len(self.rows) - self.verified} other rows unchanged",
        ]
        if self.outside_vocabulary:
            lines.append(f"{plural(self.outside_vocabulary, 'tag')} outside the job's vocabulary kept on checked rows")
        if self.absolute_paths:
            lines.append(f"{plural(self.absolute_paths, 'relative path')} written as absolute paths "
                         "(the new manifest is in another folder)")
        tags = sorted(set(self.added) | set(self.removed), key=lambda t: (-self.added[t] - self.removed[t], t))
        if tags:
            width = max(len(t) for t in tags + ["tag"])
            lines.append(f"  {'tag':<{width}}  {'added':>5}  {'removed':>7}")
            lines += [f"  {t:<{width}}  {self.added[t]:>5}  {self.removed[t]:>7}" for t in tags]
        return "\n".join(lines)


def row_tags(value) -> list[str]:
    """A raw ``tags`` field (a ``;``-separated string, or a list in JSONL) as a list, in order."""
    items = value if isinstance(value, list) else str(value or "").split(TAG_SEPARATOR)
    return list(dict.fromkeys(str(t).strip() for t in items if str(t).strip()))


def apply_decisions(
    columns: Sequence[str],
    rows: Sequence[dict],
    tracks: Sequence[Track],
    decisions: Sequence[Decision],
    *,
    vocabulary: Sequence[str],
    source: str,
    absolute_paths: bool = False,
) -> AppliedDecisions:
    """The manifest's rows with ``decisions`` applied (see the module docstring).

    Args:
        columns: the manifest's columns, in order.
        rows: its rows as written, in order.
        tracks: the same rows as read (:class:`~raytag.data.manifest.Track`, resolved paths),
            one per row, in the same order.
        decisions: the decisions, their paths resolved like the tracks'.
        vocabulary: the job's tags (the ones the page showed).
        source: the decisions file's name, for messages.
        absolute_paths: write every relative ``path`` as the absolute path it names (when the
            new manifest goes to another folder than the original).

    Raises:
        DecisionsError: a decision for a track the manifest does not have, or for a row whose
            tags changed since the page was made; naming the line.
        ValueError: ``rows`` and ``tracks`` that do not match.
    """
    if len(rows) != len(tracks):
        raise ValueError(f"{len(rows)} rows but {len(tracks)} tracks")
    where = {track.path: i for i, track in enumerate(tracks)}
    known = set(vocabulary)
    new_rows = [dict(row) for row in rows]
    new_columns = list(columns) + ([] if VERIFIED_COLUMN in columns else [VERIFIED_COLUMN])
    if VERIFIED_COLUMN not in columns:
        for row in new_rows:
            row[VERIFIED_COLUMN] = "false"
    added, removed = Counter(), Counter()
    verified = reverified = undecided = changed = outside = 0
    for decision in decisions:
        index = where.get(decision.path)
        if index is None:
            raise DecisionsError(f"{source}:{decision.line}: no track {decision.path} in the manifest")
        if not decision.decided:
            undecided += 1
            continue
        before = row_tags(rows[index].get("tags"))
        shown = [t for t in before if t in known]
        if decision.shown_tags is not None and set(decision.shown_tags) != set(shown):
            raise DecisionsError(
                f"{source}:{decision.line}: the manifest's tags of {decision.path} are "
                f"{TAG_SEPARATOR.join(shown) or 'none'} but the page showed "
                f"{TAG_SEPARATOR.join(decision.shown_tags) or 'none'}: the manifest changed since the page was made"
            )
        wanted = set(decision.tags)
        after = [t for t in before if t not in known or t in wanted]
        after += [t for t in vocabulary if t in wanted and t not in before]
        added.update(t for t in after if t not in before)
        removed.update(t for t in before if t not in after)
        outside += sum(t not in known for t in before)
        changed += after != before
        reverified += tracks[index].verified
        verified += 1
        row = new_rows[index]
        row["tags"] = after if isinstance(rows[index].get("tags"), list) else TAG_SEPARATOR.join(after)
        row[VERIFIED_COLUMN] = True if isinstance(rows[index].get(VERIFIED_COLUMN), bool) else "true"
    rewritten = 0
    if absolute_paths:
        for row, track in zip(new_rows, tracks):
            written = str(row["path"]).strip()
            if not (is_uri(written) or PurePath(written).is_absolute()):
                row["path"] = track.path
                rewritten += 1
    return AppliedDecisions(new_columns, new_rows, verified, reverified, undecided, changed, added, removed,
                            outside, rewritten)
