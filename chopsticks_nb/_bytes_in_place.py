"""The speed-up by which a large bytes result is read from the pipe into the object it becomes.

A result that is one large ``bytes`` value (a file's contents, an array's buffer) used to be
read into the connection's input buffer, then copied out of it by the codec: the controller
held it twice (a 256 MiB result took 512 MiB of RSS). Once the frame's first bytes show such
a value (the codec's version, the BYTES opcode and a length that fills the frame), the rest of
it is read into an ``io.BytesIO`` instead, whose ``getvalue()`` hands over the buffer it
wrote into, uncopied: the value is held once. Its buffer grows as the bytes arrive (doubling,
up to the length), never ahead of them, as the input buffer does. The agent, for its part,
writes such a value after its encoding's six-byte head rather than joining the two (a copy of
the whole value into fresh memory: 0.25 s of a 256 MiB result). Switch: ``bytes_in_place``
(see _speedups); figures in bench/README.md.
"""

from __future__ import annotations

import io
import os

from . import _speedups
from ._agent import CODEC_VERSION, LARGE_BYTES, U32, Op

__all__ = ["ENABLED", "LARGE", "BytesInPlace", "bytes_value_size"]

ENABLED = _speedups.enabled("bytes_in_place")
#: A RESULT holding one bytes value at least this large is read in place (and the agent writes
#: it after its encoding's head, uncopied: _agent.encode_result).
LARGE = LARGE_BYTES
#: Bytes of a codec payload before the value's own: version, opcode, u32 length.
HEAD = 2 + U32.size
_GROW_FROM = 1024 * 1024
_MIN_READ = 256 * 1024


def bytes_value_size(head: bytes | memoryview, length: int) -> int | None:
    """The size of the bytes value a codec payload of ``length`` bytes holds, if it begins
    with ``head`` (HEAD bytes) and is that one value, of at least LARGE bytes; else None."""
    if length < LARGE + HEAD or head[0] != CODEC_VERSION or head[1] != Op.BYTES:
        return None
    size: int = U32.unpack_from(head, 2)[0]
    return size if size == length - HEAD else None


class BytesInPlace:
    """The value of one RESULT frame (``code``, ``req_id``) being read straight into its bytes
    object: the frame reader's LargeFrame for such a frame. ``first`` is what came of the value
    with the frame's head."""

    def __init__(self, code: int, req_id: int, size: int, first: memoryview) -> None:
        self.code = code
        self.req_id = req_id
        self.size = size
        self.received = 0
        self._capacity = 0
        self._value = io.BytesIO()
        self._make_room(len(first))
        with self._value.getbuffer() as view:
            view[: len(first)] = first
        self.received = len(first)

    @property
    def complete(self) -> bool:
        return self.received == self.size

    @property
    def filled(self) -> int:
        """Bytes of the frame's payload read so far."""
        return HEAD + self.received

    def read_from(self, fd: int) -> int:
        """Read what the pipe holds of the value, no further (0 at EOF; BlockingIOError if
        nothing)."""
        if self._capacity - self.received < _MIN_READ:
            self._make_room(_MIN_READ)
        with self._value.getbuffer() as view:
            count = os.readv(fd, [view[self.received : self._capacity]])
        self.received += count
        return count

    def take(self, data: bytes | memoryview) -> int:
        """Copy in what ``data`` holds of the rest of the value (bytes read elsewhere: a relay
        passes them on); how many bytes that was."""
        count = min(len(data), self.size - self.received)
        if self._capacity - self.received < count:
            self._make_room(count)
        with self._value.getbuffer() as view:
            view[self.received : self.received + count] = data[:count]
        self.received += count
        return count

    def value(self) -> bytes:
        """The value, once complete: the object it was read into."""
        value = self._value.getvalue()
        self._value = io.BytesIO()
        return value

    def _make_room(self, wanted: int) -> None:
        capacity = min(self.size, max(_GROW_FROM, 2 * self._capacity, self.received + wanted))
        if capacity > self._capacity:
            self._value.seek(capacity - 1)
            self._value.write(b"\0")
            self._capacity = capacity
