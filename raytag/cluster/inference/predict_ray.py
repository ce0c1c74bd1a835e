"""``raytag predict`` on Ray Data, for many files: a header scan on Ray Data tasks, decode
tasks that read only each chunk, and an actor pool holding the model
(:func:`raytag.cluster.inference.actor_pool.score_chunks`), with the in-process loop's table, rows and
per-track averaging (see :mod:`raytag.predict.workflow`)."""

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
from raytag.data.rows import chunk_rows
from raytag.engine.inference import audio_error_reason
from raytag.text import plural

if TYPE_CHECKING:  # raytag.predict.workflow imports this module when it needs Ray
    from raytag.predict.workflow import LoadedModel, PredictOptions

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
    loaded: LoadedModel, paths: Sequence[str], options: PredictOptions
) -> tuple[object, np.ndarray, np.ndarray, int, dict[str, str], np.ndarray]:
    """Scores ``paths`` (distinct) on Ray Data; starts or joins Ray (``options.ray_address``).

    Returns:
        ``(track table, scores (N', K), kept (N',) indices into the table, chunks that failed
        to decode, {path: reason} of the files the header scan could not read, peaks (N'))``.
    """
    init_ray(options.ray_address)
    exported = loaded.exported
    tracks = [Track(path, (), UNLABELED) for path in paths]
    scan = scan_tracks(tracks, num_cpus=options.decode_cpus)
    table, _ = track_table(tracks, np.zeros((len(tracks), len(loaded.tags)), dtype=np.float32), scan)
    rows = chunk_rows(table, sample_rate=exported.sample_rate, crop_samples=exported.crop_samples,
                      max_chunks=options.max_chunks)
    reasons = {path: audio_error_reason(path, reason) for path, reason in scan.skipped}
    if not rows:  # no readable file
        return (table, np.zeros((0, len(loaded.tags))), np.zeros(0, dtype=np.int64), 0, reasons,
                np.zeros(0, dtype=np.float32))
    actors = options.actors or default_actors(ray.cluster_resources().get("CPU", 1), -(-len(rows) // options.batch_size))
    with tqdm(total=len(rows), unit="chunk", desc=f"tagging {plural(len(table), 'file')}", disable=not options.progress) as bar:
        scored = score_chunks(rows, exported, loaded.weights, num_tracks=len(table), batch_size=options.batch_size,
                            num_cpus=options.decode_cpus, actors=actors, progress=bar.update)
    return table, scored.scores, scored.tracks, scored.failed_chunks, reasons, scored.peaks
