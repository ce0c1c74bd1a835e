"""The prepared-audio cache format: one ``.npy`` file of mono float16 audio per track and rate.

``raytag prepare`` decodes every usable track once, at a model's sample rate, into

::

    <storage>/.raytag-cache/audio/<rate>hz/<kk>/<key>.<rate>hz.npy

where ``key`` hashes the audio file's identity (its absolute path or URI, size in bytes and
modification time) and the rate, and ``kk`` is the key's first two characters (so no folder
holds more than a few thousand files of a million-track corpus). A file is a NumPy ``.npy``
file (format 1.0, ``'<f2'``, shape ``(samples,)``, C order): ``numpy.load`` reads it, its
header gives the length without reading the audio, and a crop is one byte-range read at
``header + 2 * start``. The rate is in the file's name, so a file says what it holds wherever
it is. Samples are float16 (IEEE half precision, rounded to nearest): the same two bytes as
int16, but nothing clips (a resampled loud master goes past full scale: int16 clipped 10,675
samples of one real file), the relative error is at most 2**-11 (-66 dB) at any level, and
quiet passages keep more precision than int16's fixed step. Values beyond float16's range
(65504, far past any audio) are clipped to it.

Caches written before (``raytag-pcm16-v1``: int16, clipped) have other keys, so a prepare
writes float16 files anew and never reads them; read directly, such a file is refused with a
message saying to prepare again (:func:`parse_header`).

This module is the one owner of the format: names, keys, header, quantisation. It touches no
file system (:mod:`raytag.audio.decoders` reads the files, the cluster layer writes them).
"""

from __future__ import annotations

import hashlib
import io
import math
import re
from collections.abc import Iterable, Iterator

import numpy as np

from raytag.errors import InputError
from raytag.locations import cache_location
from raytag.storage import FileStat

__all__ = [
    "CACHE_FORMAT",
    "CACHE_KIND",
    "FileIdentity",
    "HEADER_PROBE_BYTES",
    "PcmCacheError",
    "cache_file",
    "cache_key",
    "cached_samples",
    "file_bytes",
    "header_bytes",
    "is_cache_file",
    "parse_header",
    "cache_stream",
    "rate_folder",
    "rate_of",
    "to_cache_samples",
    "from_cache_samples",
]

CACHE_KIND = "audio"
CACHE_FORMAT = "raytag-f16-v2"
"""Hashed into every key: a change to what a file holds (format, decoding) must change this."""
SUFFIX = ".npy"
PCM_DTYPE = np.dtype("<f2")
OLD_PCM_DTYPE = np.dtype("<i2")
"""What ``raytag-pcm16-v1`` caches held: recognised, to say that they must be prepared again."""
FLOAT16_MAX = float(np.finfo(np.float16).max)
HEADER_PROBE_BYTES = 256
"""Bytes to read from a file's start to parse its header (the header of any length up to
2**60 samples is 128 bytes)."""
_NAME = re.compile(r"\.(\d+)hz\.npy$")


class PcmCacheError(InputError):
    """A file that is not a well-formed cache file (bad name, header or length)."""


FileIdentity = FileStat
"""What names an audio file's content without reading it: its location (absolute path or URI),
size in bytes and modification time in ns (None where the file system keeps none; the key then
rests on location and size alone). :class:`raytag.storage.FileStat` is the one record of it."""


def cache_key(identity: FileIdentity, *, sample_rate: int) -> str:
    """A 32-hex-digit key of ``identity`` and the target ``sample_rate`` (Hz).

    Any change of path, size, modification time or rate gives another key, so an edited file
    or a model at another rate is prepared anew and a stale file is never read.
    """
    text = "\n".join(
        [CACHE_FORMAT, identity.location, str(identity.size), str(identity.mtime_ns), str(int(sample_rate))]
    )
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def rate_folder(storage: str, sample_rate: int) -> str:
    """The folder holding every cache file at ``sample_rate`` under ``storage``."""
    return f"{cache_location(storage, CACHE_KIND)}/{int(sample_rate)}hz"


def cache_file(storage: str, key: str, sample_rate: int) -> str:
    """The location of the cache file with ``key`` at ``sample_rate`` under ``storage``."""
    return f"{rate_folder(storage, sample_rate)}/{key[:2]}/{key}.{int(sample_rate)}hz{SUFFIX}"


def is_cache_file(location: str) -> bool:
    """Whether ``location`` names a cache file (by its suffix)."""
    return str(location).endswith(SUFFIX)


def rate_of(location: str) -> int:
    """The sample rate (Hz) in a cache file's name.

    Raises:
        PcmCacheError: the name does not end in ``.<rate>hz.npy``.
    """
    match = _NAME.search(str(location))
    if not match or int(match.group(1)) <= 0:
        raise PcmCacheError(f"{location}: not a raytag audio cache file (its name must end in .<rate>hz.npy)")
    return int(match.group(1))


def cached_samples(frames: int, source_rate: int, target_rate: int) -> int:
    """Samples a cache file at ``target_rate`` holds for ``frames`` frames at ``source_rate``:
    ``ceil(frames * target_rate / source_rate)``, the length of the resampled track."""
    if source_rate == target_rate:
        return int(frames)
    divisor = math.gcd(int(source_rate), int(target_rate))
    up, down = int(target_rate) // divisor, int(source_rate) // divisor
    return -(-int(frames) * up // down)


def header_bytes(samples: int) -> bytes:
    """The ``.npy`` header of a cache file holding ``samples`` samples."""
    out = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        out, {"descr": np.lib.format.dtype_to_descr(PCM_DTYPE), "fortran_order": False, "shape": (int(samples),)}
    )
    return out.getvalue()


def file_bytes(samples: int) -> int:
    """Size in bytes of a complete cache file holding ``samples`` samples."""
    return len(header_bytes(samples)) + PCM_DTYPE.itemsize * int(samples)


def parse_header(prefix: bytes, *, location: str = "") -> tuple[int, int]:
    """``(offset of the first sample in bytes, samples)`` from the first bytes of a file.

    Args:
        prefix: at least the header (:data:`HEADER_PROBE_BYTES` bytes, or the whole file).
        location: named in errors.

    Raises:
        PcmCacheError: not a ``.npy`` header, or not a 1-D little-endian int16 array.
    """
    stream = io.BytesIO(prefix)
    try:
        version = np.lib.format.read_magic(stream)
        if version == (1, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_1_0(stream)
        elif version == (2, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_2_0(stream)
        else:
            raise ValueError(f"unsupported .npy version {version}")
    except (ValueError, EOFError, SyntaxError) as exc:
        text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise PcmCacheError(f"{location}: not a raytag audio cache file (bad .npy header: {text})") from None
    if dtype == OLD_PCM_DTYPE and not fortran and len(shape) == 1:
        raise PcmCacheError(
            f"{location}: an int16 audio cache file of an older raytag (format raytag-pcm16-v1); this raytag "
            f"reads float16 caches ({CACHE_FORMAT}): run raytag prepare again"
        )
    if dtype != PCM_DTYPE or fortran or len(shape) != 1:
        raise PcmCacheError(
            f"{location}: not a raytag audio cache file (holds {dtype} of shape {shape}; expected mono float16)"
        )
    return stream.tell(), int(shape[0])


def to_cache_samples(audio: np.ndarray) -> np.ndarray:
    """Float samples to little-endian float16 (rounded to nearest; nothing clips but values
    past float16's range, +-65504)."""
    clipped = np.clip(np.asarray(audio, dtype=np.float32), -FLOAT16_MAX, FLOAT16_MAX)
    return clipped.astype(PCM_DTYPE)


def from_cache_samples(samples: np.ndarray) -> np.ndarray:
    """float16 samples to float32 (exact)."""
    return samples.astype(np.float32)


def cache_stream(pieces: Iterable[np.ndarray], *, samples: int) -> Iterator[bytes]:
    """The bytes of a cache file, piece by piece: the header, then each float piece as float16.

    Args:
        pieces: mono float32 audio at the cache's rate, in order (e.g. from
            :func:`raytag.audio.io.resampled_pieces`); consumed lazily, so memory stays that of
            one piece.
        samples: the total the header promises.

    Raises:
        PcmCacheError: the pieces hold more or fewer than ``samples`` samples (raised before
            the last bytes, so a writer that stops on errors never completes a wrong file).
    """
    yield header_bytes(samples)
    written = 0
    for piece in pieces:
        written += len(piece)
        if written > samples:
            raise PcmCacheError(f"the audio has more than the {samples} samples its cache header promises")
        yield to_cache_samples(piece).tobytes()
    if written != samples:
        raise PcmCacheError(f"the audio has {written} samples; its cache header promises {samples}")
