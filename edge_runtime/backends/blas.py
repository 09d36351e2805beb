"""Keep NumPy's OpenBLAS on one thread while the NumPy backend steps a batch.

A step multiplies a (B, In + H + 1) matrix by a (In + H + 1, G*H) one. From a few dozen rows on, OpenBLAS
splits that over all cores; for these sizes the hand-off costs more than it saves, and when the cores
are busy with other work (a broker, other streams, a simulator) the waiting threads make a step many
times slower. Measured on a loaded 2-core machine (2-layer 64-unit LSTM): batch 64, 0.33 ms on one
thread against 26 ms threaded; batch 4096, 47 ms against 109 ms (the elementwise gate math, which
NumPy runs on one thread anyway, dominates large batches).
The thread count is set through OpenBLAS's own `*_set_num_threads` symbol, found among the libraries
this process has loaded (the approach of threadpoolctl, without the dependency); if none is found
(another BLAS, another OS) nothing is changed.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

_SET = (
    "scipy_openblas_set_num_threads64_",
    "scipy_openblas_set_num_threads",
    "openblas_set_num_threads64_",
    "openblas_set_num_threads",
)
_GET = (
    "scipy_openblas_get_num_threads64_",
    "scipy_openblas_get_num_threads",
    "openblas_get_num_threads64_",
    "openblas_get_num_threads",
)
_lock = threading.RLock()
_funcs: list[tuple[Any, Any] | None] = []  # empty: not looked up yet; [None]: no OpenBLAS here


def _lookup() -> tuple[Any, Any] | None:
    import ctypes

    try:
        with open("/proc/self/maps") as f:
            paths = sorted({line.split()[-1] for line in f if "openblas" in line.lower() and "/" in line})
    except OSError:
        return None
    for path in paths:
        try:
            lib = ctypes.CDLL(path)
        except OSError:
            continue
        for set_name, get_name in zip(_SET, _GET, strict=True):
            if hasattr(lib, set_name) and hasattr(lib, get_name):
                setter, getter = getattr(lib, set_name), getattr(lib, get_name)
                setter.argtypes, setter.restype = [ctypes.c_int], None
                getter.argtypes, getter.restype = [], ctypes.c_int
                return setter, getter
    return None


def _get() -> tuple[Any, Any] | None:
    if not _funcs:
        _funcs.append(_lookup())
    return _funcs[0]


@contextmanager
def single_threaded() -> Iterator[None]:
    """OpenBLAS on one thread inside the block, its previous setting restored after."""
    funcs = _get()
    if funcs is None:
        yield
        return
    setter, getter = funcs
    with _lock:
        before = getter()
        setter(1)
        try:
            yield
        finally:
            setter(before)
