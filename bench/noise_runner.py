"""A plain-PyTorch runner for the noise-robustness benchmarks: raytag's Ray-free core, no Ray.

The benchmarks (``bench_noise.py``, ``bench_staged.py``, ``bench_semi.py``) train about 60 runs of
up to 40 epochs on 2 CPU cores. Ray's per-run overhead (a local instance, Ray Data pipelines,
Train workers: seconds to minutes per run) would make ≥ 3 seeds × ~20 configurations impossible
there, so this runner drives the code a Ray job's training workers run, in one process with one
rank (world size 1), minus the cluster layer:

- the job is a validated raytag job config (:func:`raytag.config.validate_job`);
- the run is the worker's: ``raytag.engine.run.build_training`` (method, network seeded by
  ``init_seed``, optimizer) and ``raytag.engine.run.fit`` (step draws per (seed, epoch, rank 0),
  ``train_epoch``, Lu et al.'s selection window ``train.select_until_epoch``, the best snapshot,
  the mean of the last ``eval.average_last`` epochs), with this module's hooks;
- the method's ``needs`` and ``track_columns`` are served here as the driver serves them (an
  out-of-fold teacher too, :func:`teacher_track_scores`; ``train.leave_out`` trains a fold teacher);
- each epoch's rows come from ``raytag.data.rows.epoch_rows`` (order and crop seeds per
  (seed, epoch, track)) (``with_unlabeled`` for the noisy student);
- augmentation is ``augment_numpy_batch`` seeded by ``batch_seed`` of the batch's rows;
- evaluation is ``chunk_rows`` → ``validation_probabilities`` → ``TrackAverager`` → ``tagging_report``.

What the cluster layer would do, done here in a few lines: the corpus is decoded into memory
once (it is small), and a row's crop is cut from memory exactly as ``decode_batch`` cuts it from
the file; a frozen exported teacher scores the training tracks (chunk-averaged) for
``track_columns``; the noisy student's stream runs the frozen teacher (eval mode) on the clean
crop for ``u_soft`` and augments that crop for ``u_audio``. Differences from a Ray job: one rank
instead of DDP, augmentation per training batch (the Ray pipeline augments per decode batch of
16 rows), and no checkpoints (a run is short; the benchmarks cache whole runs instead).
The same job and seed give the same numbers when rerun (``tests/test_bench_noise.py``).
"""

from __future__ import annotations

import itertools
import math
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from bench_stats import bootstrap_macro_roc_se  # bench/bench_stats.py, beside this file
from memory_corpus import MemoryCorpus, PcmClip, SplitAudio, load_corpus  # noqa: F401 (re-exported)
from raytag.audio.augment import augment_numpy_batch
from raytag.audio.io import fit_length, random_start
from raytag.data.batches import batch_seed
from raytag.data.rows import BASE_COLUMNS, RANDOM_START, TrackTable, batch_sizes, chunk_rows, epoch_rows
from raytag.engine.checkpoint import TrainingState
from raytag.engine.loop import track_loss, validation_probabilities, with_unlabeled
from raytag.scoring.tracks import TrackAverager
from raytag.engine.run import build_training, fit
from raytag.folds import assemble_fold_scores, fold_indices, read_oof_teacher
from raytag.metrics import tagging_report
from raytag.models.export import ModelRecipe, check_fits, read_exported, read_weights, write_exported

CPU = torch.device("cpu")
UNLABELED_PASS_KEY = 1000
"""The unlabeled stream's pass ``p`` of epoch ``e`` draws its order and crops as epoch
``e * 1000 + p`` of the ``unlabeled`` stream, as the Ray pipeline does."""


def configure_process() -> None:
    """One thread per benchmark process (at most two run at once on the 2-core machine)."""
    torch.set_num_threads(1)


def memory_batch(rows: Sequence[dict], audio: Sequence[np.ndarray], *, crop_samples: int) -> dict[str, np.ndarray]:
    """``raytag.data.batches.decode_batch`` on clips held in memory at the model's rate.

    A row with ``start == RANDOM_START`` gets the crop offset ``random_start`` draws from the
    row's own ``seed``; a crop past the clip's end is zero-padded. Every row decodes.

    Returns:
        ``audio`` (B, crop_samples) float32, ``labels`` (B, K), ``track`` and ``seed`` (B,)
        int64, ``valid`` (B,) bool, and the rows' extra columns as float32.
    """
    out_audio = np.zeros((len(rows), crop_samples), dtype=np.float32)
    for i, row in enumerate(rows):
        wave = audio[row["track"]]
        start = int(row["start"])
        if start == RANDOM_START:
            start = random_start(len(wave), crop_samples, np.random.default_rng(int(row["seed"])))
        out_audio[i] = fit_length(wave[start:start + crop_samples], crop_samples)
    batch = {
        "audio": out_audio,
        "labels": np.stack([row["labels"] for row in rows]).astype(np.float32),
        "track": np.array([row["track"] for row in rows], dtype=np.int64),
        "seed": np.array([row["seed"] for row in rows], dtype=np.int64),
        "decoded": np.ones(len(rows), dtype=bool),
    }
    for name in rows[0].keys() - set(BASE_COLUMNS):
        batch[name] = np.stack([np.asarray(row[name], dtype=np.float32) for row in rows])
    return batch


def _chunks(rows: list[dict], size: int) -> Iterator[list[dict]]:
    for start in range(0, len(rows), size):
        yield rows[start:start + size]


def track_scores(model: torch.nn.Module, split: SplitAudio, *, sample_rate: int, crop_samples: int,
                 max_chunks: int | None, batch_size: int, amp: str = "auto") -> np.ndarray:
    """(N, K) track-level probabilities: chunk predictions over each whole track, averaged."""
    rows = chunk_rows(split.table, sample_rate=sample_rate, crop_samples=crop_samples, max_chunks=max_chunks)
    batches = (memory_batch(chunk, split.audio, crop_samples=crop_samples) for chunk in _chunks(rows, batch_size))
    averager = TrackAverager(len(split.table), split.table.labels.shape[1])
    for track, probs, _ in validation_probabilities(model, batches, device=CPU, amp=amp):
        averager.add(track, probs)
    scores, kept = averager.result()
    if len(kept) != len(split.table):
        raise RuntimeError(f"{len(split.table) - len(kept)} tracks got no prediction")
    return scores


def load_teacher(folder: str | None, *, key: str, tags: Sequence[str]) -> tuple[torch.nn.Module, int, int]:
    """A frozen exported teacher in eval mode, its sample rate and crop (samples)."""
    exported = check_fits(read_exported(folder, key), key=key, tags=tags)
    teacher = exported.recipe.build()
    teacher.load_state_dict(read_weights(exported.folder))
    for parameter in teacher.parameters():
        parameter.requires_grad_(False)
    return teacher.eval(), exported.sample_rate, exported.crop_samples


def teacher_track_scores(folder: str, *, key: str, tags: Sequence[str], split: SplitAudio,
                         evaluation: dict) -> np.ndarray:
    """(N, K) a frozen exported teacher's track scores over ``split``; an out-of-fold teacher
    (:mod:`raytag.folds`) scores each track with the fold model that trained without its fold,
    as :mod:`raytag.cluster.inference.teacher_scores` does on the cluster."""
    oof = read_oof_teacher(folder)
    if oof is None:
        teacher, rate, crop = load_teacher(folder, key=key, tags=tags)
        return track_scores(teacher, split, **{**evaluation, "sample_rate": rate, "crop_samples": crop})
    folds = fold_indices(split.table.paths, folds=oof.folds, seed=oof.seed)
    parts = {}
    for fold in np.unique(folds).tolist():
        teacher, rate, crop = load_teacher(oof.models[fold], key=key, tags=tags)
        parts[fold] = track_scores(teacher, split.subset(folds == fold),
                                   **{**evaluation, "sample_rate": rate, "crop_samples": crop})
    return assemble_fold_scores(folds, parts, num_tags=len(tags))


class UnlabeledStream:
    """The noisy student's unlabeled batches: a frozen teacher's probabilities on the clean crop
    (``u_soft``), the augmented crop (``u_audio``) and ``u_decoded``.

    When every clip fits in one crop, the crop is the whole clip in every pass, so the teacher's
    probabilities are computed once per clip and reused (the teacher is frozen and in eval mode).
    """

    def __init__(self, split: SplitAudio, teacher: torch.nn.Module, *, seed: int, batch_size: int, crop_samples: int,
                 sample_rate: int, augment) -> None:
        self.split, self.teacher, self.seed, self.batch_size = split, teacher, seed, batch_size
        self.crop_samples, self.sample_rate, self.augment = crop_samples, sample_rate, augment
        self.cache: dict[int, np.ndarray] | None = {} if all(len(a) <= crop_samples for a in split.audio) else None

    def passes(self, epoch: int) -> Callable[[], Iterator[dict]]:
        """``with_unlabeled``'s restartable stream for ``epoch``: each call starts a new pass."""
        counter = itertools.count()
        return lambda: self._batches(epoch * UNLABELED_PASS_KEY + next(counter))

    def _batches(self, key: int) -> Iterator[dict]:
        rows = epoch_rows(self.split.table, seed=self.seed, epoch=key, rank=0, world_size=1, shuffle=True,
                          stream="unlabeled")
        for chunk in _chunks(rows, self.batch_size):
            batch = memory_batch(chunk, self.split.audio, crop_samples=self.crop_samples)
            soft = self._soft(batch)
            batch = augment_numpy_batch(batch, sample_rate=self.sample_rate, spec=self.augment,
                                        seed=batch_seed(batch["seed"]))
            yield {"u_audio": batch["audio"], "u_soft": soft, "u_decoded": batch["decoded"]}

    @torch.no_grad()
    def _soft(self, batch: dict[str, np.ndarray]) -> np.ndarray:
        tracks = batch["track"].tolist()
        todo = [i for i, t in enumerate(tracks) if self.cache is None or t not in self.cache]
        if todo:
            probs = torch.sigmoid(self.teacher(torch.from_numpy(batch["audio"][todo])).float()).numpy()
            if self.cache is None:
                return probs
            self.cache.update({tracks[i]: p for i, p in zip(todo, probs)})
        return np.stack([self.cache[t] for t in tracks])


def _init_weights(recipe: ModelRecipe, init: str | None) -> dict | None:
    """The weights of ``model.init`` (an exported model that must be the job's recipe), or None."""
    if init is None:
        return None
    return read_weights(check_fits(read_exported(init, "model.init"), key="model.init", recipe=recipe).folder)


def _metrics(labels: np.ndarray, scores: np.ndarray, tags: Sequence[str], prefix: str) -> dict[str, float]:
    report = tagging_report(labels, scores, list(tags))
    return {f"{prefix}roc_auc": report.roc_auc_macro, f"{prefix}pr_auc": report.pr_auc_macro,
            f"{prefix}lwlrap": report.lwlrap, f"{prefix}loss": track_loss(scores, labels)}


def memorisation(scores: np.ndarray, noisy: np.ndarray, clean: np.ndarray, tags: Sequence[str]) -> dict[str, float]:
    """How far a model's training-clip scores follow the wrong labels it was trained on.

    Returns:
        ``fit_noisy_roc_auc`` / ``fit_clean_roc_auc``: macro ROC-AUC of the scores against the
        training labels / the clean labels of the same clips; ``missing_fitted``: the share of
        truly missing tags (labelled 0, truly 1) scored below 0.5; ``spurious_fitted``: the
        share of spurious tags (labelled 1, truly 0) scored above 0.5 (NaN without any).
    """
    noisy, clean = noisy > 0.5, clean > 0.5
    missing, spurious = ~noisy & clean, noisy & ~clean
    return {
        "fit_noisy_roc_auc": tagging_report(noisy, scores, list(tags)).roc_auc_macro,
        "fit_clean_roc_auc": tagging_report(clean, scores, list(tags)).roc_auc_macro,
        "missing_fitted": float((scores[missing] < 0.5).mean()) if missing.any() else math.nan,
        "spurious_fitted": float((scores[spurious] > 0.5).mean()) if spurious.any() else math.nan,
    }


class _BenchHooks:
    """:class:`raytag.engine.run.Hooks` on an in-memory corpus: one rank, validation against the
    manifest's (noisy) labels, the test split against the clean ones, a progress line per epoch."""

    def __init__(self, job, table: TrackTable, audio: Sequence[np.ndarray], *, valid: SplitAudio, test: SplitAudio,
                 tags: list[str], stream: UnlabeledStream | None, evaluation: dict, log: Callable[[str], None],
                 select_labels: str = "noisy", verified_valid: dict[str, np.ndarray] | None = None):
        self.job, self.table, self.audio, self.valid, self.test = job, table, audio, valid, test
        self.select_labels = select_labels
        self.test_epoch_scores: list[np.ndarray] = []  # the last epochs' test scores, in order
        self.tags, self.stream, self.evaluation, self.log = tags, stream, evaluation, log
        self.verified_valid = verified_valid or {}

    def batches(self, index: int) -> Iterator[dict]:
        job = self.job
        batches = _train_batches(self.table, self.audio, seed=job.seed, epoch=index, shuffle=job.train.shuffle,
                                 batch_size=job.train.batch_size, crop_samples=self.evaluation["crop_samples"],
                                 sample_rate=self.evaluation["sample_rate"], augment=job.augment.spec())
        return batches if self.stream is None else with_unlabeled(batches, self.stream.passes(index))

    def evaluate(self, model: torch.nn.Module, split: str, *, prefix: str) -> dict[str, float]:
        if split != "valid":
            scores = track_scores(model, self.test, **self.evaluation)
            self.test_epoch_scores.append(scores)
            return _metrics(self.test.clean, scores, self.tags, prefix)
        scores, labels, verified = track_scores(model, self.valid, **self.evaluation), self.valid.table.labels, \
            self.valid.verified
        metrics = _metrics(labels, scores, self.tags, prefix)
        if verified.any():  # both signals, and the chosen one as the selection metric's ``valid/``
            both = {**_metrics(labels, scores, self.tags, "valid_noisy/"),
                    **_metrics(labels[verified], scores[verified], self.tags, "valid_verified/")}
            chosen = {key.split("/", 1)[1]: value for key, value in both.items()
                      if key.startswith(f"valid_{self.select_labels}/")}
            metrics = {**both, **{f"{prefix}{key}": value for key, value in chosen.items()}}
        elif self.select_labels == "verified":
            raise ValueError("select_labels='verified' needs verified validation rows; the corpus has none")
        for subset_prefix, rows in self.verified_valid.items():  # extra signals scored on clean labels
            metrics.update(_metrics(self.valid.clean[rows], scores[rows], self.tags, subset_prefix))
        return metrics

    def report(self, metrics: dict[str, Any], *, state: TrainingState, best, latest) -> None:
        self.log(f"{self.job.name} epoch {metrics['epoch']}/{self.job.train.epochs}: train loss "
                 f"{metrics['train/loss']:.4f}, valid loss {metrics['valid/loss']:.4f}, valid ROC-AUC "
                 f"{metrics['valid/roc_auc']:.4f} ({metrics['epoch_seconds']:.0f} s)")


def run_job(job, corpus: MemoryCorpus, *, train_labels: str = "manifest", export_to: str | Path | None = None,
            log: Callable[[str], None] = print, select_labels: str = "noisy",
            verified_valid: dict[str, np.ndarray] | None = None) -> dict[str, Any]:
    """Trains one validated job on an in-memory corpus and evaluates it against clean labels.

    The run is :func:`raytag.engine.run.fit`, as on a Ray Train worker: every epoch one pass
    over the training rows, then the validation split (the manifest's, noisy, labels) for the
    selection metric ``train.select_metric``, the best epoch looked for before
    ``train.select_until_epoch`` (Lu et al.'s window; training then goes on from it); in the
    last ``eval.average_last`` epochs also the test split against the clean labels. At the end,
    the best epoch's test metrics against the clean labels, its test scores, and how much the
    best and the last epoch follow the wrong training labels.

    Args:
        job: a :class:`raytag.config.JobConfig`; teachers and ``model.init`` are exported folders.
        corpus: from :func:`load_corpus`, at the model's sample rate.
        train_labels: ``"manifest"`` (what a job trains on) or ``"clean"`` (an oracle reference).
        export_to: write the best epoch there as an exported model (a teacher for later runs).
        log: receives one progress line per epoch.
        select_labels: which validation rows' metrics are ``valid/…`` (the selection signal):
            ``"noisy"`` every row's manifest labels, ``"verified"`` the verified rows only. With
            verified rows, both are also in the history as ``valid_noisy/…`` and
            ``valid_verified/…``. (The bench's stand-in for issue 25's ``train.select_labels``.)
        verified_valid: ``{prefix: (N,) bool over the validation split}``: every epoch also
            scores those validation rows against their clean labels (what a person verifying
            them would give) under ``prefix`` (e.g. ``valid_verified/``); the selection signals
            of ``bench_selection.py``. The run itself still selects as the job says.

    Returns:
        JSON-able: ``history`` (per-epoch metrics), ``best_epoch``, ``test`` (the best epoch's
        metrics and per-tag rows), ``test_last`` (means over the last epochs), ``columns``
        (the method's ``track_columns`` metrics and tables), ``memorised`` (best / last),
        ``params``, ``seconds``; and ``test_scores`` (N, K) and ``test_epoch_scores`` (E, N, K),
        the scores of the last ``eval.average_last`` epochs (arrays, not JSON).
    """
    started = time.perf_counter()
    if select_labels not in ("noisy", "verified"):
        raise ValueError(f"select_labels must be 'noisy' or 'verified', got {select_labels!r}")
    tags = list(corpus.tags)
    recipe = ModelRecipe(job.model.name, dict(job.model.args), tuple(tags), job.model.head)
    training = build_training(job, tags, init_weights=_init_weights(recipe, job.model.init))
    method, model = training.method, training.model
    rate, crop = model.sample_rate, model.crop_samples
    if rate != corpus.sample_rate:
        raise ValueError(f"{job.model.name} runs at {rate} Hz, the corpus is at {corpus.sample_rate} Hz")
    train = corpus.split("train")
    if job.data.train_subset == "verified":
        train = train.subset(train.verified)
    leave_out = job.train.leave_out
    if leave_out is not None:  # an out-of-fold teacher: the training split without its fold (raytag.folds)
        train = train.subset(fold_indices(train.table.paths, folds=leave_out.folds, seed=leave_out.seed)
                             != leave_out.fold)
    if train_labels == "clean":
        train = replace(train, table=replace(train.table, labels=train.clean.astype(np.float32)))
    elif train_labels != "manifest":
        raise ValueError(f"train_labels must be 'manifest' or 'clean', got {train_labels!r}")
    evaluation = dict(sample_rate=rate, crop_samples=crop, max_chunks=job.eval.max_chunks,
                      batch_size=job.eval.batch_size, amp=job.train.amp)

    needs, scores = method.needs, None
    if needs.scores_teacher is not None:
        scores = teacher_track_scores(needs.scores_teacher.folder, key=needs.scores_teacher.key, tags=tags,
                                      split=train, evaluation=evaluation)
    columns = method.track_columns(labels=train.table.labels, verified=train.verified, scores=scores, clean=train.clean)
    missing = set(needs.columns) - set(columns.columns)
    if missing:
        raise ValueError(f"method {job.objective.name} needs columns {sorted(missing)} it did not make")
    table = replace(train.table, columns=columns.columns)
    stream = None
    if needs.unlabeled_teacher is not None:
        teacher, _, _ = load_teacher(needs.unlabeled_teacher.folder, key=needs.unlabeled_teacher.key, tags=tags)
        stream = UnlabeledStream(corpus.split("unlabeled"), teacher, seed=job.seed, crop_samples=crop,
                                 batch_size=max(1, round(job.semi.ratio * job.train.batch_size)),
                                 sample_rate=rate, augment=job.augment.spec())

    test = corpus.split("test")
    hooks = _BenchHooks(job, table, train.audio, valid=corpus.split("valid"), test=test, tags=tags, stream=stream,
                        evaluation=evaluation, log=log, select_labels=select_labels,
                        verified_valid=verified_valid or {})
    state, best = fit(job, training, hooks, steps=math.ceil(len(table) / job.train.batch_size), device=CPU)
    history = state.history

    evaluated = method.evaluated(model)
    memorised = {"last": memorisation(track_scores(evaluated, train, **evaluation), train.table.labels, train.clean,
                                      tags)}
    evaluated.load_state_dict(best.weights)
    memorised["best"] = memorisation(track_scores(evaluated, train, **evaluation), train.table.labels, train.clean,
                                     tags)
    test_scores = track_scores(evaluated, test, **evaluation)
    report = tagging_report(test.clean, test_scores, tags)
    if export_to is not None:
        write_exported(export_to, recipe, best.weights, sample_rate=rate, crop_samples=crop,
                       best_epoch=state.best_epoch, select_metric=state.select_metric, best_value=state.best_value)
    last = [h for h in history if "test_epoch/roc_auc" in h]
    return {
        "job": job.name, "seed": job.seed, "train_labels": train_labels, "train_tracks": len(table),
        "params": sum(p.numel() for p in evaluated.parameters()),
        "best_epoch": state.best_epoch, "history": history, "epochs_from": 1,
        "test": {**_metrics(test.clean, test_scores, tags, ""), "per_tag": report.table_rows(),
                 "roc_auc_se": bootstrap_macro_roc_se(test.clean, test_scores)},
        "test_last": {key: float(np.mean([h[f"test_epoch/{key}"] for h in last])) for key in ("roc_auc", "pr_auc",
                                                                                            "lwlrap")} if last else {},
        "columns": {"metrics": columns.metrics, "tables": columns.tables},
        "memorised": memorised, "seconds": time.perf_counter() - started, "test_scores": test_scores,
        "test_epoch_scores": np.stack(hooks.test_epoch_scores) if hooks.test_epoch_scores else np.zeros((0, *test_scores.shape)),
    }


def _train_batches(table: TrackTable, audio: Sequence[np.ndarray], *, seed: int, epoch: int, shuffle: bool,
                   batch_size: int, crop_samples: int, sample_rate: int, augment) -> Iterator[dict]:
    """One epoch's labelled batches: ``epoch_rows`` order and crops, augmented when enabled."""
    rows = epoch_rows(table, seed=seed, epoch=epoch, rank=0, world_size=1, shuffle=shuffle)
    first = 0
    for size in batch_sizes(len(rows), batch_size, join_single_tail=True):  # the Ray path's batches
        batch = memory_batch(rows[first:first + size], audio, crop_samples=crop_samples)
        first += size
        if augment.enabled:
            batch = augment_numpy_batch(batch, sample_rate=sample_rate, spec=augment, seed=batch_seed(batch["seed"]))
        yield batch
