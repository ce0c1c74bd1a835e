"""The driver: one function runs a job end to end on Ray.

read + validate manifest → scan audio headers (Ray Data) → TorchTrainer (DDP workers) →
export the best model → evaluate it with Ray Data batch inference → MLflow.
Everything that can be checked without a cluster is checked before Ray starts.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import ray
import ray.train
import yaml
from ray.train import CheckpointConfig, DataConfig, FailureConfig, RunConfig
from ray.train.torch import TorchTrainer

from raytag.cluster.session import init_ray
from raytag.config import JobConfig, flatten
from raytag.errors import JobError
from raytag.data.manifest import Manifest, Track, multi_hot, read_labels, read_manifest
from raytag.cluster.datasets import (
    ScanResult,
    audio_files,
    chunk_dataset,
    crop_dataset,
    scan_tracks,
    unlabeled_dataset,
    usable,
    with_augmentation,
)
from raytag.cluster.inference import SoftLabeler, score_tracks
from raytag.metrics import TaggingReport, tagging_report
from raytag.models import count_parameters
from raytag.models.export import (
    BEST_MODEL_DIR,
    ModelRecipe,
    check_fits,
    read_exported,
    read_weights,
    write_exported,
)
from raytag.tracking.client import Tracker, resolve_uri
from raytag.engine import checkpoint as ckpt
from raytag.cluster.scoring import balanced_masking, teacher_scores
from raytag.cluster.worker import train_loop_per_worker

log = logging.getLogger("raytag")

RUN_ID_FILE = "mlflow_run_id"


@dataclass
class Prepared:
    """What the driver knows before training: data, model recipe, audio scan."""

    manifest: Manifest
    recipe: ModelRecipe
    sample_rate: int
    crop_samples: int
    parameters: int


@dataclass
class Outcome:
    """The result of a job: where the best model is, how it scored, which MLflow run has it."""

    model_dir: Path
    report: TaggingReport
    best_epoch: int | None
    run_id: str | None
    skipped_files: int


def prepare(job: JobConfig) -> Prepared:
    """Reads the manifest and builds the model once on the driver (no Ray needed)."""
    manifest = read_manifest(job.data.manifest, job.data.tags)
    recipe = ModelRecipe(job.model.name, dict(job.model.args), manifest.vocabulary)
    model = recipe.build()
    counts = manifest.counts()
    for split in ("train", "valid", job.eval.split):
        if counts[split] == 0:
            raise JobError(f"{job.data.manifest}: the '{split}' split is empty")
    if manifest.dropped_tags:
        log.warning("dropped %d tag occurrences outside the vocabulary", manifest.dropped_tags)
    if job.objective.name == "balanced_masking":
        exported_recipe(job.objective.masking.teacher, "objective.masking.teacher", recipe.tags)
    if job.semi.enabled:
        _check_semi(job, recipe.tags, model.sample_rate)
    return Prepared(manifest, recipe, model.sample_rate, model.crop_samples, count_parameters(model))


def exported_recipe(folder: Path | None, key: str, tags: tuple[str, ...]) -> ModelRecipe:
    """The recipe of the exported model at ``folder`` (given by config ``key``), which must
    have been trained on ``tags``; checked before any cluster work."""
    return check_fits(read_exported(folder, key), key=key, tags=tags).recipe


def _check_semi(job: JobConfig, tags: tuple[str, ...], sample_rate: int) -> None:
    check_fits(read_exported(job.semi.teacher, "semi.teacher"), key="semi.teacher", tags=tags, sample_rate=sample_rate)
    if job.semi.unlabeled_dir is not None and not Path(job.semi.unlabeled_dir).is_dir():
        raise JobError(f"semi.unlabeled_dir: {job.semi.unlabeled_dir} is not a folder")


def unlabeled_tracks(job: JobConfig, manifest: Manifest) -> list[Track]:
    """The manifest's unlabeled split plus the audio files under ``semi.unlabeled_dir``."""
    tracks = manifest.split("unlabeled")
    if job.semi.unlabeled_dir is not None:
        known = {t.path for t in tracks}
        tracks += [Track(p, (), "unlabeled") for p in audio_files(Path(job.semi.unlabeled_dir)) if p not in known]
    if not tracks:
        raise JobError("semi.enabled but there is no unlabeled audio (manifest split or semi.unlabeled_dir)")
    return tracks


def ensure_ray(job: JobConfig) -> None:
    """Connects to ``ray.address`` or starts a local instance (once per process)."""
    init_ray(job.ray.address, job.ray.num_cpus)
    cpus = ray.cluster_resources().get("CPU", 0)
    train_cpus = job.scaling.num_workers * job.scaling.cpus_per_worker
    if cpus and train_cpus > cpus / 2:
        log.warning(
            "Train workers take %.1f of the cluster's %.0f CPUs; Ray Data decoding gets what is left "
            "and can starve (lower scaling.cpus_per_worker if epochs do not start)", train_cpus, cpus,
        )


def job_dir(job: JobConfig) -> Path:
    return Path(job.storage).resolve() / job.name


def start_tracking(
    job: JobConfig,
    parameters: int | None = None,
    *,
    parent_run_id: str | None = None,
    run_tags: dict[str, str] | None = None,
) -> Tracker:
    """Starts the job's MLflow run, or resumes it when this job was interrupted."""
    if not job.tracking.enabled:
        return Tracker.disabled()
    folder = job_dir(job)
    folder.mkdir(parents=True, exist_ok=True)
    id_file = folder / RUN_ID_FILE
    previous = id_file.read_text().strip() if id_file.is_file() else None
    tracker = Tracker.start(
        resolve_uri(job.tracking.uri),
        job.tracking.experiment,
        job.name,
        tags={"raytag.model": job.model.name, "raytag.objective": job.objective.name, **(run_tags or {})},
        parent_run_id=parent_run_id,
        resume_run_id=previous,
    )
    if tracker.run_id and tracker.run_id != previous:
        id_file.write_text(tracker.run_id)
        params = flatten(job.resolved())
        if parameters is not None:
            params["model.parameters"] = parameters
        tracker.log_params(params)
        tracker.log_text(yaml.safe_dump(job.resolved(), sort_keys=False), "config/job.yaml")
    elif tracker.run_id:
        log.info("resuming MLflow run %s", tracker.run_id)
    return tracker


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
    """Trains the job's model on Ray, exports the best epoch and evaluates it.

    ``callbacks`` go to the Ray Train run (a Tune trial passes ``TuneReportCallback`` so every
    epoch's metrics reach Tune).
    """
    prepared = prepare(job)
    log.info(
        "model %s: %s parameters, %d tags, %d Hz, %.2f s crops",
        job.model.name, f"{prepared.parameters:,}", len(prepared.recipe.tags),
        prepared.sample_rate, prepared.crop_samples / prepared.sample_rate,
    )
    ensure_ray(job)
    tracker = start_tracking(job, prepared.parameters, parent_run_id=parent_run_id, run_tags=run_tags)
    manifest = prepared.manifest
    eval_tracks = manifest.split(job.eval.split)
    extra = unlabeled_tracks(job, manifest) if job.semi.enabled else []
    scan = scan_tracks(
        manifest.split("train") + manifest.split("valid") + eval_tracks + extra, num_cpus=job.data.decode_cpus
    )
    _log_scan(scan, tracker)

    previous = ckpt.latest(job_dir(job))
    if previous and previous[1].next_epoch >= job.train.epochs:
        log.info("%s already trained %d epochs; evaluating its best epoch", job.name, previous[1].next_epoch)
        final = previous[0]
    else:
        if previous:
            log.info("resuming %s from %s (epoch %d done)", job.name, previous[0].name, previous[1].next_epoch)
        datasets, num_tracks = _datasets(job, prepared, scan, extra, tracker)
        final = _fit(job, prepared, tracker, datasets, num_tracks, callbacks or [])
    state = ckpt.load_state(final)
    model_dir = write_exported(
        job_dir(job) / BEST_MODEL_DIR,
        prepared.recipe,
        ckpt.read_best_weights(final),
        sample_rate=prepared.sample_rate,
        crop_samples=prepared.crop_samples,
        best_epoch=state.best_epoch,
        select_metric=state.select_metric,
        best_value=state.best_value,
        mlflow_run_id=tracker.run_id,
    )
    log.info("best epoch %s (valid %s %.4f); model in %s", state.best_epoch, state.select_metric, state.best_value, model_dir)
    report = evaluate(job, model_dir, prepared=prepared, scan=scan, tracker=tracker)
    tracker.log_artifacts(model_dir, "best_model")
    tracker.end()
    return Outcome(model_dir, report, state.best_epoch, tracker.run_id, len(scan.skipped))


def _datasets(job, prepared, scan, unlabeled, tracker) -> tuple[dict, dict[str, int]]:
    """The Ray Datasets a training run streams, and the number of tracks of the evaluated ones."""
    manifest = prepared.manifest
    splits = {}
    for name in ("train", "valid"):
        tracks = manifest.split(name)
        splits[name] = usable(tracks, manifest.label_matrix(tracks), scan)
    (train_tracks, train_labels), (valid_tracks, valid_labels) = splits["train"], splits["valid"]
    if not train_tracks or not valid_tracks:
        raise JobError("no readable audio in the train or valid split; see the skipped files above")
    audio = {"sample_rate": prepared.sample_rate, "crop_samples": prepared.crop_samples, "num_cpus": job.data.decode_cpus}
    keep = _teacher_masks(job, prepared, train_tracks, train_labels, scan, tracker)
    augment = job.augment.spec()
    train_ds = crop_dataset(train_tracks, train_labels, scan, shuffle=job.train.shuffle, keep=keep, **audio)
    datasets = {
        "train": with_augmentation(
            train_ds, sample_rate=prepared.sample_rate, spec=augment, num_cpus=job.data.decode_cpus
        ),
        "valid": chunk_dataset(valid_tracks, valid_labels, scan, max_chunks=job.eval.max_chunks, **audio),
    }
    if job.semi.enabled:
        datasets["unlabeled"] = _unlabeled(job, prepared, unlabeled, scan, augment, tracker)
    num_tracks = {"valid": len(valid_tracks)}
    if job.eval.average_last:
        eval_tracks = manifest.split(job.eval.split)
        labels, _ = evaluation_labels(job, prepared, eval_tracks)
        test_tracks, test_labels = usable(eval_tracks, labels, scan)
        datasets["test"] = chunk_dataset(test_tracks, test_labels, scan, max_chunks=job.eval.max_chunks, **audio)
        num_tracks["test"] = len(test_tracks)
    return datasets, num_tracks


def precompute_teacher_scores(job: JobConfig) -> None:
    """Scores the training set with the job's masking teacher once (cached next to the
    manifest), so that the runs that follow, e.g. every trial of a sweep, only read them."""
    if job.objective.name != "balanced_masking":
        return
    prepared = prepare(job)
    ensure_ray(job)
    tracks = prepared.manifest.split("train")
    scan = scan_tracks(tracks, num_cpus=job.data.decode_cpus)
    tracks, labels = usable(tracks, prepared.manifest.label_matrix(tracks), scan)
    _teacher_masks(job, prepared, tracks, labels, scan, Tracker.disabled())


def _unlabeled(job, prepared, tracks, scan, augment, tracker):
    """The noisy-student stream: teacher inference workers label clean crops, then augment."""
    tracks = [t for t in tracks if t.path in scan.usable]
    if not tracks:
        raise JobError("none of the unlabeled audio files could be read")
    recipe = read_exported(job.semi.teacher, "semi.teacher").recipe
    weights = read_weights(job.semi.teacher)
    log.info("noisy student: %d unlabeled tracks, teacher %s", len(tracks), job.semi.teacher)
    tracker.set_tags({"raytag.teacher_model": str(job.semi.teacher)})
    tracker.log_metrics({"data/unlabeled_tracks": len(tracks)})
    return unlabeled_dataset(
        tracks, scan, num_tags=len(prepared.recipe.tags), sample_rate=prepared.sample_rate,
        crop_samples=prepared.crop_samples, num_cpus=job.data.decode_cpus, labeler=SoftLabeler,
        labeler_kwargs={"recipe": recipe, "weights_ref": ray.put(weights), "use_gpu": job.scaling.use_gpu},
        teacher_cpus=job.semi.teacher_cpus, teacher_gpus=0.25 if job.scaling.use_gpu else 0.0,
        augment_spec=augment,
    )


def _teacher_masks(job, prepared, tracks, labels, scan, tracker) -> np.ndarray | None:
    """Balanced-Masking: the stage-1 teacher's eq. 3 mask over the training tracks (or None)."""
    if job.objective.name != "balanced_masking":
        return None
    teacher = Path(job.objective.masking.teacher)
    scores, scores_file, reused = teacher_scores(
        teacher, tracks, scan, manifest_path=Path(job.data.manifest), tags=prepared.recipe.tags,
        max_chunks=job.eval.max_chunks, batch_size=job.eval.batch_size, num_cpus=job.data.decode_cpus,
        num_gpus=0.5 if job.scaling.use_gpu else 0.0,
    )
    masks = balanced_masking(
        scores, labels, tags=list(prepared.recipe.tags), percentile=job.objective.masking.percentile,
        scores_file=scores_file, reused=reused,
    )
    log.info(
        "balanced masking: %d of %d labelled-negative entries suspected missing at the %g th percentile",
        int(masks.masked.sum()), int(masks.negatives.sum()), job.objective.masking.percentile,
    )
    tracker.set_tags({"raytag.teacher_scores": str(scores_file), "raytag.teacher_scores_reused": str(reused)})
    tracker.log_metrics({"masking/masked_entries": float(masks.masked.sum())})
    tracker.log_table(masks.table_rows(list(prepared.recipe.tags)), "masking/thresholds.csv")
    return masks.keep


def _fit(job, prepared, tracker, datasets, num_tracks: dict[str, int], callbacks: list) -> Path:
    """Runs the TorchTrainer; returns the folder of the final checkpoint."""
    trainer = TorchTrainer(
        train_loop_per_worker,
        train_loop_config={
            "job": job.resolved(),
            "tags": list(prepared.recipe.tags),
            "num_tracks": num_tracks,
            "tracking": tracker.handle(),
            "run_dir": str(job_dir(job)),
        },
        scaling_config=ray.train.ScalingConfig(
            num_workers=job.scaling.num_workers,
            use_gpu=job.scaling.use_gpu,
            resources_per_worker={"CPU": job.scaling.cpus_per_worker},
        ),
        run_config=RunConfig(
            name=job.name,
            storage_path=str(Path(job.storage).resolve()),
            failure_config=FailureConfig(max_failures=job.scaling.max_failures),
            checkpoint_config=CheckpointConfig(num_to_keep=2),
            callbacks=callbacks,
        ),
        datasets=datasets,
        # Training data is split; rank 0 validates on the whole validation set.
        dataset_config=DataConfig(datasets_to_split=[name for name in ("train", "unlabeled") if name in datasets]),
    )
    try:
        result = trainer.fit()
    except Exception:
        tracker.end("FAILED")
        raise
    if result.checkpoint is None:
        raise JobError(f"training of {job.name} ended without a checkpoint")
    return Path(result.checkpoint.path)


def evaluation_labels(job: JobConfig, prepared: Prepared, tracks: list) -> tuple[np.ndarray, str]:
    """Labels to evaluate ``tracks`` against: the clean label file when the job has one."""
    if not job.data.clean_labels:
        return prepared.manifest.label_matrix(tracks), "manifest"
    clean = read_labels(job.data.clean_labels)
    missing = [t.path for t in tracks if t.path not in clean]
    if missing:
        raise JobError(f"{job.data.clean_labels}: no clean labels for {len(missing)} tracks, e.g. {missing[0]}")
    return multi_hot([clean[t.path] for t in tracks], prepared.recipe.tags), "clean"


def evaluate(
    job: JobConfig,
    model_dir: Path,
    *,
    prepared: Prepared | None = None,
    scan: ScanResult | None = None,
    tracker: Tracker | None = None,
    split: str | None = None,
) -> TaggingReport:
    """Scores an exported model on a split, track-level, against clean labels when given.

    The audio is decoded at the exported model's rate and crop length, which may differ from
    the job's model (``raytag evaluate --model``).
    """
    prepared = prepared or prepare(job)
    tracker = tracker or Tracker.disabled()
    split = split or job.eval.split
    recipe = exported_recipe(model_dir, "model", prepared.recipe.tags)
    model = recipe.build()
    weights = read_weights(model_dir)
    ensure_ray(job)
    tracks = prepared.manifest.split(split)
    if scan is None:
        scan = scan_tracks(tracks, num_cpus=job.data.decode_cpus)
    labels, label_source = evaluation_labels(job, prepared, tracks)
    tracks, labels = usable(tracks, labels, scan)
    chunks = chunk_dataset(
        tracks, labels, scan, sample_rate=model.sample_rate, crop_samples=model.crop_samples,
        max_chunks=job.eval.max_chunks, num_cpus=job.data.decode_cpus,
    )
    scores, kept, failed = score_tracks(
        chunks, recipe, weights, num_tracks=len(tracks), batch_size=job.eval.batch_size,
        num_gpus=0.5 if job.scaling.use_gpu else 0.0,
    )
    report = tagging_report(labels[kept], scores, list(recipe.tags))
    log.info(
        "%s split, %s labels, %d tracks: macro ROC-AUC %.4f, PR-AUC %.4f (%d chunks failed to decode)",
        split, label_source, len(kept), report.roc_auc_macro, report.pr_auc_macro, failed,
    )
    prefix = f"{split}/"
    tracker.log_metrics({**report.as_metrics(prefix), f"{prefix}decode_failures": failed})
    tracker.set_tags({f"raytag.{split}_labels": label_source})
    tracker.log_table(report.table_rows(), f"metrics/per_tag_{split}.csv")
    return report
