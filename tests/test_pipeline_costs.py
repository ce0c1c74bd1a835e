"""What the per-epoch training pipeline costs its decode tasks (issue 27).

Every epoch, every rank builds Ray Data pipelines whose decode tasks run in Ray's task
processes; Ray ends a task process that sits idle for a second, so each phase of each epoch
starts new ones. Whatever a decode task's process imports is paid again and again: torch costs
seconds of CPU per process on 2 cores, and importing it there cut training clips/s by 1.6x.
Each check runs in a fresh interpreter, as a new task process does.
"""

import json
import pickle
import subprocess
import sys

import cloudpickle

HEAVY = ("torch", "torchaudio", "sklearn", "mlflow")


def _imported_after(code: str, stdin: bytes = b"") -> set[str]:
    probe = f"import sys, json\n{code}\nprint(json.dumps(sorted(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", probe], input=stdin, capture_output=True, check=True).stdout
    return set(json.loads(out.decode().strip().splitlines()[-1]))


def _heavy(modules: set[str]) -> set[str]:
    return {m for m in modules if m.split(".")[0] in HEAVY}


def test_the_decode_stage_unpickles_without_torch():
    """A decode task's process unpickles the stage's callable (by reference to its module) and
    runs it: that must not import torch."""
    from raytag.cluster.data.datasets import _Decode

    payload = cloudpickle.dumps(_Decode(16000, 48000))
    loaded = _imported_after("import pickle\nstage = pickle.loads(sys.stdin.buffer.read())\n"
                             "assert stage.crop_samples == 48000", stdin=payload)
    assert "raytag.cluster.data.datasets" in loaded  # the probe did load the stage's module
    assert not _heavy(loaded)


def test_the_task_streams_decode_function_unpickles_without_torch():
    """The training and evaluation streams' decode tasks (plain Ray tasks) run
    ``task_stream._decode_block``: its module must not import torch either."""
    from raytag.cluster.data.task_stream import _decode_block

    payload = cloudpickle.dumps(_decode_block)
    loaded = _imported_after("import pickle\nfunction = pickle.loads(sys.stdin.buffer.read())\n"
                             "assert function.__name__ == '_decode_block'", stdin=payload)
    assert "raytag.cluster.data.task_stream" in loaded
    assert not _heavy(loaded)


def test_the_header_scan_and_row_plans_import_without_torch():
    loaded = _imported_after("import raytag.data.batches, raytag.data.rows, raytag.cluster.data.datasets, "
                             "raytag.cluster.data.task_stream")
    assert not _heavy(loaded)

