"""tests/requirements.py's ``needs``: a test whose need is unmet is skipped, but fails under CI=true."""

from __future__ import annotations

import ast
import os
import re
import shlex
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


def make_pytest_commands(target: str) -> list[tuple[dict[str, str], list[str]]]:
    """``(environment assignments, pytest arguments)`` of each pytest command ``make TARGET`` runs
    (read from ``make -n``, so the Makefile itself is what is checked)."""
    printed = subprocess.run(["make", "-n", "-s", target], cwd=TESTS.parent, capture_output=True, text=True,
                             check=True).stdout
    commands = []
    for line in printed.splitlines():
        words = shlex.split(line)
        if "pytest" not in words:
            continue
        env = dict(word.split("=", 1) for word in words[: words.index("-m")] if "=" in word)
        commands.append((env, words[words.index("pytest") + 1:]))
    return commands


def test_make_test_leaves_the_gpu_lane_out_and_make_test_gpu_fails_without_a_device(tmp_path):
    import torch

    for name in ("conftest.py", "requirements.py"):
        shutil.copy(TESTS / name, tmp_path / name)
    (tmp_path / "test_lanes.py").write_text(
        "from requirements import needs_cuda_device\n\n"
        "@needs_cuda_device\n"
        "def test_on_a_gpu():\n    import torch\n    assert torch.cuda.is_available()\n\n"
        "def test_anywhere():\n    pass\n"
    )
    # No lane but test-gpu selects a test marked gpu (ray too or not), and make test still selects
    # an unmarked test: each command's -m expression, evaluated by pytest's own evaluator.
    from _pytest.mark.expression import Expression

    def selects(args: list[str], marks: set[str]) -> bool:
        return Expression.compile(args[args.index("-m") + 1]).evaluate(lambda name, **_: name in marks)

    for target in ("test", "test-all", "test-unit"):
        for _, args in make_pytest_commands(target):
            assert not selects(args, {"gpu"}) and not selects(args, {"gpu", "ray"}), (target, args)
    assert any(selects(args, set()) for _, args in make_pytest_commands("test"))
    (env, args), = make_pytest_commands("test-gpu")
    assert env == {"CI": "true"} and selects(args, {"gpu"}) and not selects(args, set())
    ci = {**{k: v for k, v in os.environ.items() if k != "CI"}, "CI": "true"}
    done = subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", *args], cwd=tmp_path,
                          env={**ci, **env}, capture_output=True, text=True, timeout=120)
    if torch.cuda.is_available():
        assert done.returncode == 0 and re.search(r"\b1 passed, 1 deselected\b", done.stdout), done.stdout
    else:  # without a device the GPU lane fails, naming what it lacks
        assert done.returncode != 0 and re.search(r"\b1 deselected\b.* 1 error\b", done.stdout), done.stdout
        assert "CI=true and this test cannot run: a CUDA device" in done.stdout


def test_every_test_that_uses_cuda_is_in_the_gpu_lane():
    """A test that puts tensors on a CUDA device runs only in ``make test-gpu``: CI has no GPU."""
    outside = []
    for path in sorted(set(TESTS.glob("test_*.py")) - {Path(__file__).resolve()}):  # not this checker
        source = path.read_text()
        for node in ast.walk(ast.parse(source)):
            if isinstance(node, ast.FunctionDef) and node.name.startswith("test_"):
                body = ast.get_source_segment(source, node) or ""
                uses_cuda = ".cuda(" in body or '"cuda"' in body or "'cuda'" in body
                decorators = {ast.unparse(d) for d in node.decorator_list}
                if uses_cuda and "needs_cuda_device" not in decorators:
                    outside.append(f"{path.name}::{node.name}")
    assert not outside, f"tests that need a CUDA device without @needs_cuda_device: {outside}"
