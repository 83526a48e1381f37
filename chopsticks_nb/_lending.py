"""Large pieces into the agent's pipe: lent by vmsplice rather than copied, or lined up.

Two speed-ups (see _speedups), both measured in bench/README.md:

- ``lend``: writing 1 MB into a pipe costs the kernel a copy and 256 fresh pages; Linux's
  ``vmsplice`` (through ctypes: Python has no binding for it) lends the pipe the object's own
  pages, so the agent's read is the only copy. The pipe then reads from the object's memory
  until the agent has read it, so the writer keeps the object alive until :func:`unread` says
  the pipe holds less than what followed it (:class:`Lender`); only ``bytes``, which cannot
  change, are lent.
- ``align``: where pieces are copied instead, the kernel copies a page into a pipe slower when
  it lands 1-15 bytes past where it lies in memory, modulo 4096 (the figure: bench/README.md,
  "Why the code looks this way"): a PING frame of padding goes first and lines the large piece
  up modulo 64 (:func:`frame_pieces`).
"""

from __future__ import annotations

import errno
import fcntl
import os
import struct
import sys
import termios
from collections import deque
from typing import Any, Union

from . import _speedups
from ._agent import HEADER, Msg

SPLICE_F_NONBLOCK = 2
#: Pieces of a frame this large are lent (or, copied, lined up).
LARGE = 64 * 1024
_BYTES_DATA = sys.getsizeof(b"") - 1  # where a bytes object's data starts, from its id()

#: A piece of a frame in the writer's queue: what is left of one is a memoryview of it.
Piece = Union[bytes, memoryview]


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
LEND = AVAILABLE and _speedups.enabled("lend")
ALIGN = _speedups.enabled("align")


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


def base(piece: Piece) -> object:
    """The object ``piece`` is (what is left of)."""
    return piece.obj if type(piece) is memoryview else piece


def lendable(piece: Piece) -> bool:
    """Whether the pipe may be lent ``piece``: large, and of an object that cannot change."""
    return len(piece) >= LARGE and type(base(piece)) is bytes


def frame_pieces(kind: int, req_id: int, pieces: list[bytes], align: bool) -> list[bytes]:
    """A frame with its payload in ``pieces``. If one is large and ``align`` (it is to be
    copied into the pipe, not lent), a PING frame of padding goes first, lining the piece up
    modulo 64, assuming the frame starts a page, as it does in an empty pipe."""
    size = sum(map(len, pieces))
    frame = [HEADER.pack(kind, req_id, size), *pieces]
    if size < LARGE or not align or not ALIGN:
        return frame
    offset = HEADER.size  # of the piece in the frame
    for piece in pieces:
        if len(piece) >= LARGE and type(piece) is bytes:  # its address is id() + _BYTES_DATA
            gap = (id(piece) + _BYTES_DATA - offset - HEADER.size) % 64
            return [HEADER.pack(Msg.PING, 0, gap) + bytes(gap), *frame]
        offset += len(piece)
    return frame


class Lender:
    """What one writer has lent a pipe and must keep alive until the agent has read it.

    ``active`` turns False for good once vmsplice fails on this pipe for a reason other than a
    full pipe (not a pipe, a sandbox that forbids it): from then on pieces are copied.
    """

    def __init__(self) -> None:
        self.active = LEND
        #: (bytes ever queued when its end was lent, the object), oldest first
        self.lent: deque[tuple[int, bytes]] = deque()

    def lend(self, fd: int, piece: Piece, written_total: int) -> int:
        """Lend the pipe ``piece`` (lendable, first in the queue, ``written_total`` bytes of the
        stream written before it); how many bytes it took, 0 if lending stopped working."""
        data = base(piece)
        assert type(data) is bytes
        try:
            taken = vmsplice(fd, data, len(data) - len(piece))
        except OSError as exc:
            if isinstance(exc, BlockingIOError) or exc.errno == errno.EPIPE:
                raise  # a full pipe, or no agent: as for a write
            self.active = False
            return 0
        self.lent.append((written_total + taken, data))
        return taken

    def release(self, fd: int, written_total: int) -> None:
        """Let go of what the agent has read (``written_total``: bytes written to the pipe)."""
        try:
            read = written_total - unread(fd)
        except OSError:
            return
        lent = self.lent
        while lent and lent[0][0] <= read:
            lent.popleft()
