"""What the property-based tests of raytag's parsers of outside input share (tests/test_parsers_*.py).

The property: a parser given any input either returns or raises raytag's own
:class:`~raytag.errors.InputError` whose message names the problem's place (the file, or the
key); never another exception, never a hang. Each case runs under hypothesis's deadline and
a hard per-case alarm (:func:`time_bound`, SIGALRM), which also stops a parser stuck in C code
that returns to the interpreter.

Profiles (``HYPOTHESIS_PROFILE``): ``ci`` (the default: derandomized, :data:`CI_EXAMPLES` cases
per property, what the CI lane runs) and ``long`` (random, :data:`LONG_EXAMPLES` cases per
property, or ``RAYTAG_FUZZ_EXAMPLES``; ``bench/fuzz_parsers.py`` runs it). :data:`CASES` counts the cases each property ran,
for the bench's report.

Byte-level damage shared by every file strategy: :func:`damaged` cuts, overwrites, inserts or
deletes bytes of a well-formed file, so the inputs are near the real formats, not only noise.
"""

from __future__ import annotations

import contextlib
import faulthandler
import os
import signal
import time
from collections import Counter
from collections.abc import Callable, Iterable
from datetime import timedelta

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

from raytag.errors import InputError

CI_EXAMPLES = 40
LONG_EXAMPLES = int(os.environ.get("RAYTAG_FUZZ_EXAMPLES", "1500"))
HARD_LIMIT_S = 10.0
"""Wall-clock seconds one case may take before the alarm fails it (hypothesis's deadline,
2 s in CI, reports slow cases first; this stops a real hang)."""

_COMMON = dict(suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                      HealthCheck.data_too_large, HealthCheck.large_base_example],
               database=None, print_blob=True)
settings.register_profile("ci", max_examples=CI_EXAMPLES, derandomize=True, deadline=timedelta(seconds=2), **_COMMON)
settings.register_profile("long", max_examples=LONG_EXAMPLES, deadline=timedelta(seconds=5), **_COMMON)
PROFILE_NAME = os.environ.get("HYPOTHESIS_PROFILE", "ci")
PROFILE = settings.get_profile(PROFILE_NAME)

CASES: Counter[str] = Counter()
"""Cases run per property (its test's name): what ``bench/fuzz_parsers.py`` reports."""
OUTCOMES: Counter[tuple[str, str]] = Counter()
"""(property, ``parsed`` or the refusing error's class name) counts."""


class CaseTimeout(Exception):
    """A case ran past :data:`HARD_LIMIT_S`: a hang, a finding."""


@contextlib.contextmanager
def time_bound(seconds: float = HARD_LIMIT_S):
    """Raises :class:`CaseTimeout` in the body once ``seconds`` of wall-clock time have passed.

    A body stuck in C code that never returns to the interpreter (a loop in a compiled
    extension) cannot take the exception: at ``2 * seconds`` a watchdog thread of
    :mod:`faulthandler` prints every thread's traceback and ends the process, so the run fails
    instead of hanging. A timer set before (pytest-timeout's) is restored with the time it had left.
    """
    def expire(signum, frame):
        raise CaseTimeout(f"the case ran past {seconds:g} s")

    started = time.monotonic()
    previous = signal.signal(signal.SIGALRM, expire)
    outer_delay, _ = signal.setitimer(signal.ITIMER_REAL, seconds)
    faulthandler.dump_traceback_later(2 * seconds, exit=True)
    try:
        yield
    finally:
        faulthandler.cancel_dump_traceback_later()
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
        if outer_delay:
            signal.setitimer(signal.ITIMER_REAL, max(outer_delay - (time.monotonic() - started), 0.001))


def parses_or_refuses(prop: str, call: Callable[[], object], names: Iterable[str]) -> object:
    """Runs ``call()`` under :func:`time_bound`; returns its value, or the :class:`InputError`
    it raised after checking that the message is one plain text naming one of ``names`` (a
    file's path, a key). Any other exception propagates: that is a finding.

    Args:
        prop: the property's name, for :data:`CASES`.
        call: the parser call.
        names: what the message must name (at least one of them).
    """
    CASES[prop] += 1
    with time_bound():
        try:
            value = call()
        except InputError as exc:
            message = str(exc)
            wanted = [n for n in names if n]
            assert message.strip(), f"{type(exc).__name__} with an empty message"
            assert any(n in message or repr(n) in message for n in wanted), (
                f"{type(exc).__name__} names none of {wanted}: {message}")
            OUTCOMES[(prop, type(exc).__name__)] += 1
            return exc
    OUTCOMES[(prop, "parsed")] += 1
    return value


# Text that parsers meet in real files and in damaged ones.
ODD_TEXT = st.sampled_from([
    "", " ", "\t", "\n", "\r\n", "\r", '"', '""', "'", ",", ";", ";;", "\x00", "\ufeff", "\u2028", "\x85",
    "é", "日本語", "🎵", "a" * 300, "-", "---", "~", "..", "../x", "/", "//", "\\", "nan", "inf", "-0", "1e999",
    "true", "True", "yes", "null", "None", "{", "[", "]", "&a", "*a", "!!python/object:os.system", "#", "%",
])


def odd_text(max_size: int = 20) -> st.SearchStrategy[str]:
    """Short strings of any Unicode text (no surrogates: they cannot be in UTF-8 files) or
    the odd values above."""
    return st.one_of(ODD_TEXT, st.text(max_size=max_size), st.text(alphabet=st.characters(max_codepoint=127),
                                                                   max_size=max_size))


@st.composite
def damaged(draw, data: bytes) -> bytes:
    """``data`` with up to 3 byte-level edits: a cut, an overwrite, an insertion, a deletion;
    often none (the well-formed file is a case too)."""
    for _ in range(draw(st.one_of(st.just(0), st.integers(0, 3)))):
        kind = draw(st.sampled_from(["none", "cut", "overwrite", "insert", "delete"]))
        at = draw(st.integers(0, len(data)))
        if kind == "cut":
            data = data[:at]
        elif kind == "overwrite":
            chunk = draw(st.binary(min_size=1, max_size=8))
            data = data[:at] + chunk + data[at + len(chunk):]
        elif kind == "insert":
            data = data[:at] + draw(st.one_of(st.binary(max_size=8), ODD_TEXT.map(lambda s: s.encode()))) + data[at:]
        elif kind == "delete":
            data = data[:at] + data[at + draw(st.integers(1, 8)):]
    return data


def edit_columns(draw, columns: list[str], edit: str) -> list[str]:
    """``columns`` with one header edit applied in place: ``drop`` one, ``repeat`` one, add an
    ``unknown`` (odd) name; any other ``edit`` leaves them."""
    if edit == "drop":
        columns.pop(draw(st.integers(0, len(columns) - 1)))
    elif edit == "repeat":
        columns.append(draw(st.sampled_from(columns)))
    elif edit == "unknown":
        columns.append(draw(odd_text()))
    return columns
