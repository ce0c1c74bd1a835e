"""The values of a manifest's columns: each checked and converted a column at a time.

:mod:`raytag.data.manifest` reads a file's columns (:class:`~raytag.data.manifest_text.Columns`)
and turns them into records with these functions; a value a column does not take raises
:class:`Refused`, which :func:`convert_column` turns into the row it was on. The ``path`` column
is :mod:`raytag.data.manifest_paths`'s.
"""

from __future__ import annotations

import re
from itertools import repeat

from raytag.data.manifest_paths import RowProblem
from raytag.data.manifest_text import Columns

SPLITS = ("train", "valid", "test", "unlabeled")
_BOOLS = {"true": True, "1": True, "yes": True, "false": False, "0": False, "no": False, "": False}
_SPLIT_SET = frozenset(SPLITS)
_WHITESPACE = re.compile(r"\s")
"""What ``str.strip`` strips (``\s`` matches what ``str.isspace`` accepts)."""


class Refused(ValueError):
    """A value a column does not take; the message says why, :func:`convert_column` adds the row."""


def convert_column(table: Columns, name: str, convert, convert_distinct=None) -> tuple[list, RowProblem | None]:
    """``convert(value)`` of every value of column ``name``, and the first value it refuses
    (raises :class:`Refused`): ``(row index, message)``, or None.

    A column of strings is converted one distinct string at a time (250,000 rows hold a few
    splits, some 100,000 tag strings), by ``convert_distinct`` when given (a list of distinct
    strings -> their results, in order; it may raise as ``convert`` does), rows sharing a result."""
    encoded = table.encoded(name)
    if encoded is not None:
        distinct, codes = encoded
        try:
            results = list(convert_distinct(distinct) if convert_distinct else map(convert, distinct))
        except Refused:
            pass  # found below, in row order
        else:
            return list(map(results.__getitem__, codes)), None
    values = table.values(name)
    if set(map(type, values)) <= {str}:
        distinct = list(set(values))
        try:
            results = convert_distinct(distinct) if convert_distinct else map(convert, distinct)
            converted = dict(zip(distinct, results))
        except Refused:
            pass  # found below, in row order
        else:
            return list(map(converted.__getitem__, values)), None
    results = []
    for row, value in enumerate(values):
        try:
            results.append(convert(value))
        except Refused as exc:
            return results, (row, str(exc))
    return results, None


def split_value(value) -> str:
    """A row's split, stripped; refused unless one of :data:`SPLITS`."""
    if isinstance(value, str) and value in _SPLIT_SET:
        return value
    split = str(value or "").strip()
    if split not in _SPLIT_SET:
        raise Refused(f"unknown split {split!r}; expected one of {', '.join(SPLITS)}")
    return split


def tag_tuple(value) -> tuple[str, ...]:
    """A row's tags: a ``;``-separated string (or a JSONL list), stripped, empty ones and
    repeats dropped, order kept; None is no tags."""
    if isinstance(value, str):
        tags = dict.fromkeys(map(str.strip, value.split(";")))
    elif value is None:
        return ()
    elif isinstance(value, list):
        tags = dict.fromkeys(str(item).strip() for item in value)
    else:
        raise Refused("'tags' must be a ';'-separated string or a list")
    tags.pop("", None)
    return tuple(tags)


def tag_tuples(texts: list[str]) -> list[tuple[str, ...]]:
    """:func:`tag_tuple` of each of ``texts`` (distinct strings), split in C when none holds
    whitespace, an empty tag or a tag twice (then the tags are the ``;``-separated parts)."""
    if "" in texts:  # no tags
        at = texts.index("")
        results = tag_tuples(texts[:at] + texts[at + 1:])
        results.insert(at, ())
        return results
    joined = ";".join(texts)
    parts = list(map(str.split, texts, repeat(";")))
    if (";;" in joined or joined.startswith(";") or joined.endswith(";") or _WHITESPACE.search(joined)
            or list(map(len, map(set, parts))) != list(map(len, parts))):
        return list(map(tag_tuple, texts))
    return list(map(tuple, parts))


def verified_value(value) -> bool:
    """A row's ``verified`` flag: true/false, 1/0, yes/no in any case, empty or None is false."""
    found = _BOOLS.get(value) if isinstance(value, str) else None
    if found is not None:
        return found
    if isinstance(value, bool):
        return value
    text = "" if value is None else str(value).strip().lower()
    if text in _BOOLS:
        return _BOOLS[text]
    raise Refused(f"'verified' must be true or false, got {value!r}")


def artist_value(value) -> str | None:
    """A row's artist, stripped; None when empty."""
    if value is not None and not (isinstance(value, str) and value and value == value.strip()):
        value = str(value or "").strip() or None
    return value or None
