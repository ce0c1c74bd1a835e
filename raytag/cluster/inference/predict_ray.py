"""``raytag predict`` on Ray Data, for many files: a header scan on Ray Data tasks, decode
tasks that read only each chunk, and an actor pool holding the model
(:func:`raytag.cluster.inference.actor_pool.score_chunks`). The chunk plan, the per-track
tally and the statuses are the scoring owner's (:mod:`raytag.scoring.tracks`), as in process
(see :mod:`raytag.predict.workflow`)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
import ray
from tqdm import tqdm

from raytag.cluster.data.datasets import scan_tracks, track_table
from raytag.cluster.inference.actor_pool import score_chunks
from raytag.cluster.session import init_ray
from raytag.data.manifest import Track
from raytag.scoring.scorer import ScoredSources
from raytag.scoring.tracks import TrackTally, audio_error_reason, plan_chunks, source_results, table_results
from raytag.text import plural

if TYPE_CHECKING:  # raytag.predict.workflow imports this module when it needs Ray
    from raytag.predict.loading import LoadedModel
    from raytag.predict.workflow import PredictOptions
    from raytag.scoring.options import ScoringOptions

UNLABELED = "unlabeled"


def default_actors(cluster_cpus: float, batches: int) -> int:
    """``predict``'s scoring actors when ``--actors`` is not given: one per CPU of the cluster,
    at most one per batch, at least one.

    Forward passes are most of predict's work and an actor scores on one torch thread, so one
    actor per node leaves CPUs idle (1,000 files on 2 CPUs, bench/bench_predict.py: a fresh
    instance 27-29 s with 2 actors, 31-34 s with 1; warm 18-21 s and 22-24 s). Each actor asks for
    :data:`raytag.cluster.inference.actor_pool.SCORING_CPUS` (0.5), so the decode tasks keep the other half.
    """
    return max(1, min(int(cluster_cpus), batches))


def score_with_ray(
    loaded: LoadedModel, paths: Sequence[str], scoring: ScoringOptions, options: PredictOptions
) -> ScoredSources:
    """Scores ``paths`` (distinct) on Ray Data with ``scoring``'s chunks and batch size; starts
    or joins Ray (``options.ray_address``). One result per path, in order."""
    init_ray(options.ray_address)
    exported = loaded.exported
    tracks = [Track(path, (), UNLABELED) for path in paths]
    scan = scan_tracks(tracks, num_cpus=options.decode_cpus)
    table, _ = track_table(tracks, np.zeros((len(tracks), len(loaded.tags)), dtype=np.float32), scan)
    plan = plan_chunks(table, sample_rate=exported.sample_rate, crop_samples=exported.crop_samples,
                       max_chunks=scoring.max_chunks)
    reasons = {path: audio_error_reason(path, reason) for path, reason in scan.skipped}
    if not plan.rows:  # no readable file long enough to score
        results = table_results(plan, TrackTally(len(table), len(loaded.tags)).result())
        return ScoredSources(source_results(paths, results, reasons), 0)
    batches = -(-len(plan.rows) // scoring.batch_size)
    actors = options.actors or default_actors(ray.cluster_resources().get("CPU", 1), batches)
    with tqdm(total=len(plan.rows), unit="chunk", desc=f"tagging {plural(len(table), 'file')}",
              disable=not options.progress) as bar:
        pooled = score_chunks(plan.rows, exported, loaded.weights, num_tracks=len(table), batch_size=scoring.batch_size,
                              num_cpus=options.decode_cpus, actors=actors, progress=bar.update)
    scored = pooled.tracks
    return ScoredSources(source_results(paths, table_results(plan, scored), reasons), scored.failed_chunks)

