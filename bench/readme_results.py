"""Writes the README's result tables from bench/results/, between markers; ``--check`` fails when
the README differs from what the results say.

    python bench/readme_results.py            # rewrite the blocks in README.md
    python bench/readme_results.py --check    # exit 1 (naming the blocks) when README.md is stale

Each block sits between ``<!-- readme_results:NAME begin -->`` and
``<!-- readme_results:NAME end -->``; the text between is generated, the text around is not:

- ``evidence``: bench/results/evidence.json (bench/evidence.py), every arm against BCE, with the
  seeds each has and its verdict;
- ``noise-lu-old``: bench/results/noise-lu.json, the older 1.5 s-clip run of Lu et al.'s
  protocol (kept, marked old: issue 25's selection measurements cite it).
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np

from bench_stats import paired_difference  # bench/bench_stats.py, beside this file
from evidence_report import BASELINE, arm_verdicts, summary_lines
from bench_stats import markdown_table

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"


class ReadmeError(Exception):
    """A README without a block's markers, or with them out of order."""


def _interval(v) -> str:
    t = v.test
    return f"{t.mean:+.3f} [{t.low:+.3f}, {t.high:+.3f}]" if t.n >= 2 else f"{t.mean:+.3f}"


def evidence_block(results: Path) -> str:
    path = results / "evidence.json"
    if not path.is_file():
        return "No evidence run has finished yet (`bench/evidence.py`)."
    data = json.loads(path.read_text())
    roc, pr = arm_verdicts(data, "roc_auc"), arm_verdicts(data, "pr_auc")
    arms = data["arms"]
    base = [e["roc_auc"] for e in arms.get(BASELINE, {}).get("seeds", [])]
    rows = [[arms[BASELINE]["label"], str(len(base)), f"{np.mean(base):.3f}" if base else "–", "—", "—", "", ""]]
    for name, entry in arms.items():
        if name == BASELINE or entry.get("skipped"):
            continue
        values = [e["roc_auc"] for e in entry["seeds"]]
        if name not in roc:
            rows.append([entry["label"], str(len(values)), "–", "–", "–", "", ""])
            continue
        rows.append([entry["label"], str(len(values)), f"{np.mean(values):.3f}", _interval(roc[name]),
                     _interval(pr[name]) if name in pr else "–", roc[name].verdict,
                     pr[name].verdict if name in pr else ""])
    skipped = [f"{e['label']} ({e['skipped']})" for e in arms.values() if e.get("skipped")]
    header = ["arm", "seeds", "ROC-AUC", "Δ ROC-AUC vs BCE [95 %]", "Δ PR-AUC vs BCE [95 %]", "verdict (ROC-AUC)",
              "verdict (PR-AUC)"]
    return "\n".join([*summary_lines(data), "", markdown_table(header, rows), "",
                      "Not run yet: " + "; ".join(skipped) + "." if skipped else ""]).rstrip()


def noise_lu_block(results: Path) -> str:
    path = results / "noise-lu.json"
    if not path.is_file():
        return "(bench/results/noise-lu.json is gone.)"
    runs = json.loads(path.read_text())
    labels = {"bce": "BCE", "btrain": "Balanced-Training", "bmasking": "Balanced-Masking",
              "bmasking_mt": "Balanced-Masking + mean teacher"}

    def metric(method: str, key: str) -> dict[int, float]:
        return {int(s): r["test_last"][key] for s, r in runs[method].items()}

    rows = []
    for method, label in labels.items():
        if method not in runs:
            continue
        mean = f"{np.mean(list(metric(method, 'roc_auc').values())):.3f}"
        if method == "bce":
            rows.append([label, mean, "—", "—"])
            continue
        roc = paired_difference(metric(method, "roc_auc"), metric("bce", "roc_auc")).format(3)
        pr = paired_difference(metric(method, "pr_auc"), metric("bce", "pr_auc")).format(3)
        rows.append([label, mean, roc, pr])
    return markdown_table(["method", "ROC-AUC", "Δ ROC-AUC vs BCE", "Δ PR-AUC vs BCE"], rows)


BLOCKS: dict[str, Callable[[Path], str]] = {"evidence": evidence_block, "noise-lu-old": noise_lu_block}


def render(readme: str, results: Path = RESULTS) -> str:
    """``readme`` with every block's text regenerated from ``results``."""
    for name, make in BLOCKS.items():
        begin, end = f"<!-- readme_results:{name} begin -->", f"<!-- readme_results:{name} end -->"
        pattern = re.compile(re.escape(begin) + r"\n.*?" + re.escape(end), re.S)
        if len(pattern.findall(readme)) != 1:
            raise ReadmeError(f"README.md needs exactly one {begin} … {end} pair")
        readme = pattern.sub(lambda _: f"{begin}\n{make(results)}\n{end}", readme)
    return readme


def stale_blocks(old: str, new: str) -> list[str]:
    """The names of the blocks whose text differs between two READMEs."""
    def block(text: str, name: str) -> str:
        match = re.search(rf"<!-- readme_results:{re.escape(name)} begin -->\n(.*?)<!-- readme_results:", text, re.S)
        return match.group(1) if match else ""

    return [name for name in BLOCKS if block(old, name) != block(new, name)]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 when README.md differs from the results")
    parser.add_argument("--readme", type=Path, default=ROOT / "README.md")
    parser.add_argument("--results", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    old = args.readme.read_text()
    try:
        new = render(old, args.results)
    except ReadmeError as exc:
        print(exc, file=sys.stderr)
        return 2
    if args.check:
        if new != old:
            print(f"{args.readme}: the result tables are stale ({', '.join(stale_blocks(old, new))}); run "
                  "python bench/readme_results.py", file=sys.stderr)
            return 1
        return 0
    if new != old:
        args.readme.write_text(new)
    return 0


if __name__ == "__main__":
    sys.exit(main())
