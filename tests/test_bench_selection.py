"""bench/bench_selection.py's analysis (issue 25 item 4), Ray-free: the epoch each signal
selects, the Spearman correlation over runs, the verified samples, the report."""

from __future__ import annotations

import json

import numpy as np
import pytest

from bench_modules import load_bench

selection = load_bench("bench_selection")


def _history(noisy, verified, test):
    return [{"epoch": e + 1, "valid/roc_auc": n, **{f"valid_verified{k}/roc_auc": v for k in (100, 200, 400)},
             "test_epoch/roc_auc": t} for e, (n, v, t) in enumerate(zip(noisy, verified, test))]


def test_each_signal_selects_its_first_best_epoch_and_reports_that_epochs_clean_test_score():
    history = _history([0.7, 0.9, 0.9], [0.6, 0.65, 0.8], [0.5, 0.55, 0.6])
    assert selection.selected(history, "valid/roc_auc") == {"epoch": 2, "value": 0.9, "test_roc_auc": 0.55}
    assert selection.selected(history, "valid_verified100/roc_auc") == {"epoch": 3, "value": 0.8,
                                                                        "test_roc_auc": 0.6}


def _run(kind, noisy, verified, test, masking=None):
    result = {"history": _history(noisy, verified, test), "seconds": 10.0, "train_tracks": 5,
              "columns": {"metrics": masking or {}}}
    return selection.summarise_run(kind, 0, result)


def test_spearman_over_runs_and_the_report(tmp_path):
    # Verified selection ranks the runs as their clean test scores do; noisy selection inverts them.
    runs = {f"r{i}": _run("bce", [0.9 - 0.1 * i], [0.5 + 0.1 * i], [0.6 + 0.1 * i]) for i in range(4)}
    runs["m"] = _run("bmasking", [0.95], [0.1], [0.1], {"masking/precision": 0.3, "masking/recall": 0.2,
                                                       "masking/masked_entries": 40.0, "masking/base_rate": 0.1})
    analysis = selection.analyse(runs)
    assert analysis["noisy (all valid rows)"]["spearman"] == pytest.approx(-1.0)
    assert analysis["verified, 100 rows"]["spearman"] == pytest.approx(1.0)
    state = {"protocol": "p", "planned": 6, "runs": runs, "teacher_seconds": {"0": {"in_sample": 10.0, "folds": 5,
                                                                                   "out_of_fold": 45.0}}}
    selection.write_report(state, tmp_path / "s.json", tmp_path / "s.md")
    text = (tmp_path / "s.md").read_text()
    assert "Runs finished: 5 of 6 planned." in text and "4.50× the in-sample teacher" in text
    assert "| m | in-sample | 0 | 40 | 0.300 | 0.200 | 0.100 |" in text
    assert json.loads((tmp_path / "s.json").read_text())["analysis"]["verified, 400 rows"]["runs"] == 5


def test_verified_samples_are_nested_and_seeded():
    class Split:
        table = range(450)

    class Corpus:
        def split(self, name):
            return Split()

    samples = selection.verified_samples(Corpus())
    sizes = {prefix: int(rows.sum()) for prefix, rows in samples.items()}
    assert sizes == {"valid_verified100/": 100, "valid_verified200/": 200, "valid_verified400/": 400}
    assert not (samples["valid_verified100/"] & ~samples["valid_verified200/"]).any()
    again = selection.verified_samples(Corpus())
    assert all(np.array_equal(samples[k], again[k]) for k in samples)
