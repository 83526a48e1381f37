"""The frames queued for one agent's stdin, written as its pipe takes them.

A caller's thread writes its frame at once when the pipe has room: no thread hop on the way
out. What the pipe does not take waits here, written by the broker thread as the pipe drains,
or by the caller itself if it reads its own answer meanwhile (see _caller_reads). Streams of
frames (a put's chunks) come from producers the broker asks for more as the pipe drains, so
memory does not grow with the file.
"""

from __future__ import annotations

import itertools
import os
import threading
from collections import deque
from typing import Callable, Protocol

from . import _lending
from ._agent import CHUNK_SIZE, HEADER, Msg
from ._broker import BROKER
from .errors import ChopsticksError, ProtocolError

__all__ = ["ErrorFactory", "FrameWriter", "Producer"]

#: Makes the error that operations on an ended connection raise.
ErrorFactory = Callable[[], ChopsticksError]

#: Producers stop adding frames while this much waits to be written.
LOW_WATER = 1024 * 1024
#: Answers to the agent's import and resource requests that it may leave unread in the queue.
#: A real agent reads its input all the time; one that floods requests without reading the
#: answers would otherwise make us queue them all in memory.
MAX_UNREAD_REPLIES = 64 * 1024 * 1024


class Producer(Protocol):
    """Feeds a stream of frames (a put) as the pipe drains, on the broker thread."""

    def produce(self) -> bool:
        """Send the next frame; False when there is nothing more to send."""

    def close(self) -> None:
        """The connection ended: release what the producer holds."""


class FrameWriter:
    """The outgoing queue of one connection. ``caller_writes()`` tells whether the calling
    thread will write what is left itself (it reads its answer and writes as it waits)."""

    #: The size of the frames a producer (a put) makes its stream of.
    chunk_size = CHUNK_SIZE

    def __init__(self, caller_writes: Callable[[], bool]) -> None:
        self.lock = threading.Lock()
        self.fd = -1
        self.ended: ErrorFactory | None = None
        #: the broker writes the queue (it watches the pipe for room)
        self.watched = False
        self._caller_writes = caller_writes
        #: what waits to be written, in order (read without the lock only to test emptiness)
        self.out: deque[_lending.Piece] = deque()
        self.out_bytes = 0
        self._queued_total = 0  # bytes ever queued: with _out_bytes, tells what was written
        self._producers: deque[Producer] = deque()
        #: what vmsplice lent the pipe (``lender.lent``: empty when nothing is)
        self.lender = _lending.Lender()
        self._replies: deque[tuple[int, int]] = deque()  # (queued_total at its end, size)
        self._reply_bytes = 0

    @property
    def lending(self) -> bool:
        """Whether large pieces go to the pipe by vmsplice (see _lending)."""
        return self.lender.active

    # -- any thread -------------------------------------------------------------------------------

    def send(self, kind: int, req_id: int, payload: bytes | list[bytes] = b"") -> None:
        """Send one frame; a payload given as pieces goes out as they are (``writev``)."""
        if isinstance(payload, bytes):
            self.queue(HEADER.pack(kind, req_id, len(payload)), payload)
        else:
            self.queue(*_lending.frame_pieces(kind, req_id, payload, not self.lender.active))

    def queue(self, *chunks: bytes) -> None:
        """Write ``chunks`` now as far as the pipe takes them; leave the rest to the broker, or
        to this thread if it writes as it waits. Raises the connection's error once it ended."""
        with self.lock:
            if self.ended is not None:
                raise self.ended()
            size = 0
            for chunk in chunks:
                if chunk:  # writev would write 0 bytes of it, and flush wait for more
                    self.out.append(chunk)
                    size += len(chunk)
            self.out_bytes += size
            self._queued_total += size
            if self.watched:
                return
            self._flush_locked()
            if self.out and not self._caller_writes():
                self._hand_to_broker_locked()

    def send_reply(self, req_id: int, payload: bytes) -> None:
        """Answer an agent's request, unless it leaves too many answers unread (a flood)."""
        with self.lock:
            written = self._queued_total - self.out_bytes
            while self._replies and self._replies[0][0] <= written:
                self._reply_bytes -= self._replies.popleft()[1]
            if self._reply_bytes + len(payload) > MAX_UNREAD_REPLIES:
                raise ProtocolError(
                    f"the agent left {self._reply_bytes} bytes of answers unread and asks for "
                    "more: it does not read its input"
                )
        self.send(Msg.REPLY, req_id, payload)
        with self.lock:
            self._replies.append((self._queued_total, len(payload)))
            self._reply_bytes += len(payload)

    def add_producer(self, producer: Producer) -> None:
        def add() -> None:
            if self.ended is not None:
                producer.close()
                return
            self._producers.append(producer)
            self._watch()

        BROKER.call_soon(add)

    def flush_unless_watched(self) -> None:
        """Write what the pipe takes, unless the broker writes this queue."""
        with self.lock:
            if not self.watched:
                self._flush_locked()

    def should_caller_write(self) -> bool:
        """Whether a caller writing as it waits has something to write that the broker does not."""
        return bool(self.out) and not self.watched and self.fd >= 0

    def hand_rest_to_broker(self) -> None:
        """A caller that wrote as it waited stops waiting: the broker writes what is left."""
        with self.lock:
            if self.out and not self.watched:
                self._hand_to_broker_locked()

    def release_lent(self) -> None:
        """Let go of the lent pieces the agent has read (it has answered a request)."""
        with self.lock:
            if self.ended is None and self.fd >= 0:
                self.lender.release(self.fd, self._queued_total - self.out_bytes)

    def end(self, error: ErrorFactory) -> bool:
        """The connection ended: queued frames are dropped, later sends raise ``error()``.
        False if it had ended already."""
        with self.lock:
            if self.ended is not None:
                return False
            self.ended = error
            self.out.clear()
            self.out_bytes = 0
            self.fd = -1
        return True

    def forget_lent(self) -> None:
        """The agent has exited: no one reads the pipe any more."""
        with self.lock:
            self.lender.lent.clear()

    # -- broker thread ----------------------------------------------------------------------------

    def close_producers(self) -> None:
        while self._producers:
            self._producers.popleft().close()

    def _hand_to_broker_locked(self) -> None:
        self.watched = True
        BROKER.call_soon(self._watch)

    def _watch(self) -> None:
        if self.ended is None and self.fd >= 0:
            self.watched = True
            BROKER.watch(self.fd, True, self._on_writable)

    def _on_writable(self) -> None:
        while True:
            with self.lock:
                self._flush_locked()
                if self.out_bytes >= LOW_WATER or not self._producers:
                    if not self.out and not self._producers and self.fd >= 0:
                        BROKER.unwatch(self.fd)
                        self.watched = False
                    return
            if not self._producers[0].produce():
                self._producers.popleft().close()

    # -- under the lock ---------------------------------------------------------------------------

    def _flush_locked(self) -> None:
        fd = self.fd
        out = self.out
        if self.lender.lent and fd >= 0:
            self.lender.release(fd, self._queued_total - self.out_bytes)
        while out and fd >= 0:
            try:
                if self.out_bytes >= _lending.LARGE and self.lender.active:  # cheap test first
                    written = self._write_lending(fd)
                else:
                    several = out if len(out) <= 64 else list(itertools.islice(out, 64))
                    written = os.writev(fd, several)
            except BlockingIOError:
                return
            except OSError:  # the agent is gone; the reader will notice EOF and say why
                written = self.out_bytes
            if written == self.out_bytes:
                out.clear()  # the usual case: all of it
                self.out_bytes = 0
                return
            self.out_bytes -= written
            while written:
                first = out[0]
                if len(first) <= written:
                    written -= len(first)
                    out.popleft()
                else:
                    out[0] = memoryview(first)[written:]
                    written = 0

    def _write_lending(self, fd: int) -> int:
        """Write what comes before the first lendable piece in the queue, or lend that piece if
        it comes first."""
        out = self.out
        index = next((i for i, piece in enumerate(out) if _lending.lendable(piece)), len(out))
        if index:
            return os.writev(fd, list(itertools.islice(out, min(index, 64))))
        return self.lender.lend(fd, out[0], self._queued_total - self.out_bytes)
