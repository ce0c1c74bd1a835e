"""Tables that fit a console's width: a table too wide for it is stacked into several, each
repeating the first (key) columns, instead of dropping, cropping or squeezing columns until
their headers wrap mid-word.

Widths are counted in characters. A ``rich`` table with ``box.SIMPLE_HEAD`` and one space of
padding either side of every cell is ``sum(width + 3 for each column) + 1`` characters wide.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Collection, Sequence
from dataclasses import dataclass

DEFAULT_WIDTH = 80  # output that is not a terminal, without COLUMNS
TEXT_CAP = 24  # widest a wrapping text column is made (longer cells wrap at spaces)
KEY_CAP = 32  # widest the key column is made (run, tag or param names)
CELL_OVERHEAD = 3  # padding either side and the column separator
TABLE_OVERHEAD = 1


def console_width(stream=None) -> int:
    """The width to print tables at: the terminal's (``None`` lets ``rich`` find it, which also
    honours ``COLUMNS``) when ``stream`` (default stdout) is a terminal; otherwise ``COLUMNS``
    when it is a positive whole number, else :data:`DEFAULT_WIDTH` (80)."""
    stream = stream or sys.stdout
    columns = os.environ.get("COLUMNS", "")
    if columns.isdigit() and int(columns) > 0:
        return int(columns)
    if stream.isatty():
        return os.get_terminal_size(stream.fileno()).columns
    return DEFAULT_WIDTH


@dataclass(frozen=True)
class Column:
    """A column's header, its width in characters and whether it is right-aligned (numbers)."""

    header: str
    width: int
    right: bool


def columns_of(header: Sequence[str], rows: Sequence[Sequence[str]], *, right: Collection[int] = (),
               whole: Collection[int] = (), keys: int = 1) -> list[Column]:
    """Column widths: never narrower than the longest word of the header (so a header wraps
    only between words); whole columns (``whole``, right-aligned ``right`` ones: numbers, ids)
    as wide as their longest cell; text columns up to :data:`TEXT_CAP` (:data:`KEY_CAP` for the
    first ``keys`` columns), their longer cells wrapping at spaces."""
    out = []
    for index, name in enumerate(header):
        word = max((len(part) for part in name.split()), default=1)
        longest = max((len(str(row[index])) for row in rows), default=0)
        keep = index in whole or index in right
        cap = KEY_CAP if index < keys else TEXT_CAP
        width = max(word, longest if keep else min(longest, cap), 1)
        out.append(Column(name, width, index in right))
    return out


def table_width(columns: Sequence[Column]) -> int:
    """Characters a ``box.SIMPLE_HEAD`` table of ``columns`` takes."""
    return sum(column.width + CELL_OVERHEAD for column in columns) + TABLE_OVERHEAD


def stack_columns(columns: Sequence[Column], width: int, keys: int = 1) -> list[list[int]]:
    """Indices of the columns of each stacked table: all of them when they fit ``width``, else
    groups in order, each starting with the first ``keys`` columns and filled while it fits (a
    column wider than the room left gets a table of its own with the keys)."""
    everything = list(range(len(columns)))
    if table_width(columns) <= width or len(columns) <= keys:
        return [everything]
    groups: list[list[int]] = []
    current = list(range(keys))
    for index in everything[keys:]:
        if len(current) > keys and table_width([columns[i] for i in current + [index]]) > width:
            groups.append(current)
            current = list(range(keys))
        current.append(index)
    groups.append(current)
    return groups


def fitted_tables(header: Sequence[str], rows: Sequence[Sequence[str]], *, width: int, title: str | None = None,
                  caption: str | None = None, right: Collection[int] = (), whole: Collection[int] = (),
                  keys: int = 1) -> list:
    """``rich`` renderables: the title as its own (wrapping) line, then one table, or several
    stacked ones that each fit ``width`` and repeat the first ``keys`` columns, then the caption.

    Args:
        header, rows: the table, cells as strings.
        width: the console's width in characters.
        title, caption: lines above and below, wrapped at spaces, never cut.
        right: indices of right-aligned columns (numbers), never wrapped.
        whole: indices of other columns never wrapped (ids).
        keys: how many leading columns every stacked table repeats.
    """
    from rich import box
    from rich.table import Table
    from rich.text import Text

    columns = columns_of(header, rows, right=right, whole=whole, keys=keys)
    out: list = [Text(title, style="bold")] if title else []
    for group in stack_columns(columns, width, keys):
        table = Table(header_style="bold", box=box.SIMPLE_HEAD)
        for index in group:
            column = columns[index]
            table.add_column(Text(column.header), width=column.width, justify="right" if column.right else "left",
                             overflow="fold")
        for row in rows:
            table.add_row(*(Text(str(row[index])) for index in group))
        out.append(table)
    if caption:
        out.append(Text(caption))
    return out
