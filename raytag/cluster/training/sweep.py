"""Ray Tune sweeps: a search space over a job, one Ray Train run per trial.

Each trial is a Tune function trainable with a tiny CPU request that only drives: it applies
its sampled values to the job and calls :func:`raytag.cluster.training.driver.train`, whose TorchTrainer
reports every epoch to Tune through ``TuneReportCallback`` (so ASHA can stop bad trials early).
Work that does not depend on the trial's values runs once before the trials: the earlier
stages of a pipeline job and the teacher's scores for Balanced-Masking. MLflow gets a parent
run for the sweep (with the search space) and a nested run per trial; the best trial's job is
written out as a ready-to-run job file.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import yaml

from raytag import storage
from raytag.config import ConfigError, JobConfig
from raytag.errors import JobError
from raytag.search_space import SearchSpace, apply_params, check_space
from raytag.tracking import run_tags as T

log = logging.getLogger("raytag")

TRIAL_CPUS = 0.1  # trials only drive their Ray Train run


@dataclass(frozen=True)
class SweepOptions:
    samples: int = 4
    scheduler: str = "asha"  # or "fifo"
    search: str = "random"  # or "optuna"
    max_concurrent: int = 1
    resume: bool = False


@dataclass(frozen=True)
class SweepOutcome:
    best_config: dict[str, Any]
    best_value: float
    best_job_file: str
    trials: int
    finished: int
    stopped_early: int
    run_id: str | None


def check_options(space: SearchSpace, options: SweepOptions) -> None:
    """Rejects option combinations before any cluster work."""
    if options.scheduler not in ("asha", "fifo"):
        raise ConfigError(f"--scheduler must be asha or fifo, got {options.scheduler!r}")
    if options.search not in ("random", "optuna"):
        raise ConfigError(f"--search must be random or optuna, got {options.search!r}")
    if options.search == "optuna" and any(p.kind == "grid" for p in space.params):
        raise ConfigError("optuna search cannot sample grid parameters; use choice instead")
    if options.samples < 1 or options.max_concurrent < 1:
        raise ConfigError("--samples and --max-concurrent must be at least 1")


def param_space(space: SearchSpace) -> dict[str, Any]:
    """The space as Ray Tune distributions, keyed by dotted config path."""
    from ray import tune

    makers = {
        "choice": lambda a: tune.choice(list(a)),
        "grid": lambda a: tune.grid_search(list(a)),
        "uniform": lambda a: tune.uniform(a[0], a[1]),
        "loguniform": lambda a: tune.loguniform(a[0], a[1]),
        "quniform": lambda a: tune.quniform(a[0], a[1], a[2]),
    }
    return {p.path: makers[p.kind](p.args) for p in space.params}


def ranking_metric(target: JobConfig, space: SearchSpace) -> tuple[str, str]:
    """What trials are ranked on, and ``"max"`` or ``"min"``: the space's ``metric``, else the
    metric that chooses each trial's best epoch: ``train.select_metric`` on the validation
    labels ``train.select_labels`` resolves to (``valid_verified/...`` when the manifest has
    enough verified validation rows, see :mod:`raytag.selection`).

    Raises:
        raytag.selection.SelectionError: ``select_labels: verified`` with too few verified rows.
    """
    from raytag.data.manifest import read_manifest
    from raytag.plan import select_labels
    from raytag.selection import selection_key

    if space.metric:
        return space.metric, space.mode
    manifest = read_manifest(target.data.manifest, target.data.tags)
    signal = select_labels(target, manifest)
    return selection_key(signal, target.train.select_metric), "min" if target.train.select_metric == "loss" else "max"


def _shared_work(job: JobConfig, target: JobConfig) -> None:
    """Runs what every trial would otherwise repeat: earlier stages, the audio header scan
    (trials running at once then all find it in the scan cache), teacher scores."""
    from raytag.cluster.training.driver import scan_job_audio
    from raytag.cluster.training.needs import precompute_teacher_scores
    from raytag.cluster.training.pipeline import run_pipeline
    from raytag.plan import plan_job

    if job.stages:
        names = [s.name for s in job.stages]
        index = names.index(target.name.removeprefix(f"{job.name}-"))
        if index:
            log.info("sweep: running the stages before %s once", target.name)
            run_pipeline(job.model_copy(update={"stages": job.stages[:index]}))
    scan, _ = scan_job_audio(target, plan_job(target))
    log.info("sweep: audio scan for every trial: %s", scan.summary())
    precompute_teacher_scores(target)


def _trial(config: dict[str, Any], *, base: dict[str, Any], sweep: str, parent_run_id: str | None) -> None:
    """One Tune trial: the target job with the trial's values, trained on Ray Train."""
    from ray import tune
    from ray.tune.integration.ray_train import TuneReportCallback

    from raytag.cluster.training.driver import train

    trial_id = tune.get_context().get_trial_id()
    job = apply_params(JobConfig.model_validate(base), config, name=f"{sweep}-{trial_id}")
    tags = {T.SWEEP: sweep, T.TRIAL_ID: trial_id}
    train(job, parent_run_id=parent_run_id, run_tags=tags, callbacks=[TuneReportCallback()])


def trial_header(params: list[str], metric: str) -> str:
    """The header line of the trial table a sweep prints as trials finish."""
    return "  ".join(["trial", "status", "epochs", metric, "best so far", *params])


def trial_line(
    *, trial_id: str, status: str, epochs: int | None, value: float | None, best: float | None,
    config: dict[str, Any], params: list[str],
) -> str:
    """One finished trial as a line of the sweep's trial table: id, how it ended (finished,
    stopped early, error), epochs run, its last value of the sweep's metric, the best value
    of the sweep so far, and its sampled values in ``params`` order (floats to 4 significant
    digits)."""
    def cell(value: Any) -> str:
        if value is None:
            return "—"
        return f"{value:.4g}" if isinstance(value, float) else str(value)

    return "  ".join([trial_id, status, cell(epochs), cell(value), cell(best), *(cell(config.get(p)) for p in params)])


def trial_table_callback(params: list[str], metric: str, mode: str, epochs: int):
    """A Tune callback (it runs on the driver, in the Tune controller) that logs the trial
    table's header when the sweep starts and one :func:`trial_line` per trial as it ends."""
    from ray.tune import Callback

    class TrialTable(Callback):
        def __init__(self) -> None:
            self.best: float | None = None
            self.started = False

        def _log(self, trial, status: str) -> None:
            if not self.started:
                log.info("sweep trials: %s", trial_header(params, metric))
                self.started = True
            result = trial.last_result or {}
            value = result.get(metric)
            value = float(value) if isinstance(value, (int, float)) else None
            if value is not None and (self.best is None or (value > self.best if mode == "max" else value < self.best)):
                self.best = value
            ran = result.get("training_iteration")
            if status == "finished" and isinstance(ran, int) and ran < epochs:
                status = "stopped early"
            log.info("sweep trial: %s", trial_line(trial_id=trial.trial_id, status=status, epochs=ran, value=value,
                                                   best=self.best, config=trial.config, params=params))

        def on_trial_complete(self, iteration, trials, trial, **info) -> None:
            self._log(trial, "finished")

        def on_trial_error(self, iteration, trials, trial, **info) -> None:
            self._log(trial, "error")

    return TrialTable()


def run_sweep(job: JobConfig, space: SearchSpace, options: SweepOptions) -> SweepOutcome:
    """Validates, does the shared work once, runs the trials, writes the best job file."""
    from ray import tune
    from ray.tune.schedulers import ASHAScheduler, FIFOScheduler

    from raytag.cluster.session import driver_node_resource, ensure_ray
    from raytag.locations import resolve_storage
    from raytag.tracking.client import resolve_uri
    from raytag.tracking.runs import start_run

    target = check_space(job, space)
    check_options(space, options)
    metric, mode = ranking_metric(target, space)
    sweep = f"{job.name}-sweep"
    storage = resolve_storage(target.storage)

    ensure_ray(target)
    _shared_work(job, target)
    parent = start_run(target.model_copy(update={"name": sweep}), run_tags={T.KIND: "sweep", T.SWEEP_TARGET: target.name})
    parent.log_dict(space.as_dict(), "sweep/space.yaml")
    parent.log_params({"sweep.samples": options.samples, "sweep.scheduler": options.scheduler,
                       "sweep.search": options.search, "sweep.metric": metric, "sweep.mode": mode})

    # Trial actors run in their own working folders: give them absolute paths and tracking URI.
    base = target.resolved()
    base["tracking"]["uri"] = resolve_uri(target.tracking.uri)
    trainable = tune.with_resources(
        tune.with_parameters(_trial, base=base, sweep=sweep, parent_run_id=parent.run_id),
        {"cpu": TRIAL_CPUS, driver_node_resource(): 0.001},
    )
    path = f"{storage}/{sweep}"
    if options.resume and tune.Tuner.can_restore(path):
        log.info("resuming sweep %s", path)
        tuner = tune.Tuner.restore(path, trainable=trainable, resume_errored=True)
    else:
        scheduler = (
            ASHAScheduler(time_attr="training_iteration", max_t=target.train.epochs,
                          grace_period=max(1, target.train.epochs // 4), reduction_factor=2)
            if options.scheduler == "asha" else FIFOScheduler()
        )
        search_alg = None
        if options.search == "optuna":
            from ray.tune.search.optuna import OptunaSearch

            search_alg = OptunaSearch(seed=job.seed)
        tuner = tune.Tuner(
            trainable,
            param_space=param_space(space),
            tune_config=tune.TuneConfig(
                metric=metric, mode=mode, num_samples=options.samples, scheduler=scheduler,
                search_alg=search_alg, max_concurrent_trials=options.max_concurrent,
            ),
            run_config=tune.RunConfig(
                name=sweep, storage_path=storage,
                callbacks=[trial_table_callback([p.path for p in space.params], metric, mode, target.train.epochs)],
            ),
        )
    results = tuner.fit()
    return _finish(results, target, space, metric, mode, path, parent)


def _finish(results, target: JobConfig, space: SearchSpace, metric: str, mode: str, path: str, parent) -> SweepOutcome:
    finished = [r for r in results if r.error is None and r.metrics]
    if not finished:
        parent.end("FAILED")
        errors = [str(r.error).splitlines()[0] for r in results if r.error is not None][:3]
        raise JobError(f"no trial of the sweep finished; first errors: {errors}")
    best = results.get_best_result(metric=metric, mode=mode, scope="all")
    values = {p.path: best.config[p.path] for p in space.params}
    best_job = apply_params(target, values, name=f"{target.name}-best")
    best_file = f"{path}/best-job.yaml"
    best_text = (
        f"# Best trial of {path.rsplit('/', 1)[-1]} by {metric} ({mode}): {best.metrics.get(metric)}\n"
        + yaml.safe_dump(best_job.model_dump(mode="json", exclude={"stages"}), sort_keys=False)
    )
    storage.write_text(best_file, best_text)
    epochs = target.train.epochs
    stopped = sum(1 for r in finished if r.metrics.get("training_iteration", epochs) < epochs)
    value = float(best.metrics_dataframe[metric].max() if mode == "max" else best.metrics_dataframe[metric].min())
    parent.log_text(best_text, "sweep/best-job.yaml")
    parent.log_metrics({f"best/{metric}": value, "sweep/trials": len(results), "sweep/stopped_early": stopped})
    parent.set_tags({f"{T.BEST_PREFIX}{k}": str(v) for k, v in values.items()})
    parent.end()
    return SweepOutcome(values, value, best_file, len(results), len(finished), stopped, parent.run_id)
