"""Exported taggers for tests and benchmarks, made without Ray: an untrained one, and a
teacher trained with raytag's engine in a plain PyTorch loop (no Ray Train)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch

from raytag.data.batches import decode_batch, rows_to_batch
from raytag.data.manifest import read_manifest
from raytag.data.rows import epoch_rows
from raytag.engine.loop import train_epoch
from raytag.methods.base import Epoch
from raytag.methods.bce import PlainBCE
from raytag.models.export import ModelRecipe, write_exported
from raytag.scoring.tracks import probe_sources


def write_random_tagger(
    folder: Path, *, tags: Sequence[str], crop_seconds: float = 1.0, seed: int = 0, **info
) -> Path:
    """An untrained ``mtt-tiny`` (16 kHz, ``crop_seconds`` crops) exported to ``folder``; extra
    ``info`` (e.g. ``thresholds``) goes into its ``model.json``."""
    recipe = ModelRecipe("mtt-tiny", {"crop_seconds": crop_seconds}, tuple(tags))
    torch.manual_seed(seed)
    model = recipe.build().eval()
    return write_exported(folder, recipe, model.state_dict(), sample_rate=model.sample_rate,
                          crop_samples=model.crop_samples, **info)


def train_plain_teacher(
    manifest: Path,
    out: Path,
    *,
    model: str,
    args: dict,
    epochs: int,
    batch_size: int = 16,
    lr: float = 3e-3,
    seed: int = 0,
    splits: Sequence[str] = ("train",),
) -> Path:
    """Trains ``model`` with plain BCE on the manifest's ``splits`` (noisy labels) and writes
    the last epoch as an exported model to ``out``."""
    data = read_manifest(manifest)
    tracks = [t for s in splits for t in data.split(s)]
    table, reasons = probe_sources([t.path for t in tracks], num_tags=len(data.vocabulary))
    assert not reasons, reasons
    table = type(table)(table.paths, table.frames, table.rates, data.label_matrix(tracks))
    recipe = ModelRecipe(model, dict(args), data.vocabulary)
    torch.manual_seed(seed)
    network = recipe.build()
    optimizer = torch.optim.Adam(network.parameters(), lr=lr)
    method = PlainBCE()
    device = torch.device("cpu")
    for epoch in range(epochs):
        rows = epoch_rows(table, seed=seed, epoch=epoch, rank=0, world_size=1)
        batches = [
            decode_batch(rows_to_batch(rows[i : i + batch_size]), sample_rate=network.sample_rate,
                         crop_samples=network.crop_samples)
            for i in range(0, len(rows), batch_size)
        ]
        method.start_epoch(Epoch(epoch, torch.Generator().manual_seed(seed + epoch), network, len(batches)))
        train_epoch(network, batches, optimizer, method=method, device=device, amp="off")
    network.eval()
    state = {k: v.detach().cpu() for k, v in network.state_dict().items()}
    return write_exported(out, recipe, state, sample_rate=network.sample_rate, crop_samples=network.crop_samples,
                          epochs=epochs)
