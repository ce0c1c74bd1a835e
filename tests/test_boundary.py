"""The two halves: a core that never imports Ray or MLflow, a cluster layer around it.

Each check runs in a fresh interpreter, so what one test imported cannot hide what another
module pulls in.
"""

import ast
import json
import pkgutil
import subprocess
import sys
from pathlib import Path

import raytag

CORE_PACKAGES = ("raytag.audio", "raytag.data", "raytag.engine", "raytag.methods", "raytag.models", "raytag.objectives",
                 "raytag.scoring", "raytag.verify")
CORE_MODULES = (
    "raytag.audit", "raytag.audit_files", "raytag.calibration", "raytag.config", "raytag.diagnostics", "raytag.errors",
    "raytag.locations", "raytag.metrics",
    "raytag.plan", "raytag.predict.inputs", "raytag.predict.outputs", "raytag.predict.taggrams", "raytag.search_space",
    "raytag.storage", "raytag.threshold_choice", "raytag.thresholds",
)
CLUSTER_PACKAGES = ("raytag.cluster", "raytag.tracking")


def _modules(package: str) -> list[str]:
    """The package and every module below it, sub-packages included."""
    path = Path(raytag.__file__).parent / package.split(".", 1)[1]
    return [package] + [m.name for m in pkgutil.walk_packages([str(path)], prefix=f"{package}.")]


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


def test_the_train_controllers_callback_imports_neither_torch_nor_sklearn():
    """Ray Train runs the metrics callback in its controller, a new process every run: what the
    callback imports is start-up time of every run (torch and sklearn cost seconds on 2 cores)."""
    loaded = _imported_after("import raytag.tracking.callback")
    assert not {m for m in loaded if m.split(".")[0] in ("torch", "torchaudio", "sklearn")}


def test_train_workers_never_open_the_tracking_store():
    """The worker loop reports to Ray Train; MLflow is written on the driver's side only."""
    loaded = _imported_after("import raytag.cluster.training.worker")
    assert "mlflow" not in loaded and "raytag.tracking.client" not in loaded


# --- static structure: import graph, who reads what ---------------------------------------------

ROOT = Path(raytag.__file__).parent


def _module_files() -> dict[str, Path]:
    files = {}
    for path in ROOT.rglob("*.py"):
        parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
        files[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return files


def _runtime_nodes(tree: ast.AST):
    """Every node of ``tree`` except what sits under ``if TYPE_CHECKING:`` (never run)."""
    stack = [tree]
    while stack:
        node = stack.pop()
        yield node
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and getattr(child.test, "id", None) == "TYPE_CHECKING":
                stack.extend(child.orelse)
                continue
            stack.append(child)


def _imports() -> dict[str, set[str]]:
    """raytag module -> the raytag modules it imports, at the top or inside functions."""
    files = _module_files()
    graph = {}
    for name, path in files.items():
        targets = set()
        for node in _runtime_nodes(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                targets.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                for alias in node.names:
                    full = f"{node.module}.{alias.name}"
                    targets.add(full if full in files else node.module)
        graph[name] = {t for t in targets if t in files and t not in ("raytag", name)}
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for target in graph[node]:
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in graph:
        if node not in index:
            visit(node)
    return found


def test_no_import_cycles_among_raytag_modules():
    graph = _imports()
    assert len(graph) > 80 and "raytag.cluster.training.driver" in graph["raytag.cluster.training.pipeline"]  # the walk sees imports
    assert _cycles({"a": {"b"}, "b": {"a"}, "c": {"a"}}) == [["a", "b"]]  # and would see a cycle
    assert _cycles(graph) == []


def test_tracking_imports_nothing_from_the_cluster_layer_and_the_core_nothing_from_either():
    graph = _imports()
    core = [m for p in CORE_PACKAGES for m in _modules(p)] + list(CORE_MODULES)
    for module, targets in graph.items():
        if module.startswith("raytag.tracking"):
            assert not {t for t in targets if t.startswith("raytag.cluster")}, module
        if module in core:
            assert not {t for t in targets if t.startswith(("raytag.cluster", "raytag.tracking"))}, module


def test_only_the_export_module_names_the_exported_model_files():
    """models/export.py is the only reader and writer of an exported model's folder: nobody
    else imports its file names or spells them as a path."""
    private = {"META_FILE", "WEIGHTS_FILE", "THRESHOLDS_KEY", "THRESHOLDS_LABELS_KEY"}
    offenders = []
    for name, path in _module_files().items():
        if name == "raytag.models.export":
            continue
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module == "raytag.models.export":
                offenders += [f"{name} imports {a.name}" for a in node.names if a.name in private]
            if (isinstance(node, ast.Constant) and isinstance(node.value, str)
                    and node.value.rstrip("/").endswith(("model.json", "/model.pt")) and "\n" not in node.value):
                offenders.append(f"{name} spells {node.value!r}")
    assert offenders == []


def test_the_driver_is_split_into_plan_needs_and_fit():
    graph = _imports()
    driver = graph["raytag.cluster.training.driver"]
    assert {"raytag.plan", "raytag.cluster.training.needs", "raytag.cluster.training.trainer"} <= driver
    assert len((ROOT / "cluster" / "training" / "driver.py").read_text().splitlines()) < 250
    loaded = _imported_after("import raytag.plan")
    assert not {m for m in loaded if m.split(".")[0] in ("ray", "mlflow")}


def test_track_scoring_has_one_owner():
    """Logits become probabilities in one place outside the models and losses (the scoring
    owner's per-chunk step), and the statuses are spelled only where they are defined."""
    sigmoid, spelled = [], []
    statuses = {"too short", "silent"}
    for name, path in _module_files().items():
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.Attribute) and node.attr == "sigmoid" and isinstance(node.value, ast.Name) \
                    and node.value.id == "torch" and not name.startswith(("raytag.models", "raytag.objectives")):
                sigmoid.append(name)
            if isinstance(node, ast.Constant) and node.value in statuses and name != "raytag.scoring.status":
                spelled.append(f"{name}: {node.value!r}")
    assert sigmoid == ["raytag.scoring.chunks"]
    assert spelled == []
    assert "raytag.engine.inference" not in _module_files()


def test_gpu_fractions_are_named_once():
    """A GPU share passed to Ray (``num_gpus=``, ``teacher_gpus=``, ...) is a named constant of
    raytag.cluster.inference.actor_pool, never a bare number at the call."""
    bare = []
    for name, path in _module_files().items():
        for node in _runtime_nodes(ast.parse(path.read_text())):
            if not isinstance(node, ast.Call):
                continue
            for keyword in node.keywords:
                if keyword.arg and keyword.arg.endswith("gpus") and any(
                        isinstance(n, ast.Constant) and isinstance(n.value, float) and n.value not in (0.0, 1.0)
                        for n in ast.walk(keyword.value)):
                    bare.append(f"{name}:{node.lineno} {keyword.arg}")
    assert not bare, bare
