"""``raytag <command>``: synth, corpus, prepare, train, stop, run, sweep, evaluate, predict, audit, verify, review,
models, methods.

The command line parses, calls and prints; the work is in the modules it calls. Exit codes
(:mod:`raytag.errors`): 0 success; 2 bad input, an :class:`~raytag.errors.InputError`
(configuration, manifest, arguments, a missing model or tracking store), with or without
``-v``; 1 anything else (a job that failed while running, or an error raytag did not expect),
one line and "run with -v for the traceback". ``-v`` adds the traceback in both cases. A bad
argument is one line naming the flag, exit 2.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
import traceback
from pathlib import Path
from typing import NoReturn

from raytag import package_version
from raytag.errors import EXIT_BAD_INPUT, EXIT_FAILED, InputError, RaytagError
from raytag.locations import is_uri
from raytag.output_files import check_output_file, check_output_folder
from raytag.text import plural

log = logging.getLogger("raytag")


QUIET_LOGGERS = ("alembic", "mlflow", "urllib3", "filelock", "ray", "py.warnings")


def _setup_logging(verbose: bool) -> None:
    """raytag's own lines at INFO; Ray's and MLflow's only when ``-v`` (they are always in
    Ray's session logs). Worker output reaches the console only with ``-v`` too."""
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(message)s" if not verbose else "%(asctime)s %(name)s %(levelname)s %(message)s",
        datefmt="%H:%M:%S",
    )
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")  # no bar per file MLflow copies
    if verbose:
        os.environ["RAYTAG_VERBOSE"] = "1"
        return
    logging.captureWarnings(True)
    for noisy in QUIET_LOGGERS:
        logging.getLogger(noisy).setLevel(logging.ERROR)


class CommandParser(argparse.ArgumentParser):
    """argparse with one-line errors: ``raytag predict: argument --max-chunks: must be at least
    1; got 0 (see raytag predict --help)``, exit 2, instead of the usage block."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_BAD_INPUT, f"{self.prog}: {message} (see {self.prog} --help)\n")


def at_least(minimum: int):
    """An argparse ``type``: an integer not below ``minimum`` (argparse then names the flag:
    ``argument --max-chunks: must be at least 1; got 0``, exit 2)."""

    def convert(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"an integer expected; got {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be at least {minimum}; got {text}")
        return value

    return convert


def chunk_limit(text: str) -> int | None:
    """An argparse ``type`` for ``--max-chunks``: a whole number of at least 1, or ``all``
    (None: chunks covering the whole track)."""
    return None if text.strip().lower() == "all" else at_least(1)(text)


def positive(text: str) -> float:
    """An argparse ``type``: a number above zero."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"a number expected; got {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be above 0; got {text}")
    return value


def cmd_synth(args: argparse.Namespace) -> int:
    from raytag.data.synth.corpus import SynthSpec, write_corpus

    spec = SynthSpec(
        clips=args.clips,
        unlabeled=args.unlabeled,
        seconds=args.seconds,
        sample_rate=args.sample_rate,
        seed=args.seed,
        **({"noise_model": args.noise_model} if args.noise_model else {}),
    )
    started = time.perf_counter()

    def progress(done: int, total: int) -> None:
        if done == total or done % 200 == 0:
            log.info("synth: %d/%d clips", done, total)

    summary = write_corpus(Path(args.out), spec, progress=progress, overwrite=args.overwrite)
    log.info("wrote %s in %.1f s", summary.get("manifest", args.out), time.perf_counter() - started)
    return 0


def cmd_corpus(args: argparse.Namespace) -> int:
    from raytag.data.corpora import get_corpus, make_manifest

    adapter = get_corpus(args.corpus)
    check_output_file(args.output, "-o")
    options = {option.name: getattr(args, option.name) for option in adapter.options}
    report = make_manifest(
        adapter, source=Path(args.source), output=Path(args.output), overwrite=args.overwrite,
        allow_missing=args.allow_missing, **options
    )
    print(report.format())
    return 0


def _add_corpus_parser(commands) -> None:
    from raytag.data.corpora import list_corpora

    corpus = commands.add_parser("corpus", help="write a manifest from a public corpus's own files")
    names = corpus.add_subparsers(dest="corpus", required=True, metavar="NAME")
    for adapter in list_corpora():
        sub = names.add_parser(adapter.name, help=adapter.summary, description=adapter.summary)
        sub.add_argument("--from", dest="source", required=True, metavar="DIR", help=adapter.source_help)
        sub.add_argument("-o", "--output", required=True, metavar="MANIFEST.csv", help="manifest to write")
        sub.add_argument("--overwrite", action="store_true", help="replace an existing manifest")
        sub.add_argument("--allow-missing", action="store_true",
                         help="write the manifest even if none of its audio files is under --from (otherwise an "
                              "error: a wrong --from)")
        for option in adapter.options:
            if option.kind is bool:
                sub.add_argument(option.flag, dest=option.name, action="store_true", help=option.help)
            else:
                sub.add_argument(
                    option.flag, dest=option.name, type=option.kind, default=option.default,
                    choices=option.choices, required=option.required, help=option.help,
                )
        sub.set_defaults(run=cmd_corpus)


def cmd_prepare(args: argparse.Namespace) -> int:
    from raytag.config import load_job

    job = load_job(args.job, args.overrides)
    from raytag.cluster.data.prepare import prepare_audio

    report = prepare_audio(job, progress=not args.no_progress)
    print(report.format())
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    from raytag.config import ConfigError, load_job

    job = load_job(args.job, args.overrides)
    if job.stages:
        raise ConfigError(f"{args.job} has stages; run it with `raytag run`")
    return _train(job)


def _train(job) -> int:
    from raytag.cluster.training.driver import train

    outcome = train(job)
    print(outcome.report.format_table())
    print(
        f"\nbest epoch {outcome.best_epoch}; model: {outcome.model_location}; "
        f"skipped files: {outcome.skipped_files}; MLflow run: {outcome.run_id}"
    )
    if outcome.model_uri:
        print(f"MLflow model: {outcome.model_uri}  (load it with mlflow.pyfunc.load_model, or `raytag predict "
              f"{outcome.model_uri} AUDIO...`)")
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    from raytag.config import load_job

    job = load_job(args.job, args.overrides)
    if not job.stages:
        return _train(job)
    from raytag.cluster.training.pipeline import format_stages, run_pipeline

    results = run_pipeline(job)
    print(f"\n{job.name}: {plural(len(results), 'stage')}, evaluated on the {job.eval.split} split")
    print(format_stages(results, job.eval.split))
    models = [f"{r.name}: {r.model_uri}" for r in results if r.model_uri]
    if models:
        print("MLflow models: " + "; ".join(models))
    return 0


def cmd_stop(args: argparse.Namespace) -> int:
    from raytag.config import ConfigError, load_job
    from raytag.cluster.training.stop import request_stop
    from raytag.locations import run_location

    job = load_job(args.job, args.overrides)
    if job.stages:
        raise ConfigError(f"{args.job} has stages; `raytag stop` stops a single training (`raytag train`)")
    location = request_stop(run_location(job.storage, job.name))
    print(f"asked {job.name} to stop after its current epoch ({location}); its `raytag train` then exports "
          f"and evaluates the best epoch, and a rerun trains the remaining epochs")
    return 0


def cmd_sweep(args: argparse.Namespace) -> int:
    from raytag.config import load_job
    from raytag.search_space import check_space, read_space
    from raytag.cluster.training.sweep import SweepOptions, check_options, run_sweep

    job = load_job(args.job, args.overrides)
    space = read_space(args.space)
    options = SweepOptions(
        samples=args.samples, scheduler=args.scheduler, search=args.search,
        max_concurrent=args.max_concurrent, resume=args.resume,
    )
    check_space(job, space)
    check_options(space, options)
    outcome = run_sweep(job, space, options)
    print(f"\n{plural(outcome.trials, 'trial')} ({outcome.stopped_early} stopped early by the scheduler)")
    print(f"best: {outcome.best_value:.4f} with " + ", ".join(f"{k}={v}" for k, v in outcome.best_config.items()))
    print(f"best job file: {outcome.best_job_file}  (train it with `raytag train {outcome.best_job_file}`)")
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    from raytag.config import load_job
    from raytag import storage
    from raytag.cluster.inference.evaluation import evaluate
    from raytag.locations import resolve_storage
    from raytag.models.export import ExportError, best_model_location

    job = load_job(args.job, args.overrides)
    model = resolve_storage(args.model) if args.model else best_model_location(job.storage, job.name)
    if not storage.exists(model):
        raise ExportError(f"no trained model at {model}; train the job first or pass --model")
    print(evaluate(job, model, split=args.split).report.format_table())
    return 0


def cmd_predict(args: argparse.Namespace) -> int:
    from raytag.predict.command import PredictRequest, SegmentRequest, run_predict
    from raytag.predict.workflow import MODEL_SETTING, PredictOptions

    options = PredictOptions(
        max_chunks=getattr(args, "max_chunks", MODEL_SETTING),  # absent: the model's own setting
        batch_size=args.batch_size, ray_above=args.ray_above, actors=args.actors, ray_address=args.ray_address,
        progress=not args.no_progress,
    )
    segments = SegmentRequest(taggram=args.taggram, taggram_png=args.taggram_png, embeddings=args.embeddings,
                              embeddings_per=args.embeddings_per, segment_s=args.segment_s, hop_s=args.hop_s)
    request = PredictRequest(args.model, tuple(args.audio), options, output=args.output, fmt=args.format,
                             top_k=args.top_k, tracking_uri=args.tracking_uri, segments=segments)
    return run_predict(request).exit_code


def _add_predict(commands) -> None:
    from raytag.predict.workflow import MODEL_SETTING
    from raytag.scoring.options import DEFAULT_BATCH_SIZE, DEFAULT_MAX_CHUNKS, DEFAULT_RAY_ABOVE

    predict = commands.add_parser(
        "predict", help="tag audio files with a trained model: top-k tags, tags above threshold, probabilities",
        description="Track-level tag probabilities (chunks spread over each whole track, averaged), the top-k tags "
        "and the tags at or above the model's per-tag thresholds, one row per file. Files that are not tagged "
        "get a status (silent, too short, unreadable) and a reason instead of tags. Exit code 1 when no file "
        "could be tagged.",
    )
    predict.add_argument("model", metavar="MODEL", help="exported model folder (path or storage URI), or an MLflow "
                         "model: models:/<model_id>, models:/<name>/<version>, models:/<name>@<alias>, runs:/<run_id>/<path>")
    predict.add_argument("audio", nargs="+", metavar="AUDIO", help="audio files, folders (searched recursively) "
                         "or lists of files (.csv/.tsv/.jsonl with a 'path' column, e.g. a manifest)")
    predict.add_argument("-o", "--output", metavar="FILE", help="output file, .csv or .jsonl (default: CSV on stdout)")
    predict.add_argument("--format", choices=["csv", "jsonl"], help="output format (default: from -o's suffix)")
    predict.add_argument("--top-k", type=at_least(0), default=5, help="most probable tags listed per file (default 5)")
    predict.add_argument("--max-chunks", type=chunk_limit, default=argparse.SUPPRESS, metavar="N|all",
                         help="most chunks per track, spread over the whole track; 'all' covers the whole track "
                         f"(default: what the model was evaluated with, else {DEFAULT_MAX_CHUNKS})")
    predict.add_argument("--batch-size", type=at_least(1), default=DEFAULT_BATCH_SIZE,
                         help=f"chunks per forward pass (default {DEFAULT_BATCH_SIZE})")
    predict.add_argument("--ray-above", type=at_least(0), default=DEFAULT_RAY_ABOVE, metavar="N",
                         help="more than N files go through a Ray Data actor pool; up to N, a loop in this process "
                         f"(default {DEFAULT_RAY_ABOVE})")
    predict.add_argument("--actors", type=at_least(1), default=None,
                         help="Ray Data inference actors (default: one per CPU of the cluster, at most one per batch)")
    predict.add_argument("--ray-address", help="Ray cluster to join (default: RAY_ADDRESS, else a local instance)")
    predict.add_argument("--tracking-uri", help="MLflow tracking URI for models:/ and runs:/ "
                         "(default: MLFLOW_TRACKING_URI, else sqlite:///<cwd>/mlflow.db)")
    predict.add_argument("--no-progress", action="store_true", help="no progress bars")
    segments = predict.add_argument_group(
        "tags over time and embeddings", "segments of --segment-s seconds every --hop-s seconds cover each tagged "
        "file (the last one ends at the file's end); computed in this process, also above --ray-above files")
    segments.add_argument("--taggram", metavar="FILE", help="write a taggram, one row per segment: path, start_s, "
                          "end_s and one probability per tag (.csv or .jsonl)")
    segments.add_argument("--taggram-png", metavar="FOLDER", help="write a tags x time heat map per file (PNG) here")
    segments.add_argument("--embeddings", metavar="FILE", help="write embeddings (the features the tag layer "
                          "reads): .npy (with FILE's .rows.csv naming the rows), .csv or .jsonl")
    segments.add_argument("--embeddings-per", choices=["file", "segment"],
                          help="one embedding per file (mean over its segments, default) or per segment")
    segments.add_argument("--segment-s", type=float, metavar="SECONDS",
                          help="segment length (default: the model's training crop)")
    segments.add_argument("--hop-s", type=float, metavar="SECONDS",
                          help="seconds between segment starts (default: the segment length, no overlap)")
    predict.set_defaults(run=cmd_predict)


def cmd_audit(args: argparse.Namespace) -> int:

    from raytag.config import load_job
    from raytag.cluster.inference.audit import format_audit, run_audit

    job = load_job(args.job, args.overrides)
    if args.output and not is_uri(args.output):
        check_output_folder(args.output, "-o")
    outcome = run_audit(job, teacher=args.teacher, split=args.split, output=args.output, max_rows=args.max_rows)
    print(f"{job.name}: label-noise audit of the {outcome.split} split ({plural(outcome.tracks, 'track')}, "
          f"{outcome.unscored} unscored)")
    print(format_audit(outcome.audit, rows=args.show))
    run = f"; MLflow run {outcome.run_id}" if outcome.run_id else ""
    print(f"\ntables: {outcome.output}/per_tag.csv, {outcome.output}/suspicious.csv{run}")
    return 0


def _add_audit(commands) -> None:
    audit = commands.add_parser(
        "audit", help="estimate each tag's missing and spurious label rates; list labels to check",
        description="Label-noise audit (Lu et al. 2022 Table 1 style): from a trained teacher's scores on one "
        "split, estimate per tag Err+ (share of labelled positives that are wrong) and Err- (share of "
        "labelled negatives whose tag is really there), and list the most suspicious (track, tag, label, "
        "score) rows for a person to check. Writes per_tag.csv and suspicious.csv and logs them to the MLflow "
        "run <job>-audit.",
    )
    audit.add_argument("job", help="YAML job file")
    audit.add_argument("overrides", nargs="*", metavar="key=value", help="job overrides")
    audit.add_argument("--teacher", metavar="MODEL", help="exported model folder or MLflow model URI trained on the "
                       "job's tags (default: the job's best model)")
    audit.add_argument("--split", choices=["valid", "test", "train"], default="valid",
                       help="split to audit (default valid). Use one the teacher was not trained on: a teacher "
                       "scoring its own training tracks has memorised part of their noisy labels, so missing "
                       "tags look like true negatives and both error rates come out too low")
    audit.add_argument("-o", "--output", metavar="DIR", help="folder for the tables (default <storage>/<job>/audit)")
    audit.add_argument("--max-rows", type=at_least(0), default=200, help="suspicious rows listed in the CSV (default 200)")
    audit.add_argument("--show", type=at_least(0), default=10, help="suspicious rows printed (default 10)")
    audit.set_defaults(run=cmd_audit)


PAGE_ONLY = ("tracks", "split", "seed", "model", "audit", "no_audit", "max_suspects", "skip", "clip_s", "kbps")


def cmd_verify(args: argparse.Namespace) -> int:
    from raytag.config import load_job
    from raytag.verify.workflow import PageOptions, VerifyError, apply_file, make_page

    job = load_job(args.job, args.overrides)
    if args.apply:
        given = [name for name in PAGE_ONLY if getattr(args, name) is not None and getattr(args, name) is not False]
        if given:
            raise VerifyError(f"--{given[0].replace('_', '-')} is for making a page; --apply only needs -o")
        outcome = apply_file(job, decisions=args.apply, output=args.output, overwrite=args.overwrite)
        print(f"applied {args.apply} to {job.data.manifest}: wrote {outcome.output}")
        print(outcome.applied.format())
        return 0
    if args.audit and args.no_audit:
        raise VerifyError("--audit and --no-audit contradict each other; give one")
    options = PageOptions(
        output=args.output, tracks=args.tracks or 200, split=args.split or "valid",
        seed=0 if args.seed is None else args.seed, model=args.model, audit=args.audit,
        use_audit=not args.no_audit, max_suspects=args.max_suspects, skip=tuple(args.skip or ()),
        clip_s=args.clip_s or 20.0, bitrate=1000 * (args.kbps or 24), overwrite=args.overwrite,
    )
    print(make_page(job, options).format())
    return 0


def _add_verify(commands) -> None:
    verify = commands.add_parser(
        "verify", help="a page to check a batch of labels by ear; apply its decisions to a new manifest",
        description="Without --apply: pick --tracks tracks of a split that are not verified yet (the label "
        "audit's suspects first, then every tag's labelled positives and negatives in turn, seeded) and write a "
        "self-contained HTML page with a clip of each and its tags to check. With --apply: write a new manifest "
        "in which the rows checked on the page carry the corrected tags and verified=true.",
    )
    verify.add_argument("job", help="YAML job file")
    verify.add_argument("overrides", nargs="*", metavar="key=value", help="job overrides")
    verify.add_argument("-o", "--output", required=True, metavar="FILE",
                        help="the page (PAGE.html), or with --apply the new manifest (never the job's own)")
    verify.add_argument("--apply", metavar="DECISIONS.csv", help="decisions exported from a page")
    verify.add_argument("--overwrite", action="store_true", help="replace an existing output")
    page = verify.add_argument_group("making a page")
    page.add_argument("--tracks", type=at_least(1), help="tracks in the batch (default 200)")
    page.add_argument("--split", choices=["valid", "train", "test"], help="split to verify (default valid: "
                      "verified validation rows are what model selection uses)")
    page.add_argument("--seed", type=int, help="seed of the pick (default 0)")
    page.add_argument("--model", metavar="MODEL", help="exported model or MLflow model URI of the job's tags: each "
                      "clip is centred where it scores the track's tags highest (default: the middle of the track)")
    page.add_argument("--audit", metavar="DIR", help="folder with raytag audit's suspicious.csv "
                      "(default <storage>/<job>/audit when it is there)")
    page.add_argument("--no-audit", action="store_true", help="ignore any audit")
    page.add_argument("--max-suspects", type=at_least(0), metavar="N",
                      help="most audit suspects in the batch (default half of it)")
    page.add_argument("--skip", action="append", metavar="FILE", help="tracks not to pick: a file with a path "
                      "column (an earlier page's .tracks.csv or decisions); repeatable")
    page.add_argument("--clip-s", type=positive, metavar="SECONDS", help="seconds of audio per track (default 20)")
    page.add_argument("--kbps", type=at_least(6), help="Opus bit rate of the clips, kbit/s (default 24: 20 s take "
                      "about 83 kB of the page)")
    verify.set_defaults(run=cmd_verify)


def cmd_models(args: argparse.Namespace) -> int:
    from raytag.models import count_parameters, create_model, list_models, preset

    width = max(len(name) for name in list_models())
    print(f"{'model':<{width}} {'parameters':>12}  {'rate':>6}  {'crop':>6}  summary")
    for name in list_models():
        model = create_model(name, num_tags=args.tags)
        print(
            f"{name:<{width}} {count_parameters(model):>12,}  {model.sample_rate:>6}  "
            f"{model.crop_samples / model.sample_rate:>5.2f}s  {preset(name).summary}"
        )
    return 0


def cmd_methods(args: argparse.Namespace) -> int:
    from raytag.methods import catalog

    if args.update_readme is not None:
        path = Path(args.update_readme)
        try:
            text = path.read_text()
            updated = catalog.updated_readme(text)
        except (OSError, ValueError) as exc:
            raise InputError(f"--update-readme {path}: {exc}") from None
        if updated != text:
            path.write_text(updated)
        print(f"{path}: the method tables are {'rewritten' if updated != text else 'up to date'}")
        return 0
    print(catalog.markdown() if args.markdown else catalog.listing(), end="")
    return 0


def cmd_review(args: argparse.Namespace) -> int:

    from rich.console import Console

    from raytag.tracking.console_tables import console_width
    from raytag.tracking.report_console import rich_tables
    from raytag.tracking.review import review_runs

    outcome = review_runs(
        tracking_uri=args.uri, experiment=args.experiment, parent_run_id=args.parent, run_ids=args.run_ids,
        html_path=args.html, log_to_parent=not args.no_log, max_runs=args.max_runs, sort_by=args.sort_by,
        max_plotted_runs=args.max_plots,
    )
    width = console_width()  # a terminal's width; piped: COLUMNS, else 80
    console = Console(width=width)
    for item in rich_tables(outcome.review, max_tags=args.tags, width=width):
        console.print(item)
    models = [f"{run.label}: {run.model_uri}" for run in outcome.review.runs if run.model_uri]
    if models:
        print("MLflow models (load with mlflow.pyfunc.load_model or `raytag predict`):")
        print("\n".join(f"  {line}" for line in models))
    logged = f"; logged to the parent run as {outcome.logged_artifact}" if outcome.logged_artifact else ""
    print(f"HTML report: {outcome.html_path}{logged}")
    return 0


def _add_review(commands) -> None:
    review = commands.add_parser("review", help="compare runs from MLflow: table, per-tag changes, HTML report")
    review.add_argument("run_ids", nargs="*", metavar="RUN_ID", help="runs to compare (two: per-tag changes)")
    review.add_argument("--experiment", help="every run of this experiment (newest --max-runs)")
    review.add_argument("--parent", metavar="RUN_ID", help="a pipeline's or sweep's parent run: its child runs")
    review.add_argument("--uri", help="tracking URI (default: MLFLOW_TRACKING_URI, else sqlite:///<cwd>/mlflow.db)")
    review.add_argument("--html", metavar="PATH", help="report file (default: ./review-<name>.html)")
    review.add_argument("--no-log", action="store_true", help="do not log the report to the parent run")
    review.add_argument("--max-runs", type=at_least(1), default=50, help="most runs listed (default 50)")
    review.add_argument("--max-plots", type=at_least(0), default=8, help="runs with plots, the best by ROC-AUC (default 8)")
    review.add_argument("--sort-by", choices=["roc_auc", "pr_auc"], default="roc_auc", help="per-tag change order")
    review.add_argument("--tags", type=at_least(0), default=15, help="per-tag changes printed (all in the HTML; default 15)")
    review.set_defaults(run=cmd_review)


def _verbose_everywhere(parser: argparse.ArgumentParser) -> None:
    """``-v`` after any command too (``raytag train job.yaml -v``). SUPPRESS as the default
    keeps a ``-v`` given before the command."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                sub.add_argument("-v", "--verbose", action="store_true", default=argparse.SUPPRESS, help="debug logging")
                _verbose_everywhere(sub)


def build_parser() -> argparse.ArgumentParser:
    from raytag.data.synth.crowd_noise import NOISE_MODELS

    parser = CommandParser(prog="raytag", description=__doc__.splitlines()[0])
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    parser.add_argument("--version", action="version", version=f"raytag {package_version()}")
    commands = parser.add_subparsers(dest="command", required=True)

    synth = commands.add_parser("synth", help="write a synthetic noisy-label corpus")
    synth.add_argument("out", help="output folder")
    synth.add_argument("--clips", type=at_least(1), default=400, help="labelled clips (default 400)")
    synth.add_argument("--unlabeled", type=at_least(0), default=0, help="extra unlabeled clips (default 0)")
    synth.add_argument("--seconds", type=positive, default=4.0, help="clip length (default 4)")
    synth.add_argument("--sample-rate", type=at_least(1), default=22050, help="Hz (default 22050)")
    synth.add_argument("--seed", type=int, default=0)
    synth.add_argument(
        "--noise-model", choices=NOISE_MODELS,
        help="label noise: 'audio' (the default: quieter sources go missing more often, spurious "
        "tags come from confusable timbres) or 'independent' (flips blind to the audio)",
    )
    synth.add_argument("--overwrite", action="store_true", help="replace an earlier synth output")
    synth.set_defaults(run=cmd_synth)

    _add_corpus_parser(commands)

    for name, run, text in (
        ("prepare", cmd_prepare, "decode the job's audio once, at its model's rate, into a cache under storage"),
        ("train", cmd_train, "train a tagger on Ray Train, then evaluate its best epoch"),
        ("stop", cmd_stop, "ask the job's running training to stop after its current epoch"),
        ("run", cmd_run, "run a job: all of its stages in order (resumable), or a single training"),
        ("evaluate", cmd_evaluate, "evaluate a trained model (default: the job's best model)"),
    ):
        sub = commands.add_parser(name, help=text)
        sub.add_argument("job", help="YAML job file")
        sub.add_argument("overrides", nargs="*", metavar="key=value", help="e.g. train.lr=3e-4")
        if name == "prepare":
            sub.add_argument("--no-progress", action="store_true", help="no progress bar (e.g. in logs)")
        if name == "evaluate":
            sub.add_argument("--model", help="exported model folder")
            sub.add_argument("--split", choices=["valid", "test"], help="default: the job's eval.split")
        sub.set_defaults(run=run)

    sweep = commands.add_parser("sweep", help="Ray Tune sweep of a job over a search space")
    sweep.add_argument("job", help="YAML job file")
    sweep.add_argument("space", help="YAML search space (tune_spaces/)")
    sweep.add_argument("overrides", nargs="*", metavar="key=value", help="job overrides")
    sweep.add_argument("--samples", type=at_least(1), default=4, help="trials to sample (default 4)")
    sweep.add_argument("--scheduler", choices=["asha", "fifo"], default="asha")
    sweep.add_argument("--search", choices=["random", "optuna"], default="random")
    sweep.add_argument("--max-concurrent", type=at_least(1), default=1, help="trials at once (default 1)")
    sweep.add_argument("--resume", action="store_true", help="continue an interrupted sweep")
    sweep.set_defaults(run=cmd_sweep)

    models = commands.add_parser("models", help="list model presets with parameter counts")
    models.add_argument("--tags", type=at_least(1), default=50, help="number of tags (default 50)")
    models.set_defaults(run=cmd_models)

    listed = commands.add_parser("methods", help="list training methods: settings, wrappers, teacher keys")
    listed.add_argument("--markdown", action="store_true", help="the README's generated tables, with their markers")
    listed.add_argument("--update-readme", metavar="README", help="rewrite the generated tables in this README")
    listed.set_defaults(run=cmd_methods)
    _add_review(commands)
    _add_predict(commands)
    _add_audit(commands)
    _add_verify(commands)
    _verbose_everywhere(parser)
    return parser


def main(argv: list[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exc:  # a bad argument (one line, exit 2), --help, --version
        return exc.code if isinstance(exc.code, int) else EXIT_BAD_INPUT
    _setup_logging(args.verbose)
    try:
        return args.run(args)
    except InputError as exc:
        return _report(args, exc, EXIT_BAD_INPUT)
    except KeyboardInterrupt:
        where = "what is not cached yet" if args.command == "prepare" else "the last checkpoint"
        print(f"interrupted; rerun the same command to resume from {where}", file=sys.stderr)
        return 130
    except Exception as exc:  # noqa: BLE001 - every other failure is one line and exit 1
        return _report(args, exc, EXIT_FAILED)


def _report(args: argparse.Namespace, exc: Exception, code: int) -> int:
    """Prints ``exc`` as ``raytag <command>: <message>`` on standard error (after its traceback
    with ``-v``) and returns ``code``. raytag's own errors give their message (an input
    error's may list several problems, one per line); any other error its type and the first
    line of its message, and a hint to rerun with ``-v``."""
    if args.verbose:
        traceback.print_exception(exc, file=sys.stderr)
    if isinstance(exc, RaytagError):
        message = str(exc)
    else:
        lines = str(exc).strip().splitlines()
        message = f"{type(exc).__name__}: {lines[0]}" if lines else type(exc).__name__
    hint = "" if code == EXIT_BAD_INPUT or args.verbose else " (run with -v for the traceback)"
    print(f"raytag {args.command}: {message}{hint}", file=sys.stderr)
    return code


if __name__ == "__main__":
    sys.exit(main())
