"""Functions bench_values.py calls remotely: large values made once and kept on the remote,
so that a call measures their way back, not their making."""

_kept = {}


def large(kind, size):
    """A ``size``-byte value of ``kind`` ("bytes" or "float64"), made on the first call."""
    if (kind, size) not in _kept:
        if kind == "bytes":
            import os

            _kept[kind, size] = os.urandom(size)
        else:
            import numpy as np

            _kept[kind, size] = np.random.default_rng(0).random(size // 8)
    return _kept[kind, size]


def nothing():
    return None
