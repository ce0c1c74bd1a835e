"""Integration: bench/evidence_sweep.py's `raytag sweep` of the masking stage on a tiny development
corpus (local Ray, Tune, MLflow): both signals read back from the Tune trial folders, each trial
ranked on its verified rows and on its noisy rows, and the arms of bench/evidence.py take the
verified winner from the file it writes."""

from __future__ import annotations

import json

import pytest

from bench_modules import load_bench

pytestmark = [pytest.mark.ray, pytest.mark.slow]  # 2-3 min on 2 cores; tests/test_tune_ray.py sweeps a pipeline stage in CI


def test_a_tiny_sweep_chooses_on_verified_rows_and_the_arms_take_its_choice(ray_session, tmp_path):
    corpora, sweep, evidence = load_bench("evidence_corpus"), load_bench("evidence_sweep"), load_bench("evidence")
    sizes = corpora.Sizes(train=24, valid=12, test=4, unlabeled=0, verified_valid=6, verified_train_fraction=0.25)
    space = tmp_path / "space.yaml"
    space.write_text("stage: student\nparams:\n  objective.percentile: {grid: [70, 90]}\n"
                     "  objective.mean_teacher.beta_max: {grid: [0.4]}\n")

    summary = sweep.run_sweep(tmp_path / "out", "in_sample", epochs=2, sizes=sizes, seconds=4.0, space=space)

    trials = summary["trials"]
    assert sorted(t["config"][sweep.PERCENTILE] for t in trials) == [70, 90] and all(t["epochs"] == 2 for t in trials)
    assert all(0 <= t["verified"] <= 1 and 0 <= t["noisy"] <= 1 for t in trials)
    chosen = summary["chosen"]["verified"]
    assert chosen["value"] == max(t["verified"] for t in trials) and chosen["beta_max"] == 0.4
    assert chosen["window_fraction"] == sweep.paper_choice().window_fraction  # not swept: the papers'
    assert summary["verified_choice_noisy_rank"] in (1, 2)

    results = tmp_path / "results"
    results.mkdir()
    (results / sweep.SWEEP_FILE).write_text(json.dumps({"dev_seed": sweep.DEV_SEED, "teachers": {"in_sample": summary}}))
    runner = evidence.Runner(tmp_path / "evidence", evidence.Protocol(), results)
    _, tree, _ = runner.plan("bmasking_mt", 0, tmp_path / "corpus")[-1]
    assert tree["objective"]["percentile"] == chosen["percentile"]
    assert tree["objective"]["mean_teacher"]["beta_max"] == 0.4
