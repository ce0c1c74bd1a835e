"""``raytag predict``'s scoring: track-level tag probabilities of audio files with a trained
tagger, and segments (taggrams, embeddings) of the tagged ones.

Every track is scored by the scoring owner (:mod:`raytag.scoring`), as evaluation scores one:
chunks covering the track (at most ``max_chunks``; by default the number the model was
evaluated with), their probabilities averaged; files that hold nothing to tag get a status
(``silent``, ``too short``, ``unreadable``) and a reason instead. Two executions, same numbers:
up to ``ray_above`` files, the in-process scorer (:func:`raytag.scoring.scorer.score_sources`;
Ray is not even imported); above, Ray Data (:mod:`raytag.cluster.inference.predict_ray`: a
header scan on Ray Data tasks, decode tasks and an actor pool calling the same per-chunk step).
The command around it (checks, outputs, summary, exit code) is :mod:`raytag.predict.command`.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from tqdm import tqdm

from raytag.predict.inputs import PredictError, collect_audio
from raytag.predict.loading import LoadedModel
from raytag.scoring.options import DEFAULT_BATCH_SIZE, DEFAULT_RAY_ABOVE, ScoringOptions
from raytag.scoring.status import TrackResult, TrackStatus
from raytag.text import plural

if TYPE_CHECKING:
    from raytag.scoring.scorer import ScoredSources, Tagger
    from raytag.scoring.segments import SegmentScores

log = logging.getLogger("raytag")

MODEL_SETTING = "model"
"""``PredictOptions.max_chunks``: what the model was evaluated with (its ``scoring`` in
``model.json``), else :data:`raytag.scoring.options.DEFAULT_MAX_CHUNKS`."""


@dataclass(frozen=True)
class PredictOptions:
    """How ``raytag predict`` runs.

    Attributes:
        max_chunks: most chunks per track; :data:`MODEL_SETTING` (``"model"``, the default):
            the model's own setting (:meth:`raytag.scoring.options.ScoringOptions.for_model`);
            None: chunks covering the whole track.
        batch_size: chunks per forward pass. Default :data:`raytag.scoring.options.DEFAULT_BATCH_SIZE`.
        ray_above: more files than this go through Ray Data; up to it, a loop in this process.
            Default :data:`raytag.scoring.options.DEFAULT_RAY_ABOVE`.
        actors: Ray Data inference actors holding the model. Default None: one per CPU of the
            cluster (at most one per batch; see :func:`raytag.cluster.inference.predict_ray.default_actors`).
        decode_cpus: CPUs per Ray Data decode or header-scan task. Default 0.5: each task
            worker process imports torch (seconds of CPU) and every ``raytag predict`` on a
            fresh instance starts them, so half as many as with 0.25 start (on 2 CPUs, 1,000
            files, Ray's start-up included: 36-50 s instead of 52-64 s; see bench_predict.py).
        ray_address: the Ray cluster to join (None: ``RAY_ADDRESS`` or a new local instance).
        progress: show progress bars (on standard error). Default True.

    Raises:
        raytag.scoring.options.ScoringError: a scoring setting out of range.
        PredictError: ``actors`` below 1 or ``decode_cpus`` not positive.
    """

    max_chunks: int | None | str = MODEL_SETTING
    batch_size: int = DEFAULT_BATCH_SIZE
    ray_above: int = DEFAULT_RAY_ABOVE
    actors: int | None = None
    decode_cpus: float = 0.5
    ray_address: str | None = None
    progress: bool = True

    def __post_init__(self) -> None:
        self.scoring({})  # checks the scoring settings
        if self.actors is not None and self.actors < 1:
            raise PredictError(f"actors must be at least 1; got {self.actors}")
        if not self.decode_cpus > 0:
            raise PredictError(f"decode_cpus must be positive; got {self.decode_cpus}")

    def scoring(self, recorded: dict) -> ScoringOptions:
        """The scoring options for a model that records ``recorded`` (``LoadedModel.scoring``)."""
        given = {"batch_size": self.batch_size, "ray_above": self.ray_above}
        if self.max_chunks != MODEL_SETTING:
            given["max_chunks"] = self.max_chunks
        return ScoringOptions.for_model(recorded, **given)


@dataclass(frozen=True)
class PredictionResult:
    """One :class:`~raytag.scoring.status.TrackResult` per input file, in input order, and how
    they were made."""

    predictions: list[TrackResult]
    used_ray: bool
    failed_chunks: int
    scoring: ScoringOptions

    @property
    def tagged(self) -> int:
        return sum(p.status == TrackStatus.OK for p in self.predictions)


def predict_sources(loaded: LoadedModel, sources: Sequence[str], options: PredictOptions, *, top_k: int) -> PredictionResult:
    """Scores the audio files named by ``sources`` (files, folders, lists of files; see
    :func:`raytag.predict.inputs.collect_audio`) and says on the log what the output will hold.

    Raises:
        PredictError: ``sources`` name no audio file.
        raytag.data.manifest.ManifestError: a malformed list of files.
    """
    if loaded.thresholds is None:
        log.warning("the model has no per-tag thresholds (model.json 'thresholds'); reporting the top %s only", plural(top_k, "tag"))
    elif len(loaded.thresholds) < len(loaded.tags):
        missing = [t for t in loaded.tags if t not in loaded.thresholds]
        log.info("no threshold for %s (never listed above threshold): %s", plural(len(missing), "tag"), ", ".join(missing))
    inputs = collect_audio(sources)
    for folder in inputs.empty_folders:
        log.warning("no audio files under %s", folder)
    if inputs.repeated:
        log.info("%s named more than once %s tagged once", plural(inputs.repeated, "file"),
                 "is" if inputs.repeated == 1 else "are")
    if not inputs.paths:
        raise PredictError(f"no audio files in {' '.join(sources)}")
    return predict_files(loaded, inputs.paths, options)


def predict_files(loaded: LoadedModel, paths: Sequence[str], options: PredictOptions) -> PredictionResult:
    """Scores every file of ``paths`` (distinct) with ``loaded``; see the module docstring.

    Returns:
        The predictions, in ``paths`` order, each with its status (and reason when not ok).
    """
    scoring = options.scoring(loaded.scoring)
    if len(paths) > scoring.ray_above:
        from raytag.cluster.inference.predict_ray import score_with_ray

        log.info("%d files (more than %d): scoring with Ray Data", len(paths), scoring.ray_above)
        scored, used_ray = score_with_ray(loaded, paths, scoring, options), True
    else:
        scored, used_ray = score_in_process(loaded, paths, scoring, progress=options.progress), False
    if scored.failed_chunks:
        log.warning("%s failed to decode; their tracks are averaged over the others",
                    plural(scored.failed_chunks, "chunk"))
    return PredictionResult(scored.results, used_ray, scored.failed_chunks, scoring)


def tagger(loaded: LoadedModel) -> Tagger:
    """The loaded model, built and ready to score in this process (on the CPU)."""
    from raytag.scoring.scorer import Tagger

    return Tagger.from_exported(loaded.exported, loaded.weights)


def score_in_process(loaded: LoadedModel, paths: Sequence[str], scoring: ScoringOptions, *,
                     progress: bool) -> ScoredSources:
    """The in-process scorer (:func:`raytag.scoring.scorer.score_sources`) with progress bars."""
    from raytag.scoring.scorer import ScoringProgress, score_sources

    with contextlib.ExitStack() as bars:
        headers = bars.enter_context(tqdm(total=len(paths), unit="file", desc="reading headers", disable=not progress,
                                          leave=False))

        def planned(total: int) -> None:
            headers.close()
            chunks.total = total
            chunks.refresh()

        chunks = bars.enter_context(tqdm(total=0, unit="chunk", desc=f"tagging {plural(len(paths), 'file')}",
                                         disable=not progress, delay=0.5))
        return score_sources(tagger(loaded), paths, max_chunks=scoring.max_chunks, batch_size=scoring.batch_size,
                             progress=ScoringProgress(headers=headers.update, planned=planned, chunks=chunks.update))


@dataclass(frozen=True)
class SegmentResult:
    """Every segment's outputs (:class:`raytag.scoring.segments.SegmentScores`) and the paths
    its ``track`` indices refer to (the readable files, in input order)."""

    paths: tuple[str, ...]
    scores: SegmentScores


def segment_plan(loaded: LoadedModel, segment_seconds: float | None, hop_seconds: float | None) -> tuple[int, float]:
    """``(segment samples at the model's rate, hop in seconds)`` for ``--segment-s`` and
    ``--hop-s`` (None: the model's training crop; a hop of one segment, no overlap).

    Raises:
        raytag.scoring.options.ScoringError: a non-positive length or hop, or a length the
            model cannot take.
    """
    from raytag.scoring.options import ScoringError
    from raytag.scoring.segments import check_segment_length

    exported = loaded.exported
    if segment_seconds is None:
        segment_samples = exported.crop_samples
    elif segment_seconds > 0:
        segment_samples = round(segment_seconds * exported.sample_rate)
    else:
        raise ScoringError(f"--segment-s must be a positive number of seconds; got {segment_seconds}")
    hop = segment_samples / exported.sample_rate if hop_seconds is None else hop_seconds
    if not hop > 0:
        raise ScoringError(f"--hop-s must be a positive number of seconds; got {hop_seconds}")
    check_segment_length(exported.recipe.build(), segment_samples)
    return segment_samples, hop


def predict_segments(
    loaded: LoadedModel, paths: Sequence[str], options: PredictOptions, *, segment_samples: int, hop_seconds: float
) -> SegmentResult:
    """Tag activations and embeddings of every segment of ``paths`` (distinct), in this process
    (:mod:`raytag.scoring.segments`), whatever the number of files: the Ray Data path averages
    chunks on its actors and keeps no per-segment output.

    Args:
        segment_samples, hop_seconds: from :func:`segment_plan`.
    """
    from raytag.scoring.segments import score_segments, segment_rows
    from raytag.scoring.tracks import probe_sources

    exported = loaded.exported
    if len(paths) > options.scoring(loaded.scoring).ray_above:
        log.warning("taggrams and embeddings of %d files are computed in this process, not on Ray Data", len(paths))
    table, _ = probe_sources(paths, num_tags=len(loaded.tags))  # unreadable files are reported by predict_files
    total = len(segment_rows(table, sample_rate=exported.sample_rate, segment_samples=segment_samples,
                             hop_seconds=hop_seconds))
    with tqdm(total=total, unit="segment", desc="taggrams and embeddings", disable=not options.progress) as bar:
        scores = score_segments(tagger(loaded), table, segment_samples=segment_samples, hop_seconds=hop_seconds,
                                batch_size=options.batch_size, progress=bar.update)
    if scores.failed:
        log.warning("%s failed to decode; left out of the taggrams and embeddings", plural(scores.failed, "segment"))
    return SegmentResult(table.paths, scores)
