"""``raytag predict`` through the Ray Data actor pool vs the plain batched loop, same files.

Writes ``--clips`` synthetic clips (default 1,000; ``raytag synth`` audio, ``--seconds`` long at
22.05 kHz, so every chunk is resampled to the model's 16 kHz) and an exported ``--model`` preset
with random weights, then scores the clips with the two executions of
:func:`raytag.predict.workflow.predict_files`, ``--repeats`` times each, alternately:

- *plain*: the in-process loop (header probe, decode, batches of ``--batch-size`` chunks, one
  model in eval mode; torch's default threads);
- *ray*: what every ``raytag predict`` of more than ``ray_above`` files does on a machine with no
  cluster running: start a local Ray instance (all CPUs), scan the headers on Ray Data tasks,
  decode on tasks and score on an actor pool of ``--actors`` actors holding the model (default:
  predict's, one per CPU). Each
  such run starts from no Ray at all (``ray.shutdown()`` before it), so Ray's start-up and the
  workers' imports are in it; ``ray.init`` is timed apart as well;
- *ray warm*: the same right after, on the instance the *ray* run left (its worker processes
  have imported torch): what a run costs where a Ray cluster is already up.

Reported per run: wall seconds, clips/s, the CPU seconds of this process and of all Ray worker
processes (/proc, descendants of this process, see process_meter.py), and the machine's load
average. The headline ratio is the median *ray* clips/s (start-up included, as every ``raytag
predict`` pays it) over the median *plain* clips/s, measured in the same process; the ratio
without ``ray.init`` and the warm ratio follow it. Both executions produce the same numbers
(checked here, and in tests/test_predict_ray.py).

    python bench/bench_predict.py                                  # 1,000 clips of 4 s, ~5 min on 2 cores
    python bench/bench_predict.py --clips 200 --repeats 1          # quicker
    python bench/bench_predict.py --out bench/results/predict-cpu.txt
"""

from __future__ import annotations

import argparse
import datetime
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

try:
    from raytag.predict.loading import load_model
    from raytag.predict.workflow import PredictOptions, predict_files
    from raytag.cluster.inference.predict_ray import default_actors
except ImportError:  # run from a source checkout without installing the package
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from raytag.predict.loading import load_model
    from raytag.predict.workflow import PredictOptions, predict_files
    from raytag.cluster.inference.predict_ray import default_actors

from raytag.audio.files import audio_files
from raytag.data.synth.corpus import SynthSpec, write_corpus
from raytag.models.export import ModelRecipe, write_exported

from process_meter import process_tree, tree_cpu_seconds  # bench/process_meter.py, beside this file


def process_tree_cpu(root: int) -> float:
    """CPU seconds (user + system) of process ``root`` and its descendants, live ones and those
    that ended and were reaped by their parent (e.g. Ray's actors, gone after each dataset)."""
    return sum(tree_cpu_seconds(pid) or 0.0 for pid in process_tree(root))


def timed(label: str, run, clips: int) -> dict:
    me = os.getpid()
    cpu_before = process_tree_cpu(me)
    own_before = time.process_time()
    start = time.perf_counter()
    result = run()
    wall = time.perf_counter() - start
    own = time.process_time() - own_before
    total = process_tree_cpu(me) - cpu_before
    row = {"label": label, "wall_s": wall, "clips_per_s": clips / wall, "own_cpu_s": own,
           "tree_cpu_s": total, "load1": os.getloadavg()[0], "result": result}
    print(f"{label:6s} {wall:7.2f} s  {clips / wall:7.2f} clips/s  cpu: this process {own:6.1f} s, "
          f"with Ray workers {total:6.1f} s  load {row['load1']:.1f}", flush=True)
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", type=int, default=1000)
    parser.add_argument("--seconds", type=float, default=4.0)
    parser.add_argument("--model", default="mtt-tiny")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--actors", type=int, default=None, help="scoring actors (default: predict's, one per CPU)")
    parser.add_argument("--num-cpus", type=int, default=os.cpu_count())
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--out", help="also write the report to this file")
    args = parser.parse_args()

    import ray
    import torch

    from raytag.cluster.inference.actor_pool import SCORING_CPUS
    from raytag.cluster.session import init_ray

    with tempfile.TemporaryDirectory(prefix="bench-predict-") as scratch:
        scratch = Path(scratch)
        write_corpus(scratch / "corpus", SynthSpec(clips=args.clips, seconds=args.seconds, sample_rate=22050, seed=0))
        paths = audio_files(scratch / "corpus" / "audio")
        recipe = ModelRecipe(args.model, {}, ("piano", "guitar", "voice", "bass", "kick", "snare"))
        torch.manual_seed(0)
        network = recipe.build().eval()
        folder = write_exported(scratch / "model", recipe, network.state_dict(), sample_rate=network.sample_rate,
                                crop_samples=network.crop_samples)
        loaded = load_model(str(folder))
        chunks_per_clip = -(-int(args.seconds * network.sample_rate) // network.crop_samples)
        header = (
            f"# bench_predict: {datetime.date.today()}, {args.clips} clips of {args.seconds:g} s at 22.05 kHz "
            f"({chunks_per_clip} chunk(s) each), {args.model} ({network.crop_samples / network.sample_rate:g} s crops "
            f"at {network.sample_rate} Hz), batch {args.batch_size}; {os.cpu_count()} CPUs, torch "
            f"{torch.__version__} with {torch.get_num_threads()} threads in this process; Ray {ray.__version__} "
            f"local instance with {args.num_cpus} CPUs, {args.actors or default_actors(args.num_cpus, -(-args.clips * chunks_per_clip // args.batch_size))} actor(s) of {SCORING_CPUS:g} CPU, decode tasks of "
            f"{PredictOptions().decode_cpus:g} CPU"
        )
        print(header, flush=True)
        plain_options = PredictOptions(batch_size=args.batch_size, ray_above=len(paths), progress=False)
        ray_options = PredictOptions(batch_size=args.batch_size, ray_above=0, actors=args.actors, progress=False)
        runs, inits = [], []

        def cold_ray():
            # A new `raytag predict` (no Ray instance: shut down before timing): ray.init timed
            # apart, then the call.
            started = time.perf_counter()
            init_ray(num_cpus=args.num_cpus)
            inits.append(time.perf_counter() - started)
            return predict_files(loaded, paths, ray_options)

        for _ in range(args.repeats):
            runs.append(timed("plain", lambda: predict_files(loaded, paths, plain_options), len(paths)))
            ray.shutdown()
            runs.append(timed("ray", cold_ray, len(paths)))
            runs.append(timed("warm", lambda: predict_files(loaded, paths, ray_options), len(paths)))
        ray.shutdown()

    plain = [r for r in runs if r["label"] == "plain"]
    cold = [r for r in runs if r["label"] == "ray"]
    warm = [r for r in runs if r["label"] == "warm"]
    first, second = plain[0]["result"].predictions, cold[0]["result"].predictions
    difference = max(float(np.abs(a.probabilities - b.probabilities).max()) for a, b in zip(first, second))
    plain_rate = statistics.median(r["clips_per_s"] for r in plain)
    ratio = statistics.median(r["clips_per_s"] for r in cold) / plain_rate
    after_init = statistics.median(len(paths) / (r["wall_s"] - s) for r, s in zip(cold, inits)) / plain_rate
    warm_ratio = statistics.median(r["clips_per_s"] for r in warm) / plain_rate
    lines = [header,
             f"# ray: a new Ray instance per run, start-up included (ray.init {', '.join(f'{s:.1f}' for s in inits)} s "
             f"of it); warm: the next run on that instance",
             "run    wall_s  clips/s  cpu_s(this process)  cpu_s(with Ray workers)  load1"]
    lines += [f"{r['label']:6s} {r['wall_s']:6.2f}  {r['clips_per_s']:7.2f}  {r['own_cpu_s']:19.1f}  "
              f"{r['tree_cpu_s']:23.1f}  {r['load1']:5.1f}" for r in runs]
    lines.append(f"ray / plain clips/s (medians, Ray's start-up included): {ratio:.2f}x (goal >= 0.9x); "
                 f"without ray.init: {after_init:.2f}x; warm: {warm_ratio:.2f}x")
    lines.append(f"largest probability difference between plain and ray: {difference:.1e}")
    report = "\n".join(lines)
    print(report)
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(report + "\n")


if __name__ == "__main__":
    main()
