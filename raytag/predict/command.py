"""The ``raytag predict`` command's steps, from its arguments to its exit code, so that the
command line only parses and calls: checks that fail before any file is scored (output format,
CSV columns, segment settings), scoring (:mod:`raytag.predict.workflow`), the output file, the
segment outputs, the summary on the log and the exit code (:data:`raytag.errors.EXIT_FAILED`
when no file could be tagged).
"""

from __future__ import annotations

import contextlib
import logging
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from raytag.errors import EXIT_FAILED, EXIT_OK
from raytag.output_files import check_output_file, check_output_folder
from raytag.predict.inputs import PredictError
from raytag.predict.loading import LoadedModel, load_model
from raytag.predict.outputs import csv_columns, format_mismatch, output_format, write_output
from raytag.predict.workflow import PredictionResult, PredictOptions, predict_segments, predict_sources, segment_plan
from raytag.scoring.status import TrackStatus
from raytag.text import plural

log = logging.getLogger("raytag")


@dataclass(frozen=True)
class SegmentRequest:
    """The segment outputs asked for (``--taggram``, ``--taggram-png``, ``--embeddings``) and
    their settings (``--embeddings-per``, ``--segment-s``, ``--hop-s``); None where not given."""

    taggram: str | None = None
    taggram_png: str | None = None
    embeddings: str | None = None
    embeddings_per: str | None = None
    segment_s: float | None = None
    hop_s: float | None = None

    @property
    def wanted(self) -> bool:
        return bool(self.taggram or self.taggram_png or self.embeddings)


@dataclass(frozen=True)
class PredictRequest:
    """One ``raytag predict``: the model (a folder, a storage URI or an MLflow URI, resolved
    against ``tracking_uri``), the audio (files, folders, file lists), the output file (None:
    standard output) and its format (None: from its suffix), ``top_k``, how to score
    (:class:`~raytag.predict.workflow.PredictOptions`) and the segment outputs."""

    model: str
    audio: tuple[str, ...]
    options: PredictOptions
    output: str | None = None
    fmt: str | None = None
    top_k: int = 5
    tracking_uri: str | None = None
    segments: SegmentRequest = SegmentRequest()


@dataclass(frozen=True)
class PredictOutcome:
    """What ``raytag predict`` did; ``exit_code`` is :data:`raytag.errors.EXIT_FAILED` when no
    file could be tagged, else :data:`raytag.errors.EXIT_OK`."""

    result: PredictionResult
    untagged: dict[str, int]

    @property
    def exit_code(self) -> int:
        return EXIT_OK if self.result.tagged else EXIT_FAILED


def run_predict(request: PredictRequest) -> PredictOutcome:
    """Runs ``raytag predict``: the checks first (a bad flag fails before any file is scored),
    then scoring, the outputs and the summary on the log.

    Raises:
        PredictError, raytag.scoring.options.ScoringError: a bad flag or file name.
        raytag.models.export.ExportError: not a raytag model.
        raytag.data.manifest.ManifestError: a malformed list of files.
    """
    fmt = output_format(request.output, request.fmt)
    if request.output is not None:
        check_output_file(request.output, "-o")
    check_segment_outputs(request.segments)
    mismatch = format_mismatch(request.output, request.fmt)
    if mismatch:
        log.warning("%s", mismatch)
    loaded = load_model(request.model, tracking_uri=request.tracking_uri)
    if fmt == "csv":
        csv_columns(loaded.tags, with_thresholds=loaded.thresholds is not None)
    plan = checked_segment_plan(request.segments, loaded)
    result = predict_sources(loaded, request.audio, request.options, top_k=request.top_k)
    with output_errors("-o", request.output):
        write_output(result.predictions, request.output, fmt=fmt, tags=loaded.tags, top_k=request.top_k,
                     thresholds=loaded.thresholds)
    if plan is not None:
        with output_errors("--taggram, --taggram-png or --embeddings", None):
            write_segment_outputs(request.segments, loaded, result, request.options, plan)
    untagged = dict(sorted(Counter(str(p.status) for p in result.predictions if p.status != TrackStatus.OK).items()))
    log.info("tagged %d of %s%s%s", result.tagged, plural(len(result.predictions), "file"),
             "; not tagged: " + ", ".join(f"{n} {status}" for status, n in untagged.items()) +
             " (see their status and reason)" if untagged else "",
             f"; wrote {request.output}" if request.output else "")
    log_decoder_messages()
    return PredictOutcome(result, untagged)


@contextlib.contextmanager
def output_errors(flag: str, path: str | None) -> Iterator[None]:
    """Turns a file system error while writing an output (an unwritable folder, a full disk)
    into a :class:`PredictError` naming the flag and the file."""
    try:
        yield
    except OSError as exc:
        where = exc.filename or path
        raise PredictError(f"{flag} {where}: cannot write ({exc.strerror or exc})") from None


def check_segment_outputs(segments: SegmentRequest) -> None:
    """Checks where ``--taggram``, ``--embeddings`` (and a ``.npy``'s rows file beside it) and
    ``--taggram-png`` write, before the model is loaded or any file scored: like ``-o``, a
    missing folder is an error, never created (:mod:`raytag.output_files`).

    Raises:
        raytag.output_files.OutputPathError: a folder that does not exist or cannot be written.
    """
    from raytag.predict.taggrams import rows_file

    if segments.taggram:
        check_output_file(segments.taggram, "--taggram")
    if segments.embeddings:
        check_output_file(segments.embeddings, "--embeddings")
        if Path(segments.embeddings).suffix.lower() == ".npy":
            check_output_file(rows_file(segments.embeddings), "--embeddings")
    if segments.taggram_png:
        check_output_folder(segments.taggram_png, "--taggram-png")


def checked_segment_plan(segments: SegmentRequest, loaded: LoadedModel) -> tuple[int, float] | None:
    """``(segment samples, hop seconds)`` when a segment output is asked for, checked before
    any file is tagged; None otherwise.

    Raises:
        PredictError: a segment setting without the output it sets, or a bad output file name.
        raytag.scoring.options.ScoringError: a segment length or hop the model cannot take.
    """
    from raytag.predict.taggrams import EMBEDDING_FORMATS, TAGGRAM_FORMATS, file_format, taggram_columns

    if segments.embeddings_per and not segments.embeddings:
        raise PredictError("--embeddings-per says what --embeddings FILE holds; give --embeddings")
    if not segments.wanted:
        for flag, value in (("--segment-s", segments.segment_s), ("--hop-s", segments.hop_s)):
            if value is not None:
                raise PredictError(f"{flag} sets the segments of --taggram, --taggram-png and --embeddings; give one")
        return None
    if segments.taggram and file_format(segments.taggram, TAGGRAM_FORMATS, "--taggram") == "csv":
        taggram_columns(loaded.tags)
    if segments.embeddings:
        file_format(segments.embeddings, EMBEDDING_FORMATS, "--embeddings")
    return segment_plan(loaded, segments.segment_s, segments.hop_s)


def write_segment_outputs(segments: SegmentRequest, loaded: LoadedModel, result: PredictionResult,
                          options: PredictOptions, plan: tuple[int, float]) -> None:
    """Scores the tagged files' segments and writes the taggram, heat maps and embeddings asked for."""
    from raytag.predict.taggrams import write_embeddings, write_heat_maps, write_taggram

    tagged = [p.source for p in result.predictions if p.status == TrackStatus.OK]
    if not tagged:
        return
    scored = predict_segments(loaded, tagged, options, segment_samples=plan[0], hop_seconds=plan[1])
    if segments.taggram:
        rows = write_taggram(segments.taggram, scored.scores, scored.paths, loaded.tags)
        log.info("wrote %s: %s of %s", segments.taggram, plural(rows, "segment"), plural(len(tagged), "file"))
    if segments.taggram_png:
        written = write_heat_maps(segments.taggram_png, scored.scores, scored.paths, loaded.tags)
        log.info("wrote %s to %s", plural(len(written), "taggram heat map"), segments.taggram_png)
    if segments.embeddings:
        per = segments.embeddings_per or "file"
        rows = write_embeddings(segments.embeddings, scored.scores, scored.paths, per=per)
        log.info("wrote %s: %s (one per %s) of size %d", segments.embeddings, plural(rows, "embedding"), per,
                 scored.scores.embeddings.shape[1])


def log_decoder_messages() -> None:
    """How many messages the decoder libraries printed in this process (captured, not shown;
    their kinds at debug level, ``-v``)."""
    from raytag.audio import chatter

    counts = chatter.counts()
    if counts:
        log.info("decoder library messages captured (not printed): %d", sum(counts.values()))
        for kind, count in sorted(counts.items(), key=lambda item: -item[1]):
            log.debug("  %d x %s", count, kind)
