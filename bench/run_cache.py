"""Benchmark runs as raytag jobs, cached per configuration × seed so a benchmark can resume.

A run is a validated raytag job (the settings a Ray job would take) trained by
:func:`noise_runner.run_job`. Its result is written to ``<out>/runs/<name>.json`` (the test
scores of its selected epoch to ``<name>.npy``) with a key that hashes the job and the runner's
options; a rerun of the benchmark reads every run whose key still matches and trains only the
rest, so an interruption loses one run, not all.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import sys
from pathlib import Path
from typing import Any

import numpy as np

from raytag.config import validate_job
from raytag.engine.state import renumbered_epoch_metrics

from noise_runner import MemoryCorpus, run_job  # bench/noise_runner.py, beside this file

RUNNER_VERSION = 2
"""Part of every run's key: raise it when the runner changes what a run computes."""


def job_tree(name: str, *, seed: int, corpus: Path, model: dict, train: dict, objective: dict | None = None,
             **sections: Any) -> dict:
    """A raw job config for the benchmark runner (validated by :func:`cached_run`).

    Args:
        name: the run's name, e.g. ``bce-s0``.
        seed: the job seed (every draw of the run follows it).
        corpus: the corpus folder (its ``manifest.csv`` and ``clean.csv``).
        model, train, objective: the job's sections.
        **sections: other sections (``data`` keys are merged into the corpus's, ``augment``,
            ``semi``, ``eval``).
    """
    data = {"manifest": str(corpus / "manifest.csv"), "clean_labels": str(corpus / "clean.csv"),
            **sections.pop("data", {})}
    tree = {"name": name, "seed": seed, "data": data, "model": model, "train": train,
            "objective": objective or {"name": "bce"}, "tracking": {"enabled": False},
            "scaling": {"num_workers": 1}, **sections}
    return tree


def run_key(tree: dict, **options: Any) -> str:
    """A hash of a job's settings (not its name) and the runner's options."""
    settings = {k: v for k, v in validate_job(tree).model_dump(mode="json").items() if k != "name"}
    text = json.dumps({"settings": settings, "options": options, "runner": RUNNER_VERSION}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def finite(tree: Any) -> Any:
    """``tree`` with NaN and infinities replaced by None (strict JSON)."""
    if isinstance(tree, float):
        return tree if math.isfinite(tree) else None
    if isinstance(tree, dict):
        return {k: finite(v) for k, v in tree.items()}
    if isinstance(tree, (list, tuple)):
        return [finite(v) for v in tree]
    return tree


def cached_run(out: Path, tree: dict, corpus: MemoryCorpus, *, export: bool = False,
               train_labels: str = "manifest", upstream: tuple[str, ...] = (),
               verified_valid: dict[str, np.ndarray] | None = None) -> dict:
    """The result of the job ``tree``: read from ``<out>/runs`` when its key matches, else
    trained by :func:`noise_runner.run_job` on ``corpus`` and written there.

    Args:
        out: the benchmark's working folder.
        tree: a raw job config (:func:`job_tree`).
        corpus: the job's corpus, in memory.
        export: the run's best epoch must exist as an exported model in
            ``<out>/models/<name>`` (a teacher or a later stage's start); a cached result
            without it is retrained.
        train_labels: ``run_job``'s option (``"clean"``: the oracle reference).
        upstream: the keys of the runs whose exported models this one uses (teachers, earlier
            stages), so that retraining one of them retrains this run too.
        verified_valid: ``run_job``'s extra validation subsets (part of the key).

    Returns:
        The run's JSON result, with ``key`` and ``model`` (the export folder or None).
    """
    job = validate_job(tree)
    runs = Path(out) / "runs"
    runs.mkdir(parents=True, exist_ok=True)
    options = {"train_labels": train_labels, "upstream": list(upstream)}
    if verified_valid:
        options["verified_valid"] = {prefix: np.flatnonzero(rows).tolist() for prefix, rows in verified_valid.items()}
    path, key = runs / f"{job.name}.json", run_key(tree, **options)
    model = Path(out) / "models" / job.name if export else None
    if path.is_file():
        cached = json.loads(path.read_text())
        if cached.get("key") == key and (model is None or (model / "model.json").is_file()):
            return result_numbered_from_1(cached)
    print(f"--- training {job.name}", flush=True)
    result = run_job(job, corpus, train_labels=train_labels, export_to=model, log=log_line,
                     verified_valid=verified_valid)
    np.save(runs / f"{job.name}.npy", result.pop("test_scores"))
    result.pop("test_epoch_scores")
    result = finite({**result, "key": key, "model": None if model is None else str(model), "options": options})
    temporary = path.with_suffix(".json.tmp")
    temporary.write_text(json.dumps(result, indent=1))
    os.replace(temporary, path)
    print(f"--- {job.name}: best epoch {result['best_epoch']}, test ROC-AUC {result['test']['roc_auc']:.4f}, "
          f"PR-AUC {result['test']['pr_auc']:.4f} ({result['seconds'] / 60:.1f} min)", flush=True)
    return result


def result_numbered_from_1(result: dict) -> dict:
    """A run's result with its epochs (``best_epoch``, the history's ``epoch`` and
    ``best_epoch``) numbered from 1: results cached before ``epochs_from`` was recorded
    numbered them from 0 (see :mod:`raytag.engine.state`)."""
    if result.get("epochs_from") == 1:
        return result
    best = result.get("best_epoch")
    return {**result, "best_epoch": None if best is None else best + 1, "epochs_from": 1,
            "history": [renumbered_epoch_metrics(entry) for entry in result.get("history", [])]}


def scratch_results(out: Path) -> Path:
    """``<out>/results``: where the superseded benchmarks (``bench_noise.py pilot|table``,
    ``bench_staged.py``, ``bench_semi.py``) write their reports. Their tables predate the
    evidence benchmark (bench/evidence.py, whose arms and controls replace them) and no longer
    belong in bench/results; the scripts stay for their diagnostics (KD students, stage 2's
    ignored clips, the BCE pilot)."""
    folder = Path(out) / "results"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def log_line(text: str) -> None:
    """The runner's per-epoch progress, on stdout."""
    print(text, file=sys.stdout, flush=True)


MODELS = {
    # Lu et al. trained short-chunk ResNets; Won et al.'s Table 4 has short-chunk ResNet rows
    # (teacher, +DA, +DA+KE, +DA+KD): the tiny preset, 191 k parameters with 10 tags.
    "shortres-tiny": {"name": "shortres-tiny", "args": {"crop_samples": 24000}},
    # The knowledge-distillation student: the same network with half the channels (49 k).
    "shortres-tiny-half": {"name": "shortres-tiny", "args": {"crop_samples": 24000,
                                                             "channels": [8, 8, 16, 16, 16, 16, 32]}},
    # He et al.'s CNN-GRU, tiny preset (96 k parameters with 10 tags): 76 frames of 20 ms = 1.5 s.
    "cnn-gru-tiny": {"name": "cnn-gru-tiny", "args": {"crop_frames": 76}},
}
"""The networks of the benchmarks (1.5 s crops at 16 kHz = the corpora's whole clips)."""


def test_score_rows(out: Path, name: str) -> np.ndarray:
    """The test scores (N, K) of a cached run's selected epoch."""
    return np.load(Path(out) / "runs" / f"{name}.npy")
