"""Mutated audio files and the property every one must keep: it decodes exactly or raytag says why.

Shared by ``tests/test_audio_fuzz.py`` (a small, derandomized CI profile) and
``bench/fuzz_audio.py`` (long runs). A *mutation* is a tuple of steps applied to the bytes of a
real file of one codec (written here from a known signal, or one of the real recordings):

- ``("cut", f)``: keep the first ``f`` of the bytes;
- ``("overwrite", f, data)``: write ``data`` over the bytes from ``f`` of the way in;
- ``("insert", f, data)`` / ``("delete", f, n)``: bytes added or taken out (later bytes shift);
- ``("splice", f, codec)``: the first ``f`` of another codec's file, then this file's bytes
  from the same offset on (a header of another format on this body);
- ``("replace", data)``: the file is ``data`` (random bytes; empty).

Fractions make a mutation mean the same on any file, so a finding can be pinned with
``@example`` and replayed. The property (:func:`check`): either :func:`raytag.audio.io.probe`
and every read (the whole file, and crops at its start, a third, two thirds and its end)
succeed, each crop equal to the same frames of the whole decode within the codec's tolerance
(``TOLERANCE``, the README's decode-accuracy claims, of full scale or of the crop's peak where
damaged data decodes louder) and as long, and the whole decode as long
as the header promises (or at most ``END_SHORTFALL_SECONDS`` shorter, as reads may be); or
they raise :class:`raytag.audio.io.AudioError` with a one-line message that starts with the
path. Anything else (another exception, a wrong crop, a hang, a crash of the process) is a
finding. :class:`DecodeWorker` runs each check in a separate process with a time bound, so a
hang or a crash in a decoder library is reported instead of stopping the run.
"""

from __future__ import annotations

import multiprocessing
import traceback
from pathlib import Path

import numpy as np
from hypothesis import strategies as st

from audio_files import music_like, write
from requirements import REAL_AUDIO

# Codec (a key of audio_files.CODECS) of each generated seed file, its rate and channels.
SEEDS = {
    "wav": (22050, 2), "flac": (22050, 1), "vorbis": (22050, 2), "opus": (48000, 1),
    "mp3": (22050, 2), "aac-m4a": (22050, 1), "aac-adts": (22050, 2),
}
# Real recordings (the smaller ones of ../shared/data/real-audio), mutated as they are.
REAL_SEEDS = {"real-vorbis": "robin-bird-call.ogg", "real-wav": "medley-solos-validation-3.wav"}
# Largest |crop - whole decode| a decodable file may show (tests/test_decode_accuracy.py).
TOLERANCE = {
    "wav": 0.0, "flac": 0.0, "vorbis": 1e-5, "opus": 1e-6, "mp3": 1e-6, "aac-m4a": 1e-6, "aac-adts": 1e-6,
    "real-vorbis": 1e-5, "real-wav": 0.0,
}
SEED_SECONDS = 1.5
CROP_SECONDS = 0.25
# Wall-clock bound for one case (probe, whole decode, four crops of a 1.5 s file: ~0.1 s on an
# idle core); generous, since the machine may be shared.
CASE_SECONDS = 60.0
# How long the worker may take to start (spawn, import numpy, torch and the decoders).
STARTUP_SECONDS = 600.0
_STEP_KINDS = ("cut", "overwrite", "insert", "delete", "splice")


def write_seeds(folder: Path) -> dict[str, Path]:
    """One small file per codec of :data:`SEEDS` (music-like, AAC without noise bands: see
    :mod:`raytag.audio.ffmpeg_decoder` on perceptual noise substitution), and the real
    recordings of :data:`REAL_SEEDS` that are there."""
    folder.mkdir(parents=True, exist_ok=True)
    seeds = {}
    for codec, (rate, channels) in SEEDS.items():
        mono = music_like(rate, SEED_SECONDS, seed=len(seeds), noise=not codec.startswith("aac"))
        audio = mono if channels == 1 else np.stack([mono, np.roll(mono, 1000) * 0.5], axis=1)
        seeds[codec] = write(folder / f"seed-{codec}", audio, rate, codec)
    for codec, name in REAL_SEEDS.items():
        if (REAL_AUDIO / name).is_file():
            seeds[codec] = REAL_AUDIO / name
    return seeds


def mutations(codecs: list[str]) -> st.SearchStrategy:
    """Tuples of one or two mutation steps (see the module's notes); ``codecs`` name the files
    a splice may take a header from."""
    # Mostly inside the audio (past the headers, before the end), sometimes anywhere.
    fraction = st.one_of(st.floats(min_value=0.05, max_value=0.95), st.floats(min_value=0.0, max_value=1.0))
    noise = st.one_of(st.binary(min_size=1, max_size=64), st.binary(min_size=65, max_size=4000),
                      st.builds(lambda byte, size: bytes([byte]) * size, st.integers(0, 255), st.integers(1, 4000)))
    step = st.one_of(
        st.tuples(st.just("cut"), fraction),
        st.tuples(st.just("overwrite"), fraction, noise),
        st.tuples(st.just("insert"), fraction, noise),
        st.tuples(st.just("delete"), fraction, st.integers(1, 4000)),
        st.tuples(st.just("splice"), st.floats(min_value=0.0, max_value=0.2), st.sampled_from(sorted(codecs))),
    )
    whole = st.tuples(st.just("replace"), st.one_of(st.just(b""), st.binary(min_size=1, max_size=8000)))
    return st.one_of(st.tuples(step), st.tuples(step, step), st.tuples(whole))


def apply(data: bytes, mutation: tuple, seeds: dict[str, Path]) -> bytes:
    """``data`` with the steps of ``mutation`` applied in turn."""
    for step in mutation:
        kind, at = step[0], (int(len(data) * step[1]) if isinstance(step[1], float) else 0)
        if kind == "cut":
            data = data[:at]
        elif kind == "overwrite":
            data = data[:at] + step[2][: max(len(data) - at, 0)] + data[at + len(step[2]) :]
        elif kind == "insert":
            data = data[:at] + step[2] + data[at:]
        elif kind == "delete":
            data = data[:at] + data[at + step[2] :]
        elif kind == "splice":
            other = seeds[step[2]].read_bytes()
            head = int(len(other) * step[1])
            data = other[:head] + data[head:]
        elif kind == "replace":
            data = step[1]
        else:
            raise ValueError(f"unknown mutation step {kind!r}")
    return data


def check(path: str, tolerance: float) -> tuple[str, str]:
    """The property for one file: ``("decoded", summary)``, ``("refused", message)`` or a
    finding ``("wrong" | "bad message" | "exception", details)``."""
    from raytag.audio.io import END_SHORTFALL_SECONDS, AudioError, probe, read_frames

    stage = "probe"
    try:
        info = probe(path)
        stage = "whole decode"
        whole = read_frames(path, 0, info.frames)
        # A decode may end up to END_SHORTFALL_SECONDS before the header's length (the README's
        # contract: MP3 and Matroska lengths are estimates; a WAV short of a whole frame).
        if not info.frames - END_SHORTFALL_SECONDS * info.sample_rate <= len(whole) <= info.frames:
            return "wrong", f"the whole decode has {len(whole)} frames, the header {info.frames}"
        crop = max(int(CROP_SECONDS * info.sample_rate), 1)
        for start in sorted({0, info.frames // 3, 2 * info.frames // 3, max(info.frames - crop // 2, 0)}):
            stage = f"crop at {start}"
            got = read_frames(path, start, crop)
            expected = whole[start : start + crop]
            if len(got) != len(expected):
                return "wrong", f"crop at {start}: {len(got)} frames, the whole decode has {len(expected)} there"
            error = float(np.max(np.abs(got - expected))) if len(got) else 0.0
            # Relative to full scale: damaged data can decode far past it (MP3 garbage at 8.5,
            # where float rounding alone is 1e-6 and depends on where decoding began).
            scale = max(1.0, float(np.max(np.abs(expected)))) if len(expected) else 1.0
            if error > tolerance * scale:
                return "wrong", (f"crop at {start} differs from the whole decode by {error:.3g} (tolerance "
                                 f"{tolerance:g} of full scale {scale:.3g})")
    except AudioError as exc:
        message = str(exc)
        if not message.startswith(f"{path}: ") or "\n" in message or len(message) <= len(path) + 2:
            return "bad message", f"{stage}: {message!r}"
        return "refused", f"{stage}: {message[len(path) + 2 :]}"
    except Exception as exc:  # noqa: BLE001 - any other exception is the finding
        return "exception", f"{stage}: {type(exc).__name__}: {exc}\n{traceback.format_exc(limit=6)}"
    return "decoded", f"{info.frames} frames at {info.sample_rate} Hz"


def _serve(connection) -> None:
    """The worker process: imports the decoders, says so, then checks the (path, tolerance) it
    is sent until it gets None."""
    import raytag.audio.io  # noqa: F401 - the imports (torch among them) before the first case

    connection.send("ready")
    while True:
        job = connection.recv()
        if job is None:
            return
        connection.send(check(*job))


class DecodeWorker:
    """A process that runs :func:`check`, restarted after a case that hangs or crashes it.

    Args:
        case_seconds: how long one case may take before it is a hang.
    """

    def __init__(self, case_seconds: float = CASE_SECONDS):
        self._context = multiprocessing.get_context("spawn")
        self._case_seconds = case_seconds
        self._process = None
        self._connection = None

    def _start(self) -> None:
        """Starts the process and waits for its imports (not part of any case's time bound)."""
        ours, theirs = self._context.Pipe()
        self._process = self._context.Process(target=_serve, args=(theirs,), daemon=True)
        self._process.start()
        theirs.close()
        self._connection = ours
        if not ours.poll(STARTUP_SECONDS) or ours.recv() != "ready":
            self._stop(kill=True)
            raise RuntimeError(f"the decoding worker did not start within {STARTUP_SECONDS} s")

    def run(self, path: str, tolerance: float) -> tuple[str, str]:
        """:func:`check` of ``path`` in the worker: its outcome, or ``("hang", ...)`` past
        the time bound, ``("crash", ...)`` when the process died."""
        if self._process is None:
            self._start()
        self._connection.send((path, tolerance))
        if not self._connection.poll(self._case_seconds):
            self._stop(kill=True)
            return "hang", f"no result after {self._case_seconds:g} s"
        try:
            return self._connection.recv()
        except EOFError:
            code = self._process.exitcode if self._process is not None else None
            self._stop(kill=True)
            return "crash", f"the decoding process died (exit code {code})"

    def _stop(self, *, kill: bool) -> None:
        if self._process is None:
            return
        if kill:
            self._process.kill()
        else:
            try:
                self._connection.send(None)
            except OSError:
                self._process.kill()
        self._process.join(timeout=10)
        self._connection.close()
        self._process = self._connection = None

    def close(self) -> None:
        self._stop(kill=False)
