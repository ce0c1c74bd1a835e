"""The pyfunc side of a logged raytag model: what ``mlflow.pyfunc.load_model(uri).predict``
runs. :mod:`raytag.tracking.mlflow_model` logs and registers it.

Input, a pandas DataFrame (or anything MLflow turns into one: a dict of columns, a list of
row dicts, JSON from ``mlflow models serve``), one row per track, each row either

- ``path``: an audio file, decoded and resampled to the model's rate by raytag's own decoder
  (the numbers ``raytag predict`` gives for that file with the same ``max_chunks``), or
- ``waveform`` (a 1-D float array, mono) and ``sample_rate`` (Hz): resampled to the model's
  rate. The rate is required: a waveform at another rate than the model's would silently give
  other numbers.

Output, a DataFrame with one row per input row: one float32 column per tag (the track-level
probability; NaN when the row could not be scored), ``tags`` (the tags at or above their
per-tag decision threshold, most probable first, ``;``-separated, as ``raytag predict`` writes
them; empty when the model has no thresholds) and ``status`` (``ok`` or why the row was not scored).

Models logged before this interface (tensor signature) call :meth:`RaytagTagger.predict` with
a (B, T) array at the model's rate and get a (B, K) array back; that still works.
"""

from __future__ import annotations

from typing import Any

import mlflow
import numpy as np
import pandas as pd

from raytag.models.export import read_exported, read_thresholds, read_weights
from raytag.predict.outputs import STATUS_OK

EXPORTED_ARTIFACT = "exported_model"  # the pyfunc artifact key of the exported folder
DEFAULT_MAX_CHUNKS = 16
DEFAULT_BATCH_SIZE = 16
PATH_COLUMN, WAVEFORM_COLUMN, RATE_COLUMN = "path", "waveform", "sample_rate"
TAGS_COLUMN, STATUS_COLUMN = "tags", "status"
OUTPUT_COLUMNS = (TAGS_COLUMN, STATUS_COLUMN)  # after one column per tag
TAG_SEPARATOR = ";"


class RaytagTagger(mlflow.pyfunc.PythonModel):
    """pyfunc wrapper of an exported raytag model (see the module docstring for the input and
    output). Params: ``max_chunks`` (most chunks per track, spread over the whole track;
    default 16) and ``batch_size`` (chunks per forward pass; default 16)."""

    def load_context(self, context) -> None:
        folder = context.artifacts[EXPORTED_ARTIFACT]
        exported = read_exported(folder, key="MLflow model artifact")
        model = exported.recipe.build()
        model.load_state_dict(read_weights(folder))
        self._model = model.eval()
        self._tags = list(exported.recipe.tags)
        self._sample_rate = exported.sample_rate
        self._crop_samples = exported.crop_samples
        self._thresholds = read_thresholds(exported)

    def predict(self, context, model_input: pd.DataFrame, params: dict[str, Any] | None = None):
        params = params or {}
        max_chunks = int(params.get("max_chunks", DEFAULT_MAX_CHUNKS))
        batch_size = int(params.get("batch_size", DEFAULT_BATCH_SIZE))
        if isinstance(model_input, np.ndarray):  # a model logged with the (B, T) tensor signature
            return tag_probabilities(self._model, np.asarray(model_input, dtype=np.float32),
                                     crop_samples=self._crop_samples, max_chunks=max_chunks, batch_size=batch_size)
        frame = model_input if isinstance(model_input, pd.DataFrame) else pd.DataFrame(model_input)
        scores, statuses = score_frame(
            self._model, frame, sample_rate=self._sample_rate, crop_samples=self._crop_samples,
            num_tags=len(self._tags), max_chunks=max_chunks, batch_size=batch_size,
        )
        return tagger_frame(scores, statuses, tags=self._tags, thresholds=self._thresholds)


def score_frame(
    model, frame: pd.DataFrame, *, sample_rate: int, crop_samples: int, num_tags: int, max_chunks: int,
    batch_size: int,
) -> tuple[np.ndarray, list[str]]:
    """Track-level probabilities of every row of ``frame`` (``path``, or ``waveform`` and
    ``sample_rate``).

    Returns:
        ``(scores (N, K) float32, NaN rows where not scored; status per row)``.

    Raises:
        ValueError: a frame with neither column, a row with neither value, a waveform without
            its rate, or a waveform that is not a finite 1-D array.
    """
    from raytag.audio.io import resample

    if PATH_COLUMN not in frame.columns and WAVEFORM_COLUMN not in frame.columns:
        raise ValueError(f"input needs a '{PATH_COLUMN}' column or '{WAVEFORM_COLUMN}' and '{RATE_COLUMN}' columns; "
                         f"got {list(frame.columns)}")
    scores = np.full((len(frame), num_tags), np.nan, dtype=np.float32)
    statuses = [STATUS_OK] * len(frame)
    paths: dict[int, str] = {}
    for row, record in enumerate(frame.to_dict("records")):
        path, waveform = record.get(PATH_COLUMN), record.get(WAVEFORM_COLUMN)
        if isinstance(path, str) and path:
            paths[row] = path
            continue
        if waveform is None or (np.isscalar(waveform) and pd.isna(waveform)):
            raise ValueError(f"row {row}: give a '{PATH_COLUMN}' or a '{WAVEFORM_COLUMN}' with its '{RATE_COLUMN}'")
        rate = record.get(RATE_COLUMN)
        if rate is None or pd.isna(rate) or int(rate) < 1:
            raise ValueError(f"row {row}: a '{WAVEFORM_COLUMN}' needs its '{RATE_COLUMN}' in Hz (the model's is {sample_rate})")
        samples = np.asarray(waveform, dtype=np.float32)
        if samples.ndim != 1 or samples.size == 0:
            raise ValueError(f"row {row}: a '{WAVEFORM_COLUMN}' must be a non-empty 1-D array (mono); got shape {samples.shape}")
        samples = resample(np.ascontiguousarray(samples), int(rate), sample_rate)
        scores[row] = tag_probabilities(model, samples[None, :], crop_samples=crop_samples, max_chunks=max_chunks,
                                        batch_size=batch_size)[0]
    if paths:
        _score_paths(model, paths, scores, statuses, sample_rate=sample_rate, crop_samples=crop_samples,
                     num_tags=num_tags, max_chunks=max_chunks, batch_size=batch_size)
    return scores, statuses


def _score_paths(model, paths: dict[int, str], scores: np.ndarray, statuses: list[str], **protocol) -> None:
    """Scores audio files as ``raytag predict`` does in process (header probe, chunks, decode,
    average, the same statuses) and fills their rows of ``scores`` and ``statuses``: ``ok``, or
    ``"<status>: <reason>"`` (``silent``, ``too short``, ``unreadable``) with no scores."""
    from raytag.engine.inference import probe_table, score_table
    from raytag.predict.outputs import gather_predictions, too_short_files

    distinct = list(dict.fromkeys(paths.values()))
    table, reasons = probe_table(distinct, num_tags=protocol["num_tags"])
    track_scores, kept, peaks = np.zeros((0, protocol["num_tags"])), np.zeros(0, dtype=np.int64), None
    if len(table):
        track_scores, kept, _, peaks = score_table(model, table, **protocol)
    too_short = too_short_files(table, crop_samples=protocol["crop_samples"], sample_rate=protocol["sample_rate"])
    found = {p.path: p for p in gather_predictions(distinct, scored_paths=table.paths, scores=track_scores, kept=kept,
                                                   reasons=reasons, peaks=peaks, too_short=too_short)}
    for row, path in paths.items():
        prediction = found[path]
        if prediction.status == STATUS_OK:
            scores[row] = prediction.probabilities
        else:
            statuses[row] = f"{prediction.status}: {prediction.reason}"


def tagger_frame(
    scores: np.ndarray, statuses: list[str], *, tags: list[str], thresholds: dict[str, float] | None
) -> pd.DataFrame:
    """The output DataFrame: one probability column per tag, ``tags`` and ``status``."""
    from raytag.thresholds import tags_above

    frame = pd.DataFrame(scores.astype(np.float32), columns=tags)
    frame[TAGS_COLUMN] = [
        "" if thresholds is None or np.isnan(row).any() else TAG_SEPARATOR.join(tags_above(row, tags, thresholds))
        for row in scores
    ]
    frame[STATUS_COLUMN] = statuses
    return frame


def tag_probabilities(
    model, waveforms: np.ndarray, *, crop_samples: int, max_chunks: int = DEFAULT_MAX_CHUNKS,
    batch_size: int = DEFAULT_BATCH_SIZE,
) -> np.ndarray:
    """Track-level tag probabilities of a batch of waveforms at the model's rate.

    Per row, as raytag evaluates a track: T equal to the crop length is one forward pass;
    shorter input is zero-padded to a crop; longer input is cut into chunks spread over the
    whole row (at most ``max_chunks``) whose probabilities are averaged.

    Args:
        model: a raytag tagger in eval mode (waveforms (n, crop) → logits (n, K)).
        waveforms: (B, T) float32 at the model's rate.
        crop_samples: the model's crop length in samples.
        max_chunks: most chunks per row for T > crop. Default 16.
        batch_size: crops per forward pass. Default 16.

    Returns:
        (B, K) float32 probabilities.

    Raises:
        ValueError: input that is not (B, T) or holds non-finite samples.
    """
    import torch

    from raytag.audio.io import chunk_starts

    if waveforms.ndim != 2 or waveforms.shape[1] == 0:
        raise ValueError(f"waveforms must be (batch, samples); got shape {waveforms.shape}")
    if not np.isfinite(waveforms).all():
        raise ValueError("waveforms hold NaN or infinite samples")
    length = waveforms.shape[1]
    if length < crop_samples:
        waveforms = np.pad(waveforms, ((0, 0), (0, crop_samples - length)))
        length = crop_samples
    starts = chunk_starts(length, crop_samples, max_chunks)
    crops = np.stack([waveforms[:, s : s + crop_samples] for s in starts], axis=1)  # (B, C, crop)
    flat = torch.from_numpy(np.ascontiguousarray(crops.reshape(-1, crop_samples)))
    with torch.no_grad():
        probabilities = torch.cat([torch.sigmoid(model(part).float()) for part in flat.split(batch_size)])
    return probabilities.reshape(len(waveforms), len(starts), -1).mean(dim=1).numpy().astype(np.float32)
