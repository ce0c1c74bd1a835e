"""The markdown and JSON results of the training benchmarks, from their cached runs.

Each table script collects ``config -> seed -> run result`` (:func:`run_cache.cached_run`) and
hands it here: :func:`difference_section` compares every configuration with a baseline, seed by
seed; :func:`memorisation_section` and :func:`masking_section` explain the numbers with the clean
labels; :func:`write_results` writes ``<stem>.json`` (every run, without test scores) and
``<stem>.md``.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from bench_stats import markdown_table, mean_sd, paired_difference

Results = Mapping[str, Mapping[int, dict]]
METRICS = {"roc_auc": "ROC-AUC", "pr_auc": "PR-AUC", "lwlrap": "lwlrap"}


def _values(runs: Mapping[int, dict], part: str, metric: str) -> dict[int, float]:
    return {seed: run[part][metric] for seed, run in runs.items() if run[part].get(metric) is not None}


def difference_section(results: Results, *, baseline: str, labels: Mapping[str, str] | None = None,
                       part: str = "test", heading: str | None = None) -> str:
    """A table of every configuration's metrics (mean ± sd over seeds) and its paired difference
    to ``baseline`` (mean [95 % t-interval]), then the per-seed ROC-AUC differences.

    Args:
        results: configuration -> seed -> run result.
        baseline: the configuration every other is compared with.
        labels: display names of configurations (default: their keys).
        part: ``"test"`` (the selected epoch) or ``"test_last"`` (the last epochs' mean).
        heading: the section's heading.
    """
    labels = labels or {}
    base = results[baseline]
    header = ["configuration"]
    for name in METRICS.values():
        header += [name, f"Δ {name} vs {labels.get(baseline, baseline)} [95 % CI]"]
    header.append("Δ ROC-AUC per seed")
    rows = []
    for config, runs in results.items():
        row = [labels.get(config, config)]
        for metric in METRICS:
            row.append(mean_sd(list(_values(runs, part, metric).values())))
            if config == baseline:
                row.append("—")
            else:
                row.append(paired_difference(_values(runs, part, metric), _values(base, part, metric)).format())
        if config == baseline:
            row.append("—")
        else:
            diff = paired_difference(_values(runs, part, "roc_auc"), _values(base, part, "roc_auc"))
            row.append(", ".join(f"s{s}: {d:+.4f}" for s, d in zip(diff.seeds, diff.differences)))
        rows.append(row)
    text = markdown_table(header, rows)
    if part == "test":
        epochs = [f"{labels.get(c, c)} {np.mean([r['best_epoch'] for r in runs.values()]):.1f}"
                  for c, runs in results.items()]
        se = [r["test"].get("roc_auc_se") for r in base.values() if r["test"].get("roc_auc_se") is not None]
        text += ("\n\nSelected epoch (numbered from 1, mean over seeds): " + "; ".join(epochs) + ".")
        if se:
            text += (f"\n\nStandard error of one run's test macro ROC-AUC (bootstrap over the test clips, "
                     f"1000 resamples), {labels.get(baseline, baseline)}: {np.mean(se):.4f} (mean over seeds). "
                     "Paired differences share the test clips, so their spread over seeds is the yardstick "
                     "for effects; a single run's ± is this standard error.")
    return (f"## {heading}\n\n" if heading else "") + text


def memorisation_section(results: Results, *, labels: Mapping[str, str] | None = None) -> str:
    """How far each configuration's selected and last epochs follow the wrong training labels."""
    labels = labels or {}
    header = ["configuration", "epoch", "train ROC-AUC vs noisy labels", "train ROC-AUC vs clean labels",
              "missing tags fitted (score < 0.5)", "spurious tags fitted (score > 0.5)"]
    rows = []
    for config, runs in results.items():
        for which in ("best", "last"):
            cells = [labels.get(config, config), "selected" if which == "best" else "last"]
            for key in ("fit_noisy_roc_auc", "fit_clean_roc_auc", "missing_fitted", "spurious_fitted"):
                cells.append(mean_sd([r["memorised"][which][key] for r in runs.values()], digits=3))
            rows.append(cells)
    return ("## Do the models memorise the wrong labels?\n\nOn the training clips, with the clean labels "
            "known: the fit of the selected and of the last epoch to the noisy labels they were trained on and "
            "to the truth, and the share of wrong labels the model reproduces (a missing tag is a source that "
            "sounds but is not labelled; a spurious tag is labelled but absent). Mean ± sd over seeds.\n\n"
            + markdown_table(header, rows))


def masking_section(runs: Mapping[int, dict], *, name: str) -> str:
    """Balanced-Masking's masked entries against the truly missing tags, per tag, summed over seeds."""
    totals: dict[str, dict[str, float]] = {}
    for run in runs.values():
        for row in run["columns"]["tables"]["masking/diagnostics.csv"]:
            total = totals.setdefault(row["tag"], {"negatives": 0, "missing": 0, "masked": 0, "caught": 0})
            for key in total:
                total[key] += row[key]

    def ratio(a: float, b: float) -> str:
        return f"{a / b:.3f}" if b else "n/a"

    rows = [[tag, str(int(t["negatives"])), str(int(t["missing"])), str(int(t["masked"])), ratio(t["caught"], t["masked"]),
             ratio(t["caught"], t["missing"]), ratio(t["missing"], t["negatives"])] for tag, t in totals.items()]
    header = ["tag", "labelled negatives", "truly missing", "masked", "precision", "recall",
              "base rate (precision of random masking)"]
    return (f"## {name}: which labelled negatives does the stage-1 teacher mask?\n\nCounts summed over seeds "
            "(training clips × seeds). Precision: masked entries that are truly missing tags; recall: missing "
            "tags that were masked; base rate: missing tags among labelled negatives.\n\n"
            + markdown_table(header, rows))


def compact(tree, digits: int = 6):
    """Floats rounded to ``digits`` significant digits, for smaller committed JSON."""
    if isinstance(tree, float):
        return float(f"{tree:.{digits}g}") if math.isfinite(tree) else None
    if isinstance(tree, dict):
        return {k: compact(v, digits) for k, v in tree.items()}
    if isinstance(tree, (list, tuple)):
        return [compact(v, digits) for v in tree]
    return tree


def write_results(folder: Path, stem: str, results: Results, sections: Sequence[str], *, title: str,
                  preamble: str = "") -> str:
    """Writes ``<stem>.json`` (every run's result) and ``<stem>.md`` (title, preamble, sections);
    returns the markdown, which is also printed."""
    folder.mkdir(parents=True, exist_ok=True)
    runs = {config: {str(seed): run for seed, run in by_seed.items()} for config, by_seed in results.items()}
    (folder / f"{stem}.json").write_text(json.dumps(compact(runs), separators=(",", ":")) + "\n")
    text = f"# {title}\n\n" + (f"{preamble}\n\n" if preamble else "") + "\n\n".join(sections) + "\n"
    (folder / f"{stem}.md").write_text(text)
    print(text, flush=True)
    return text
