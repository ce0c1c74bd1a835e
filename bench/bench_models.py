"""Every registered model on this machine: parameters, MACs per second of audio, training and
inference clips per second, each throughput also as a ratio to a reference preset run in the
same process (``mtt-tiny`` by default), so tables from different machines compare.

- MACs: ``torch.utils.flop_counter.FlopCounterMode`` on one crop (batch 1, eval mode, forward
  only), FLOPs / 2, divided by the crop's seconds. The FFT of the log-mel front-end is not
  counted (FlopCounterMode has no formula for it); its mel filter bank, a matmul, is.
- Training: a plain PyTorch loop, forward + BCE-with-logits + backward + Adam step on random
  crops of the preset's length with random 0/1 labels, ``--batch`` clips per step; warm-up
  steps first, then the timed steps.
- Inference: eval mode, ``torch.no_grad()``, the same batches.
- Each throughput is given per wall-clock second and per CPU second of this process (all its
  threads, ``time.process_time``). On a machine shared with other work the wall-clock figure
  follows the load; the CPU-time figure much less, so the ratios to the reference use it.
  The load average at the start and end of the run is in the header.

Paper-size presets are slow on CPU, so by default they run few steps (``--paper-steps``);
the ``-tiny`` presets run ``--steps``. Nothing here starts Ray.

    python bench/bench_models.py                          # a few minutes on 2 idle cores
    python bench/bench_models.py --paper-steps 5 --steps 20   # steadier numbers, slower
    python bench/bench_models.py --models mtt-tiny cnn-gru-tiny --steps 20
    python bench/bench_models.py --out bench/results/models-cpu.txt
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import sys
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

try:
    from raytag.models import count_parameters, create_model, list_models
except ImportError:  # run from a source checkout without installing the package
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from raytag.models import count_parameters, create_model, list_models

# The paper's short-chunk ResNet configuration has empty mel filters; torchaudio warns once.
warnings.filterwarnings("ignore", message="At least one mel filterbank has all zero values")


@dataclass(frozen=True)
class Throughput:
    """Clips per wall-clock second and per CPU second of this process."""

    clips_per_s: float
    clips_per_cpu_s: float


class _Stopwatch:
    """Wall-clock and process CPU time of a ``with`` block."""

    def __enter__(self) -> _Stopwatch:
        self.wall, self.cpu = time.perf_counter(), time.process_time()
        return self

    def __exit__(self, *exc: object) -> None:
        self.wall, self.cpu = time.perf_counter() - self.wall, time.process_time() - self.cpu

    def throughput(self, clips: int) -> Throughput:
        return Throughput(clips / self.wall, clips / self.cpu)


@dataclass(frozen=True)
class Row:
    """One preset's measurements."""

    name: str
    parameters: int
    crop_seconds: float
    macs_per_second: float
    train: Throughput
    infer: Throughput
    steps: int


def macs_per_audio_second(model: nn.Module) -> float:
    """Multiply-accumulates of one forward pass over one crop, per second of audio.

    Counted in eval mode with gradients enabled: with gradients on, PyTorch's Transformer
    layers take their ordinary (countable) path instead of the fused inference kernel.
    """
    model.eval()
    waveform = torch.zeros(1, model.crop_samples)
    counter = FlopCounterMode(display=False)
    with counter:
        model(waveform)
    return counter.get_total_flops() / 2 / (model.crop_samples / model.sample_rate)


def training_clips_per_s(
    model: nn.Module, *, batch: int, warmup: int, steps: int, generator: torch.Generator
) -> Throughput:
    """Clips per second of forward + backward + Adam steps on random crops and labels."""
    model.train()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-4)
    loss_fn = nn.BCEWithLogitsLoss()

    def step() -> None:
        waveform = 0.1 * torch.randn(batch, model.crop_samples, generator=generator)
        labels = torch.randint(0, 2, (batch, model.num_tags), generator=generator).float()
        optimizer.zero_grad(set_to_none=True)
        loss_fn(model(waveform), labels).backward()
        optimizer.step()

    for _ in range(warmup):
        step()
    with _Stopwatch() as stopwatch:
        for _ in range(steps):
            step()
    return stopwatch.throughput(batch * steps)


def inference_clips_per_s(
    model: nn.Module, *, batch: int, warmup: int, steps: int, generator: torch.Generator
) -> Throughput:
    """Clips per second of eval-mode forward passes without gradients."""
    model.eval()
    waveforms = [0.1 * torch.randn(batch, model.crop_samples, generator=generator) for _ in range(2)]
    with torch.no_grad():
        for index in range(warmup):
            model(waveforms[index % 2])
        with _Stopwatch() as stopwatch:
            for index in range(steps):
                model(waveforms[index % 2])
    return stopwatch.throughput(batch * steps)


def measure(name: str, *, batch: int, warmup: int, steps: int, seed: int) -> Row:
    """All measurements of one preset (50 tags), freshly initialised."""
    torch.manual_seed(seed)
    model = create_model(name)
    generator = torch.Generator().manual_seed(seed)
    return Row(
        name=name,
        parameters=count_parameters(model),
        crop_seconds=model.crop_samples / model.sample_rate,
        macs_per_second=macs_per_audio_second(model),
        train=training_clips_per_s(model, batch=batch, warmup=warmup, steps=steps, generator=generator),
        infer=inference_clips_per_s(model, batch=batch, warmup=warmup, steps=steps, generator=generator),
        steps=steps,
    )


def format_table(rows: list[Row], reference: Row) -> str:
    """The rows as an aligned text table; "x ref" is the CPU-time throughput over the
    reference's."""
    width = max(len(row.name) for row in rows)
    header = (
        f"{'model':<{width}} {'params':>11} {'crop':>6} {'GMAC/s':>7} {'steps':>5}  "
        f"{'train clip/s':>12} {'clip/cpu-s':>10} {'x ref':>6}  "
        f"{'infer clip/s':>12} {'clip/cpu-s':>10} {'x ref':>6}"
    )
    lines = [header, "-" * len(header)]
    for row in rows:
        cells = [f"{row.name:<{width}} {row.parameters:>11,} {row.crop_seconds:>5.2f}s "
                 f"{row.macs_per_second / 1e9:>7.3f} {row.steps:>5}"]
        for mine, theirs in ((row.train, reference.train), (row.infer, reference.infer)):
            cells.append(
                f"{mine.clips_per_s:>12.2f} {mine.clips_per_cpu_s:>10.2f} "
                f"{mine.clips_per_cpu_s / theirs.clips_per_cpu_s:>6.3f}"
            )
        lines.append("  ".join(cells))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="*", default=None, help="presets to run (default: all)")
    parser.add_argument("--reference", default="mtt-tiny", help="preset the ratios are taken against (default mtt-tiny)")
    parser.add_argument("--batch", type=int, default=8, help="clips per step (default 8)")
    parser.add_argument("--steps", type=int, default=5, help="timed steps for -tiny presets (default 5)")
    parser.add_argument("--warmup", type=int, default=2, help="warm-up steps for -tiny presets (default 2)")
    parser.add_argument("--paper-steps", type=int, default=1, help="timed steps for paper-size presets (default 1)")
    parser.add_argument("--paper-warmup", type=int, default=1, help="warm-up steps for paper-size presets (default 1)")
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's choice)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=None, help="also write the table to this file")
    args = parser.parse_args(argv)
    if min(args.batch, args.steps, args.paper_steps) < 1 or min(args.warmup, args.paper_warmup) < 0:
        parser.error("--batch and the step counts must be at least 1, warm-ups at least 0")
    names = args.models or list_models()
    unknown = sorted(set(names + [args.reference]) - set(list_models()))
    if unknown:
        parser.error(f"unknown preset(s) {', '.join(unknown)}; available: {', '.join(list_models())}")
    if args.threads is not None:
        torch.set_num_threads(args.threads)

    started = time.perf_counter()
    load_before = os.getloadavg()[0]
    rows: dict[str, Row] = {}
    for name in dict.fromkeys([args.reference, *names]):  # the reference first, once
        tiny = name.endswith("-tiny")
        rows[name] = measure(
            name,
            batch=args.batch,
            warmup=args.warmup if tiny else args.paper_warmup,
            steps=args.steps if tiny else args.paper_steps,
            seed=args.seed,
        )
        print(f"measured {name} ({time.perf_counter() - started:.0f} s)", file=sys.stderr, flush=True)
    shown = list(dict.fromkeys(names if args.reference in names else [args.reference, *names]))
    table = format_table([rows[name] for name in shown], rows[args.reference])
    header = (
        f"# bench_models: {datetime.date.today().isoformat()}, torch {torch.__version__}, "
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
        f"{torch.get_num_threads()} torch threads, batch {args.batch}, reference {args.reference}, "
        f"total {time.perf_counter() - started:.0f} s, 1-min load average {load_before:.1f} at the start "
        f"and {os.getloadavg()[0]:.1f} at the end\n"
        "# GMAC/s: forward multiply-accumulates per second of audio (FFT not counted); clip/s: per "
        "wall-clock second; clip/cpu-s: per CPU second of this process; x ref: clip/cpu-s over the "
        "reference's, measured in the same run"
    )
    report = f"{header}\n{table}\n"
    print(report, end="")
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(report)


if __name__ == "__main__":
    main()
