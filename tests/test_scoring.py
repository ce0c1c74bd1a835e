"""Teacher-score bookkeeping for Balanced-Masking, without Ray."""

import json

import numpy as np
import torch

from raytag.cluster.scoring import balanced_masking, scores_key
from raytag.models.export import WEIGHTS_FILE


def test_mask_thresholds_and_sidecar(tmp_path):
    # tag a: negatives score 0.1..0.5 -> 80th percentile 0.42; the 0.5 negative is masked.
    scores = np.array([[0.1, 0.9], [0.2, 0.1], [0.3, 0.2], [0.4, 0.3], [0.5, 0.4], [0.95, np.nan]])
    labels = np.array([[0, 1], [0, 0], [0, 0], [0, 0], [0, 0], [1, 0]], dtype=np.float32)
    masks = balanced_masking(
        scores, labels, tags=["a", "b"], percentile=80, scores_file=tmp_path / "k.parquet", reused=False
    )
    assert masks.thresholds[0] == np.float64(np.percentile([0.1, 0.2, 0.3, 0.4, 0.5], 80))
    np.testing.assert_array_equal(masks.keep[:, 0], [1, 1, 1, 1, 0, 1])
    assert masks.keep[5].tolist() == [1, 1]  # unscored track (NaN): never masked
    assert masks.keep[0, 1] == 1  # positives are never masked
    record = json.loads((tmp_path / "k.thresholds-p80.json").read_text())
    assert record["per_tag"][0] == {"tag": "a", "threshold": masks.thresholds[0], "negatives": 5, "masked": 1}


def test_scores_key_follows_teacher_weights_and_manifest(tmp_path):
    manifest = tmp_path / "m.csv"
    manifest.write_text("path,tags,split\n")
    teacher = tmp_path / "teacher"
    teacher.mkdir()
    torch.save({"w": torch.zeros(2)}, teacher / WEIGHTS_FILE)
    first = scores_key(teacher, manifest, 16)
    assert scores_key(teacher, manifest, 16) == first
    assert scores_key(teacher, manifest, 8) != first
    torch.save({"w": torch.ones(2)}, teacher / WEIGHTS_FILE)
    assert scores_key(teacher, manifest, 16) != first
