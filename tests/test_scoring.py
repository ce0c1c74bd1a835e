"""Teacher scores for Balanced-Masking, without Ray: the eq. 3 columns and the cache key."""

import numpy as np

from raytag.cluster.inference.teacher_scores import scores_key
from raytag.data.rows import TrackTable
from raytag.methods.balanced_masking import BalancedMasking


def test_balanced_masking_turns_teacher_scores_into_the_keep_column():
    # tag a: negatives score 0.1..0.5 -> 80th percentile 0.42; the 0.5 negative is masked.
    scores = np.array([[0.1, 0.9], [0.2, 0.1], [0.3, 0.2], [0.4, 0.3], [0.5, 0.4], [np.nan, np.nan]])
    labels = np.array([[0, 1], [0, 0], [0, 0], [0, 0], [0, 0], [1, 0]], dtype=np.float32)
    method = BalancedMasking(tags=["a", "b"], teacher="t", percentile=80)
    assert method.needs.columns == ("keep",) and method.needs.scores_teacher.key == "objective.teacher"
    out = method.track_columns(labels=labels, verified=np.zeros(6, bool), scores=scores, clean=None)
    keep = out.columns["keep"]
    np.testing.assert_array_equal(keep[:, 0], [1, 1, 1, 1, 0, 1])
    assert keep[5].tolist() == [1, 1]  # unscored track (NaN): never masked
    assert keep[0, 1] == 1  # positives are never masked
    threshold = np.percentile([0.1, 0.2, 0.3, 0.4, 0.5], 80)
    assert out.tables["masking/thresholds.csv"][0] == {"tag": "a", "threshold": threshold, "negatives": 5, "masked": 1}
    assert out.metrics["masking/unscored_tracks"] == 1 and out.metrics["masking/masked_entries"] == keep.size - keep.sum()


def _table(paths, frames):
    n = len(paths)
    return TrackTable(tuple(paths), np.array(frames), np.full(n, 16000), np.zeros((n, 2), np.float32))


def test_scores_key_follows_teacher_weights_tracks_and_chunking():
    first = scores_key(b"weights", _table(["/a.wav", "/b.wav"], [100, 200]), 16)
    assert scores_key(b"weights", _table(["/a.wav", "/b.wav"], [100, 200]), 16) == first
    assert scores_key(b"weights", _table(["/a.wav", "/b.wav"], [100, 200]), 8) != first
    assert scores_key(b"other", _table(["/a.wav", "/b.wav"], [100, 200]), 16) != first
    assert scores_key(b"weights", _table(["/a.wav", "/c.wav"], [100, 200]), 16) != first
    assert scores_key(b"weights", _table(["/a.wav", "/b.wav"], [100, 201]), 16) != first  # the file changed


def test_with_clean_labels_balanced_masking_reports_how_well_it_finds_missing_tags():
    scores = np.array([[0.9], [0.1], [0.2], [0.8], [0.7]])
    noisy = np.array([[0], [0], [0], [0], [1]], dtype=np.float32)
    clean = np.array([[1], [0], [0], [0], [1]], dtype=np.float32)  # track 0 misses its tag
    out = BalancedMasking(tags=["a"], teacher="t", percentile=50).track_columns(
        labels=noisy, verified=np.zeros(5, bool), scores=scores, clean=clean)
    row = out.tables["masking/diagnostics.csv"][0]
    # negatives score 0.9, 0.1, 0.2, 0.8: the median 0.5 masks tracks 0 and 3, one truly missing.
    assert (row["masked"], row["caught"], row["missing"]) == (2, 1, 1)
    assert out.metrics["masking/precision"] == 0.5 and out.metrics["masking/recall"] == 1.0
