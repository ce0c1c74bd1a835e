"""bench/bench_data.py without Ray: its process-tree meter, its corpus and its DataLoader arm."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import soundfile as sf

from bench_modules import load_bench

def test_the_meter_counts_a_child_process_memory_and_cpu():
    meter_module = load_bench("process_meter")
    child = (
        "import time, numpy as np\n"
        "block = np.ones(200 * 2**20 // 8)\n"  # 200 MiB, touched
        "end = time.process_time() + 0.6\n"
        "while time.process_time() < end: pass\n"
        "time.sleep(0.5)\n"
    )
    with meter_module.ProcessMeter(interval_s=0.05) as meter:
        subprocess.run([sys.executable, "-c", child], check=True)
    usage = meter.usage
    assert usage.peak_bytes - usage.baseline_bytes > 150 * 2**20
    assert usage.cpu_s >= 0.5 and usage.wall_s >= usage.cpu_s * 0.5 and usage.processes >= 2


def test_the_corpus_and_the_dataloader_arm(tmp_path):
    bench = load_bench("bench_data")
    audio = bench.make_corpus(tmp_path / "audio", tracks=2, seconds=2.0)
    for fmt, paths in audio.items():
        assert len(paths) == 2
        info = sf.info(paths[0])
        assert (info.samplerate, info.channels, info.format) == (44100, 2, "MP3" if fmt == "mp3" else "OGG")
    # Existing files are kept (the corpus is made once per size).
    before = Path(audio["mp3"][0]).stat().st_mtime_ns
    assert bench.make_corpus(tmp_path / "audio", tracks=2, seconds=2.0) == audio
    assert Path(audio["mp3"][0]).stat().st_mtime_ns == before
    rows = bench.crop_rows(bench.table_of(audio["ogg"]), 5)
    assert len(rows) == 5 and len({r["path"] for r in rows}) == 2
    clips, usage = bench.dataloader_run(rows, workers=1)
    assert clips == 5 and usage.wall_s > 0
    copied = bench.copies(audio["mp3"], tmp_path / "copies", 2)
    assert len(copied) == 4 and len(set(copied)) == 4
