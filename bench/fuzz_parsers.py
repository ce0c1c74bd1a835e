"""Long property-based runs over every parser of outside input: the cases tests/test_parsers_*.py
run a few of in CI.

Runs those tests in this process under the ``long`` hypothesis profile (random, ``--examples``
cases per property; see tests/parser_properties.py) and writes, per property, the cases run, how
they ended (parsed, or which of raytag's errors refused them) and every finding: a test that
failed, with hypothesis's minimal failing input and the exception (to be fixed and pinned by a
plain test in tests/test_parsers_regressions.py). Each case runs under hypothesis's deadline and
the hard per-case alarm.

    python bench/fuzz_parsers.py --examples 1000 --out bench/results/fuzz-parsers.txt
"""

from __future__ import annotations

import argparse
import datetime
import os
import sys
import time
from collections import defaultdict
from pathlib import Path

CHECKOUT = Path(__file__).resolve().parents[1]
TEST_FILES = ["test_parsers_manifest.py", "test_parsers_config.py", "test_parsers_labels.py", "test_parsers_corpora.py"]


class Findings:
    """A pytest plugin that keeps each failed test's report."""

    def __init__(self) -> None:
        self.failed: dict[str, str] = {}
        self.passed: list[str] = []

    def pytest_runtest_logreport(self, report) -> None:
        if report.when == "call" and report.failed:
            self.failed[report.nodeid] = report.longreprtext
        elif report.when == "call" and report.passed:
            self.passed.append(report.nodeid)


def summary(text: str, lines: int = 12) -> str:
    """The end of a failure report: the exception and hypothesis's falsifying example."""
    keep = [line for line in text.splitlines() if line.strip()][-lines:]
    return "\n".join("    " + line[:200] for line in keep)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--examples", type=int, default=1500, help="cases per property (default 1500)")
    parser.add_argument("--out", type=Path, help="write the report here too")
    args = parser.parse_args()
    os.environ["HYPOTHESIS_PROFILE"] = "long"
    os.environ["RAYTAG_FUZZ_EXAMPLES"] = str(args.examples)
    sys.path.insert(0, str(CHECKOUT / "tests"))
    import pytest

    findings = Findings()
    started = time.monotonic()
    code = pytest.main(["-q", "-p", "no:cacheprovider", "--tb=short",
                        *(str(CHECKOUT / "tests" / name) for name in TEST_FILES)], plugins=[findings])
    elapsed = time.monotonic() - started
    from parser_properties import CASES, OUTCOMES

    outcomes: dict[str, list[str]] = defaultdict(list)
    for (prop, outcome), count in sorted(OUTCOMES.items()):
        outcomes[prop].append(f"{outcome} {count}")
    lines = [
        f"# bench/fuzz_parsers.py --examples {args.examples}  ({datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC)",
        f"# {sum(CASES.values())} parser calls in {elapsed:.0f} s; profile long (random), deadline 5 s, hard alarm 10 s",
        "",
        "parser calls per property (a case may call several readers of one file), and how they ended:",
    ]
    for prop in sorted(CASES):
        lines.append(f"  {prop:24s} {CASES[prop]:6d}  " + ", ".join(outcomes[prop]))
    lines += ["", f"tests passed: {len(findings.passed)}, failed (findings): {len(findings.failed)}"]
    for nodeid, text in findings.failed.items():
        lines += [f"FINDING {nodeid}", summary(text)]
    report = "\n".join(lines) + "\n"
    print(report)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(report)
    return int(code)


if __name__ == "__main__":
    sys.exit(main())
