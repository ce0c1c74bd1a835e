"""The driver: one function runs a job end to end on Ray.

read + validate manifest and the method's teachers → scan audio headers (Ray Data) → serve the
method's needs (teacher scores → per-track columns; an unlabeled stream) → TorchTrainer (DDP
workers; per-epoch metrics to MLflow through the controller's callback) → export the best
model to storage → evaluate it with Ray Data batch inference → MLflow.

Everything that can be checked without a cluster is checked before Ray starts. The driver
never names a training method: it asks the method what it needs.
"""

from __future__ import annotations

import dataclasses
import json
import os
import logging
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import ray
import ray.train
from ray.train import CheckpointConfig, FailureConfig, RunConfig
from ray.train.torch import TorchTrainer
from ray.util.queue import Empty, Queue

from raytag.cluster import storage
from raytag.cluster.audio_cache import cached_tables
from raytag.cluster.checkpoints import latest_checkpoint
from raytag.cluster.datasets import EpochData, ScanResult, UnlabeledSource, audio_files, scan_tracks, track_table
from raytag.cluster.evaluation import evaluate, evaluation_labels
from raytag.cluster.inference import SoftLabeler
from raytag.cluster.scoring import teacher_scores
from raytag.cluster.session import init_ray
from raytag.cluster.worker import train_loop_per_worker
from raytag.config import JobConfig
from raytag.data.manifest import Manifest, ManifestError, Track, read_manifest
from raytag.data.rows import TrackTable
from raytag.engine import checkpoint as ckpt
from raytag.errors import JobError
from raytag.locations import resolve_storage, run_location
from raytag.methods import build_method
from raytag.methods.base import Method, TeacherNeed
from raytag.metrics import TaggingReport
from raytag.models import count_parameters
from raytag.models.export import META_FILE, THRESHOLDS_KEY, ModelRecipe, best_model_location, check_fits, read_exported, read_weights, write_exported
from raytag.thresholds import STATUS_OK, choose_thresholds, threshold_map
from raytag.text import plural
from raytag.tracking import tags as T
from raytag.tracking.callback import EpochMetricsToMlflow
from raytag.tracking.client import Tracker
from raytag.tracking.mlflow_model import publish_model
from raytag.tracking.run_plots import log_run_plots
from raytag.tracking.runs import start_run

WORKER_GROUP_START_TIMEOUT_ENV = "RAY_TRAIN_WORKER_GROUP_START_TIMEOUT_S"

log = logging.getLogger("raytag")


@dataclass
class Prepared:
    """What the driver knows before any cluster work: data, model recipe, method."""

    manifest: Manifest
    recipe: ModelRecipe
    method: Method
    sample_rate: int
    crop_samples: int
    parameters: int


@dataclass
class Outcome:
    """The result of a job: where the best model is, how it scored, which MLflow run has it,
    and the MLflow model logged from it (``models:/<model_id>``; None without tracking)."""

    model_location: str
    report: TaggingReport
    best_epoch: int | None
    run_id: str | None
    skipped_files: int
    model_uri: str | None = None


def prepare(job: JobConfig) -> Prepared:
    """Reads the manifest, builds the model once and checks the method's teachers (no Ray)."""
    manifest = read_manifest(job.data.manifest, job.data.tags)
    recipe = ModelRecipe(job.model.name, dict(job.model.args), manifest.vocabulary, job.model.head)
    model = recipe.build()
    counts = manifest.counts()
    for split in ("train", "valid", job.eval.split):
        if counts[split] == 0:
            raise JobError(f"{job.data.manifest}: the '{split}' split is empty")
    if manifest.dropped_tags:
        log.warning("dropped %d tag occurrences outside the vocabulary", manifest.dropped_tags)
    if job.data.train_subset == "verified" and not any(t.verified for t in manifest.split("train")):
        raise JobError(f"data.train_subset is verified but {job.data.manifest} marks no training row verified")
    if job.model.init is not None:
        with storage.local_folder(job.model.init) as folder:
            check_fits(read_exported(folder, "model.init"), key="model.init", recipe=recipe)
    method = build_method(job, tags=list(recipe.tags))
    needs = method.needs
    if needs.scores_teacher is not None:
        _check_teacher(needs.scores_teacher, recipe.tags, sample_rate=None)
    if needs.unlabeled_teacher is not None:
        _check_teacher(needs.unlabeled_teacher, recipe.tags, sample_rate=model.sample_rate)
        if job.semi.unlabeled_dir is not None and not Path(job.semi.unlabeled_dir).is_dir():
            raise JobError(f"semi.unlabeled_dir: {job.semi.unlabeled_dir} is not a folder")
    return Prepared(manifest, recipe, method, model.sample_rate, model.crop_samples, count_parameters(model))


def _check_teacher(need: TeacherNeed, tags: tuple[str, ...], *, sample_rate: int | None) -> None:
    """An exported teacher must exist and be trained on the job's tags (and rate, when it
    labels crops the student sees); checked before any cluster work."""
    if need.folder is None:
        read_exported(None, need.key)  # raises: names the missing config key
    with storage.local_folder(need.folder) as folder:
        check_fits(read_exported(folder, need.key), key=need.key, tags=tags, sample_rate=sample_rate)


def ensure_ray(job: JobConfig) -> None:
    """Connects to ``ray.address`` or starts a local instance (once per process)."""
    init_ray(job.ray.address, job.ray.num_cpus)
    cpus = ray.cluster_resources().get("CPU", 0)
    train_cpus = job.scaling.worker_range[1] * job.scaling.cpus_per_worker
    if cpus and train_cpus > cpus / 2:
        log.warning(
            "Train workers take %.1f of the cluster's %.0f CPUs; Ray Data decoding gets what is left "
            "and can starve (lower scaling.cpus_per_worker if epochs do not start)", train_cpus, cpus,
        )


def unlabeled_tracks(job: JobConfig, manifest: Manifest) -> list[Track]:
    """The manifest's unlabeled split plus the audio files under ``semi.unlabeled_dir``."""
    tracks = manifest.split("unlabeled")
    if job.semi.unlabeled_dir is not None:
        known = {t.path for t in tracks}
        tracks += [Track(p, (), "unlabeled") for p in audio_files(Path(job.semi.unlabeled_dir)) if p not in known]
    if not tracks:
        raise JobError("semi.enabled but there is no unlabeled audio (manifest split or semi.unlabeled_dir)")
    return tracks


def _log_scan(scan: ScanResult, tracker: Tracker) -> None:
    log.info("audio scan: %s", scan.summary())
    for path, reason in scan.skipped[:20]:
        log.warning("skipped %s", reason if path in reason else f"{path}: {reason}")
    tracker.log_metrics({"data/skipped_files": len(scan.skipped), "data/usable_files": len(scan.usable)})
    if scan.skipped:
        tracker.log_table(({"path": p, "reason": r} for p, r in scan.skipped), "data/skipped_files.csv")


def train(
    job: JobConfig,
    *,
    parent_run_id: str | None = None,
    run_tags: dict[str, str] | None = None,
    callbacks: list | None = None,
) -> Outcome:
    """Trains the job's model on Ray, exports the best epoch to storage and evaluates it.

    ``callbacks`` go to the Ray Train run (a Tune trial passes ``TuneReportCallback`` so every
    epoch's metrics reach Tune).
    """
    prepared = prepare(job)
    log.info(
        "model %s: %s parameters, %d tags, %d Hz, %.2f s crops; method %s",
        job.model.name, f"{prepared.parameters:,}", len(prepared.recipe.tags),
        prepared.sample_rate, prepared.crop_samples / prepared.sample_rate, job.objective.name,
    )
    ensure_ray(job)
    tracker = start_run(job, parameters=prepared.parameters, parent_run_id=parent_run_id, run_tags=run_tags)
    manifest = prepared.manifest
    extra = unlabeled_tracks(job, manifest) if prepared.method.needs.unlabeled_teacher else []
    splits = {*("train", "valid", job.eval.split)}
    scan = scan_tracks([t for s in sorted(splits) for t in manifest.split(s)] + extra, num_cpus=job.data.decode_cpus)
    _log_scan(scan, tracker)

    run = run_location(job.storage, job.name)
    previous = latest_checkpoint(run)
    if previous and previous[1].next_epoch >= job.train.epochs:
        log.info("%s already trained %d epochs; evaluating its best epoch", job.name, previous[1].next_epoch)
        final = previous[0]
    else:
        if previous:
            log.info("resuming %s from %s (epoch %d done)", job.name, previous[0], previous[1].next_epoch)
        data = _epoch_data(job, prepared, scan, extra, tracker)
        final = _fit(job, prepared, tracker, data, callbacks or [])
    model_location, state = _export_best(job, prepared, final, tracker)
    log.info("best epoch %s (valid %s %.4f); model in %s", state.best_epoch, state.select_metric, state.best_value, model_location)
    _save_thresholds(job, prepared, model_location, scan, tracker)
    evaluation = evaluate(job, model_location, prepared=prepared, scan=scan, tracker=tracker)
    log_run_plots(tracker, tags=list(prepared.recipe.tags), split=job.eval.split, title=job.name,
                  per_tag=evaluation.report.table_rows(), labels=evaluation.labels, scores=evaluation.scores)
    with storage.local_folder(model_location) as folder:
        tracker.log_artifacts(folder, "best_model")
        lineage = {k: v for k, v in (run_tags or {}).items() if k in T.LINEAGE}
        logged = publish_model(tracker, folder, register_as=job.tracking.register_as, lineage=lineage)
    tracker.end()
    return Outcome(model_location, evaluation.report, state.best_epoch, tracker.run_id, len(scan.skipped),
                   logged.uri if logged else None)


def _export_best(job: JobConfig, prepared: Prepared, final: str, tracker: Tracker) -> tuple[str, ckpt.TrainingState]:
    """Writes the final checkpoint's best weights as an exported model under the run folder."""
    location = best_model_location(job.storage, job.name)
    with storage.local_folder(final) as folder, tempfile.TemporaryDirectory(prefix="raytag-export-") as out:
        state = ckpt.load_state(Path(folder))
        write_exported(
            out, prepared.recipe, ckpt.read_best_weights(Path(folder)),
            sample_rate=prepared.sample_rate, crop_samples=prepared.crop_samples,
            best_epoch=state.best_epoch, select_metric=state.select_metric, best_value=state.best_value,
            mlflow_run_id=tracker.run_id,
        )
        storage.upload(out, location)
    return location, state


def _save_thresholds(job: JobConfig, prepared: Prepared, model_location: str, scan: ScanResult,
                     tracker: Tracker) -> None:
    """Chooses per-tag F1 thresholds on the validation split with the exported model and writes
    them into its ``model.json`` (what ``raytag predict`` applies); the table goes to MLflow."""
    try:  # not logged: the per-epoch valid/* histories keep one value per epoch
        valid = evaluate(job, model_location, prepared=prepared, scan=scan, split="valid")
    except (JobError, ManifestError) as exc:  # e.g. clean labels that do not cover the validation split
        log.warning("no decision thresholds saved with the model: %s", exc)
        return
    rows = choose_thresholds(scores=valid.scores, labels=valid.labels, tags=list(prepared.recipe.tags))
    meta_location = f"{model_location}/{META_FILE}"
    meta = json.loads(storage.read_text(meta_location))
    meta[THRESHOLDS_KEY] = threshold_map(rows)
    storage.write_text(meta_location, json.dumps(meta, indent=1))
    missing = [row.tag for row in rows if row.status != STATUS_OK]
    if missing:
        log.warning("no decision threshold for %s (%s): no positive validation track",
                    plural(len(missing), "tag"), ", ".join(missing[:5]))
    tracker.log_table([dataclasses.asdict(row) for row in rows], "metrics/thresholds_valid.csv")


def _epoch_data(job: JobConfig, prepared: Prepared, scan: ScanResult, unlabeled: list[Track], tracker: Tracker) -> EpochData:
    """The tables a training run streams from, with the method's per-track columns."""
    manifest, method = prepared.manifest, prepared.method
    train_tracks = training_tracks(job, manifest)
    train, kept = track_table(train_tracks, manifest.label_matrix(train_tracks), scan)
    valid_tracks = manifest.split("valid")
    valid, _ = track_table(valid_tracks, manifest.label_matrix(valid_tracks), scan)
    if not len(train) or not len(valid):
        raise JobError("no readable audio in the train or valid split; see the skipped files above")
    verified = np.array([train_tracks[i].verified for i in kept], dtype=bool)
    columns = method.track_columns(
        labels=train.labels, verified=verified, scores=_teacher_scores(job, method, train, tracker),
        clean=_clean_labels(job, prepared.recipe.tags, [train_tracks[i] for i in kept]),
    )
    if columns.message:
        log.info(columns.message)
    tracker.log_metrics(columns.metrics)
    for artifact, rows in columns.tables.items():
        tracker.log_table(rows, artifact)
    missing = set(method.needs.columns) - set(columns.columns)
    if missing:
        raise JobError(f"method {job.objective.name} needs columns {sorted(missing)} it did not make")
    train = dataclasses.replace(train, columns=columns.columns)
    test = None
    if job.eval.average_last:
        eval_tracks = manifest.split(job.eval.split)
        test, _ = track_table(eval_tracks, evaluation_labels(job, prepared.recipe.tags, eval_tracks)[0], scan)
    train, valid, test = _read_prepared_audio(job, prepared, tracker, train=train, valid=valid, test=test)
    return EpochData(
        train=ray.put(train), valid=ray.put(valid), test=None if test is None else ray.put(test),
        sample_rate=prepared.sample_rate, crop_samples=prepared.crop_samples, num_cpus=job.data.decode_cpus,
        seed=job.seed, shuffle=job.train.shuffle, augment=job.augment.spec(), max_chunks=job.eval.max_chunks,
        unlabeled=_unlabeled_source(job, prepared, unlabeled, scan, tracker),
    )


def _read_prepared_audio(job: JobConfig, prepared: Prepared, tracker: Tracker, prefix: str = "data/",
                         **tables: TrackTable | None):
    """The tables with every track that ``raytag prepare`` cached at the model's rate read from
    its cache file (the rest decode from their audio files); the counts go to MLflow."""
    cached, use = cached_tables(tables, storage_root=job.storage, sample_rate=prepared.sample_rate)
    tracker.log_metrics(use.metrics(prefix))
    return tuple(cached[name] for name in tables)


def training_tracks(job: JobConfig, manifest: Manifest) -> list[Track]:
    """The training split, or its verified rows (``data.train_subset``)."""
    tracks = manifest.split("train")
    return [t for t in tracks if t.verified] if job.data.train_subset == "verified" else tracks


def _clean_labels(job: JobConfig, tags, tracks: list[Track]) -> np.ndarray | None:
    """The clean labels of ``tracks`` when the job's clean label file has them all (they feed
    the methods' diagnostics, never their training)."""
    if not job.data.clean_labels:
        return None
    try:
        return evaluation_labels(job, tags, tracks)[0]
    except JobError as exc:
        log.info("no diagnostics against clean labels: %s", exc)
        return None


def _teacher_scores(job: JobConfig, method: Method, table, tracker: Tracker) -> np.ndarray | None:
    """The scores of the method's scoring teacher over the training table, if it needs them."""
    need = method.needs.scores_teacher
    if need is None:
        return None
    scored = teacher_scores(
        need.folder, table, key=need.key, storage_root=job.storage, max_chunks=job.eval.max_chunks,
        batch_size=job.eval.batch_size, num_cpus=job.data.decode_cpus, num_gpus=0.5 if job.scaling.use_gpu else 0.0,
    )
    tracker.set_tags({T.TEACHER_SCORES: scored.location, T.TEACHER_SCORES_REUSED: str(scored.reused)})
    if not scored.reused:
        tracker.log_metrics({"teacher_scores/scoring_nodes": scored.nodes})
    return scored.scores


def precompute_teacher_scores(job: JobConfig) -> None:
    """Scores the training set with the method's scoring teacher once (cached under storage),
    so that the runs that follow, e.g. every trial of a sweep, only read them."""
    prepared = prepare(job)
    if prepared.method.needs.scores_teacher is None:
        return
    ensure_ray(job)
    tracks = training_tracks(job, prepared.manifest)
    scan = scan_tracks(tracks, num_cpus=job.data.decode_cpus)
    table, _ = track_table(tracks, prepared.manifest.label_matrix(tracks), scan)
    _teacher_scores(job, prepared.method, table, Tracker.disabled())


def _unlabeled_source(job, prepared: Prepared, tracks: list[Track], scan: ScanResult, tracker: Tracker):
    """The noisy-student stream: the unlabeled tracks and the teacher that labels them."""
    need = prepared.method.needs.unlabeled_teacher
    if need is None:
        return None
    table, _ = track_table(tracks, np.zeros((len(tracks), len(prepared.recipe.tags)), np.float32), scan)
    if not len(table):
        raise JobError("none of the unlabeled audio files could be read")
    (table,) = _read_prepared_audio(job, prepared, tracker, "data/unlabeled_", unlabeled=table)
    with storage.local_folder(need.folder) as folder:
        recipe = read_exported(folder, need.key).recipe
        weights = read_weights(folder)
    log.info("noisy student: %d unlabeled tracks, teacher %s", len(table), need.folder)
    tracker.set_tags({T.TEACHER_MODEL: need.folder})
    tracker.log_metrics({"data/unlabeled_tracks": len(table)})
    return UnlabeledSource(
        table=ray.put(table), labeler=SoftLabeler,
        labeler_kwargs={"recipe": recipe, "weights_ref": ray.put(weights), "use_gpu": job.scaling.use_gpu},
        teacher_cpus=job.semi.teacher_cpus, teacher_gpus=0.25 if job.scaling.use_gpu else 0.0, ratio=job.semi.ratio,
    )


def scaling_config(job: JobConfig) -> ray.train.ScalingConfig:
    """Ray Train's scaling: a fixed group, or an elastic ``(min, max)`` range."""
    low, high = job.scaling.worker_range
    resources = {"CPU": job.scaling.cpus_per_worker, **job.scaling.resources}
    if job.scaling.use_gpu:
        resources["GPU"] = job.scaling.gpus_per_worker
    return ray.train.ScalingConfig(
        num_workers=low if low == high else (low, high),
        use_gpu=job.scaling.use_gpu,
        resources_per_worker=resources,
        elastic_resize_monitor_interval_s=job.scaling.resize_check_s,
    )


def _fit(job: JobConfig, prepared: Prepared, tracker: Tracker, data: EpochData, callbacks: list) -> str:
    """Runs the TorchTrainer; returns the location of the final checkpoint."""
    progress = Queue(actor_options={"num_cpus": 0})
    logger = EpochMetricsToMlflow(tracker.uri, tracker.handle()["run_id"], tracker.logged_steps("epoch"),
                                  epochs=job.train.epochs, progress=progress)
    trainer = TorchTrainer(
        train_loop_per_worker,
        train_loop_config={
            "job": job.resolved(),
            "tags": list(prepared.recipe.tags),
            "data": data,
            "run_location": run_location(job.storage, job.name),
        },
        scaling_config=scaling_config(job),
        run_config=RunConfig(
            name=job.name,
            storage_path=resolve_storage(job.storage),
            failure_config=FailureConfig(max_failures=job.scaling.max_failures),
            checkpoint_config=CheckpointConfig(num_to_keep=2),
            callbacks=[logger, *callbacks],
        ),
    )
    # Ray Train reads its start timeout from the driver's environment when fit() starts; set it
    # for this run only, so a later stage or trial in the same process gets its own setting.
    previous = os.environ.get(WORKER_GROUP_START_TIMEOUT_ENV)
    if job.scaling.start_timeout_s is not None:
        os.environ[WORKER_GROUP_START_TIMEOUT_ENV] = str(job.scaling.start_timeout_s)
    printer = _ProgressPrinter(progress)
    try:
        result = trainer.fit()
    except Exception:
        tracker.end("FAILED")
        raise
    finally:
        printer.stop()
        if previous is None:
            os.environ.pop(WORKER_GROUP_START_TIMEOUT_ENV, None)
        else:
            os.environ[WORKER_GROUP_START_TIMEOUT_ENV] = previous
    if result.checkpoint is None:
        raise JobError(f"training of {job.name} ended without a checkpoint")
    latest = latest_checkpoint(run_location(job.storage, job.name))
    return latest[0] if latest else result.checkpoint.path


class _ProgressPrinter:
    """Prints the per-epoch lines the Train controller's callback queues, while ``fit`` runs in
    the main thread (which keeps Ctrl-C working as Ray Train expects)."""

    def __init__(self, queue: Queue):
        self.queue = queue
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._run, name="raytag-progress", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while not self.done.is_set():
            self._print_next(timeout=0.5)

    def _print_next(self, timeout: float) -> bool:
        try:
            log.info(self.queue.get(timeout=timeout))
            return True
        except (Empty, ray.exceptions.RayError):
            return False

    def stop(self) -> None:
        self.done.set()
        self.thread.join()
        while self._print_next(timeout=0.1):
            pass
        self.queue.shutdown()
