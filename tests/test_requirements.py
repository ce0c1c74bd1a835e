"""tests/requirements.py's ``needs``: a test whose need is unmet is skipped, but fails under CI=true."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

TESTS = Path(__file__).resolve().parent


def run_pytest(folder: Path, ci: str | None) -> tuple[int, str]:
    env = {k: v for k, v in os.environ.items() if k != "CI"}
    if ci is not None:
        env["CI"] = ci
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(folder)],
                          cwd=folder, env=env, capture_output=True, text=True, timeout=120)
    return done.returncode, done.stdout


def test_an_unmet_need_skips_locally_and_fails_under_ci(tmp_path):
    for name in ("conftest.py", "requirements.py"):
        shutil.copy(TESTS / name, tmp_path / name)
    (tmp_path / "test_needy.py").write_text(
        "from requirements import needs\n\n"
        "@needs(False, 'the thing is not there')\n"
        "def test_needs_a_thing():\n    pass\n\n"
        "@needs(True, 'there')\n"
        "def test_has_it():\n    pass\n"
    )
    for ci in (None, "false"):
        code, out = run_pytest(tmp_path, ci)
        assert code == 0 and "1 passed, 1 skipped" in out
    code, out = run_pytest(tmp_path, "true")
    # Failed in setup: pytest counts it as an error; the run fails either way.
    assert code != 0 and "1 passed, 1 error" in out
    assert "CI=true and this test cannot run: the thing is not there" in out
