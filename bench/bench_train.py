"""Training throughput on Ray Train against a plain PyTorch loop, and the cost of an elastic restart.

All arms train the same model preset (``--model``, default ``mtt-tiny``) with the same method
(plain BCE), seed, global batch and epochs on the same synthetic corpus (``raytag.data.synth.corpus``,
16 kHz WAV), and every epoch visits the same crops in the same order: rows from
``raytag.data.rows.epoch_rows``, decoded by ``raytag.data.batches.decode_batch``, one epoch by
``raytag.engine.loop.train_epoch`` (the function the Ray Train worker runs).

(1) *Plain loop*: this process, no Ray. The driver's Ray-free ``prepare`` (manifest, model
    recipe, method), the headers read by ``scan_batch``, the tables by ``track_table``; batches
    are decoded by one ``torch.utils.data.DataLoader`` whose ``--loader-workers`` worker
    processes (default 1: one decoding process, a stand-in for Ray's decode tasks; Ray Data may
    run several at once) persist over the run, as Ray's worker pool does, and that starts each
    pass (an epoch, a validation) afresh, as a Ray Data pipeline does. After each epoch:
    validation on the valid split as the worker does it (``chunk_rows``,
    ``validation_probabilities``, ``TrackAverager``), and a checkpoint written with
    ``raytag.engine.checkpoint.save`` to a temporary folder, so that an epoch does what a Ray
    epoch does minus Ray. Torch runs ``--threads`` threads (default 1: Ray gives a Train worker
    of 0.5 CPU ``OMP_NUM_THREADS=1``; on this shared 2-core machine 2 threads were 4x slower).
(2) *Ray Train, 1 worker*: ``raytag.cluster.training.driver.train`` on a local Ray instance started by
    the driver (2 logical CPUs), ``scaling.cpus_per_worker: 0.5``, ``data.decode_cpus: 0.25``,
    ``eval.max_chunks: 1``, tracking to SQLite in a temporary folder. Rates come from the metrics
    the run logged per epoch (``train/examples``, ``train/examples_per_s``, ``epoch_seconds``,
    ``workers``; the examples are rank 0's, so clips = examples x workers).
(3) *Ray Train, 2 workers*: the same, the same global batch (``train.batch_size`` is global).
(4) *Elastic restart*: a 2-node cluster from ``tests/multinode.py`` (head 2 CPUs, worker node
    1 CPU, one ``trainer`` resource each), a ``raytag train`` driver with ``scaling.num_workers:
    [1, 2]`` asking one ``trainer`` per worker; ``--kill-delay`` seconds (default 0) after the
    first checkpoint appears in storage, the worker node is killed (SIGKILL to all its processes).
    Measured: seconds from the kill to the first resumed epoch's start and end, the epoch the run
    resumed at (``resumed_from_epoch``) and how many complete epochs were trained again.

Steady state: epochs 2..N (the first epoch pays worker start-up and warm-up in every arm), as
clips per second of ``train_epoch`` (its own clock: the training loop including waiting for
data) and as clips per wall-clock second between the end of epoch 1 and the end of epoch N
(validation, checkpoints and reporting included). Whole wall time: (1) from reading the
manifest to the last epoch's checkpoint; (2), (3) the whole ``train()`` call (Ray start-up,
header scan, training, export, thresholds, test evaluation, MLflow artifacts). Each Ray arm
starts its own Ray instance (ray.shutdown() in between), so each pays a cold start.

The machine is shared: every figure comes with the CPU seconds of this process and all its
descendants (Ray's processes, DataLoader workers, the cluster's nodes; sampled once a second by
``train_figures.CpuTimeline``) and the mean 1-minute load average over it. Wall-clock rates follow
the CPU share the arms get from the other work (the same plain loop took 16 s and 172 s of wall
time for the same 10 CPU seconds minutes apart); rates per CPU second follow it much less.

    python bench/bench_train.py                                 # about 10 minutes on 2 cores
    python bench/bench_train.py --epochs 3 --clips 40 --skip-elastic   # a quick check
    python bench/bench_train.py --out bench/results/train-cpu.txt
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from elastic_restart import run_elastic  # noqa: E402
from train_figures import Arm, CpuTimeline, EpochRecord, metric_histories, records_from_histories  # noqa: E402
from train_report import report  # noqa: E402

from raytag.config import JobConfig, load_job  # noqa: E402
from raytag.data.batches import decode_batch, scan_batch  # noqa: E402
from raytag.data.rows import TrackTable, chunk_rows, epoch_rows  # noqa: E402
from raytag.data.synth.corpus import SynthSpec, write_corpus  # noqa: E402

EXPERIMENT = "bench-train"
log = logging.getLogger("bench_train")


def job_tree(args: argparse.Namespace, *, name: str, corpus: Path, storage: Path, tracking: str | None) -> dict:
    """The job every arm trains (the Ray arms set ``scaling.num_workers`` by an override)."""
    return {
        "name": name, "seed": args.seed, "storage": str(storage),
        "data": {"manifest": str(corpus / "manifest.csv"), "clean_labels": str(corpus / "clean.csv"),
                 "decode_cpus": 0.25},
        "model": {"name": args.model},
        "train": {"epochs": args.epochs, "batch_size": args.batch, "lr": 0.001, "log_every": 1000},
        "scaling": {"num_workers": 1, "cpus_per_worker": 0.5, "max_failures": 3},
        "eval": {"max_chunks": 1, "batch_size": 16},
        "tracking": {"experiment": EXPERIMENT, **({"uri": tracking} if tracking else {})},
    }


def write_job(tree: dict, folder: Path) -> Path:
    path = folder / f"{tree['name']}.yaml"
    path.write_text(yaml.safe_dump(tree, sort_keys=False))
    return path


# ---------------------------------------------------------------- (1) the plain loop, no Ray


class BatchPlan(torch.utils.data.Dataset):
    """DataLoader dataset over planned batches of rows: item k is batch k decoded by
    ``decode_batch``. :meth:`add` appends a pass (an epoch's rows, the validation chunks) cut
    into the batches ``iter_torch_batches(batch_size=batch)`` yields over the same rows."""

    def __init__(self, *, sample_rate: int, crop_samples: int):
        self.batches: list[list[dict]] = []
        self.sample_rate, self.crop_samples = sample_rate, crop_samples

    def add(self, rows: list[dict], batch: int) -> range:
        """Appends the batches of ``rows``; returns their item indices."""
        first = len(self.batches)
        self.batches += [rows[i : i + batch] for i in range(0, len(rows), batch)]
        return range(first, len(self.batches))

    def __len__(self) -> int:
        return len(self.batches)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        rows = self.batches[index]
        columns = {key: np.array([r[key] for r in rows], dtype=object if key == "path" else None) for key in rows[0]}
        out = decode_batch(columns, sample_rate=self.sample_rate, crop_samples=self.crop_samples)
        return {name: torch.from_numpy(array) for name, array in out.items()}


class Span(torch.utils.data.Sampler):
    """The item indices of one pass, set before each pass, so one DataLoader with persistent
    workers serves every pass (as a warm pool of Ray workers does) without prefetching across
    passes (a Ray Data pipeline starts anew for every epoch and every validation)."""

    def __init__(self):
        self.indices = range(0)

    def __iter__(self):
        return iter(self.indices)

    def __len__(self) -> int:
        return len(self.indices)


def scanned_table(tracks, labels: np.ndarray) -> TrackTable:
    """The tracks' table from their headers, read by the scan's own batch function (no Ray)."""
    from raytag.cluster.data.datasets import ScannedTrack, ScanResult, track_table

    scanned = scan_batch({"path": np.array(sorted({t.path for t in tracks}), dtype=object)})
    usable = {p: ScannedTrack(p, int(f), int(r)) for p, f, r, e in
              zip(scanned["path"], scanned["frames"], scanned["rate"], scanned["error"]) if not e}
    table, _ = track_table(tracks, labels, ScanResult(usable, []))
    return table


def plain_arm(job: JobConfig, *, loader_workers: int) -> Arm:
    """Trains ``job`` in this process as one Ray Train worker would, minus Ray (see the module
    docstring); one record per epoch, ended when its checkpoint is written."""
    from raytag.plan import plan_job, training_tracks
    from raytag.engine import checkpoint as ckpt
    from raytag.engine.loop import track_loss, train_epoch, validation_probabilities
    from raytag.scoring.tracks import TrackAverager
    from raytag.engine.seeding import init_seed, rank_generator_seed
    from raytag.methods import build_method
    from raytag.methods.base import Epoch
    from raytag.metrics import tagging_report

    cpu = torch.device("cpu")
    records: list[EpochRecord] = []
    with CpuTimeline() as timeline, tempfile.TemporaryDirectory(prefix="bench-train-ckpt-") as folder:
        started = time.time()
        job_plan = plan_job(job)
        manifest, tags = job_plan.manifest, list(job_plan.recipe.tags)
        train_tracks, valid_tracks = training_tracks(job, manifest), manifest.split("valid")
        train_table = scanned_table(train_tracks, manifest.label_matrix(train_tracks))
        valid_table = scanned_table(valid_tracks, manifest.label_matrix(valid_tracks))
        method = build_method(job, tags=tags)
        torch.manual_seed(init_seed(job.seed))
        model = method.build_network(job_plan.recipe.build)
        optimizer = torch.optim.Adam(model.parameters(), lr=job.train.lr, weight_decay=job.train.weight_decay)
        state = ckpt.TrainingState(select_metric=job.train.select_metric)
        best = ckpt.Snapshot.capture(model, optimizer, method)
        steps = -(-len(train_table) // job.train.batch_size)
        plan = BatchPlan(sample_rate=job_plan.sample_rate, crop_samples=job_plan.crop_samples)
        passes = [plan.add(epoch_rows(train_table, seed=job.seed, epoch=index, rank=0, world_size=1,
                                      shuffle=job.train.shuffle), job.train.batch_size)
                  for index in range(job.train.epochs)]
        validation = plan.add(chunk_rows(valid_table, sample_rate=job_plan.sample_rate,
                                         crop_samples=job_plan.crop_samples, max_chunks=job.eval.max_chunks),
                              job.eval.batch_size)
        span = Span()
        loader = torch.utils.data.DataLoader(plan, batch_size=None, sampler=span, num_workers=loader_workers,
                                             persistent_workers=loader_workers > 0)
        for index in range(job.train.epochs):  # draws keyed by the 0-based index, as engine.run.fit
            epoch, begun = index + 1, time.perf_counter()  # numbered from 1 in the records
            step_seed = rank_generator_seed(job.seed, index, 0)
            torch.manual_seed(step_seed)
            method.start_epoch(Epoch(index, torch.Generator().manual_seed(step_seed), model, steps))
            span.indices = passes[index]
            stats = train_epoch(model, loader, optimizer, method=method, device=cpu, amp=job.train.amp,
                                log_every=job.train.log_every)
            span.indices = validation
            averager = TrackAverager(len(valid_table), len(tags))
            for track, probs, labels in validation_probabilities(method.evaluated(model), loader, device=cpu,
                                                            amp=job.train.amp):
                averager.add(track, probs, labels)
            scores, kept = averager.result()
            valid = tagging_report(averager.labels[kept], scores, tags).as_metrics(prefix="valid/")
            valid["valid/loss"] = track_loss(scores, averager.labels[kept])
            if state.improves(valid[f"valid/{job.train.select_metric}"]):
                state.best_value, state.best_epoch = valid[f"valid/{job.train.select_metric}"], epoch
                best = ckpt.Snapshot.capture(model, optimizer, method)
            state.epochs_done = epoch
            state.history.append({"epoch": epoch, **stats.as_metrics(), **valid})
            ckpt.save(Path(folder), latest=ckpt.Snapshot.capture(model, optimizer, method), best=best, state=state,
                      job=job.resolved())
            records.append(EpochRecord(epoch, stats.examples, stats.seconds, time.perf_counter() - begun, 1, time.time()))
            log.info("plain loop: epoch %d, %.1f clips/s", epoch, stats.examples / stats.seconds)
        ended = time.time()
    return Arm("plain loop", records, started, ended, timeline.samples)


# ---------------------------------------------------------------- (2), (3) Ray Train on a local instance


def ray_arm(job_file: Path, *, workers: int) -> Arm:
    """``raytag.cluster.training.driver.train`` with ``workers`` Train workers on a local Ray instance of
    its own (shut down afterwards). The instance is started just before ``train`` by the same
    function ``train`` uses, so that a start that times out can be retried (see
    :func:`start_ray`); the arm's time runs from the start that succeeded."""
    import ray

    from raytag.cluster.training.driver import train

    job = load_job(job_file, [f"name={job_file.stem}-{workers}w", f"scaling.num_workers={workers}"])
    try:
        with CpuTimeline() as timeline:
            started, failed = start_ray(job)
            outcome = train(job)
            ended = time.time()
    finally:
        ray.shutdown()
    records = records_from_histories(metric_histories(job.tracking.uri, outcome.run_id))
    name = f"Ray Train, {workers} worker{'s' if workers > 1 else ''}"
    return Arm(name, records, started, ended, timeline.samples, failed_starts=failed)


def start_ray(job: JobConfig, attempts: int = 3) -> tuple[float, int]:
    """Starts the job's local Ray instance; returns when the successful start began and how many
    starts failed. On a loaded machine Ray can give up waiting for its own raylet (a fixed 30 s,
    "The current node timed out during startup"); then it is shut down and started again."""
    import ray

    from raytag.cluster.session import init_ray

    for failed in range(attempts):
        started = time.time()
        try:
            init_ray(job.ray.address, job.ray.num_cpus)
            return started, failed
        except Exception as exc:  # noqa: BLE001 - Ray raises a bare Exception for this
            if failed == attempts - 1:
                raise
            log.warning("Ray did not start (%s); starting it again", exc)
            ray.shutdown()
    raise AssertionError("unreachable")


# ---------------------------------------------------------------- report


def corpus_spec(args: argparse.Namespace) -> SynthSpec:
    return SynthSpec(clips=args.clips, seconds=args.seconds, sample_rate=16000, seed=args.seed)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="mtt-tiny", help="model preset (default mtt-tiny)")
    parser.add_argument("--clips", type=int, default=200, help="synthetic clips, 70%% of them train (default 200)")
    parser.add_argument("--seconds", type=float, default=4.0, help="clip length (default 4)")
    parser.add_argument("--epochs", type=int, default=6, help="epochs per arm; epochs 2..N are measured (default 6)")
    parser.add_argument("--batch", type=int, default=16, help="global batch (default 16: 8 per worker with 2)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1, help="torch threads of the plain loop (default 1, as a "
                        "Ray Train worker of 0.5 CPU gets)")
    parser.add_argument("--loader-workers", type=int, default=1, help="DataLoader processes of the plain loop "
                        "(default 1)")
    parser.add_argument("--elastic-epochs", type=int, default=4, help="epochs of the elastic run (default 4)")
    parser.add_argument("--kill-delay", type=float, default=0.0, help="kill the worker node this many seconds after "
                        "the first checkpoint appears (default 0)")
    parser.add_argument("--elastic-timeout", type=float, default=480.0, help="stop the elastic run this many seconds "
                        "after its cluster started (default 480)")
    parser.add_argument("--skip-elastic", action="store_true", help="leave out (4)")
    parser.add_argument("--work", type=Path, help="folder for corpus, storage and tracking (default: a temporary "
                        "folder, removed at the end)")
    parser.add_argument("--out", type=Path, help="also write the report here")
    args = parser.parse_args(argv)
    if args.epochs < 2 or args.elastic_epochs < 2:
        parser.error("--epochs and --elastic-epochs must be at least 2")
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    torch.set_num_threads(args.threads)
    from mlflow.tracking import MlflowClient

    work = args.work or Path(tempfile.mkdtemp(prefix="bench-train-"))
    work.mkdir(parents=True, exist_ok=True)
    load_start, clock = os.getloadavg()[0], time.time()
    try:
        write_corpus(work / "corpus", corpus_spec(args), overwrite=True)
        for previous in ("storage", "artifacts"):
            shutil.rmtree(work / previous, ignore_errors=True)
        (work / "mlflow.db").unlink(missing_ok=True)
        tracking = f"sqlite:///{work / 'mlflow.db'}"
        # Made here so the runs' artifacts go to the work folder, not to ./mlruns (MLflow's
        # default for a new experiment in a SQLite store); raytag finds it by name.
        MlflowClient(tracking).create_experiment(EXPERIMENT, artifact_location=str(work / "artifacts"))
        tree = job_tree(args, name="bench", corpus=work / "corpus", storage=work / "storage", tracking=tracking)
        job_file = write_job(tree, work)
        plain = plain_arm(load_job(job_file), loader_workers=args.loader_workers)
        one = ray_arm(job_file, workers=1)
        two = ray_arm(job_file, workers=2)
        elastic = None
        if not args.skip_elastic:
            elastic_tree = job_tree(args, name="elastic", corpus=work / "corpus", storage=work / "storage", tracking=None)
            elastic_tree["train"]["epochs"] = args.elastic_epochs
            elastic_tree["scaling"]["num_workers"] = [1, 2]
            elastic = run_elastic(elastic_tree, corpus_spec(args), kill_delay_s=args.kill_delay,
                                  timeout_s=args.elastic_timeout)
    finally:
        if args.work is None:
            shutil.rmtree(work, ignore_errors=True)

    lines = report(args, plain=plain, one=one, two=two, elastic=elastic, load_start=load_start,
                   total_s=time.time() - clock)
    print("\n".join(lines), flush=True)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
