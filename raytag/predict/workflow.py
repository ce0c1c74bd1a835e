"""``raytag predict``: track-level tag probabilities of audio files with a trained tagger.

The model is an exported folder (a path or a storage URI) or an MLflow model
(``models:/...``, ``runs:/...``, downloaded from the tracking store). Every track is scored
as raytag evaluates one: chunks covering the whole track (at most ``max_chunks``), their
probabilities averaged.

Two executions, same numbers: up to ``ray_above`` files, a plain batched loop in this process
(:mod:`raytag.engine.inference`: header probe, decode, one model in eval mode; Ray is not even
imported); above, Ray Data (:mod:`raytag.cluster.inference.predict_ray`: a header scan on Ray Data
tasks, decode tasks and an actor pool holding the model). Both build the same track table and
chunk rows, decode with the same function and average with the same
:class:`~raytag.engine.loop.TrackAverager`. Files that cannot be tagged (missing, empty,
corrupt, no decodable chunk) get a row with status ``unreadable`` and the reason, files shorter
than one crop ``too short`` and silent ones ``silent`` (see :mod:`raytag.predict.outputs`), with no
tags; they never stop the others.
"""

from __future__ import annotations

import contextlib
import logging
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from tqdm import tqdm

from raytag import storage
from raytag.locations import is_mlflow_uri
from raytag.models.export import ExportedModel, read_exported, read_thresholds, read_weights
from raytag.predict.inputs import collect_audio
from raytag.predict.outputs import STATUS_OK, TrackPrediction, gather_predictions, too_short_files
from raytag.text import plural

if TYPE_CHECKING:
    from raytag.engine.segments import SegmentScores

log = logging.getLogger("raytag")


@dataclass(frozen=True)
class PredictOptions:
    """How ``raytag predict`` runs.

    Attributes:
        max_chunks: most chunks per track (None, the default: chunks covering the whole track).
        batch_size: chunks per forward pass. Default 16.
        ray_above: more files than this go through Ray Data; up to it, a loop in this process.
            Default 300.
        actors: Ray Data inference actors holding the model. Default None: one per CPU of the
            cluster (at most one per batch; see :func:`raytag.cluster.inference.predict_ray.default_actors`).
        decode_cpus: CPUs per Ray Data decode or header-scan task. Default 0.5: each task
            worker process imports torch (seconds of CPU) and every ``raytag predict`` on a
            fresh instance starts them, so half as many as with 0.25 start (on 2 CPUs, 1,000
            files, Ray's start-up included: 36-50 s instead of 52-64 s; see bench_predict.py).
        ray_address: the Ray cluster to join (None: ``RAY_ADDRESS`` or a new local instance).
        progress: show progress bars (on standard error). Default True.
    """

    max_chunks: int | None = None
    batch_size: int = 16
    ray_above: int = 300
    actors: int | None = None
    decode_cpus: float = 0.5
    ray_address: str | None = None
    progress: bool = True

    def __post_init__(self) -> None:
        for name in ("batch_size", "actors"):
            if getattr(self, name) is not None and getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1; got {getattr(self, name)}")
        if self.max_chunks is not None and self.max_chunks < 1:
            raise ValueError(f"max_chunks must be at least 1; got {self.max_chunks}")
        if self.ray_above < 0:
            raise ValueError(f"ray_above must be non-negative; got {self.ray_above}")
        if not self.decode_cpus > 0:
            raise ValueError(f"decode_cpus must be positive; got {self.decode_cpus}")


@dataclass(frozen=True)
class LoadedModel:
    """An exported model read into memory: description, weights and per-tag thresholds
    (None when the model has none)."""

    exported: ExportedModel
    weights: dict
    thresholds: dict[str, float] | None

    @property
    def tags(self) -> tuple[str, ...]:
        return self.exported.recipe.tags


@dataclass(frozen=True)
class PredictionResult:
    """One :class:`~raytag.predict.outputs.TrackPrediction` per input file, in input order, and
    how they were made."""

    predictions: list[TrackPrediction]
    used_ray: bool
    failed_chunks: int

    @property
    def tagged(self) -> int:
        return sum(p.status == STATUS_OK for p in self.predictions)


@contextlib.contextmanager
def model_folder(model: str, *, tracking_uri: str | None = None, option: str = "--tracking-uri") -> Iterator[Path]:
    """A local exported folder for ``model``: an MLflow URI is downloaded (tracking store
    ``tracking_uri``, default :func:`raytag.tracking.client.resolve_uri`; ``option`` names the
    setting it came from in errors), a storage URI copied, a local folder used in place;
    temporary copies are removed on exit."""
    if is_mlflow_uri(model):
        from raytag.tracking.mlflow_model import download_exported

        with tempfile.TemporaryDirectory(prefix="raytag-model-") as scratch:
            yield download_exported(model, tracking_uri=tracking_uri, dst=scratch, option=option)
        return
    if not storage.exists(model):
        raise FileNotFoundError(f"MODEL: no exported model at {model} (a folder, a storage URI, models:/... or runs:/...)")
    with storage.local_folder(model) as folder:
        yield folder


def load_model(model: str, *, tracking_uri: str | None = None) -> LoadedModel:
    """Reads the exported model named by ``model`` (see :func:`model_folder`).

    Raises:
        raytag.models.export.ExportError: not an exported model, or malformed thresholds.
        FileNotFoundError: nothing at ``model``.
    """
    with model_folder(model, tracking_uri=tracking_uri) as folder:
        exported = read_exported(folder, "MODEL")
        return LoadedModel(exported, read_weights(folder), read_thresholds(exported))


def predict_sources(loaded: LoadedModel, sources: Sequence[str], options: PredictOptions, *, top_k: int) -> PredictionResult:
    """Scores the audio files named by ``sources`` (files, folders, lists of files; see
    :func:`raytag.predict.inputs.collect_audio`) and says on the log what the output will hold.

    Raises:
        ValueError: ``sources`` name no audio file.
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
        raise ValueError(f"no audio files in {' '.join(sources)}")
    return predict_files(loaded, inputs.paths, options)


def predict_files(loaded: LoadedModel, paths: Sequence[str], options: PredictOptions) -> PredictionResult:
    """Scores every file of ``paths`` (distinct) with ``loaded``; see the module docstring.

    Returns:
        The predictions, in ``paths`` order, each with its status (and reason when not ok).
    """
    if len(paths) > options.ray_above:
        from raytag.cluster.inference.predict_ray import score_with_ray

        log.info("%d files (more than %d): scoring with Ray Data", len(paths), options.ray_above)
        table, scores, kept, failed, reasons, peaks = score_with_ray(loaded, paths, options)
        used_ray = True
    else:
        table, scores, kept, failed, reasons, peaks = score_in_process(loaded, paths, options)
        used_ray = False
    predictions = gather_predictions(paths, scored_paths=table.paths, scores=scores, kept=kept, reasons=reasons,
                                     peaks=peaks, too_short=too_short_files(
                                         table, crop_samples=loaded.exported.crop_samples, sample_rate=loaded.exported.sample_rate))
    if failed:
        log.warning("%s failed to decode; their tracks are averaged over the others", plural(failed, "chunk"))
    return PredictionResult(predictions, used_ray, failed)


def score_in_process(
    loaded: LoadedModel, paths: Sequence[str], options: PredictOptions
) -> tuple[object, np.ndarray, np.ndarray, int, dict[str, str], np.ndarray]:
    """The plain batched loop: ``(track table, scores (N', K), kept (N',), failed chunks,
    {path: reason} of unreadable files, peaks (N'))``."""
    from raytag.data.rows import chunk_rows
    from raytag.engine.inference import probe_table, score_table

    exported = loaded.exported
    model = exported.recipe.build()
    model.load_state_dict(loaded.weights)
    with tqdm(total=len(paths), unit="file", desc="reading headers", disable=not options.progress, leave=False) as bar:
        table, reasons = probe_table(paths, num_tags=len(loaded.tags), progress=bar.update)
    chunks = len(chunk_rows(table, sample_rate=exported.sample_rate, crop_samples=exported.crop_samples,
                            max_chunks=options.max_chunks))
    with tqdm(total=chunks, unit="chunk", desc=f"tagging {plural(len(table), 'file')}", disable=not options.progress) as bar:
        scores, kept, failed, peaks = score_table(
            model, table, sample_rate=exported.sample_rate, crop_samples=exported.crop_samples,
            max_chunks=options.max_chunks, batch_size=options.batch_size, num_tags=len(loaded.tags),
            progress=bar.update,
        )
    return table, scores, kept, failed, reasons, peaks


@dataclass(frozen=True)
class SegmentResult:
    """Every segment's outputs (:class:`raytag.engine.segments.SegmentScores`) and the paths
    its ``track`` indices refer to (the readable files, in input order)."""

    paths: tuple[str, ...]
    scores: SegmentScores


def segment_plan(loaded: LoadedModel, segment_seconds: float | None, hop_seconds: float | None) -> tuple[int, float]:
    """``(segment samples at the model's rate, hop in seconds)`` for ``--segment-s`` and
    ``--hop-s`` (None: the model's training crop; a hop of one segment, no overlap).

    Raises:
        ValueError: a non-positive length or hop, or a length the model cannot take.
    """
    from raytag.engine.segments import check_segment_length

    exported = loaded.exported
    if segment_seconds is None:
        segment_samples = exported.crop_samples
    elif segment_seconds > 0:
        segment_samples = round(segment_seconds * exported.sample_rate)
    else:
        raise ValueError(f"--segment-s must be a positive number of seconds; got {segment_seconds}")
    hop = segment_samples / exported.sample_rate if hop_seconds is None else hop_seconds
    if not hop > 0:
        raise ValueError(f"--hop-s must be a positive number of seconds; got {hop_seconds}")
    check_segment_length(exported.recipe.build(), segment_samples)
    return segment_samples, hop


def predict_segments(
    loaded: LoadedModel, paths: Sequence[str], options: PredictOptions, *, segment_samples: int, hop_seconds: float
) -> SegmentResult:
    """Tag activations and embeddings of every segment of ``paths`` (distinct), in this process
    (:mod:`raytag.engine.segments`), whatever the number of files: the Ray Data path averages
    chunks on its actors and keeps no per-segment output.

    Args:
        segment_samples, hop_seconds: from :func:`segment_plan`.
    """
    from raytag.engine.inference import probe_table
    from raytag.engine.segments import score_segments, segment_rows

    exported = loaded.exported
    model = exported.recipe.build()
    model.load_state_dict(loaded.weights)
    if len(paths) > options.ray_above:
        log.warning("taggrams and embeddings of %d files are computed in this process, not on Ray Data", len(paths))
    table, _ = probe_table(paths, num_tags=len(loaded.tags))  # unreadable files are reported by predict_files
    total = len(segment_rows(table, sample_rate=exported.sample_rate, segment_samples=segment_samples,
                             hop_seconds=hop_seconds))
    with tqdm(total=total, unit="segment", desc="taggrams and embeddings", disable=not options.progress) as bar:
        scores = score_segments(
            model, table, sample_rate=exported.sample_rate, segment_samples=segment_samples, hop_seconds=hop_seconds,
            batch_size=options.batch_size, progress=bar.update,
        )
    if scores.failed:
        log.warning("%s failed to decode; left out of the taggrams and embeddings", plural(scores.failed, "segment"))
    return SegmentResult(table.paths, scores)
