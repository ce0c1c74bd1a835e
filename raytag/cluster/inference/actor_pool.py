"""Batch inference with Ray Data: an actor pool that holds a model and scores chunks.

Used for final evaluation and for teacher workers: each actor builds the model once, then
scores decoded chunks; the driver averages chunk probabilities per track.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import ray
import torch

from raytag.cluster.data.datasets import decoded_chunks
from raytag.engine.loop import TrackAverager, autocast
from raytag.models.export import ExportedModel, ModelRecipe


class ChunkScorer:
    """Ray Data callable class: ``{audio, track, decoded, ...} -> {track, probs, decoded, peak, node}``
    (``peak``: each chunk's largest absolute sample)."""

    def __init__(self, recipe: ModelRecipe, weights_ref, use_gpu: bool = False, amp: str = "auto"):
        self.device = torch.device("cuda" if use_gpu and torch.cuda.is_available() else "cpu")
        self.model = recipe.build()
        weights = ray.get(weights_ref) if isinstance(weights_ref, ray.ObjectRef) else weights_ref
        self.model.load_state_dict(weights)
        self.model.to(self.device).eval()
        self.amp = amp
        self.node = ray.get_runtime_context().get_node_id() if ray.is_initialized() else "local"

    @torch.no_grad()
    def probabilities(self, audio: np.ndarray) -> np.ndarray:
        """Sigmoid outputs (B, K) of the model, in eval mode and without gradients."""
        with autocast(self.device, self.amp):
            logits = self.model(torch.as_tensor(audio, device=self.device))
        return torch.sigmoid(logits.float()).cpu().numpy()

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        return {
            "track": batch["track"], "probs": self.probabilities(batch["audio"]), "decoded": batch["decoded"],
            "peak": np.abs(np.asarray(batch["audio"])).max(axis=1, initial=0.0).astype(np.float32),
            "node": np.full(len(batch["track"]), self.node, dtype=object),
        }


class SoftLabeler(ChunkScorer):
    """Teacher worker for noisy student training: adds the teacher's probabilities as ``soft``.

    It runs on the clean crop, before any augmentation stage, so the student later sees an
    augmented view of exactly the audio its targets came from.
    """

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        return {**batch, "soft": self.probabilities(batch["audio"])}


ACTOR_START_TIMEOUT_S = 600  # an inference actor that cannot start in this time is an error
SCORING_CPUS = 0.5  # per inference actor: fits beside decode tasks on a 1-CPU node, so pools can spread
BLOCKS_PER_ACTOR = 4  # input blocks per scoring actor at least, so a small job still reaches every actor


@dataclass(frozen=True)
class Scores:
    """Track-level scores of a chunk dataset.

    Attributes:
        scores: (N', K) chunk probabilities averaged per track.
        tracks: (N',) indices of the tracks with at least one decodable chunk.
        failed_chunks: chunks that failed to decode.
        nodes: how many Ray nodes the scoring actors ran on.
        peaks: (N',) the largest absolute sample of each scored track's decoded chunks (how
            ``raytag predict`` tells a silent file).
        failed_by_track: (N,) failed chunks per track of the dataset (all ``num_tracks``).
    """

    scores: np.ndarray
    tracks: np.ndarray
    failed_chunks: int
    nodes: int
    peaks: np.ndarray | None = None
    failed_by_track: np.ndarray | None = None


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
) -> Scores:
    """Scores every chunk of ``chunks`` with an actor pool of ``actors`` (spread over the nodes)
    and averages per track; tracks with no decodable chunk are absent from ``tracks``.
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
    averager = TrackAverager(num_tracks, len(recipe.tags))
    peaks = np.zeros(num_tracks, dtype=np.float32)
    failed, nodes = np.zeros(num_tracks, dtype=np.int64), set()
    for batch in scored.iter_batches(batch_format="numpy", batch_size=None):
        keep = batch["decoded"].astype(bool)
        np.add.at(failed, batch["track"][~keep], 1)
        nodes.update(batch["node"].tolist())
        averager.add(batch["track"][keep], batch["probs"][keep])
        np.maximum.at(peaks, batch["track"][keep], batch["peak"][keep])
        if progress is not None:
            progress(len(keep))
    scores, kept = averager.result()
    return Scores(scores, kept, int(failed.sum()), len(nodes), peaks[kept], failed)


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
) -> Scores:
    """The one scoring recipe (evaluation, teacher scores, ``raytag predict``): pool size →
    decode → score.

    Args:
        rows: chunk rows (:func:`raytag.data.rows.chunk_rows` at the model's rate and crop).
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
