"""The two halves: a core that never imports Ray or MLflow, a cluster layer around it.

Each check runs in a fresh interpreter, so what one test imported cannot hide what another
module pulls in.
"""

import json
import pkgutil
import subprocess
import sys
from pathlib import Path

import raytag

CORE_PACKAGES = ("raytag.audio", "raytag.data", "raytag.engine", "raytag.methods", "raytag.models", "raytag.objectives")
CORE_MODULES = (
    "raytag.audit", "raytag.config", "raytag.diagnostics", "raytag.errors", "raytag.locations", "raytag.metrics",
    "raytag.predictions", "raytag.search_space", "raytag.thresholds",
)
CLUSTER_PACKAGES = ("raytag.cluster", "raytag.tracking")


def _modules(package: str) -> list[str]:
    path = Path(raytag.__file__).parent / package.split(".", 1)[1]
    return [package] + [f"{package}.{m.name}" for m in pkgutil.iter_modules([str(path)])]


def _imported_after(code: str) -> set[str]:
    probe = f"import sys, json\n{code}\nprint(json.dumps(sorted(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout
    return set(json.loads(out.strip().splitlines()[-1]))


def test_every_core_module_imports_without_ray_or_mlflow():
    core = [m for p in CORE_PACKAGES for m in _modules(p)] + list(CORE_MODULES)
    assert len(core) > 30  # the walk found the modules
    loaded = _imported_after("\n".join(f"import {m}" for m in core))
    assert not {m for m in loaded if m.split(".")[0] in ("ray", "mlflow")}


def test_the_cluster_layer_is_where_ray_lives():
    loaded = _imported_after("\n".join(f"import {m}" for p in CLUSTER_PACKAGES for m in _modules(p)))
    assert "ray.train" in loaded and "ray.data" in loaded


def test_loading_and_validating_a_job_does_not_import_torch(tmp_path):
    job = tmp_path / "job.yaml"
    job.write_text(
        "name: j\ndata: {manifest: m.csv}\nmodel: {name: mtt-tiny, args: {width: 16}}\n"
        "objective: {name: balanced_masking}\naugment: {enabled: true, params: {pitch_p: 0.1}}\n"
        "stages:\n  - name: a\n  - name: b\n    teacher: a\n    overrides: {objective: {name: balanced_masking}}\n"
    )
    loaded = _imported_after(f"from raytag.config import load_job\nload_job({str(job)!r}).augment.spec()")
    assert not {m for m in loaded if m.split(".")[0] in ("torch", "torchaudio", "ray", "mlflow", "numpy")}


def test_train_workers_never_open_the_tracking_store():
    """The worker loop reports to Ray Train; MLflow is written on the driver's side only."""
    loaded = _imported_after("import raytag.cluster.worker")
    assert "mlflow" not in loaded and "raytag.tracking.client" not in loaded
