"""A restricted unpickler for corpus metadata distributed as Python pickles.

``pickle.load`` runs whatever callables a file names, so a pickle from the internet is code.
:func:`load_pickle` refuses every global except, when ``allow_arrays`` is set, the few that
NumPy uses to pickle an ndarray and its dtype. Those are not imported: each is replaced by a
stand-in that only records its arguments, and after loading the records become arrays through
``np.frombuffer`` on a plain numeric dtype (bool, int, uint, float). Object, structured and
string arrays are refused. Lists, tuples, dicts, sets, strings, bytes, numbers, booleans and
None need no global and load as usual.

Why arrays at all: the MSD split files of Lee et al. (2017), used by Won et al., hold
``msd_id_to_tag_vector.cP``, a dict from track id to a NumPy 0/1 tag vector (its users call
``.flatten()`` on the values). Those files were written by Python 2's cPickle, so their byte
strings load with ``encoding="latin1"``; in Python 3 re-saves of such arrays at protocol 2
the raw bytes go through ``_codecs.encode(text, "latin1")``, the one other global allowed
(latin-1 only).
"""

from __future__ import annotations

import io
import pickle
import pickletools
import struct
from pathlib import Path

import numpy as np

_NUMERIC_KINDS = {"b", "i", "u", "f"}


class PickleRefused(pickle.UnpicklingError):
    """A pickle that names a global (code) the corpus loader does not accept."""


class _ArrayRecord:
    """What NumPy's ``_reconstruct`` / ``_frombuffer`` would have rebuilt, as plain data."""

    def __init__(self, shape=None, dtype=None, data=None, fortran=False):
        self.shape, self.dtype, self.data, self.fortran = shape, dtype, data, fortran

    def __setstate__(self, state):
        # ndarray.__reduce__ state: (version, shape, dtype, is_fortran, raw data)
        if not isinstance(state, tuple) or len(state) != 5:
            raise PickleRefused("unexpected ndarray state")
        _, self.shape, self.dtype, self.fortran, self.data = state


class _DtypeRecord:
    """What ``numpy.dtype(code, align, copy)`` plus its pickled state describe, as plain data."""

    def __init__(self, code, align=False, copy=False):
        if not isinstance(code, str):
            raise PickleRefused(f"dtype code {code!r} is not a string")
        self.code, self.byteorder = code, "|"

    def __setstate__(self, state):
        # dtype.__reduce__ state: (version, byteorder, subarray, names, fields, elsize, alignment, flags)
        if not isinstance(state, tuple) or len(state) < 5 or any(part is not None for part in state[2:5]):
            raise PickleRefused("structured or sub-array dtypes are refused")
        self.byteorder = state[1]


def _reconstruct(cls, shape, typecode):
    return _ArrayRecord()


def _frombuffer(buffer, dtype, shape, order):
    return _ArrayRecord(shape, dtype, bytes(buffer), order == "F")


def _latin1_encode(text, encoding="utf-8"):
    if not isinstance(text, str) or encoding.replace("-", "").lower() != "latin1":
        raise PickleRefused(f"_codecs.encode is accepted only for latin-1 text, not {encoding!r}")
    return text.encode("latin1")


class _NdarrayMarker:
    """Stands for ``numpy.ndarray`` as the first argument of ``_reconstruct``."""


_ARRAY_GLOBALS = {
    ("numpy.core.multiarray", "_reconstruct"): _reconstruct,
    ("numpy._core.multiarray", "_reconstruct"): _reconstruct,
    ("numpy.core.numeric", "_frombuffer"): _frombuffer,
    ("numpy._core.numeric", "_frombuffer"): _frombuffer,
    ("numpy", "ndarray"): _NdarrayMarker,
    ("numpy", "dtype"): _DtypeRecord,
    ("_codecs", "encode"): _latin1_encode,
}


class _RestrictedUnpickler(pickle.Unpickler):
    def __init__(self, file, *, source: str, allow_arrays: bool):
        super().__init__(file, encoding="latin1")
        self._source, self._allow_arrays = source, allow_arrays

    def find_class(self, module: str, name: str):
        if self._allow_arrays and (module, name) in _ARRAY_GLOBALS:
            return _ARRAY_GLOBALS[(module, name)]
        allowed = "no globals" if not self._allow_arrays else "only NumPy's ndarray/dtype reconstruction"
        raise PickleRefused(f"{self._source}: refused global {module}.{name} ({allowed} may be loaded)")

    def persistent_load(self, pid):
        raise PickleRefused(f"{self._source}: refused a persistent id ({pid!r})")


class _RestrictedPythonUnpickler(pickle._Unpickler):
    """The same rules on pickle's pure-Python unpickler, whose memo is a dict: for a pickle
    whose memo indices :func:`_memo_indices_fit` cannot vouch for."""

    def __init__(self, file, *, source: str, allow_arrays: bool):
        super().__init__(file, encoding="latin1")
        self._source, self._allow_arrays = source, allow_arrays

    find_class = _RestrictedUnpickler.find_class
    persistent_load = _RestrictedUnpickler.persistent_load


def _memo_indices_fit(data: bytes) -> bool:
    """Whether every memo index of the pickle is below its length, as pickle writes them
    (counting up from 0). The C unpickler sizes its memo table by the index, so 7 bytes
    (``]r\xff\xff\xff\x3f.``) made it allocate gigabytes. False also when
    :func:`pickletools.genops` cannot read the pickle (it is stricter than the unpickler)."""
    try:
        return all(int(arg) <= len(data) for opcode, arg, _ in pickletools.genops(data)
                   if opcode.name in ("PUT", "BINPUT", "LONG_BINPUT", "GET", "BINGET", "LONG_BINGET"))
    except Exception:  # noqa: BLE001 - any failure to read it: let the careful unpickler decide
        return False


def _to_array(record: _ArrayRecord, source: str) -> np.ndarray:
    dtype_record = record.dtype
    if not isinstance(dtype_record, _DtypeRecord):
        raise PickleRefused(f"{source}: an ndarray without a dtype")
    try:
        dtype = np.dtype(dtype_record.code)
    except TypeError:
        raise PickleRefused(f"{source}: unknown dtype {dtype_record.code!r}") from None
    if dtype.kind not in _NUMERIC_KINDS or dtype.fields is not None:
        raise PickleRefused(f"{source}: refused an array of dtype {dtype_record.code!r} (only numeric arrays load)")
    if dtype_record.byteorder in ("<", ">"):
        dtype = dtype.newbyteorder(dtype_record.byteorder)
    data = record.data.encode("latin1") if isinstance(record.data, str) else record.data
    shape = record.shape
    if not isinstance(data, (bytes, bytearray)) or not isinstance(shape, tuple) or not all(
        isinstance(n, int) and n >= 0 for n in shape
    ):
        raise PickleRefused(f"{source}: malformed ndarray (shape {shape!r}, data {type(data).__name__})")
    count = int(np.prod(shape)) if shape else 1
    if len(data) != count * dtype.itemsize:
        needed = count * dtype.itemsize
        raise PickleRefused(f"{source}: ndarray data has {len(data)} bytes, its shape {shape} needs {needed}")
    array = np.frombuffer(bytes(data), dtype=dtype).reshape(shape, order="F" if record.fortran else "C")
    return array.astype(dtype.newbyteorder("="), copy=True)


def _resolve(value, source: str, seen: dict[int, object]):
    """Replaces array records by arrays throughout lists, tuples, dicts and sets."""
    key = id(value)
    if key in seen:
        return seen[key]
    if isinstance(value, _ArrayRecord):
        out = _to_array(value, source)
    elif isinstance(value, (_DtypeRecord, _NdarrayMarker)) or value is _NdarrayMarker:
        raise PickleRefused(f"{source}: a bare dtype or ndarray type is not corpus data")
    elif isinstance(value, list):
        out = [_resolve(item, source, seen) for item in value]
    elif isinstance(value, tuple):
        out = tuple(_resolve(item, source, seen) for item in value)
    elif isinstance(value, dict):
        out = {_resolve(k, source, seen): _resolve(v, source, seen) for k, v in value.items()}
    elif isinstance(value, (set, frozenset)):
        out = type(value)(_resolve(item, source, seen) for item in value)
    else:
        out = value
    seen[key] = out
    return out


def load_pickle(path: str | Path, *, allow_arrays: bool = False):
    """Loads a pickle that holds only plain data (and, with ``allow_arrays``, numeric arrays).

    Python 2 byte strings load as ``str`` (latin-1), which is what Python 2's ``str`` was.

    Raises:
        PickleRefused: the pickle names any other global; the message names the file and it.
        pickle.UnpicklingError: the file is not a valid pickle.
    """
    path = Path(path)
    data = path.read_bytes()
    unpickler = _RestrictedUnpickler if _memo_indices_fit(data) else _RestrictedPythonUnpickler
    try:
        loaded = unpickler(io.BytesIO(data), source=str(path), allow_arrays=allow_arrays).load()
    except PickleRefused:
        raise
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, IndexError, KeyError, AttributeError,
            struct.error, OverflowError, MemoryError) as exc:
        raise pickle.UnpicklingError(f"{path}: not a readable pickle ({exc})") from None
    try:
        return _resolve(loaded, str(path), {})
    except (TypeError, RecursionError) as exc:
        raise pickle.UnpicklingError(f"{path}: not plain data ({type(exc).__name__}: {exc})") from None
