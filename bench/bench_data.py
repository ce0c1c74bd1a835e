"""Clips per second that reach the consumer of the training data, and memory as the corpus grows.

Makes ``--tracks`` N tracks of ``--seconds`` at 44.1 kHz stereo as MP3 and as Ogg Vorbis (real
music from shared/data/real-audio when present, with a faint noise floor so the whole band is
used; written in blocks with ``soundfile.SoundFile``), then, for random crops at the model's
rate and length (``mtt-tiny``: 16 kHz, 3 s), measures clips per second delivered as torch
batches to a consumer in this (the driver) process by

(a) Ray Data decoding on the fly, MP3 and Ogg (the training path: ``raytag.cluster.data.datasets.
    decoded``, order preserved as the Train workers set it);
(b) Ray Data reading the prepared cache (``raytag prepare``'s files, same function: ``decoded``
    gives rows that all read the cache tasks of whole blocks, up to 64 MiB of audio, here 349
    crops, instead of 32 rows);
(c) a plain ``torch.utils.data.DataLoader`` with ``--workers`` worker processes, the same rows
    and the same decode function (``raytag.data.batches.decode_batch``, 16 rows a batch).

Ray runs a local instance with ``--workers`` logical CPUs and decode tasks of 1 CPU, so Ray Data
and the DataLoader each have ``--workers`` decoding processes; a second Ray row uses the jobs'
default of 0.25 CPU per task (4x as many tasks), a third the same decode function over 128-row
blocks and batches instead of the on-the-fly pipeline's 32 and 16 (what per-task overhead costs). Workers of
both task sizes are started before anything is measured, and the CPU use of an idle Ray instance
is measured for 5 s (on 2 cores its background processes are a visible share). Every figure comes with the CPU seconds of the
driver and all its descendants (Ray's processes, DataLoader workers) and the load average: on a
shared machine the wall-clock rates follow the load, the per-CPU-second rates much less.

Before those, on the same warm worker pool, the peak memory (PSS summed over the driver and all
Ray processes, see ``process_meter.py``) of a ``raytag prepare`` and of an epoch
(``--epoch-crops`` crops per track, from the cache) over N and 4N tracks (the 4N are copies under other names, so their cost is the same).
Streaming should keep the peak flat as the corpus grows. No Ray Train runs here.

On-the-fly runs take ``--crops`` random crops, runs from the cache ``--cache-crops`` (cache
reads are so cheap that a short run would mostly measure the pipeline's start); every figure is
a rate, so the ratios compare.

    python bench/bench_data.py                               # about 5 minutes on 2 idle cores
    python bench/bench_data.py --tracks 16 --crops 960       # steadier, slower
    python bench/bench_data.py --out bench/results/data-cpu.txt
"""

from __future__ import annotations

import argparse
import datetime
import functools
import os
import platform
import shutil
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from process_meter import ProcessMeter, Usage  # noqa: E402

from raytag.audio.io import read_frames, resample  # noqa: E402
from raytag.data.batches import decode_batch  # noqa: E402
from raytag.data.rows import TrackTable, epoch_rows  # noqa: E402

REAL = Path(__file__).resolve().parents[2] / "shared" / "data" / "real-audio"
MUSIC = ["kevin-macleod-vibe-ace.ogg", "kevin-macleod-sugar-plum-fairy.ogg", "karissa-hobbs-lets-go-fishin.ogg",
         "brahms-hungarian-dance-5.ogg"]
RATE, MODEL, SAMPLE_RATE, CROP = 44100, "mtt-tiny", 16000, 48000
BATCH = 16
FORMATS = {"mp3": ("MP3", "MPEG_LAYER_III"), "ogg": ("OGG", "VORBIS")}


def source_music(seconds: float, seed: int = 0) -> np.ndarray:
    """A loop of real music at 44.1 kHz stereo (synthetic chords when the recordings are absent),
    (frames, 2) float32, at least ``seconds`` long."""
    rng = np.random.default_rng(seed)
    if REAL.is_dir():
        parts: list[np.ndarray] = []
        for name in MUSIC:  # only as many recordings as the length needs
            parts.append(resample(read_frames(str(REAL / name), 0, 1 << 30), 22050, RATE))
            if sum(len(p) for p in parts) >= seconds * RATE:
                break
        loop = np.concatenate(parts)
    else:
        t = np.arange(int(60 * RATE)) / RATE
        loop = sum(0.2 * np.sin(2 * np.pi * f * t) * (1 + np.sin(2 * np.pi * t / (i + 2))) for i, f in
                   enumerate([220, 277, 330, 440]))
    loop = np.tile(loop, int(np.ceil(seconds * RATE / len(loop))) + 1)
    right = np.roll(loop, 441)  # 10 ms between the channels
    noise = 0.003 * rng.standard_normal((len(loop), 2))
    return (np.stack([loop, right], axis=1) * 0.8 + noise).astype(np.float32)


def make_corpus(folder: Path, *, tracks: int, seconds: float) -> dict[str, list[str]]:
    """``tracks`` files per format, each starting elsewhere in the music; kept between runs."""
    folder.mkdir(parents=True, exist_ok=True)
    frames = int(seconds * RATE)
    out: dict[str, list[str]] = {fmt: [] for fmt in FORMATS}
    music = None
    for fmt, (container, subtype) in FORMATS.items():
        for i in range(tracks):
            path = folder / f"track{i:03d}-{int(seconds)}s.{fmt}"
            if not path.exists():
                music = source_music(seconds + tracks * 7) if music is None else music
                partial = path.with_suffix(f".partial.{fmt}")
                with sf.SoundFile(partial, "w", RATE, 2, format=container, subtype=subtype) as out_file:
                    for block in range(0, frames, 10 * RATE):  # long writes in one call can crash
                        out_file.write(music[i * 7 * RATE + block : i * 7 * RATE + min(block + 10 * RATE, frames)])
                partial.rename(path)
            out[fmt].append(str(path))
    return out


def copies(paths: list[str], folder: Path, times: int) -> list[str]:
    """``times`` copies of every file under new names (distinct identities, same cost)."""
    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for k in range(times):
        for path in paths:
            target = folder / f"copy{k}-{Path(path).name}"
            if not target.exists():
                shutil.copyfile(path, target)
            out.append(str(target))
    return out


def table_of(paths: list[str]) -> TrackTable:
    from raytag.audio.io import probe

    infos = [probe(p) for p in paths]
    return TrackTable(tuple(paths), np.array([i.frames for i in infos]), np.array([i.sample_rate for i in infos]),
                      np.zeros((len(paths), 1), np.float32))


def crop_rows(table: TrackTable, crops: int) -> list[dict]:
    """``crops`` random-crop rows over the table, epoch after epoch of its seeded order."""
    rows: list[dict] = []
    epoch = 0
    while len(rows) < crops:
        rows += epoch_rows(table, seed=0, epoch=epoch, rank=0, world_size=1)
        epoch += 1
    return rows[:crops]


def column_batch(rows: list[dict]) -> dict[str, np.ndarray]:
    return {key: np.array([r[key] for r in rows], dtype=object if key == "path" else None) for key in rows[0]}


class CropBatches(torch.utils.data.Dataset):
    """DataLoader dataset: item k is batch k of the rows, decoded by ``decode_batch``."""

    def __init__(self, rows: list[dict], batch: int = BATCH):
        self.batches = [rows[i : i + batch] for i in range(0, len(rows), batch)]

    def __len__(self) -> int:
        return len(self.batches)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        out = decode_batch(column_batch(self.batches[index]), sample_rate=SAMPLE_RATE, crop_samples=CROP)
        return {name: torch.from_numpy(out[name]) for name in ("audio", "labels", "decoded")}


def consume(batches) -> int:
    """Takes every batch as a training loop would; returns the clips (all must be valid)."""
    clips = 0
    for batch in batches:
        if not bool(batch["decoded"].all()):
            raise RuntimeError("a crop failed to decode")
        clips += int(batch["audio"].shape[0])
    return clips


def dataloader_run(rows: list[dict], workers: int) -> tuple[int, Usage]:
    loader = torch.utils.data.DataLoader(CropBatches(rows), batch_size=None, num_workers=workers)
    with ProcessMeter() as meter:
        clips = consume(loader)
    return clips, meter.usage


def ray_run(rows: list[dict], num_cpus: float, rows_per_block: int | None = None) -> tuple[int, Usage]:
    """The training path (``decoded``), or with ``rows_per_block`` the same decode function over
    bigger blocks and batches (a variant to see what per-task overhead costs)."""
    import ray

    from raytag.cluster.data.datasets import decoded_chunks

    ray.data.DataContext.get_current().execution_options.preserve_order = True
    if rows_per_block is None:
        dataset = decoded_chunks(rows, sample_rate=SAMPLE_RATE, crop_samples=CROP, num_cpus=num_cpus)
    else:
        dataset = ray.data.from_items(rows, override_num_blocks=-(-len(rows) // rows_per_block)).map_batches(
            functools.partial(decode_batch, sample_rate=SAMPLE_RATE, crop_samples=CROP),
            batch_size=rows_per_block, num_cpus=num_cpus, batch_format="numpy")
    with ProcessMeter() as meter:
        clips = consume(dataset.iter_torch_batches(batch_size=BATCH))
    return clips, meter.usage


def write_job(folder: Path, paths: list[str], name: str) -> Path:
    """A job whose manifest lists ``paths`` (train split), with its own storage folder."""
    manifest = folder / f"{name}.csv"
    manifest.write_text("path,tags,split\n" + "".join(f"{p},music,train\n" for p in paths))
    job = folder / f"{name}.yaml"
    job.write_text(f"name: {name}\nstorage: {folder / ('storage-' + name)}\ndata: {{manifest: {manifest}}}\n"
                   f"model: {{name: {MODEL}}}\n")
    return job


def prepare_run(job_file: Path) -> tuple[int, Usage]:
    from raytag.cluster.data.prepare import prepare_audio
    from raytag.config import load_job

    job = load_job(job_file)
    with ProcessMeter() as meter:
        report = prepare_audio(job, progress=False)
    if report.failed:
        raise RuntimeError(report.format())
    return report.rates[0].prepared, meter.usage


def cached(table: TrackTable, job_file: Path) -> TrackTable:
    from raytag.cluster.data.audio_cache import cached_tables
    from raytag.config import load_job

    tables, use = cached_tables({"bench": table}, storage_root=load_job(job_file).storage, sample_rate=SAMPLE_RATE)
    if use.decoded:
        raise RuntimeError(f"{use.decoded} tracks are not prepared")
    return tables["bench"]


def mb(size: int) -> str:
    return f"{size / 2**20:,.0f}"


def throughput_line(name: str, who: str, clips: int, usage: Usage, reference: float) -> str:
    rate, per_cpu = clips / usage.wall_s, clips / max(usage.cpu_s, 1e-9)
    ratio = f"{rate / reference:6.2f}"
    return (f"{name:<32} {who:<30} {clips:>5} {usage.wall_s:>7.1f} {rate:>8.1f} {usage.cpu_s:>7.1f} {per_cpu:>8.1f} "
            f"{ratio} {usage.load_before:>5.1f}")


def memory_line(name: str, count: int, usage: Usage) -> str:
    return (f"{name:<32} {count:>6} {usage.wall_s:>7.1f} {usage.cpu_s:>7.1f} {mb(usage.baseline_bytes):>9} "
            f"{mb(usage.peak_bytes):>9} {mb(usage.peak_bytes - usage.baseline_bytes):>9} {usage.processes:>5}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tracks", type=int, default=6, help="N: tracks per format (default 6)")
    parser.add_argument("--seconds", type=float, default=180.0, help="track length (default 180)")
    parser.add_argument("--crops", type=int, default=240, help="random crops per on-the-fly run (default 240)")
    parser.add_argument("--cache-crops", type=int, default=9600,
                        help="random crops per run from the cache (default 9600, 10 passes over the 960 of the "
                        "tracks' crops: a run of 960 takes under a second, mostly the pipeline's start)")
    parser.add_argument("--repeats", type=int, default=3, help="runs of every throughput row (default 3: medians)")
    parser.add_argument("--workers", type=int, default=2, help="decoding processes of each loader (default 2)")
    parser.add_argument("--epoch-crops", type=int, default=4, help="crops per track in a memory epoch (default 4)")
    parser.add_argument("--work", type=Path, default=Path("/tmp/raytag-bench-data"), help="audio and caches")
    parser.add_argument("--out", type=Path, help="also write the report here")
    args = parser.parse_args(argv)
    lines: list[str] = []

    def say(text: str = "") -> None:
        print(text, flush=True)
        lines.append(text)

    import ray

    from raytag.cluster.session import init_ray

    work = args.work
    if (work / "storage-bench-n").exists() or (work / "storage-bench-4n").exists():
        for old in work.glob("storage-*"):
            shutil.rmtree(old)  # every run prepares anew
    audio = make_corpus(work / "audio", tracks=args.tracks, seconds=args.seconds)
    load_start = os.getloadavg()[0]
    init_ray(num_cpus=args.workers)
    tables = {fmt: table_of(paths) for fmt, paths in audio.items()}
    for cpus in (0.25, 1.0):  # warm-up: start the workers of both task sizes (each imports torch once)
        ray_run(crop_rows(tables["mp3"], 8 * args.workers * BATCH), cpus)
    with ProcessMeter() as idle:
        time.sleep(5.0)

    # Memory first, on the warm worker pool: prepare and an epoch over N and 4N tracks.
    job_n = write_job(work, audio["mp3"], "bench-n")
    prepared, prepare_n = prepare_run(job_n)
    paths_4n = copies(audio["mp3"], work / "copies", 4)
    job_4n = write_job(work, paths_4n, "bench-4n")
    prepared_4n, prepare_4n = prepare_run(job_4n)
    tables["cache"] = cached(tables["mp3"], job_n)
    table_4n = cached(table_of(paths_4n), job_4n)
    epoch_n = ray_run(crop_rows(tables["cache"], args.epoch_crops * len(tables["cache"])), 0.25)
    epoch_4n = ray_run(crop_rows(table_4n, args.epoch_crops * len(table_4n)), 0.25)

    one_cpu, quarter, loader = f"{args.workers} tasks x 1 CPU", f"{4 * args.workers} tasks x 0.25 CPU", \
        f"{args.workers} worker processes"
    big = f"{one_cpu}, 128-row blocks"
    runs: list[tuple[str, str, str, Callable[[], tuple[int, Usage]]]] = []
    for source in ("mp3", "ogg", "cache"):
        rows = crop_rows(tables[source], args.cache_crops if source == "cache" else args.crops)
        label = "prepared cache" if source == "cache" else f"{source} on the fly"
        runs += [
            (f"{'(b)' if source == 'cache' else '(a)'} Ray Data, {label}", source, one_cpu, lambda r=rows: ray_run(r, 1.0)),
            (f"    Ray Data, {label}", source, quarter, lambda r=rows: ray_run(r, 0.25)),
            (f"(c) DataLoader, {label}", source, loader, lambda r=rows: dataloader_run(r, args.workers)),
        ]
        if source != "ogg":
            runs.append((f"    Ray Data, {label}", source, big, lambda r=rows: ray_run(r, 1.0, rows_per_block=128)))
    # Every row runs --repeats times, round-robin (a single short run varies by up to 1.4x on 2
    # busy cores); each row shows its median run by clip/s, and the range over its runs.
    samples: dict[tuple[str, str], list[tuple[int, Usage]]] = {}
    for _ in range(args.repeats):
        for _, source, who, run in runs:
            samples.setdefault((source, who), []).append(run())
    results = {key: sorted(runs_, key=lambda r: r[0] / r[1].wall_s)[len(runs_) // 2] for key, runs_ in samples.items()}
    spread = {key: (min(c / u.wall_s for c, u in runs_), max(c / u.wall_s for c, u in runs_))
              for key, runs_ in samples.items()}

    def rate(source: str, who: str, per_cpu: bool = False) -> float:
        clips, usage = results[(source, who)]
        return clips / (usage.cpu_s if per_cpu else usage.wall_s)

    say(f"# bench_data: {datetime.date.today()}, torch {torch.__version__}, ray {ray.__version__}, "
        f"{platform.machine()}, {os.cpu_count()} CPUs, Ray local instance with {args.workers} logical CPUs")
    say(f"# {args.tracks} tracks per format, {args.seconds:.0f} s at {RATE} Hz stereo; crops {CROP / SAMPLE_RATE:.0f} s at "
        f"{SAMPLE_RATE} Hz ({MODEL}); {BATCH} clips a batch; {args.crops} crops per on-the-fly run, "
        f"{args.cache_crops} per cache run; 1-min load average {load_start:.1f} at the start")
    say(f"# an idle Ray instance (driver, GCS, raylet, dashboard, {idle.usage.processes} processes with the idle "
        f"workers) used {idle.usage.cpu_s / idle.usage.wall_s:.2f} CPU-s per second and {mb(idle.usage.peak_bytes)} MiB")
    say("# clip/s: per wall-clock second at the consumer (this process); cpu-s: CPU seconds of the driver and all "
        "its descendants (Ray processes, DataLoader workers); x mp3: clip/s over the mp3 row of the same decoders; "
        f"load: 1-min load average when the row started; each row is the median of {args.repeats} runs by clip/s, "
        "the last column the range of clip/s over them")
    say()
    header = (f"{'throughput':<32} {'decoders':<30} {'clips':>5} {'wall s':>7} {'clip/s':>8} {'cpu-s':>7} "
              f"{'clip/cpu-s':>8}  x mp3  load")
    say(header)
    say("-" * len(header))
    for name, source, who, _ in runs:
        clips, usage = results[(source, who)]
        low, high = spread[(source, who)]
        say(throughput_line(name, who, clips, usage, rate("mp3", who)) + f"  {low:.0f}-{high:.0f}")
    say()
    say("ratios measured in this run (per wall-clock second; per CPU second in brackets):")
    for source in ("mp3", "ogg", "cache"):
        say(f"  Ray Data / DataLoader, {source:<5}: {rate(source, one_cpu) / rate(source, loader):5.2f}x "
            f"({rate(source, one_cpu, True) / rate(source, loader, True):.2f}x)   goal >= 1.0x")
    for source in ("ogg", "cache"):
        goal = "   goal >= 5x" if source == "cache" else ""
        say(f"  Ray Data {source} / Ray Data mp3 on the fly: {rate(source, one_cpu) / rate('mp3', one_cpu):5.2f}x "
            f"({rate(source, one_cpu, True) / rate('mp3', one_cpu, True):.2f}x){goal}")
    say()
    say("# peak memory: PSS summed over the driver and all its descendants (Ray's GCS, raylet, dashboard, workers) "
        "in MiB; before: when the phase started, with the warm worker pool; items: tracks prepared or crops read")
    header = f"{'memory':<32} {'items':>6} {'wall s':>7} {'cpu-s':>7} {'before':>9} {'peak':>9} {'added':>9} procs"
    say(header)
    say("-" * len(header))
    say(memory_line(f"prepare, N = {args.tracks} tracks", prepared, prepare_n))
    say(memory_line(f"prepare, 4N = {4 * args.tracks} tracks", prepared_4n, prepare_4n))
    say(memory_line("epoch (cache), N tracks", epoch_n[0], epoch_n[1]))
    say(memory_line("epoch (cache), 4N tracks", epoch_4n[0], epoch_4n[1]))
    size_n = sum(p.stat().st_size for p in (work / "storage-bench-n").rglob("*.npy"))
    say(f"cache size: {mb(size_n)} MiB for N tracks ({size_n / args.tracks / args.seconds / 1e3:.1f} kB per second of "
        f"audio); audio: {mb(sum(Path(p).stat().st_size for p in audio['mp3']))} MiB mp3, "
        f"{mb(sum(Path(p).stat().st_size for p in audio['ogg']))} MiB ogg")
    say(f"# 1-min load average at the end {os.getloadavg()[0]:.1f}")
    ray.shutdown()
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
