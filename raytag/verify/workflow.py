"""``raytag verify``: make a verification page for a batch of tracks, or apply its decisions.

Making a page (:func:`make_page`): the candidates are the split's rows that are not verified
yet and not listed in ``skip`` files (earlier batches whose decisions are not applied yet); the
label audit's suspects (``<storage>/<job>/audit/suspicious.csv`` when ``raytag audit`` has run)
come first, at most ``max_suspects`` tracks, then the per-tag stratified order of
:mod:`raytag.verify.pick`. Each track's header is read and its clip decoded and encoded in
turn; a track that cannot be read is listed and the next one taken, so the page holds
``tracks`` tracks whenever the split has that many readable ones. Next to the page goes
``<page>.tracks.csv``: the batch's tracks, why each was picked and where its clip is (a list
``skip`` accepts).

Applying (:func:`apply_file`): the decisions CSV is checked against the job's manifest and
vocabulary, and a new manifest is written (never over the original).

No Ray; MLflow only to download a ``models:/`` or ``runs:/`` model.
"""

from __future__ import annotations

import csv
import io
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path, PurePath

from raytag import storage
from raytag.audio.io import AudioError, probe
from raytag.audit_files import audit_location, read_suspects
from raytag.data.manifest import Manifest, Track, read_manifest, read_manifest_rows, read_paths, write_manifest
from raytag.errors import InputError
from raytag.locations import is_uri
from raytag.text import plural
from raytag.verify.apply import AppliedDecisions, apply_decisions
from raytag.verify.clips import DEFAULT_BITRATE, Clip, clip_window, make_clip, relevant_segment
from raytag.verify.decisions import decode_decisions, parse_decisions
from raytag.verify.page import PageTrack, Suspicion, batch_id, render_page
from raytag.verify.pick import Pick, pick_order, stratum_counts

log = logging.getLogger("raytag")

SPLITS = ("valid", "train", "test")


class VerifyError(InputError):
    """Bad input to ``raytag verify`` (an output that exists, an empty split, a bad audit)."""


@dataclass(frozen=True)
class PageOptions:
    """What page ``raytag verify`` makes.

    Attributes:
        output: the page (``.html``).
        tracks: tracks in the batch. Default 200.
        split: ``valid`` (default: verified validation rows are what model selection uses),
            ``train`` or ``test``.
        seed: the pick's seed. Default 0.
        model: an exported model (folder, storage URI, ``models:/``, ``runs:/``) whose segment
            scores place each clip; None: clips from the middle of the tracks.
        audit: folder of an audit's tables; None: the job's (``<storage>/<job>/audit``) if it
            holds one. ``use_audit=False`` ignores any audit.
        max_suspects: most audit suspects in the batch (None: half the batch), so that the
            rest is a stratified sample.
        skip: files listing tracks not to pick (any CSV/TSV/JSONL with a ``path`` column: an
            earlier page's ``.tracks.csv`` or decisions).
        clip_s: seconds of audio per track. Default 20.
        bitrate: Opus bit/s. Default 24,000.
        overwrite: replace an existing page.
    """

    output: str
    tracks: int = 200
    split: str = "valid"
    seed: int = 0
    model: str | None = None
    audit: str | None = None
    use_audit: bool = True
    max_suspects: int | None = None
    skip: tuple[str, ...] = ()
    clip_s: float = 20.0
    bitrate: int = DEFAULT_BITRATE
    overwrite: bool = False

    def __post_init__(self) -> None:
        if self.split not in SPLITS:
            raise VerifyError(f"--split must be one of {', '.join(SPLITS)}; got {self.split!r}")
        if self.tracks < 1 or not self.clip_s > 0 or self.bitrate < 6000:
            raise VerifyError("--tracks must be at least 1, --clip-s positive, --kbps at least 6")


@dataclass
class PageOutcome:
    """What :func:`make_page` did (see :meth:`format`)."""

    output: str
    tracks_list: str
    batch: str
    size: int
    split: str
    asked: int
    tracks: list[PageTrack]
    candidates: int
    verified_left_out: int
    listed_left_out: int
    audit: str | None
    suspects: int
    suspect_rows_elsewhere: int
    unreadable: list[tuple[str, str]] = field(default_factory=list)
    silent: int = 0
    scaled: int = 0
    strata: str = ""

    def format(self) -> str:
        lines = [
            f"verification page: {self.output} ({self.size / 2**20:.1f} MiB, batch {self.batch}): "
            f"{plural(len(self.tracks), 'track')} of the '{self.split}' split"
            + (f" (asked for {self.asked}: no more readable candidates)" if len(self.tracks) < self.asked else ""),
            f"  candidates: {plural(self.candidates, 'unverified track')} ({self.verified_left_out} verified and "
            f"{self.listed_left_out} listed in --skip files left out)",
        ]
        if self.audit is None:
            lines.append("  no audit (run `raytag audit` first to put its suspects first)")
        else:
            lines.append(f"  audit suspects first: {plural(self.suspects, 'track')} (from {self.audit}; "
                         f"{plural(self.suspect_rows_elsewhere, 'suspect row')} about tracks that are not candidates)")
        lines.append(f"  labelled positives / negatives per tag in the batch: {self.strata}")
        if self.unreadable:
            lines.append(f"  unreadable, left out: {plural(len(self.unreadable), 'track')}")
            lines += [f"    {path}: {reason}" for path, reason in self.unreadable]
        if self.silent or self.scaled:
            lines.append(f"  clips: {self.silent} silent (said on the page), {self.scaled} scaled down to avoid clipping")
        lines.append(f"  track list: {self.tracks_list}")
        return "\n".join(lines)


def make_page(job, options: PageOptions) -> PageOutcome:
    """Picks a batch of ``job``'s tracks and writes their verification page (module docstring).

    Raises:
        VerifyError: an existing output without ``overwrite``, no candidate track, an audit
            given but not there or naming tags outside the vocabulary, too few readable tracks.
        raytag.models.export.ExportError: a model not trained on the job's tags.
    """
    output = storage_location(options.output)
    if not output.lower().endswith((".html", ".htm")):
        raise VerifyError(f"-o {options.output}: the page is an HTML file; name it *.html")
    for existing in (output, _tracks_list(output)):
        if storage.exists(existing) and not options.overwrite:
            raise VerifyError(f"{existing} exists; pass --overwrite to replace it")
    manifest = read_manifest(job.data.manifest, job.data.tags)
    split = manifest.split(options.split)
    listed = {path for source in options.skip for path in read_paths(source)}
    candidates = [t for t in split if not t.verified and t.path not in listed]
    if not candidates:
        raise VerifyError(f"{job.data.manifest}: no unverified track in the '{options.split}' split to pick")
    audit, suspicions, elsewhere = _suspicions(job, options, candidates, manifest.vocabulary)
    limit = options.tracks // 2 if options.max_suspects is None else options.max_suspects
    suspect_rows = [i for i, track in enumerate(candidates) if track.path in suspicions]
    suspect_rows.sort(key=lambda i: suspicions[candidates[i].path][0][0])
    labels = manifest.label_matrix(candidates)
    order = pick_order(labels, manifest.vocabulary, paths=[t.path for t in candidates], seed=options.seed,
                       suspects=suspect_rows[:limit])
    scorer = _SegmentScorer(options.model, job, manifest.vocabulary) if options.model else None
    outcome = PageOutcome(output, _tracks_list(output), "", 0, options.split, options.tracks, [], len(candidates),
                          sum(t.verified for t in split), sum(t.path in listed and not t.verified for t in split),
                          audit, min(limit, len(suspect_rows)), elsewhere)
    picked: list[int] = []
    for pick in order:
        track = candidates[pick.index]
        try:
            page_track, clip = _page_track(track, pick, suspicions.get(track.path, []), options, scorer)
        except AudioError as exc:
            outcome.unreadable.append((track.path, str(exc).removeprefix(f"{track.path}: ")))
            continue
        outcome.tracks.append(page_track)
        outcome.silent += clip.silent
        outcome.scaled += clip.gain_db < 0
        picked.append(pick.index)
        if len(picked) == options.tracks:
            break
        if len(picked) % 20 == 0:
            log.info("verify: %d of %d clips made", len(picked), options.tracks)
    if not picked:
        raise VerifyError(f"none of the {plural(len(candidates), 'candidate track')} is readable")
    positives, negatives = stratum_counts(labels, picked)
    outcome.strata = ", ".join(f"{t} {p}/{n}" for t, p, n in zip(manifest.vocabulary, positives, negatives))
    outcome.batch = batch_id(manifest=manifest.source, split=options.split, seed=options.seed,
                             paths=[t.path for t in outcome.tracks])
    title = f"{job.name}: verify {plural(len(picked), 'track')} of the '{options.split}' split"
    page = render_page(title=title, batch=outcome.batch, vocabulary=manifest.vocabulary, tracks=outcome.tracks)
    storage.write_text(output, page)
    storage.write_text(outcome.tracks_list, _tracks_csv(outcome.tracks))
    outcome.size = len(page.encode())
    return outcome


def storage_location(location: str) -> str:
    """A URI as given, a local path made absolute."""
    return location if is_uri(location) else str(Path(location).expanduser().resolve())


def _tracks_list(page: str) -> str:
    stem = page.rsplit(".", 1)[0]
    return f"{stem}.tracks.csv"


def _tracks_csv(tracks: Sequence[PageTrack]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["path", "tags", "picked_as", "clip"])
    writer.writerows([t.path, ";".join(t.tags), t.reason, t.clip_how] for t in tracks)
    return buffer.getvalue()


def _suspicions(job, options: PageOptions, candidates: Sequence[Track], vocabulary: Sequence[str]):
    """``(audit folder or None, {path: [(rank, Suspicion)]} of candidates, suspect rows about
    other tracks)``."""
    if not options.use_audit:
        return None, {}, 0
    folder = options.audit or audit_location(job.storage, job.name)
    suspects = read_suspects(storage_location(folder) if options.audit else folder)
    if suspects is None:
        if options.audit:
            raise VerifyError(f"--audit {options.audit}: no suspicious.csv there (written by raytag audit)")
        return None, {}, 0
    known, paths = set(vocabulary), {t.path for t in candidates}
    found: dict[str, list] = {}
    for suspect in suspects:
        if suspect.tag not in known:
            raise VerifyError(f"{folder}: the audit names tag {suspect.tag!r}, which is not in the job's vocabulary")
        if suspect.track in paths:
            found.setdefault(suspect.track, []).append(
                (suspect.rank, Suspicion(suspect.tag, suspect.suspected, suspect.p_wrong)))
    return folder, found, sum(s.track not in paths for s in suspects)


def _page_track(track: Track, pick: Pick, ranked: list, options: PageOptions, scorer) -> tuple[PageTrack, Clip]:
    info = probe(track.path)
    suspicions = tuple(s for _, s in ranked)
    where = "the middle of the track"
    center = None
    if scorer is not None:
        relevant = list(dict.fromkeys(list(track.tags) + [s.tag for s in suspicions]))
        found = scorer.best(track.path, relevant)
        if found is None:
            where = "the middle of the track (no segment of it could be scored)"
        else:
            center, where = found
    start, end = clip_window(info.seconds, options.clip_s, center)
    clip = make_clip(track.path, source_rate=info.sample_rate, start_s=start, end_s=end, bitrate=options.bitrate)
    how = f"clip {clip.start_s:.1f}–{clip.end_s:.1f} s of {info.seconds:.1f} s: {where}"
    if clip.gain_db < 0:
        how += f"; scaled by {clip.gain_db:.1f} dB so it does not clip"
    if clip.silent:
        how += "; SILENT: the clip's peak is below -80 dBFS"
    reason = pick.reason + "".join(f"; audit: {s.suspected} {s.tag}" for s in suspicions)
    return PageTrack(track.path, track.tags, suspicions, reason, how, clip.data), clip


class _SegmentScorer:
    """Per-segment scores of one track at a time with the model (:mod:`raytag.scoring.segments`)."""

    def __init__(self, model: str, job, vocabulary: Sequence[str]):
        from raytag.models.export import check_fits
        from raytag.predict.loading import load_model
        from raytag.scoring.scorer import Tagger

        self.loaded = load_model(model, tracking_uri=job.tracking.uri)
        check_fits(self.loaded.exported, key="--model", tags=vocabulary)
        self.tagger = Tagger.from_exported(self.loaded.exported, self.loaded.weights)
        self.vocabulary = list(vocabulary)

    def best(self, path: str, tags: Sequence[str]) -> tuple[float, str] | None:
        """``(centre in seconds, words)`` of the segment where the model scores ``tags`` highest."""
        from raytag.scoring.segments import score_segments
        from raytag.scoring.tracks import probe_sources

        exported = self.loaded.exported
        table, _ = probe_sources([path], num_tags=len(self.vocabulary))
        if not len(table):
            return None
        scores = score_segments(self.tagger, table, segment_samples=exported.crop_samples,
                                hop_seconds=exported.crop_samples / exported.sample_rate / 2, batch_size=16)
        if not len(scores.probabilities):
            return None
        columns = [self.vocabulary.index(t) for t in tags]
        segment, score = relevant_segment(scores.probabilities, columns)
        start, end = float(scores.start_s[segment]), float(scores.end_s[segment])
        what = f"the model scores {', '.join(tags)} highest" if tags else "the model is surest of any tag"
        return (start + end) / 2, f"around {start:.1f}–{end:.1f} s, where {what} ({score:.2f})"


@dataclass(frozen=True)
class ApplyOutcome:
    """What :func:`apply_file` wrote: the new manifest, read back, and what changed."""

    output: str
    manifest: Manifest
    applied: AppliedDecisions


def apply_file(job, *, decisions: str, output: str, overwrite: bool = False) -> ApplyOutcome:
    """Writes a new manifest: ``job``'s manifest with the decisions in ``decisions`` applied.

    Raises:
        VerifyError: ``output`` is the job's manifest, or exists without ``overwrite``; no
            decisions file.
        raytag.verify.decisions.DecisionsError: a malformed decisions file, a decision for an
            unknown track or with a tag outside the vocabulary, naming the line.
    """
    manifest = read_manifest(job.data.manifest, job.data.tags)
    target = storage_location(output)
    if target == manifest.source:
        raise VerifyError(f"-o {output} is the job's manifest; the original is never overwritten: name a new file")
    if storage.exists(target) and not overwrite:
        raise VerifyError(f"{target} exists; pass --overwrite to replace it")
    location = storage_location(decisions)
    if not storage.is_file(location):
        raise VerifyError(f"--apply {decisions}: no such file")
    text = decode_decisions(storage.read_bytes(location), source=decisions)
    parsed = parse_decisions(text, source=decisions, vocabulary=manifest.vocabulary)
    folder = manifest.source.rsplit("/", 1)[0]
    parsed = [d if is_uri(d.path) or PurePath(d.path).is_absolute() else replace(d, path=_under(folder, d.path))
              for d in parsed]
    columns, rows = read_manifest_rows(manifest.source)
    applied = apply_decisions(columns, rows, manifest.tracks, parsed, vocabulary=manifest.vocabulary,
                              source=decisions, absolute_paths=target.rsplit("/", 1)[0] != folder)
    written = write_manifest(target, applied.columns, applied.rows, overwrite=overwrite)
    return ApplyOutcome(target, written, applied)


def _under(folder: str, path: str) -> str:
    return f"{folder}/{path}" if is_uri(folder) else str((Path(folder) / path).resolve())
