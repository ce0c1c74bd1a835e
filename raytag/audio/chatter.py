"""What decoder libraries print: captured around each decode, counted, reported once per kind.

libsndfile's MP3 decoder (libmpg123) writes to the C-level standard error, past Python's
``sys.stderr``: ``part2_3_length (960) too large for available bit count (936)`` after a seek
(the first frame borrows bits from frames that were not read: the pre-roll that raytag decodes
and drops is exactly that frame), ``Xing stream size off by more than 1%`` for a file whose
header length is wrong (e.g. a cut file), ``Illegal Audio-MPEG-Header``/``Giving up resync``
for damaged data. :func:`captured` points file descriptor 2 at a scratch file around a decode
call and hands back the lines, so training and predict logs are not flooded; :func:`record`
counts each kind (the message with its numbers blanked) and logs its first occurrence once per
process; :func:`damage_reason` says whether the lines mean the data is damaged (the decode is
then refused, see :mod:`raytag.audio.decoders`).

Redirecting descriptor 2 affects the whole process for the duration of the call (a few
microseconds to milliseconds); other threads' C-level stderr written in that window is kept in
the count, not lost from the log: it is logged like any captured line.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import tempfile
import threading
from collections import Counter
from collections.abc import Iterator

log = logging.getLogger("raytag")

# libmpg123's notes for data that is not an MPEG audio stream where one should be.
DAMAGE_PATTERNS = ("illegal audio-mpeg-header", "giving up resync", "trying to resync", "skipped ")
_DIGITS = re.compile(r"\b(?:0x[0-9a-f]+|\d+)\b", re.IGNORECASE)
_LOCATION = re.compile(r"^\[[^\]]*\]\s*")
_lock = threading.Lock()
_scratch = None
_counts: Counter[str] = Counter()


def kind_of(line: str) -> str:
    """A message's kind: its text without the source location and with numbers as ``N``."""
    return _DIGITS.sub("N", _LOCATION.sub("", line.strip()))


@contextlib.contextmanager
def captured() -> Iterator[list[str]]:
    """Captures C-level standard error (file descriptor 2) for the ``with`` body; the list it
    yields holds the captured lines once the body has finished."""
    global _scratch
    lines: list[str] = []
    with _lock:
        try:
            if _scratch is None:
                _scratch = tempfile.TemporaryFile()
            saved = os.dup(2)
        except OSError:  # no descriptor 2 (a daemon) or no scratch file: nothing to capture
            yield lines
            return
        os.dup2(_scratch.fileno(), 2)
        try:
            yield lines
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            _scratch.seek(0)
            text = _scratch.read().decode("utf-8", "replace")
            _scratch.seek(0)
            _scratch.truncate()
            lines += [line for line in text.splitlines() if line.strip()]


def record(path: str, lines: list[str]) -> None:
    """Counts ``lines`` by kind; logs the first line of each kind once per process (with
    ``path``), at warning level for damage and debug level for the rest."""
    for line in lines:
        kind = kind_of(line)
        _counts[kind] += 1
        if _counts[kind] == 1:
            level = logging.WARNING if is_damage(line) else logging.DEBUG
            log.log(level, "decoder message (first of its kind; counted from now on): %s: %s", path, line.strip())


def is_damage(line: str) -> bool:
    """Whether a decoder's message says its input is not valid audio data."""
    text = line.lower()
    return any(pattern in text for pattern in DAMAGE_PATTERNS)


def damage_reason(lines: list[str]) -> str | None:
    """The first message in ``lines`` that means damaged data, or None."""
    for line in lines:
        if is_damage(line):
            return _LOCATION.sub("", line.strip())
    return None


def counts() -> dict[str, int]:
    """Captured messages so far in this process, by kind."""
    return dict(_counts)
