"""bench/readme_results.py: the README's result tables are what bench/results/ says (the check
runs as the command a person runs), a stale block is named, and writing fixes it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from bench_modules import load_bench

ROOT = Path(__file__).resolve().parents[1]
readme_results = load_bench("readme_results")


def test_the_readme_tables_match_bench_results():
    done = subprocess.run([sys.executable, str(ROOT / "bench" / "readme_results.py"), "--check"],
                          capture_output=True, text=True, cwd=ROOT)
    assert done.returncode == 0, done.stderr


def test_a_stale_block_fails_the_check_and_writing_fixes_it(tmp_path):
    readme = tmp_path / "README.md"
    text = (ROOT / "README.md").read_text()
    stale = text.replace("| Balanced-Training | 0.853 |", "| Balanced-Training | 0.999 |")
    assert stale != text
    readme.write_text(stale)
    assert readme_results.main(["--check", "--readme", str(readme)]) == 1
    assert readme_results.stale_blocks(stale, text) == ["noise-lu-old"]
    assert readme_results.main(["--readme", str(readme)]) == 0
    assert readme.read_text() == text
    assert readme_results.main(["--check", "--readme", str(readme)]) == 0


def test_a_readme_without_the_markers_is_refused(tmp_path):
    readme = tmp_path / "README.md"
    readme.write_text("# no markers\n")
    assert readme_results.main(["--check", "--readme", str(readme)]) == 2
    with pytest.raises(readme_results.ReadmeError, match="readme_results:evidence"):
        readme_results.render("nothing")
