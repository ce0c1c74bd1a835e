"""bench/bench_models.py: its MAC count and a one-step run of its table."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from bench_modules import load_bench

def _bench():
    return load_bench("bench_models")


class _LinearTagger(nn.Module):
    """2 s at 500 Hz through one Linear(1000, 10): 10,000 MACs per crop, 5,000 per second."""

    sample_rate = 500
    crop_samples = 1000
    num_tags = 10

    def __init__(self) -> None:
        super().__init__()
        self.layer = nn.Linear(self.crop_samples, self.num_tags)

    def forward(self, waveform: torch.Tensor) -> torch.Tensor:
        return self.layer(waveform)


def test_macs_are_half_the_flops_per_second_of_audio() -> None:
    assert _bench().macs_per_audio_second(_LinearTagger()) == 5_000


def test_throughputs_are_positive_and_the_loop_trains() -> None:
    bench = _bench()
    model = _LinearTagger()
    before = model.layer.weight.detach().clone()
    generator = torch.Generator().manual_seed(0)
    train = bench.training_clips_per_s(model, batch=2, warmup=0, steps=2, generator=generator)
    assert train.clips_per_s > 0 and train.clips_per_cpu_s > 0
    assert not torch.equal(before, model.layer.weight)
    infer = bench.inference_clips_per_s(model, batch=2, warmup=1, steps=1, generator=generator)
    assert infer.clips_per_s > 0 and infer.clips_per_cpu_s > 0


def test_table_has_the_reference_row_and_ratios(tmp_path: Path, capsys) -> None:
    out = tmp_path / "models.txt"
    bench = _bench()
    bench.main([
        "--models", "pons-waveform-tiny", "--reference", "pons-waveform-tiny",
        "--batch", "2", "--steps", "1", "--warmup", "0", "--out", str(out),
    ])
    text = out.read_text()
    assert text == capsys.readouterr().out
    row = next(line for line in text.splitlines() if line.startswith("pons-waveform-tiny"))
    assert "29,762" in row and row.split()[-1] == "1.000" and row.split()[-4] == "1.000"
