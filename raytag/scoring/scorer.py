"""The in-process scorer: sources → header probe → chunk plan → decode → model → per-track
average and peak → one :class:`~raytag.scoring.status.TrackResult` per source.

Used by evaluation in the driver's process, ``raytag predict`` up to ``ray_above`` files and
the MLflow model (paths, and waveforms as :class:`~raytag.audio.waveform.Waveform` sources).
The Ray Data path (:mod:`raytag.cluster.inference.actor_pool`) scores the same plan's rows
with the same per-chunk step (:func:`raytag.scoring.chunks.score_decoded`) and tallies them the
same way, so both give the same numbers.

Core module: no Ray, no MLflow.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch import nn

from raytag.data.batches import decode_batch, rows_to_batch
from raytag.scoring.chunks import score_decoded
from raytag.scoring.status import TrackResult
from raytag.scoring.tracks import (
    ChunkPlan, TrackScores, TrackTally, plan_chunks, probe_sources, source_results, table_results,
)


@dataclass(frozen=True)
class Tagger:
    """A model ready to score tracks.

    Attributes:
        model: the tagger module, in eval mode on ``device`` ((B, crop_samples) → (B, K) logits).
        sample_rate: the model's rate (Hz).
        crop_samples: its crop (samples at ``sample_rate``).
        tags: its K tags, in output order.
        device: where it runs. Default CPU.
        amp: autocast setting (:func:`raytag.engine.precision.autocast`). Default ``"auto"``.
    """

    model: nn.Module
    sample_rate: int
    crop_samples: int
    tags: tuple[str, ...]
    device: torch.device = torch.device("cpu")
    amp: str = "auto"

    @classmethod
    def from_exported(cls, exported, weights: dict, *, device: torch.device | None = None,
                      amp: str = "auto") -> Tagger:
        """The tagger of an exported model (:class:`raytag.models.export.ExportedModel`) with its
        state dict ``weights``."""
        device = device or torch.device("cpu")
        model = exported.recipe.build()
        model.load_state_dict(weights)
        model.to(device).eval()
        return cls(model, exported.sample_rate, exported.crop_samples, tuple(exported.recipe.tags), device, amp)

    def plan(self, table, *, max_chunks: int | None) -> ChunkPlan:
        """:func:`raytag.scoring.tracks.plan_chunks` of ``table`` at this model's rate and crop."""
        return plan_chunks(table, sample_rate=self.sample_rate, crop_samples=self.crop_samples, max_chunks=max_chunks)


def score_rows(tagger: Tagger, plan: ChunkPlan, *, batch_size: int,
               progress: Callable[[int], None] | None = None) -> TrackScores:
    """Scores the plan's chunk rows in this process, ``batch_size`` chunks per forward pass;
    ``progress`` is called with the number of chunks of each batch."""
    tally = TrackTally(len(plan.table), len(tagger.tags))
    for first in range(0, len(plan.rows), batch_size):
        part = plan.rows[first : first + batch_size]
        batch = decode_batch(rows_to_batch(part), sample_rate=tagger.sample_rate, crop_samples=tagger.crop_samples)
        tally.add(score_decoded(tagger.model, batch, device=tagger.device, amp=tagger.amp))
        if progress is not None:
            progress(len(part))
    return tally.result()


@dataclass(frozen=True)
class ScoringProgress:
    """Optional callbacks of :func:`score_sources`: ``headers`` with 1 after each source's
    header, ``planned`` once with the number of chunks to score, ``chunks`` with each batch's
    number of chunks."""

    headers: Callable[[int], None] | None = None
    planned: Callable[[int], None] | None = None
    chunks: Callable[[int], None] | None = None


@dataclass(frozen=True)
class ScoredSources:
    """:func:`score_sources`'s outcome: one result per source, in order, and the chunks that
    failed to decode (their tracks are averaged over the others)."""

    results: list[TrackResult]
    failed_chunks: int


def score_sources(
    tagger: Tagger,
    sources: Sequence,
    *,
    max_chunks: int | None,
    batch_size: int,
    progress: ScoringProgress | None = None,
) -> ScoredSources:
    """Scores every source (distinct audio paths or URIs, or :class:`~raytag.audio.waveform.Waveform`
    objects) in this process: the whole chain of the module docstring.

    Args:
        tagger: the model.
        sources: what to score; a source that cannot be read gets an ``unreadable`` result.
        max_chunks: most chunks per track (None: the whole track).
        batch_size: chunks per forward pass.
        progress: progress callbacks.
    """
    progress = progress or ScoringProgress()
    table, reasons = probe_sources(sources, num_tags=len(tagger.tags), progress=progress.headers)
    plan = tagger.plan(table, max_chunks=max_chunks)
    if progress.planned is not None:
        progress.planned(len(plan.rows))
    scores = score_rows(tagger, plan, batch_size=batch_size, progress=progress.chunks)
    return ScoredSources(source_results(sources, table_results(plan, scores), reasons), scores.failed_chunks)
