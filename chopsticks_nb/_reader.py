"""Frames from one agent's stdout, checked against the protocol table and handed to handlers.

Found after any noise (a login banner), each frame's size is checked against its kind's limit,
its payload decoded and its shape checked, then it goes to the handler the table names.

Whoever reads the pipe (the broker thread, or a caller waiting for its answer: see
_caller_reads) holds the connection's read lock, so one thread at a time uses a reader.
"""

from __future__ import annotations

import math
import os
from collections.abc import Collection
from typing import Any, Callable, Optional

from . import _agent
from ._agent import HEADER, MAGIC, Msg
from ._bounded import short_repr
from ._bytes_in_place import ENABLED as IN_PLACE
from ._bytes_in_place import HEAD, BytesInPlace, bytes_value_size
from .errors import ProtocolError

__all__ = ["FrameReader", "Handlers", "InputBuffer"]

READ_SIZE = 1024 * 1024
#: Least room a read is given: the buffer moves or grows to have it.
MIN_READ = READ_SIZE // 4
#: Noise tolerated on stdout before the handshake (a login shell's banner).
MAX_NOISE = 64 * 1024
_HEADER_SIZE = HEADER.size

#: ``{code: (kind, handler, loader)}``: the handler of each kind of frame, called with the
#: request id and the payload (decoded and checked by ``loader`` if it is a codec payload, else
#: a memoryview valid only during the call). See _agent.handlers.
Handlers = dict[
    int, tuple[_agent.Message, Callable[[int, Any], None], Optional[Callable[[Any], Any]]]
]


class InputBuffer:
    """Bytes read from an agent, parsed where they lie: one reusable buffer, so streaming a
    file costs no allocation per read. Views handed out are valid until the next read.

    ``frame_end`` is where (from ``start``) the frame being received ends, once its header is
    in: the buffer grows toward it as its bytes arrive, doubling its capacity each time it is
    full (so a large frame costs a linear number of copies, not one per read), never to more
    than the frame needs, and never ahead of the data (a header claiming 500 MiB followed by
    nothing costs nothing).
    """

    def __init__(self) -> None:
        self.data = bytearray(READ_SIZE)
        self.start = self.end = 0
        self.frame_end = 0

    def __len__(self) -> int:
        return self.end - self.start

    def read_from(self, fd: int) -> int:
        if self.start == self.end:
            self.start = self.end = 0
            if len(self.data) > 2 * READ_SIZE:
                self.data = bytearray(READ_SIZE)  # give back what one huge frame took
        if len(self.data) - self.end < MIN_READ:
            self._make_room()
        with memoryview(self.data) as view:
            count = os.readv(fd, [view[self.end :]])
        self.end += count
        return count

    def _make_room(self) -> None:
        """Room for a read after ``end``: by moving the bytes kept to the front, and by
        growing if the frame being received needs more."""
        kept = self.end - self.start
        capacity = len(self.data)
        # Room to the end of the frame being received is enough; more can wait for it.
        wanted = self.frame_end if self.frame_end > kept else kept + MIN_READ
        if self.start:
            with memoryview(self.data) as view:
                view[:kept] = view[self.start : self.end]
            self.start, self.end = 0, kept
        if wanted > capacity:
            self._grow(min(wanted, 2 * capacity))

    def _grow(self, size: int) -> None:
        try:
            # In place: a large bytearray grows by remapping its pages, not by copying them.
            self.data.extend(bytes(size - len(self.data)))
        except BufferError:  # a view of it is still held somewhere: grow by copying
            data = bytearray(size)
            data[: self.end] = self.data[: self.end]
            self.data = data


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
    ) -> None:
        self.host = host
        self.buffer = InputBuffer()
        self.handlers = handlers
        self.on_noise = on_noise
        self.synced = False
        self.stopped = False
        #: The kinds of frame that ask this side for work (a module, a resource file).
        self.requests = frozenset(requests)
        #: What handling them may still cost in this call of handle_frames: each costs 1, and
        #: its handler may charge more (by the size of its answer).
        self.budget: float = math.inf
        #: a large bytes result being read in place (see _bytes_in_place), or None
        self.in_place: BytesInPlace | None = None

    def read_from(self, fd: int) -> int:
        """Read what the pipe holds (0 at EOF; BlockingIOError if nothing)."""
        if self.in_place is not None:
            return self.in_place.read_from(fd)
        return self.buffer.read_from(fd)

    def handle_frames(self) -> bool:
        """Handle every complete frame read so far, but a request only while ``budget`` is
        above 0; True if complete frames are left, for a later call (with a new budget).
        Raises ProtocolError or _agent.CodecError for bytes outside the protocol; the caller
        ends the connection then."""
        if not self.synced and not self._find_magic():
            return False
        in_place = self.in_place
        if in_place is not None:
            if not in_place.complete or self.stopped:
                return False
            self.in_place = None
            in_place.handler(in_place.req_id, in_place.value())
        buf = self.buffer
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
                if kind is Msg.RESULT and self._read_in_place(req_id, handler, length):
                    return False
                buf.frame_end = end  # the buffer grows toward it as the bytes arrive
                return False
            buf.frame_end = 0
            begin = buf.start + _HEADER_SIZE
            buf.start += end
            with memoryview(buf.data)[begin : begin + length] as payload:
                handler(req_id, payload if loader is None else loader(payload))
        return False

    def _read_in_place(self, req_id: int, handler: Callable[[int, Any], None], length: int) -> bool:
        """If the RESULT frame at the buffer's start holds one large bytes value, read the rest
        of it straight into its bytes object (the speed-up of _bytes_in_place)."""
        buf = self.buffer
        begin = buf.start + _HEADER_SIZE
        if not IN_PLACE or buf.end - begin < HEAD:
            return False
        with memoryview(buf.data)[begin : buf.end] as received:
            size = bytes_value_size(received[:HEAD], length)
            if size is None:
                return False
            self.in_place = BytesInPlace(req_id, handler, size, received[HEAD:])
        buf.start = buf.end = buf.frame_end = 0
        return True

    def noise(self, limit: int) -> bytes:
        """The first ``limit`` bytes read before the handshake, while none has come yet."""
        buf = self.buffer
        if self.synced:
            return b""
        return bytes(buf.data[buf.start : min(buf.end, buf.start + limit)])

    @property
    def unparsed(self) -> int:
        """Bytes read that are not a complete frame yet."""
        in_place = self.in_place
        if in_place is not None and not in_place.complete:
            return _HEADER_SIZE + HEAD + in_place.received
        return len(self.buffer)

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
