"""What a person sees of Ray on raytag's console, and the restarts that Ray's warning is about.

Ray's C++ core worker writes past Python's ``sys.stderr``, so only a separate process's real
standard output and error show what a person sees: the console test runs the real CLI.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time

import numpy as np
import pytest
from conftest import write_tiny_job
from teachers import write_random_tagger

from raytag.cluster.session import ACTOR_RESTART_WARNING, WORKER_POOL_WARNING, split_captured_lines
from raytag.data.manifest import read_manifest

# Ray's lines that reached the console of evaluations and audits on Ray Data (issue 26).
RAY_LINES = (ACTOR_RESTART_WARNING, "worker processes have been started")

# One process, two evaluations of the valid split: on Ray Data (every track through the actor
# pool, eval.ray_above=0), then in the process (the scorer's own numbers), on the same instance.
TWO_EVALUATIONS = """
import sys
from raytag.cli import main
job, model = sys.argv[1:3]
for ray_above in (0, 1000):
    print("=== ray_above", ray_above, flush=True)
    code = main(["evaluate", job, f"eval.ray_above={ray_above}", "ray.num_cpus=2", "--model", model, "--split", "valid"])
    if code:
        sys.exit(code)
"""


@pytest.mark.ray
def test_evaluate_on_ray_data_shows_none_of_rays_lines_and_the_in_process_scores(tiny_corpus, tmp_path):
    tags = list(read_manifest(tiny_corpus / "manifest.csv").vocabulary)
    model = write_random_tagger(tmp_path / "model", tags=tags)
    job = write_tiny_job(tmp_path, "console", tiny_corpus)
    env = {k: v for k, v in os.environ.items() if k not in ("RAY_ADDRESS", "RAYTAG_VERBOSE")}
    completed = subprocess.run([sys.executable, "-c", TWO_EVALUATIONS, str(job), str(model)], capture_output=True,
                               text=True, env=env, timeout=300, cwd=tmp_path)
    console = completed.stdout + completed.stderr
    assert completed.returncode == 0, console[-4000:]
    assert "scoring 6 tracks in this process" in console  # the second evaluation; the first was on Ray Data
    on_ray, in_process = completed.stdout.split("=== ray_above 1000")
    assert on_ray.split("\n", 1)[1] == in_process.split("\n", 1)[1] and "macro" in in_process
    shown = [line for line in console.splitlines() if any(text in line for text in RAY_LINES)]
    assert not shown, "\n".join(shown)

# A driver whose 2-CPU node gets 20 more worker processes (one per zero-CPU actor, as Ray Train,
# Tune and Data start theirs): the raylet warns, and the driver's line goes to raytag's debug log.
# It waits for the raylet's own log to say it warned, then for the debug line (at most 30 s: on a
# driver that prints it instead, it never comes), then writes what it saw to the file argv[1].
MANY_WORKERS = """
import json, logging, os, sys, time
import ray
from raytag.cluster.session import WORKER_POOL_WARNING, init_ray
routed = []
class Keep(logging.Handler):
    def emit(self, record):
        if WORKER_POOL_WARNING.search(record.getMessage()):
            routed.append(record.getMessage())
logging.getLogger("raytag").addHandler(Keep())
logging.getLogger("raytag").setLevel(logging.DEBUG)
init_ray(num_cpus=2)
print("a line of the driver's own", flush=True)

@ray.remote(num_cpus=0)
class Idle:
    def pid(self):
        return os.getpid()

actors = [Idle.remote() for _ in range(20)]
pids = ray.get([a.pid.remote() for a in actors])
raylet_log = os.path.join(ray._private.worker.global_worker.node.get_logs_dir_path(), "raylet.out")
warned_at = None
deadline = time.monotonic() + 60
while time.monotonic() < deadline and not routed:
    if warned_at is None and WORKER_POOL_WARNING.search(open(raylet_log, errors="replace").read()):
        warned_at = time.monotonic()
        deadline = min(deadline, warned_at + 30)
    time.sleep(0.2)
json.dump({"raylet_warned": warned_at is not None or bool(routed), "routed": routed, "actors": len(set(pids))},
          open(sys.argv[1], "w"))
ray.shutdown()
"""


@pytest.mark.ray
def test_the_raylets_worker_count_warning_goes_to_the_debug_log_not_the_console(tmp_path):
    seen = tmp_path / "seen.json"
    env = {k: v for k, v in os.environ.items() if k not in ("RAY_ADDRESS", "RAYTAG_VERBOSE")}
    completed = subprocess.run([sys.executable, "-c", MANY_WORKERS, str(seen)], capture_output=True, text=True,
                               env=env, timeout=240, cwd=tmp_path)
    console = completed.stdout + completed.stderr
    assert completed.returncode == 0, console[-4000:]
    result = json.loads(seen.read_text())
    assert result["actors"] == 20 and result["raylet_warned"], result  # the raylet did warn
    assert "a line of the driver's own" in completed.stdout
    shown = [line for line in console.splitlines() if WORKER_POOL_WARNING.search(line)]
    assert not shown, "\n".join(shown)
    assert result["routed"] and "Ray's raylet: WARNING:" in result["routed"][0]


def test_split_captured_lines_keeps_everything_but_the_named_line():
    captured = (
        "[2026-12-07 20:01:02,345 E 100 100] core_worker.cc:2146: Actor with class name: 'Probe' and ID: 'ab' "
        f"{ACTOR_RESTART_WARNING}. If the arguments ...\n"
        "a line of someone else's\n"
        "a last line without newline"
    )
    shown, taken = split_captured_lines(captured, ACTOR_RESTART_WARNING)
    assert shown == "a line of someone else's\na last line without newline"
    assert len(taken) == 1 and "core_worker.cc" in taken[0]
    assert split_captured_lines("", ACTOR_RESTART_WARNING) == ("", [])
    assert split_captured_lines("x\n", ACTOR_RESTART_WARNING) == ("x\n", [])


@pytest.mark.ray
def test_a_scoring_actor_killed_at_start_restarts_and_scores_like_the_process(ray_session, tiny_corpus, tmp_path):
    """The restart Ray's warning is about: the pool's actor is killed (SIGKILL) as soon as it is
    alive; Ray starts it again from the same constructor arguments (the weights' ref among
    them) and every chunk is scored as in the process."""
    from ray._private import state

    from raytag.cluster.inference.actor_pool import score_chunks
    from raytag.models.export import read_exported, read_weights
    from raytag.scoring.scorer import Tagger, score_rows
    from raytag.scoring.tracks import plan_chunks, probe_sources

    manifest = read_manifest(tiny_corpus / "manifest.csv")
    folder = write_random_tagger(tmp_path / "model", tags=list(manifest.vocabulary))
    exported, weights = read_exported(folder, "model"), read_weights(folder)
    table, _ = probe_sources([t.path for t in manifest.split("valid")], num_tags=len(manifest.vocabulary))
    plan = plan_chunks(table, sample_rate=exported.sample_rate, crop_samples=exported.crop_samples, max_chunks=2)
    killed, done = [], threading.Event()

    def kill_the_first_alive_scorer():
        while not done.is_set() and not killed:
            for actor in state.actors().values():
                if "ChunkScorer" in actor["ActorClassName"] and actor["State"] == "ALIVE" and actor["Pid"]:
                    os.kill(actor["Pid"], signal.SIGKILL)
                    killed.append(actor["ActorID"])
                    break
            time.sleep(0.05)

    killer = threading.Thread(target=kill_the_first_alive_scorer)
    killer.start()
    try:
        pooled = score_chunks(plan.rows, exported, weights, num_tracks=len(table), batch_size=2, num_cpus=0.25,
                              actors=1)
    finally:
        done.set()
        killer.join()
    assert killed and state.actors(killed[0])["NumRestarts"] >= 1
    expected = score_rows(Tagger.from_exported(exported, weights), plan, batch_size=2)
    np.testing.assert_array_equal(pooled.tracks.kept, expected.kept)
    np.testing.assert_allclose(pooled.tracks.scores, expected.scores, rtol=0, atol=1e-6)
