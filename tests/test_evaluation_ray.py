"""Evaluating an exported model: one scoring pass serves several splits and label sets, on a
Ray Data actor pool or, for few tracks, in the driver's process, with the same numbers."""

from __future__ import annotations

import numpy as np
import pytest

from teachers import write_random_tagger

from raytag.cluster.inference import evaluation
from raytag.config import load_job
from raytag.data.manifest import multi_hot
from raytag.plan import plan_job


@pytest.mark.ray
def test_one_scoring_pass_serves_every_split_and_the_in_process_loop_gives_the_same(ray_session, tmp_path,
                                                                                    tiny_job, monkeypatch):
    job = load_job(tiny_job("eval-once"), ["eval.ray_above=0"])
    job_plan = plan_job(job)
    model = str(write_random_tagger(tmp_path / "model", tags=job_plan.recipe.tags, crop_seconds=1.0))
    passes = []
    score_chunks = evaluation.score_chunks

    def counted(rows, *args, **kwargs):
        passes.append(len(rows))
        return score_chunks(rows, *args, **kwargs)

    monkeypatch.setattr(evaluation, "score_chunks", counted)
    together = evaluation.score_splits(job, model, ["valid", "test", "valid"], job_plan=job_plan)
    assert len(passes) == 1  # both splits in one dataset, the repeated one scored once
    # The tiny corpus: 6 valid + 6 test tracks of 2 s, max_chunks 2 of 1 s crops.
    assert passes[0] == 2 * (6 + 6)
    few = load_job(tiny_job("eval-once"), ["eval.ray_above=12"])  # 12 tracks: scored in this process
    for split in ("valid", "test"):
        alone = evaluation.evaluate(few, model, job_plan=job_plan, split=split, scan=together.scan)
        joint = together.evaluate(split)
        assert joint.paths == alone.paths and len(joint.paths) == 6
        assert set(joint.paths) == {t.path for t in job_plan.manifest.split(split)}
        np.testing.assert_allclose(joint.scores, alone.scores, atol=1e-6)
        np.testing.assert_array_equal(joint.labels, alone.labels)
        assert joint.label_source == alone.label_source == "clean"
        assert joint.report.roc_auc_macro == pytest.approx(alone.report.roc_auc_macro, nan_ok=True)
    assert len(passes) == 1  # the in-process evaluations made no Ray pass
    valid = together.evaluate("valid", manifest_labels=True)
    by_path = {t.path: t for t in job_plan.manifest.split("valid")}
    expected = multi_hot([by_path[p].tags for p in valid.paths], job_plan.recipe.tags)
    np.testing.assert_array_equal(valid.labels, expected)
    assert valid.label_source == "manifest"
