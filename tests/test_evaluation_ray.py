"""Evaluating an exported model: one scoring pass serves several splits and label sets, on a
Ray Data actor pool or, for few tracks, in the driver's process, with the same numbers."""

from __future__ import annotations

import numpy as np
import pytest

from teachers import write_random_tagger

from raytag.cluster import evaluation
from raytag.config import load_job
from raytag.data.manifest import multi_hot
from raytag.plan import prepare


@pytest.mark.ray
def test_one_scoring_pass_serves_every_split_and_the_in_process_loop_gives_the_same(ray_session, tmp_path,
                                                                                    tiny_job, monkeypatch):
    job = load_job(tiny_job("eval-once"), ["eval.ray_above=0"])
    prepared = prepare(job)
    model = str(write_random_tagger(tmp_path / "model", tags=prepared.recipe.tags, crop_seconds=1.0))
    passes = []
    score_rows = evaluation.score_rows

    def counted(rows, *args, **kwargs):
        passes.append(len(rows))
        return score_rows(rows, *args, **kwargs)

    monkeypatch.setattr(evaluation, "score_rows", counted)
    together = evaluation.score_splits(job, model, ["valid", "test", "valid"], prepared=prepared)
    assert len(passes) == 1  # both splits in one dataset, the repeated one scored once
    # The tiny corpus: 6 valid + 6 test tracks of 2 s, max_chunks 2 of 1 s crops.
    assert passes[0] == 2 * (6 + 6)
    few = load_job(tiny_job("eval-once"), ["eval.ray_above=12"])  # 12 tracks: scored in this process
    for split in ("valid", "test"):
        alone = evaluation.evaluate(few, model, prepared=prepared, split=split)
        joint = together.evaluate(split)
        assert joint.paths == alone.paths and len(joint.paths) == 6
        assert set(joint.paths) == {t.path for t in prepared.manifest.split(split)}
        np.testing.assert_allclose(joint.scores, alone.scores, atol=1e-6)
        np.testing.assert_array_equal(joint.labels, alone.labels)
        assert joint.label_source == alone.label_source == "clean"
        assert joint.report.roc_auc_macro == pytest.approx(alone.report.roc_auc_macro, nan_ok=True)
    assert len(passes) == 1  # the in-process evaluations made no Ray pass
    valid = together.evaluate("valid", manifest_labels=True)
    by_path = {t.path: t for t in prepared.manifest.split("valid")}
    expected = multi_hot([by_path[p].tags for p in valid.paths], prepared.recipe.tags)
    np.testing.assert_array_equal(valid.labels, expected)
    assert valid.label_source == "manifest"
