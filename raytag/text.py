"""Small wording helpers for messages people read."""

from __future__ import annotations


def plural(count: int, noun: str, plural_noun: str | None = None) -> str:
    """``count`` and ``noun``, the noun in the plural unless the count is one.

    >>> plural(1, "track"), plural(2, "track"), plural(0, "file"), plural(3, "tag", "tags")
    ('1 track', '2 tracks', '0 files', '3 tags')

    Args:
        count: how many (printed with thousands separators).
        noun: the singular noun.
        plural_noun: the plural when it is not ``noun + "s"``.
    """
    return f"{count:,} {noun if count == 1 else plural_noun or noun + 's'}"
