"""``raytag audit``: how noisy are a job's labels, per tag, and which labels should a person check.

A trained teacher scores every track of one split (Ray Data batch inference, cached under
``storage`` like Balanced-Masking's teacher scores); :func:`raytag.audit.audit_labels` turns
the scores and the split's manifest labels into per-tag estimates of Err+ (share of labelled
positives that are wrong) and Err− (share of labelled negatives whose tag is really there), as
in Lu et al. 2022 Table 1, and a list of the most suspicious (track, tag, label, score) rows.
When the job has clean labels (``data.clean_labels``) the per-tag table also holds the true
rates on the split, measured against them. Both tables go to ``<storage>/<job>/audit/`` (or
another folder) and to an MLflow run ``<job>-audit`` in the job's experiment.

Use a split the teacher did not train on (``valid`` by default): a teacher scoring its own
training tracks has partly memorised their noisy labels, so missing tags look like true
negatives and both rates come out too low (see :mod:`raytag.audit`). To audit the training
split, give an out-of-fold stage's folder as the teacher (``--teacher
<storage>/<job>-<stage>/best_model`` of a stage with ``folds``, :mod:`raytag.folds`): every
track is then scored by a fold model that did not train on it.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from raytag.audit import NOISE_ESTIMATED, LabelAudit, audit_labels
from raytag.audit_files import AUDIT_DIR, PER_TAG_FILE, SUSPICIOUS_FILE, audit_location, write_audit_tables
from raytag.cluster.data.datasets import scan_tracks, track_table
from raytag.plan import evaluation_labels
from raytag.predict.loading import model_folder
from raytag.cluster.inference.actor_pool import SCORING_GPUS, gpu_share
from raytag.cluster.inference.teacher_scores import teacher_scores
from raytag.cluster.session import init_ray
from raytag.data.manifest import read_manifest
from raytag import storage
from raytag.errors import JobError
from raytag.folds import read_oof_teacher
from raytag.models.export import RUN_ID_KEY, best_model_location, check_fits, read_exported
from raytag.text import plural
from raytag.tracking import run_tags as T
from raytag.tracking.client import Tracker, resolve_uri

log = logging.getLogger("raytag")

TEACHER_KEY = "--teacher"


@dataclass(frozen=True)
class AuditOutcome:
    """What ``raytag audit`` did.

    Attributes:
        audit: the per-tag table and the suspicious rows (:class:`raytag.audit.LabelAudit`).
        split: the audited split.
        tracks: the split's tracks; ``unscored`` of them had no teacher score (unreadable).
        output: the folder holding ``per_tag.csv`` and ``suspicious.csv``.
        run_id: the MLflow run (None without tracking).
        scores_location: the cached teacher scores; ``scores_reused`` whether they were read
            from an earlier audit or training run.
    """

    audit: LabelAudit
    split: str
    tracks: int
    unscored: int
    output: str
    run_id: str | None
    scores_location: str
    scores_reused: bool


def run_audit(
    job,
    *,
    teacher: str | None = None,
    split: str = "valid",
    output: str | None = None,
    max_rows: int = 200,
    max_rows_per_tag: int | None = None,
) -> AuditOutcome:
    """Audits the labels of one split of ``job`` with ``teacher``'s scores.

    Args:
        job: a validated job (:func:`raytag.config.load_job`).
        teacher: an exported model (folder, storage URI or MLflow URI) trained on the job's
            tags; default the job's own best model.
        split: ``valid`` (default), ``test`` or ``train`` (biased, see the module docstring).
        output: folder (path or storage URI) for the tables; default :func:`audit_location`.
        max_rows: length of the suspicious list. Default 200.
        max_rows_per_tag: at most this many suspicious rows per tag (None: no cap).

    Raises:
        raytag.models.export.ExportError: the teacher is not an exported model of the job's tags.
        JobError: an empty split, or no readable audio in it.
    """
    manifest = read_manifest(job.data.manifest, job.data.tags)
    tracks = manifest.split(split)
    if not tracks:
        raise JobError(f"{job.data.manifest}: the '{split}' split is empty")
    tags = list(manifest.vocabulary)
    teacher = teacher or best_model_location(job.storage, job.name)
    log.info("auditing the labels of the '%s' split (%s) with teacher %s", split, plural(len(tracks), "track"), teacher)
    labels = manifest.label_matrix(tracks)
    clean = evaluation_labels(job, tags, tracks)[0] if job.data.clean_labels else None
    oof = read_oof_teacher(teacher)
    with model_folder(teacher, tracking_uri=job.tracking.uri, option="tracking.uri") as folder:
        if oof is None:
            exported = check_fits(read_exported(folder, TEACHER_KEY), key=TEACHER_KEY, tags=tags)
            teacher_run_id = exported.info.get(RUN_ID_KEY)
        else:  # a stage's out-of-fold teachers: each track scored by the fold model that did not train on it
            for model in oof.models:
                with storage.local_folder(model) as fold_folder:
                    check_fits(read_exported(fold_folder, TEACHER_KEY), key=TEACHER_KEY, tags=tags)
            teacher_run_id = None
            log.info("the teacher is out-of-fold: %d fold models, each scoring the tracks of its left-out fold",
                     oof.folds)
        init_ray(job.ray.address, job.ray.num_cpus)
        scan = scan_tracks(tracks, num_cpus=job.data.decode_cpus, storage_root=job.storage)
        table, usable = track_table(tracks, labels, scan)
        if not len(table):
            raise JobError(f"no readable audio in the '{split}' split: {scan.summary()}")
        scored = teacher_scores(
            str(folder), table, key=TEACHER_KEY, storage_root=job.storage, max_chunks=job.eval.max_chunks,
            batch_size=job.eval.batch_size, num_cpus=job.data.decode_cpus,
            num_gpus=gpu_share(SCORING_GPUS, use_gpu=job.scaling.use_gpu), scoring=f"'{split}' split tracks",
        )
    full = np.full(labels.shape, np.nan)
    full[usable] = scored.scores
    unscored = int(np.isnan(full).all(axis=1).sum())
    if unscored:
        log.warning("%d of the '%s' split's %s have no teacher score (unreadable) and are left out",
                    unscored, split, plural(len(tracks), "track"))
    audit = audit_labels(
        scores=full, labels=labels, tags=tags, tracks=[t.path for t in tracks],
        max_rows=max_rows, max_rows_per_tag=max_rows_per_tag,
    )
    if clean is not None:
        audit = LabelAudit(with_clean_rates(audit.per_tag, noisy=labels, clean=clean), audit.suspicious)
    output = output or audit_location(job.storage, job.name)
    write_audit_tables(output, per_tag=audit.per_tag, suspicious=audit.suspicious)
    run_id = _log_audit(job, audit, teacher=teacher, teacher_run_id=teacher_run_id,
                        split=split, tracks=len(tracks), unscored=unscored)
    return AuditOutcome(audit, split, len(tracks), unscored, output, run_id, scored.location, scored.reused)


def with_clean_rates(per_tag: pd.DataFrame, *, noisy: np.ndarray, clean: np.ndarray) -> pd.DataFrame:
    """Adds the true Err+ and Err− of each tag on the audited tracks, measured against clean
    labels, as ``clean_err_plus`` and ``clean_err_minus`` (NaN where a denominator is 0).

    Args:
        per_tag: :func:`raytag.audit.audit_labels`'s table, one row per tag in column order.
        noisy, clean: (N, K) 0/1 manifest and clean labels of the split's tracks.
    """
    noisy, clean = np.asarray(noisy) > 0.5, np.asarray(clean) > 0.5
    with np.errstate(invalid="ignore", divide="ignore"):
        err_plus = (noisy & ~clean).sum(axis=0) / noisy.sum(axis=0)
        err_minus = (~noisy & clean).sum(axis=0) / (~noisy).sum(axis=0)
    out = per_tag.copy()
    out["clean_err_plus"] = err_plus.astype(float)
    out["clean_err_minus"] = err_minus.astype(float)
    return out


def _log_audit(job, audit: LabelAudit, *, teacher: str, teacher_run_id, split: str, tracks: int, unscored: int) -> str | None:
    """The run ``<job>-audit`` in the job's experiment: params, summary and per-tag metrics,
    both tables. Best effort, like all tracking."""
    if not job.tracking.enabled:
        return None
    run_tags = {T.KIND: T.KIND_AUDIT, T.TEACHER_MODEL: teacher}
    if teacher_run_id:
        run_tags[T.TEACHER_RUN_ID] = str(teacher_run_id)
    tracker = Tracker.start(resolve_uri(job.tracking.uri), job.tracking.experiment, f"{job.name}-audit", tags=run_tags)
    tracker.log_params({T.AUDIT_SPLIT_PARAM: split, "teacher": teacher, "manifest": job.data.manifest,
                        "eval.max_chunks": job.eval.max_chunks, "tracks": tracks})
    ok = audit.per_tag[audit.per_tag["status"] == NOISE_ESTIMATED]
    metrics = {"audit/tags_estimated": len(ok), "audit/unscored_tracks": unscored,
               "audit/err_plus_mean": ok["err_plus"].mean(), "audit/err_minus_mean": ok["err_minus"].mean()}
    for row in ok.itertuples(index=False):
        metrics[f"audit/err_plus/{row.tag}"] = row.err_plus
        metrics[f"audit/err_minus/{row.tag}"] = row.err_minus
    tracker.log_metrics({k: v for k, v in metrics.items() if not (isinstance(v, float) and math.isnan(v))})
    tracker.log_table(audit.per_tag.to_dict("records"), f"{AUDIT_DIR}/{PER_TAG_FILE}")
    tracker.log_table(audit.suspicious.to_dict("records"), f"{AUDIT_DIR}/{SUSPICIOUS_FILE}")
    tracker.end()
    return tracker.run_id


AUDIT_LEGEND = ("pos: labelled positives; Err+: estimated share of labelled positives that are wrong; "
                "Err-: estimated share of labelled negatives whose tag is really there")
CLEAN_LEGEND = "; true+ / true-: the same two shares measured against the clean labels"


def format_audit(audit: LabelAudit, *, rows: int = 10) -> str:
    """A short text table: per tag the labelled positives, estimated Err+ and Err− (and the
    clean ones when known, ``true+``/``true-``) and status, a line saying what the columns
    are; then the ``rows`` most suspicious labels."""
    table = audit.per_tag
    width = max([len(str(t)) for t in table["tag"]] + [3])
    has_clean = "clean_err_plus" in table
    header = f"{'tag':<{width}}  {'pos':>5}  {'Err+':>6}  {'Err-':>6}"
    header += f"  {'true+':>6}  {'true-':>6}" if has_clean else ""
    lines = [header + "  status"]
    for row in table.to_dict("records"):
        line = f"{row['tag']:<{width}}  {row['labelled_positive']:>5}  {_pct(row['err_plus'])}  {_pct(row['err_minus'])}"
        if has_clean:
            line += f"  {_pct(row['clean_err_plus'])}  {_pct(row['clean_err_minus'])}"
        lines.append(f"{line}  {row['status']}")
    lines.append(AUDIT_LEGEND + (CLEAN_LEGEND if has_clean else ""))
    suspects = audit.suspicious.head(rows)
    if len(suspects):
        lines.append(f"\nmost suspicious labels ({len(audit.suspicious)} listed):")
        for row in suspects.to_dict("records"):
            lines.append(f"{row['rank']:>4}. {row['suspected']:<8} {row['tag']:<{width}} p_wrong {row['p_wrong']:.2f}  "
                         f"score {row['score']:.3f}  {row['track']}")
    return "\n".join(lines)


def _pct(value: float) -> str:
    return f"{'n/a':>6}" if value is None or math.isnan(value) else f"{100 * value:5.1f}%"
