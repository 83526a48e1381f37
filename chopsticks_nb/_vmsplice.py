"""Handing a large bytes object's pages to a pipe instead of copying them into it (Linux
``vmsplice``, through ctypes: Python has no binding for it).

Writing 1 MB into a pipe costs the kernel a copy and 256 fresh pages; vmsplice lends the
pipe the object's own pages, so the reader's copy out is the only one (a 1 MB call: see
bench/README.md). The pipe then reads from the object's memory until the reader has read it,
so the caller must keep the object alive, and it must not change (bytes do not), until
:func:`unread` says the pipe holds less than what followed it.
"""

from __future__ import annotations

import fcntl
import os
import struct
import sys
import termios
from typing import Any

SPLICE_F_NONBLOCK = 2


def _load() -> tuple[Any, Any, Any] | None:
    """(ctypes, the vmsplice function, the iovec type), or None where there is no vmsplice:
    not Linux, a libc without it, or a Python built without ctypes (then large pieces are
    copied, as before)."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        import ctypes

        function = ctypes.CDLL(None, use_errno=True).vmsplice
    except (ImportError, OSError, AttributeError):
        return None

    class IoVec(ctypes.Structure):
        _fields_ = (("base", ctypes.c_void_p), ("len", ctypes.c_size_t))

    function.argtypes = (ctypes.c_int, ctypes.POINTER(IoVec), ctypes.c_size_t, ctypes.c_uint)
    function.restype = ctypes.c_ssize_t
    return ctypes, function, IoVec


_LOADED = _load()
AVAILABLE = _LOADED is not None


def vmsplice(fd: int, data: bytes, start: int) -> int:
    """Lend ``data[start:]`` to the pipe ``fd`` without blocking; how many bytes it took.
    BlockingIOError when the pipe is full; another OSError where vmsplice does not work (not
    a pipe, a sandbox that forbids it)."""
    assert _LOADED is not None and type(data) is bytes
    ctypes, function, iovec = _LOADED
    address = ctypes.cast(ctypes.c_char_p(data), ctypes.c_void_p).value
    vector = iovec(address + start, len(data) - start)
    taken: int = function(fd, ctypes.byref(vector), 1, SPLICE_F_NONBLOCK)
    if taken < 0:
        code = ctypes.get_errno()
        raise OSError(code, os.strerror(code))  # BlockingIOError for EAGAIN
    return taken


def unread(fd: int) -> int:
    """How many bytes the pipe ``fd`` (either end) holds that its reader has not read."""
    return int(struct.unpack("i", fcntl.ioctl(fd, termios.FIONREAD, b"\0\0\0\0"))[0])
