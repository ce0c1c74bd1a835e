"""The pyfunc side of a logged raytag model: what ``mlflow.pyfunc.load_model(uri).predict``
runs. :mod:`raytag.tracking.mlflow_model` logs and registers it.

Input, a pandas DataFrame (or anything MLflow turns into one: a dict of columns, a list of
row dicts, JSON from ``mlflow models serve``), one row per track, each row either

- ``path``: an audio file, or
- ``waveform`` (a 1-D float array, mono) and ``sample_rate`` (Hz). The rate is required: a
  waveform at another rate than the model's would silently give other numbers.

Both are scored by raytag's scoring owner (:func:`raytag.scoring.scorer.score_sources`), a
waveform as an in-memory source (:class:`raytag.audio.waveform.Waveform`) with a file's exact
arithmetic: chunks cut at the waveform's own rate and then resampled, the same chunk starts,
the same ``silent`` / ``too short`` / ``unreadable`` statuses. So a file, its samples as a
waveform at the file's rate, and ``raytag predict`` of the file give the same numbers.

Params: ``max_chunks`` (most chunks per track; 0: the whole track; default: what the model was
evaluated with, as ``raytag predict``) and ``batch_size`` (chunks per forward pass).

Output, a DataFrame with one row per input row: one float32 column per tag (the track-level
probability; NaN when the row was not tagged), ``tags`` (the tags at or above their per-tag
decision threshold, most probable first, ``;``-separated, as ``raytag predict`` writes them;
empty when the model has no thresholds) and ``status`` (``ok``, or ``"<status>: <reason>"``).

Models logged before this interface (tensor signature) call :meth:`RaytagTagger.predict` with
a (B, T) array at the model's rate; each row is scored as a waveform at the model's rate, and a
(B, K) array comes back (NaN rows where a row was not tagged, e.g. silence).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Any

import mlflow
import numpy as np
import pandas as pd

from raytag.models.export import read_exported, read_thresholds, read_weights, recorded_scoring
from raytag.scoring.options import ScoringError, ScoringOptions
from raytag.scoring.status import TrackResult, TrackStatus

EXPORTED_ARTIFACT = "exported_model"  # the pyfunc artifact key of the exported folder
PATH_COLUMN, WAVEFORM_COLUMN, RATE_COLUMN = "path", "waveform", "sample_rate"
TAGS_COLUMN, STATUS_COLUMN = "tags", "status"
OUTPUT_COLUMNS = (TAGS_COLUMN, STATUS_COLUMN)  # after one column per tag
TAG_SEPARATOR = ";"
WHOLE_TRACK = 0
"""The ``max_chunks`` param that asks for chunks covering the whole track (a param is an integer)."""


class RaytagTagger(mlflow.pyfunc.PythonModel):
    """pyfunc wrapper of an exported raytag model (see the module docstring for the input,
    output and params)."""

    def load_context(self, context) -> None:
        from raytag.scoring.scorer import Tagger

        folder = context.artifacts[EXPORTED_ARTIFACT]
        exported = read_exported(folder, key="MLflow model artifact")
        self._tagger = Tagger.from_exported(exported, read_weights(folder))
        self._thresholds = read_thresholds(exported)
        self._scoring = ScoringOptions.for_model(recorded_scoring(exported))

    def predict(self, context, model_input: pd.DataFrame, params: dict[str, Any] | None = None):
        options = options_from_params(self._scoring, params)
        tags = list(self._tagger.tags)
        if isinstance(model_input, np.ndarray):  # a model logged with the (B, T) tensor signature
            sources = array_sources(model_input, self._tagger.sample_rate)
            return result_scores(score(self._tagger, sources, options), len(tags))
        frame = model_input if isinstance(model_input, pd.DataFrame) else pd.DataFrame(model_input)
        results = score(self._tagger, frame_sources(frame, model_rate=self._tagger.sample_rate), options)
        return tagger_frame(results, tags=tags, thresholds=self._thresholds)


def options_from_params(model_options: ScoringOptions, params: Mapping[str, Any] | None) -> ScoringOptions:
    """The model's scoring options with the call's ``max_chunks`` (0: the whole track) and
    ``batch_size`` params.

    Raises:
        ScoringError: a param out of range.
    """
    given: dict[str, Any] = {}
    for name in ("max_chunks", "batch_size"):
        value = (params or {}).get(name)
        if value is None:
            continue
        try:
            given[name] = int(value)
        except (TypeError, ValueError):
            raise ScoringError(f"param {name} must be a whole number; got {value!r}") from None
    if given.get("max_chunks") == WHOLE_TRACK:
        given["max_chunks"] = None
    return replace(model_options, **given)


def max_chunks_param(options: ScoringOptions) -> int:
    """``options.max_chunks`` as the integer param (:data:`WHOLE_TRACK` for None)."""
    return WHOLE_TRACK if options.max_chunks is None else options.max_chunks


def frame_sources(frame: pd.DataFrame, *, model_rate: int) -> list:
    """Each row's source: its ``path``, or its ``waveform`` at ``sample_rate`` as a
    :class:`~raytag.audio.waveform.Waveform` named ``"waveform (row N)"``.

    Raises:
        ScoringError: a frame with neither column, a row with neither value, or a waveform
            without its rate.
        raytag.audio.waveform.WaveformError: a waveform that is not a 1-D array of numbers.
    """
    from raytag.audio.waveform import Waveform

    if PATH_COLUMN not in frame.columns and WAVEFORM_COLUMN not in frame.columns:
        raise ScoringError(f"input needs a '{PATH_COLUMN}' column or '{WAVEFORM_COLUMN}' and '{RATE_COLUMN}' "
                           f"columns; got {list(frame.columns)}")
    sources = []
    for row, record in enumerate(frame.to_dict("records")):
        path, waveform = record.get(PATH_COLUMN), record.get(WAVEFORM_COLUMN)
        if isinstance(path, str) and path:
            sources.append(path)
            continue
        if waveform is None or (np.isscalar(waveform) and pd.isna(waveform)):
            raise ScoringError(f"row {row}: give a '{PATH_COLUMN}' or a '{WAVEFORM_COLUMN}' with its '{RATE_COLUMN}'")
        rate = record.get(RATE_COLUMN)
        if rate is None or pd.isna(rate):
            raise ScoringError(f"row {row}: a '{WAVEFORM_COLUMN}' needs its '{RATE_COLUMN}' in Hz "
                               f"(the model's is {model_rate})")
        sources.append(Waveform(waveform, rate, name=f"waveform (row {row})"))
    return sources


def array_sources(waveforms: np.ndarray, model_rate: int) -> list:
    """The rows of a (B, T) array at the model's rate as waveform sources.

    Raises:
        ScoringError: an array that is not (B, T).
    """
    from raytag.audio.waveform import Waveform

    if waveforms.ndim != 2:
        raise ScoringError(f"waveforms must be (batch, samples); got shape {waveforms.shape}")
    return [Waveform(row, model_rate, name=f"waveform (row {index})") for index, row in enumerate(waveforms)]


def score(tagger, sources: list, options: ScoringOptions) -> list[TrackResult]:
    """One result per source, in order (a path named twice is scored once)."""
    from raytag.scoring.scorer import score_sources

    distinct = list(dict.fromkeys(sources))
    scored = score_sources(tagger, distinct, max_chunks=options.max_chunks, batch_size=options.batch_size)
    by_source = dict(zip(distinct, scored.results))
    return [by_source[source] for source in sources]


def result_scores(results: list[TrackResult], num_tags: int) -> np.ndarray:
    """(N, K) float32 probabilities of the results, NaN rows where a track was not tagged."""
    scores = np.full((len(results), num_tags), np.nan, dtype=np.float32)
    for row, result in enumerate(results):
        if result.status == TrackStatus.OK:
            scores[row] = result.probabilities
    return scores


def tagger_frame(results: list[TrackResult], *, tags: list[str], thresholds: dict[str, float] | None) -> pd.DataFrame:
    """The output DataFrame: one probability column per tag, ``tags`` and ``status``."""
    from raytag.thresholds import tags_above

    scores = result_scores(results, len(tags))
    frame = pd.DataFrame(scores, columns=tags)
    frame[TAGS_COLUMN] = [
        "" if thresholds is None or np.isnan(row).any() else TAG_SEPARATOR.join(tags_above(row, tags, thresholds))
        for row in scores
    ]
    frame[STATUS_COLUMN] = [str(r.status) if r.status == TrackStatus.OK else f"{r.status}: {r.reason}" for r in results]
    return frame
