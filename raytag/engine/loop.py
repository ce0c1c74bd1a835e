"""The Ray-free training engine: one epoch of optimisation, chunk predictions per track.

Batches are dicts of tensors as produced by :func:`raytag.data.batches.decode_batch`
(``audio``, ``labels``, ``track``, ``decoded``, and the method's extra columns). The Ray Train
worker loop feeds Ray Data batches in; tests feed plain lists.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from raytag.engine.precision import autocast
from raytag.scoring.chunks import chunk_probabilities

log = logging.getLogger(__name__)

Batch = dict[str, torch.Tensor]


@dataclass
class EpochStats:
    """What one training epoch did on one worker."""

    loss: float
    steps: int
    examples: int
    decode_failures: int
    seconds: float
    parts: dict[str, float] = field(default_factory=dict)
    data_wait_seconds: float = 0.0
    """Of ``seconds``, the time spent waiting for the next batch (the data pipeline not keeping
    up); the rest is the training steps themselves."""

    def as_metrics(self, prefix: str = "train/") -> dict[str, float]:
        metrics = {f"{prefix}{name}": value for name, value in self.parts.items()}
        metrics.update(
            {
                f"{prefix}loss": self.loss,
                f"{prefix}examples": self.examples,
                f"{prefix}decode_failures": self.decode_failures,
                f"{prefix}examples_per_s": self.examples / max(self.seconds, 1e-9),
                f"{prefix}data_wait_s": self.data_wait_seconds,
            }
        )
        return metrics


def to_device(batch: dict, device: torch.device) -> Batch:
    """Moves a batch's tensors (numpy arrays are converted) to ``device``."""
    out = {}
    for key, value in batch.items():
        tensor = value if isinstance(value, torch.Tensor) else torch.as_tensor(value)
        out[key] = tensor.to(device, non_blocking=True)
    return out


def with_unlabeled(labelled: Iterable[dict], unlabeled: Callable[[], Iterable[dict]]) -> Iterator[dict]:
    """Pairs every labelled batch with the next unlabeled batch (``u_*`` keys).

    The labelled data defines the epoch (so every DDP rank takes the same number of steps);
    the unlabeled stream is restarted by calling ``unlabeled()`` again whenever it runs out.
    """
    stream = iter(unlabeled())
    for batch in labelled:
        try:
            extra = next(stream)
        except StopIteration:
            stream = iter(unlabeled())
            extra = next(stream)
        yield {**batch, **extra}


def train_epoch(
    model: nn.Module,
    batches: Iterable[dict],
    optimizer: torch.optim.Optimizer,
    *,
    method,
    device: torch.device,
    amp: str = "auto",
    log_every: int = 20,
    describe: str = "",
) -> EpochStats:
    """Runs one pass of optimisation over ``batches``.

    Args:
        model: the (possibly DDP-wrapped) model, returning logits.
        batches: dicts with ``audio`` (B, T), ``labels`` (B, K), ``decoded`` (B,) and whatever
            else the method reads.
        method: a :class:`raytag.methods.base.Method`, already started for this epoch; per step
            ``output = model(method.inputs(batch))``, ``parts = method.loss(output, batch)``,
            backward, optimizer step, ``method.after_step(model)``.
        log_every: a progress line every this many steps.
        describe: prefix of progress lines (e.g. "epoch 3").

    Returns:
        the epoch's :class:`EpochStats`, with the seconds spent waiting for batches apart.
    """
    model.train()
    start = time.perf_counter()
    total, steps, examples, failures = 0.0, 0, 0, 0
    part_sums: dict[str, float] = {}
    waited = 0.0
    stream = iter(batches)
    while True:
        asked = time.perf_counter()
        batch = next(stream, None)
        waited += time.perf_counter() - asked
        if batch is None:
            break
        batch = to_device(batch, device)
        with autocast(device, amp):
            parts = method.loss(model(method.inputs(batch)), batch)
        optimizer.zero_grad(set_to_none=True)
        parts["loss"].backward()
        optimizer.step()
        method.after_step(model)
        steps += 1
        total += float(parts["loss"].detach())
        for name, value in parts.items():
            if name != "loss":
                part_sums[name] = part_sums.get(name, 0.0) + float(value)
        examples += int(batch["decoded"].sum())
        failures += int((~batch["decoded"].bool()).sum())
        if steps % log_every == 0:
            rate = examples / (time.perf_counter() - start)
            log.debug("%s step %d: loss %.4f, %.1f clips/s", describe, steps, total / steps, rate)
    return EpochStats(
        loss=total / max(steps, 1),
        steps=steps,
        examples=examples,
        decode_failures=failures,
        seconds=time.perf_counter() - start,
        parts={name: value / steps for name, value in part_sums.items()},
        data_wait_seconds=waited,
    )


def validation_probabilities(
    model: nn.Module, batches: Iterable[dict], *, device: torch.device, amp: str = "auto"
) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Yields ``(track, probabilities (B, K), labels (B, K))`` of each batch's decoded chunks,
    scored by the scorer's per-chunk step (:func:`raytag.scoring.chunks.chunk_probabilities`);
    the caller averages them per track (:class:`raytag.scoring.tracks.TrackAverager`)."""
    model.eval()
    for batch in batches:
        keep = _on_cpu(batch["decoded"]).astype(bool)
        probabilities = chunk_probabilities(model, batch["audio"], device=device, amp=amp)
        yield _on_cpu(batch["track"])[keep], probabilities[keep], _on_cpu(batch["labels"])[keep]


def _on_cpu(column) -> np.ndarray:
    """A batch column (a numpy array, or a tensor on any device) as a numpy array."""
    return column.detach().cpu().numpy() if isinstance(column, torch.Tensor) else np.asarray(column)


def track_loss(scores: np.ndarray, labels: np.ndarray) -> float:
    """Track-level BCE of averaged probabilities against labels (the validation loss)."""
    eps = 1e-7
    p = np.clip(scores, eps, 1 - eps)
    return float(-np.mean(labels * np.log(p) + (1 - labels) * np.log(1 - p)))
