"""Frames from one agent's stdout, checked against the protocol table and handed to handlers.

Found after any noise (a login banner), each frame's size is checked against its kind's limit,
its payload decoded and its shape checked, then it goes to the handler the table names.

Whoever reads the pipe (the broker thread, or a caller waiting for its answer: see
_caller_reads) holds the connection's read lock, so one thread at a time uses a reader.

A frame of LARGE_FRAME bytes or more is read into memory of its own (a LargeFrame, in place of
the input buffer until it is whole), which the decoded value may keep: a large numpy array is
then used where it lies, not copied. A large result that is one bytes value is read into the
bytes object it becomes (a BytesInPlace: see _bytes_in_place).
"""

from __future__ import annotations

import math
import mmap
import os
from collections.abc import Collection
from typing import Any, Callable, Optional

from . import (
    _agent,
    _values,  # noqa: F401 - registers the codec's loaders of rich values
)
from ._agent import HEADER, MAGIC, Msg
from ._bounded import short_repr
from ._bytes_in_place import ENABLED as IN_PLACE
from ._bytes_in_place import HEAD, BytesInPlace, bytes_value_size
from .errors import ProtocolError

__all__ = ["FrameReader", "Handlers", "InputBuffer", "LargeFrame"]

READ_SIZE = 1024 * 1024
#: An input buffer's size until a read fills it.
FIRST_SIZE = 64 * 1024
#: Frames this large are read into memory of their own (see LargeFrame).
LARGE_FRAME = 1024 * 1024
#: Noise tolerated on stdout before the handshake (a login shell's banner).
MAX_NOISE = 64 * 1024
_HEADER_SIZE = HEADER.size
#: Bytes of a RESULT frame that show whether it is one bytes value (see _large).
_RESULT_HEAD = _HEADER_SIZE + HEAD

#: ``{code: (kind, handler, loader)}``: the handler of each kind of frame, called with the
#: request id and the payload (decoded and checked by ``loader`` if it is a codec payload, else
#: a memoryview valid only during the call). See _agent.handlers.
Handlers = dict[
    int, tuple[_agent.Message, Callable[[int, Any], None], Optional[Callable[..., Any]]]
]


class LargeFrame:
    """One large frame's payload, read straight into memory of its own: an anonymous mapping of
    its length, whose pages cost nothing until its bytes arrive (a header that claims 500 MiB
    and stops there costs what came). Its decoded value may keep that memory (``donated``)."""

    def __init__(self, code: int, req_id: int, length: int, first: memoryview) -> None:
        self.code = code
        self.req_id = req_id
        self.memory = mmap.mmap(-1, length)
        self.filled = len(first)
        self.memory[: self.filled] = first

    def read_from(self, fd: int) -> int:
        with memoryview(self.memory) as view:
            count = os.readv(fd, [view[self.filled :]])
        self.filled += count
        return count

    @property
    def complete(self) -> bool:
        return self.filled == len(self.memory)

    def take(self, data: bytes | memoryview) -> int:
        """Copy in what ``data`` holds of the rest of the frame; how many bytes that was."""
        count = min(len(data), len(self.memory) - self.filled)
        self.memory[self.filled : self.filled + count] = data[:count]
        self.filled += count
        return count


class InputBuffer:
    """Bytes read from an agent, parsed where they lie: one reusable buffer, so streaming a
    file costs no allocation per read. Views handed out are valid until the next read. While
    ``large`` is set, reads go there instead, to the end of that frame (see FrameReader)."""

    def __init__(self, size: int = READ_SIZE) -> None:
        self.size = size
        # Small until a read fills it (a stream: then ``size``). A buffer is zeroed when made,
        # and 1 MiB of it was 0.6 ms and 1 MiB of RSS of every connection (128 hosts: 128 MiB).
        self.data = bytearray(min(size, FIRST_SIZE))
        self.start = self.end = 0
        self.large: LargeFrame | BytesInPlace | None = None

    def __len__(self) -> int:
        return self.end - self.start

    def read_from(self, fd: int) -> int:
        if self.large is not None:
            return self.large.read_from(fd)
        if self.start == self.end:
            self.start = self.end = 0
            if len(self.data) > 2 * self.size:
                self.data = bytearray(self.size)  # give back what one huge frame took
        elif len(self.data) - self.end < len(self.data) // 4:
            self.reserve(len(self.data) - self.start)
        with memoryview(self.data) as view:
            count = os.readv(fd, [view[self.end :]])
        self.end += count
        if self.end == len(self.data) < self.size:
            self.reserve(self.size)
        return count

    def append(self, data: bytes | memoryview) -> None:
        """Add bytes read elsewhere (a relay passes on a relayed agent's stream): the rest of a
        large frame first, as read_from would read it. The buffer grows as needed and goes
        back to its first size once emptied by small pieces."""
        if self.large is not None and not self.large.complete:
            data = memoryview(data)[self.large.take(data) :]
            if not data:
                return
        if self.start == self.end:
            self.start = self.end = 0
            if len(self.data) > self.size >= len(data):
                self.data = bytearray(self.size)
        if len(self.data) - self.end < len(data):
            needed = self.end - self.start + len(data)
            self.reserve(needed if needed <= len(self.data) else max(needed, 2 * len(self.data)))
        self.data[self.end : self.end + len(data)] = data
        self.end += len(data)

    def reserve(self, size: int) -> None:
        """Make room for ``size`` bytes from the current start (moving or growing the buffer)."""
        kept = self.end - self.start
        if size > len(self.data):
            data = bytearray(size)
            data[:kept] = self.data[self.start : self.end]
            self.data = data
        else:
            self.data[:kept] = self.data[self.start : self.end]
        self.start, self.end = 0, kept


class FrameReader:
    """Parses one agent's output stream. ``on_noise(data)`` gets what came before the agent's
    first frame (a login banner); ``stopped`` ends the handling of frames already read (the
    connection ended)."""

    def __init__(
        self,
        host: str,
        handlers: Handlers,
        on_noise: Callable[[bytes], None],
        requests: Collection[int] = (),
        buffer_size: int = READ_SIZE,
    ) -> None:
        self.host = host
        self.buffer = InputBuffer(buffer_size)
        self.handlers = handlers
        self.on_noise = on_noise
        self.synced = False
        self.stopped = False
        #: The kinds of frame that ask this side for work (a module, a resource file).
        self.requests = frozenset(requests)
        #: What handling them may still cost in this call of handle_frames: each costs 1, and
        #: its handler may charge more (by the size of its answer).
        self.budget: float = math.inf

    def read_from(self, fd: int) -> int:
        """Read what the pipe holds (0 at EOF; BlockingIOError if nothing)."""
        return self.buffer.read_from(fd)

    def handle_frames(self) -> bool:
        """Handle every complete frame read so far, but a request only while ``budget`` is
        above 0; True if complete frames are left, for a later call (with a new budget).
        Raises ProtocolError or _agent.CodecError for bytes outside the protocol; the caller
        ends the connection then."""
        if not self.synced and not self._find_magic():
            return False
        buf = self.buffer
        if buf.large is not None:
            if not buf.large.complete or self.stopped:
                return False
            self._handle_large()
        handlers = self.handlers
        while buf.end - buf.start >= _HEADER_SIZE and not self.stopped:
            code, req_id, length = HEADER.unpack_from(buf.data, buf.start)
            if code in self.requests:
                if self.budget <= 0:
                    return bool(buf.end - buf.start >= _HEADER_SIZE + length)
                self.budget -= 1
            entry = handlers.get(code)
            if entry is None:
                raise ProtocolError(f"unexpected message kind {code}", self.host)
            kind, handler, loader = entry
            if length > kind.limit:
                raise ProtocolError(
                    f"a {kind.name} frame of {length} bytes exceeds the {kind.limit}-byte limit",
                    self.host,
                )
            end = _HEADER_SIZE + length
            if buf.end - buf.start < end:
                if length >= LARGE_FRAME:
                    if IN_PLACE and kind is Msg.RESULT and buf.end - buf.start < _RESULT_HEAD:
                        return False  # the agent writes a large payload apart from its header
                    begin = buf.start + _HEADER_SIZE
                    with memoryview(buf.data)[begin : buf.end] as first:
                        buf.large = self._large(kind, code, req_id, length, first)
                    buf.start = buf.end
                    return False
                if end > len(buf.data) - buf.start:
                    # Grow with the bytes actually received (doubling), not to the length the
                    # header claims: a header claiming 500 MiB followed by nothing must not
                    # cost 500 MiB here.
                    buf.reserve(min(end, max(READ_SIZE, 2 * len(buf))))
                return False
            begin = buf.start + _HEADER_SIZE
            buf.start += end
            with memoryview(buf.data)[begin : begin + length] as payload:
                handler(req_id, payload if loader is None else loader(payload))
        return False

    @staticmethod
    def _large(
        kind: _agent.Message, code: int, req_id: int, length: int, first: memoryview
    ) -> LargeFrame | BytesInPlace:
        """Where the rest of a large frame is read: into the bytes object it becomes, for a
        result that is one bytes value (if its head is in), else into memory of its own."""
        if IN_PLACE and kind is Msg.RESULT and len(first) >= HEAD:
            size = bytes_value_size(first[:HEAD], length)
            if size is not None:
                return BytesInPlace(code, req_id, size, first[HEAD:])
        return LargeFrame(code, req_id, length, first)

    def _handle_large(self) -> None:
        large, self.buffer.large = self.buffer.large, None
        assert large is not None
        _, handler, loader = self.handlers[large.code]
        if isinstance(large, BytesInPlace):
            handler(large.req_id, large.value())
            return
        with memoryview(large.memory) as payload:
            handler(large.req_id, payload if loader is None else loader(payload, True))

    def noise(self, limit: int) -> bytes:
        """The first ``limit`` bytes read before the handshake, while none has come yet."""
        buf = self.buffer
        if self.synced:
            return b""
        return bytes(buf.data[buf.start : min(buf.end, buf.start + limit)])

    @property
    def unparsed(self) -> int:
        """Bytes read that are not a complete frame yet."""
        large = self.buffer.large
        return len(self.buffer) + (0 if large is None else _HEADER_SIZE + large.filled)

    def _find_magic(self) -> bool:
        buf = self.buffer
        at = buf.data.find(MAGIC, buf.start, buf.end)
        if at < 0:
            if len(buf) > MAX_NOISE:
                began = self.noise(300).decode("utf-8", "backslashreplace")
                raise ProtocolError(
                    "no chopsticks_nb handshake in the first 64 KiB of output, which began "
                    + short_repr(began, 400),
                    self.host,
                )
            return False
        noise = bytes(buf.data[buf.start : at])
        buf.start = at + len(MAGIC)
        self.synced = True
        if noise:
            self.on_noise(noise)
        return True
