"""The Ray-free engine and checkpoint folders."""

import numpy as np
import torch

from raytag.models import create_model
from raytag.engine import checkpoint as ckpt
from raytag.methods.base import Epoch
from raytag.methods.bce import PlainBCE
from raytag.engine.loop import track_loss, train_epoch, validation_probabilities
from raytag.scoring.tracks import TrackAverager

CPU = torch.device("cpu")


def _started(method, epoch=0):
    method.start_epoch(Epoch(epoch, torch.Generator().manual_seed(0), None, 1))
    return method


def toy_batches(n_batches=6, batch=8, samples=16000, seed=0):
    """Tag 0 = a loud 300 Hz tone, tag 1 = noise: learnable in a few steps."""
    gen = torch.Generator().manual_seed(seed)
    t = torch.arange(samples) / 16000
    out = []
    for _ in range(n_batches):
        labels = torch.randint(0, 2, (batch, 2), generator=gen).float()
        audio = 0.01 * torch.randn(batch, samples, generator=gen)
        audio += labels[:, :1] * 0.5 * torch.sin(2 * torch.pi * 300 * t)
        audio += labels[:, 1:] * 0.3 * torch.randn(batch, samples, generator=gen)
        out.append({"audio": audio, "labels": labels, "decoded": torch.ones(batch, dtype=torch.bool),
                    "track": torch.arange(batch)})
    return out


def test_training_reduces_the_loss():
    torch.manual_seed(0)
    model = create_model("mtt-tiny", num_tags=2)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    batches = toy_batches()
    first = train_epoch(model, batches, opt, method=_started(PlainBCE()), device=CPU)
    for _ in range(3):
        last = train_epoch(model, batches, opt, method=_started(PlainBCE()), device=CPU)
    assert last.loss < first.loss * 0.8
    assert first.steps == 6 and first.examples == 48 and first.decode_failures == 0


def test_an_epoch_counts_the_time_it_waited_for_batches():
    """``train/data_wait_s`` tells a starved loop from a slow model: here every batch arrives
    0.05 s after it is asked for, so the epoch waited at least 3 x 0.05 s (a lower bound: a
    sleep never ends early)."""
    import time

    model = create_model("mtt-tiny", num_tags=2)
    opt = torch.optim.SGD(model.parameters(), lr=0.0)

    def slow(batches):
        for batch in batches:
            time.sleep(0.05)
            yield batch

    stats = train_epoch(model, slow(toy_batches(3, batch=2)), opt, method=_started(PlainBCE()), device=CPU)
    metrics = stats.as_metrics()
    assert stats.steps == 3 and 0.15 <= metrics["train/data_wait_s"] <= stats.seconds


def test_invalid_rows_are_counted_and_ignored():
    model = create_model("mtt-tiny", num_tags=2)
    opt = torch.optim.SGD(model.parameters(), lr=0.0)
    batch = toy_batches(1)[0]
    batch["decoded"][:3] = False
    stats = train_epoch(model, [batch], opt, method=_started(PlainBCE()), device=CPU, amp="bf16")
    assert stats.examples == 5 and stats.decode_failures == 3 and np.isfinite(stats.loss)


def test_chunk_predictions_average_per_track():
    model = create_model("mtt-tiny", num_tags=2).eval()
    batch = toy_batches(1, batch=4)[0]
    batch["track"] = torch.tensor([0, 0, 1, 1])
    batch["decoded"][3] = False
    averager = TrackAverager(num_tracks=3, num_tags=2)
    for track, probs, labels in validation_probabilities(model, [batch], device=CPU):
        assert len(track) == 3
        averager.add(track, probs, labels)
        direct = torch.sigmoid(model(batch["audio"][:3])).detach().numpy()
    scores, kept = averager.result()
    assert list(kept) == [0, 1]  # track 2 had no chunk
    np.testing.assert_allclose(scores[0], direct[:2].mean(0), atol=1e-5)
    np.testing.assert_allclose(scores[1], direct[2], atol=1e-5)


def test_track_loss_matches_bce():
    p, y = np.array([[0.9, 0.2]]), np.array([[1.0, 0.0]])
    expected = -(np.log(0.9) + np.log(0.8)) / 2
    assert abs(track_loss(p, y) - expected) < 1e-9


def test_checkpoint_round_trip(tmp_path):
    model = create_model("mtt-tiny", num_tags=3)
    opt = torch.optim.Adam(model.parameters())
    method = _started(PlainBCE())
    batch = toy_batches(1, samples=8000)[0]
    batch["labels"] = torch.zeros(8, 3)
    best = ckpt.Snapshot.capture(model, opt, method)
    train_epoch(model, [batch], opt, method=method, device=CPU)
    latest = ckpt.Snapshot.capture(model, opt, method)
    state = ckpt.TrainingState(epochs_done=4, best_epoch=2, best_value=0.7, history=[{"valid/roc_auc": 0.7}])
    ckpt.save(tmp_path, latest=latest, best=best, state=state, job={"name": "x"})
    restored, restored_latest, restored_best = ckpt.load(tmp_path)
    assert restored == state
    fresh = create_model("mtt-tiny", num_tags=3)
    fresh_opt = torch.optim.Adam(fresh.parameters())
    restored_latest.restore(fresh, fresh_opt, PlainBCE())
    for key, value in model.state_dict().items():
        assert torch.equal(fresh.state_dict()[key], value)
    assert fresh_opt.state_dict()["state"].keys() == opt.state_dict()["state"].keys()
    assert all(torch.equal(ckpt.read_best_weights(tmp_path)[k], best.weights[k]) for k in best.weights)
    assert not restored_best.optimizer["state"]  # the best snapshot was taken before any step


def test_best_epoch_selection_direction():
    auc = ckpt.TrainingState(select_metric="roc_auc", best_value=0.8)
    assert auc.improves(0.81) and not auc.improves(0.8)
    loss = ckpt.TrainingState(select_metric="loss", best_value=0.3)
    assert loss.improves(0.29) and not loss.improves(0.31)
    assert ckpt.TrainingState().improves(0.0)
