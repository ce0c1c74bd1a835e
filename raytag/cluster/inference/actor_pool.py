"""Batch inference with Ray Data: an actor pool that holds a model and scores chunks.

Only the Ray plumbing lives here (the pool's size and resources, ``map_batches``, iterating
the results). What an actor does with a decoded batch is the scoring owner's per-chunk step
(:func:`raytag.scoring.chunks.score_decoded`), and the driver adds the scored batches up with
its :class:`~raytag.scoring.tracks.TrackTally`: the numbers of the in-process scorer.
Used for evaluation, ``raytag predict`` above ``ray_above`` files, teacher scores and audits.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import ray
import torch

from raytag.cluster.data.datasets import decoded_chunks
from raytag.models.export import ExportedModel, ModelRecipe
from raytag.scoring.chunks import chunk_probabilities, score_decoded
from raytag.scoring.tracks import TrackScores, TrackTally


class ChunkScorer:
    """Ray Data callable class: a decoded batch → ``{track, probs, decoded, peak, node}``
    (:func:`raytag.scoring.chunks.score_decoded`, plus the node the actor runs on)."""

    def __init__(self, recipe: ModelRecipe, weights_ref, use_gpu: bool = False, amp: str = "auto"):
        self.device = torch.device("cuda" if use_gpu and torch.cuda.is_available() else "cpu")
        self.model = recipe.build()
        weights = ray.get(weights_ref) if isinstance(weights_ref, ray.ObjectRef) else weights_ref
        self.model.load_state_dict(weights)
        self.model.to(self.device).eval()
        self.amp = amp
        self.node = ray.get_runtime_context().get_node_id() if ray.is_initialized() else "local"

    def probabilities(self, audio: np.ndarray) -> np.ndarray:
        """Sigmoid outputs (B, K) of the model (:func:`raytag.scoring.chunks.chunk_probabilities`)."""
        return chunk_probabilities(self.model, audio, device=self.device, amp=self.amp)

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        scored = score_decoded(self.model, batch, device=self.device, amp=self.amp)
        return {**scored, "node": np.full(len(scored["track"]), self.node, dtype=object)}


class SoftLabeler(ChunkScorer):
    """Teacher worker for noisy student training: adds the teacher's probabilities as ``soft``.

    It runs on the clean crop, before any augmentation stage, so the student later sees an
    augmented view of exactly the audio its targets came from.
    """

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        return {**batch, "soft": self.probabilities(batch["audio"])}


ACTOR_START_TIMEOUT_S = 600  # an inference actor that cannot start in this time is an error
SCORING_CPUS = 0.5  # per inference actor: fits beside decode tasks on a 1-CPU node, so pools can spread
SCORING_GPUS = 0.5
"""GPU share of a scoring actor (evaluation, teacher scores, audits) on a GPU job: two actors
share a GPU, as scoring a batch of chunks leaves most of one idle."""
LABELING_GPUS = 0.25
"""GPU share of a noisy student's labelling teacher actor: it runs beside the training workers,
which hold their GPUs for the whole run."""


def gpu_share(fraction: float, *, use_gpu: bool) -> float:
    """``fraction`` of a GPU for a job with ``scaling.use_gpu``, else 0."""
    return fraction if use_gpu else 0.0
BLOCKS_PER_ACTOR = 4  # input blocks per scoring actor at least, so a small job still reaches every actor


@dataclass(frozen=True)
class PoolScores:
    """Track-level scores from an actor pool (:class:`~raytag.scoring.tracks.TrackScores`) and
    how many Ray nodes its actors ran on."""

    tracks: TrackScores
    nodes: int


def pool_size(num_batches: int) -> int:
    """Actors for a scoring pool: one per alive node with CPUs (so a cluster's nodes share the
    work), never more than there are batches."""
    nodes = sum(1 for n in ray.nodes() if n["Alive"] and n["Resources"].get("CPU", 0) > 0)
    return max(1, min(nodes, num_batches))


def score_tracks(
    chunks: ray.data.Dataset,
    recipe: ModelRecipe,
    weights: dict[str, torch.Tensor],
    *,
    num_tracks: int,
    batch_size: int,
    actors: int = 1,
    num_cpus: float = SCORING_CPUS,
    num_gpus: float = 0.0,
    progress: Callable[[int], None] | None = None,
) -> PoolScores:
    """Scores every chunk of ``chunks`` with an actor pool of ``actors`` (spread over the nodes)
    and averages per track; tracks with no decodable chunk are absent from ``tracks.kept``.
    ``progress``, when given, is called with the number of chunks of each scored batch."""
    scored = chunks.map_batches(
        ChunkScorer,
        fn_constructor_kwargs={"recipe": recipe, "weights_ref": ray.put(weights), "use_gpu": num_gpus > 0},
        batch_size=batch_size,
        # One batch in flight per actor: an actor takes the next batch only when it is done with
        # its last, so a batch goes to the actor beside its block only when that one is free,
        # else to the least busy one. Otherwise the first actor up, or the one on the node where
        # the decode tasks ran, queues every batch (measured on a 2-node cluster: one actor scored
        # all 64 rows). Scoring is compute-bound; a decoded chunk is cheap to move. (This replaces
        # turning Ray Data's actor locality off, a setting Ray 2.60 deprecates; actors are placed
        # with Ray Data's default SPREAD strategy.)
        compute=ray.data.ActorPoolStrategy(size=actors, max_tasks_in_flight_per_actor=1),
        num_cpus=num_cpus,
        num_gpus=num_gpus,
        batch_format="numpy",
    )
    scored.context.wait_for_min_actors_s = ACTOR_START_TIMEOUT_S  # every actor starts before batches go out
    tally, nodes = TrackTally(num_tracks, len(recipe.tags)), set()
    for batch in scored.iter_batches(batch_format="numpy", batch_size=None):
        tally.add(batch)
        nodes.update(batch["node"].tolist())
        if progress is not None:
            progress(len(batch["track"]))
    return PoolScores(tally.result(), len(nodes))


def score_chunks(
    rows: list[dict],
    model: ExportedModel,
    weights: dict[str, torch.Tensor],
    *,
    num_tracks: int,
    batch_size: int,
    num_cpus: float,
    num_gpus: float = 0.0,
    actors: int | None = None,
    progress: Callable[[int], None] | None = None,
) -> PoolScores:
    """Scores chunk rows on Ray Data (evaluation, teacher scores, ``raytag predict``): pool
    size → decode tasks → the actor pool.

    Args:
        rows: chunk rows (a :class:`raytag.scoring.tracks.ChunkPlan`'s, or
            :func:`raytag.data.rows.chunk_rows` at the model's rate and crop).
        model: the exported model (recipe, rate, crop); ``weights`` its state dict.
        num_tracks: tracks the rows index.
        batch_size: chunks per forward pass.
        num_cpus: per decode task.
        num_gpus: per scoring actor.
        actors: the pool's size; default one per alive node with CPUs, never more than batches.
        progress: called with the number of chunks of each scored batch.
    """
    if actors is None:
        actors = pool_size(-(-len(rows) // batch_size))
    chunks = decoded_chunks(rows, sample_rate=model.sample_rate, crop_samples=model.crop_samples, num_cpus=num_cpus,
                     min_blocks=actors * BLOCKS_PER_ACTOR)
    return score_tracks(chunks, model.recipe, weights, num_tracks=num_tracks, batch_size=batch_size, actors=actors,
                        num_gpus=num_gpus, progress=progress)
