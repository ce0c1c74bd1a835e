"""Long property-based runs over audio bytes: the cases tests/test_audio_fuzz.py runs a few of.

For every codec raytag reads (small generated files, and the real recordings of
shared/data/real-audio when present), hypothesis draws ``--examples`` mutations (cuts,
overwritten, inserted or deleted bytes, another format's header spliced on, random bytes, an
empty file; see tests/audio_mutations.py) and each mutated file is checked in a worker process
under a time bound: it must decode (probe, whole decode and crops agreeing within the codec's
tolerance) or raise raytag's AudioError with a one-line reason. Unlike the test, a run does not
stop at the first finding: it counts every outcome and lists every finding (another exception,
a wrong crop, a bad message, a hang, a crash) with the mutation that reproduces it, to be fixed
and pinned in the test with ``@example``.

    python bench/fuzz_audio.py --examples 500 --out bench/results/fuzz-audio.txt
"""

from __future__ import annotations

import argparse
import datetime
import os
import re
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import seed as hypothesis_seed

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from audio_mutations import TOLERANCE, DecodeWorker, apply, mutations, write_seeds  # noqa: E402

_NUMBERS = re.compile(r"\d+(\.\d+)?")


def kind_of(details: str) -> str:
    """A refusal's reason without its numbers and stage, to count reasons by kind."""
    reason = details.split(": ", 1)[-1]
    return _NUMBERS.sub("N", reason)[:110]


def shown(mutation: tuple, *, short: bool) -> str:
    """A mutation as Python (what ``@example`` takes), a byte string of one repeated byte as
    ``b"x" * n``; with ``short``, longer byte strings as their length and first bytes."""
    def part(value):
        if isinstance(value, bytes) and len(value) > 16:
            if len(set(value)) == 1:
                return f"{value[:1]!r} * {len(value)}"
            if short:
                return f"<{len(value)} bytes {value[:8]!r}...>"
        return repr(value)
    return "(" + ", ".join("(" + ", ".join(part(p) for p in step) + ",)" for step in mutation) + ",)"


def fuzz_codec(codec: str, seeds: dict, worker: DecodeWorker, folder: Path, examples: int, run_seed: int) -> dict:
    """Outcomes of ``examples`` mutations of ``codec``'s seed file."""
    outcomes: Counter[str] = Counter()
    reasons: Counter[str] = Counter()
    findings: list[tuple[str, str, tuple]] = []

    @hypothesis_seed(run_seed)
    @settings(max_examples=examples, database=None, deadline=None, derandomize=False,
              suppress_health_check=list(HealthCheck))
    @given(mutation=mutations(sorted(seeds)))
    def case(mutation):
        path = folder / f"{codec}-case{seeds[codec].suffix}"
        path.write_bytes(apply(seeds[codec].read_bytes(), mutation, seeds))
        outcome, details = worker.run(str(path), TOLERANCE[codec])
        outcomes[outcome] += 1
        if outcome == "refused":
            reasons[kind_of(details)] += 1
        elif outcome != "decoded":
            findings.append((outcome, details, mutation))

    began = time.perf_counter()
    case()
    return {"outcomes": outcomes, "reasons": reasons, "findings": findings, "seconds": time.perf_counter() - began}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--examples", type=int, default=200, help="mutations per codec")
    parser.add_argument("--seed", type=int, default=0, help="hypothesis' random seed for the run")
    parser.add_argument("--codecs", nargs="*", help="only these (keys of TOLERANCE)")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    lines = [f"# fuzz_audio: {datetime.date.today()}, --examples {args.examples} per codec, --seed {args.seed}; "
             f"load average at start {' '.join(f'{x:.1f}' for x in os.getloadavg())}",
             "# outcomes: decoded (probe, whole decode and crops agree), refused (AudioError with a one-line "
             "reason); anything else is a finding", ""]
    worker = DecodeWorker()
    total: Counter[str] = Counter()
    try:
        with tempfile.TemporaryDirectory(prefix="fuzz-audio-") as scratch:
            seeds = write_seeds(Path(scratch) / "seeds")
            for codec in args.codecs or sorted(seeds):
                result = fuzz_codec(codec, seeds, worker, Path(scratch), args.examples, args.seed)
                total.update(result["outcomes"])
                counts = ", ".join(f"{k} {v}" for k, v in sorted(result["outcomes"].items()))
                cases = sum(result["outcomes"].values())
                lines.append(f"{codec}: {cases} cases in {result['seconds']:.0f} s: {counts}")
                lines += [f"    refused {count:4d}x  {reason}" for reason, count in result["reasons"].most_common(8)]
                for outcome, details, mutation in result["findings"]:
                    frames = [line.strip() for line in details.splitlines()[1:] if line.strip().startswith("File ")]
                    where = f" ({frames[-1]})" if frames else ""
                    lines.append(f"    FINDING {outcome}: {details.splitlines()[0]}{where}")
                    lines.append(f"        mutation {shown(mutation, short=True)}")
                    lines.append(f"        replay   {shown(mutation, short=False)}")
                print("\n".join(lines[-1 - len(result["reasons"].most_common(8)) - 3 * len(result["findings"]):]),
                      flush=True)
    finally:
        worker.close()
    lines.append("")
    lines.append(f"total: {sum(total.values())} cases: " + ", ".join(f"{k} {v}" for k, v in sorted(total.items())))
    text = "\n".join(lines) + "\n"
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text)
    print(lines[-1])


if __name__ == "__main__":
    main()
