"""The speed-up by which a caller waiting for its answer reads it from the agent's pipe itself.

Without it the broker thread reads the answer and wakes the waiting caller: two thread
wake-ups per round trip, the largest part of a small call's cost (bench/README.md). With it a
caller *claims* the connection's stdout before sending, reads and handles every frame as the
broker would until its answer is in, then *releases* it. Between calls in a row the pipe is
kept for the next caller: the broker watches it again only once no caller has read it for
:data:`KEEP_FOR_CALLERS` seconds (pausing and resuming its watch around every call costs more
than a small call), or at once when an operation whose answer nobody reads is in flight.

Two switches (see _speedups): ``callers_read`` (off: the broker reads everything) and ``poll``
(both ends poll briefly for the answer before they sleep, while answers come that fast).
"""

from __future__ import annotations

import _signal  # type: ignore[import-not-found]  # signal without its enum wrappers (bench/README.md)
import select
import signal
import threading
import time
from typing import Any, Callable, Protocol

from . import _agent, _speedups
from ._broker import BROKER
from ._requests import Operation, RequestTable
from ._writer import FrameWriter

__all__ = ["DeferredInterrupt", "StdoutTurns"]

ENABLED = _speedups.enabled("callers_read")
POLL = _speedups.enabled("poll")

#: The broker watches a connection's stdout again once no caller has read it for this long.
#: Output that arrives between calls (a remote thread's prints) waits at most this long.
KEEP_FOR_CALLERS = 0.002


class Pipe(Protocol):
    """What the turns need of their connection."""

    writer: FrameWriter
    requests: RequestTable

    @property
    def backlog(self) -> bool:
        """Complete frames wait to be handled, read already (the broker leaves a flood's for
        later)."""

    def read_stdout(self, on_broker: bool = False) -> None:
        """Read what stdout holds and handle the frames (by whoever holds the read lock; the
        broker thread says so: it shares its turns among connections)."""


class StdoutTurns:
    """Whose turn it is to read one connection's stdout: the broker's, or a waiting caller's.

    ``read_lock`` is held by whoever reads: the broker in its callback, or a caller from
    :meth:`claim` to :meth:`release`.
    """

    def __init__(self, pipe: Pipe) -> None:
        self.pipe = pipe
        self.read_lock = threading.Lock()
        self.fd = -1
        self.closed = False  # the connection ended, or stdout is at EOF: nobody reads it
        #: the thread of the caller holding the pipe
        self.reader: int | None = None
        #: since when the pipe is kept for callers, unwatched by the broker (None: it is not)
        self.kept_since: float | None = None
        self.polls = _agent.PollPolicy(POLL)
        self._lock = threading.Lock()
        self._recheck_armed = False
        self._last_release = 0.0
        self._poll: select.poll | None = None

    # -- the broker's turn ----------------------------------------------------------------------

    def begin(self) -> None:
        """Broker thread: the broker reads stdout (``fd``) from now on, unless a caller does."""
        with self._lock:
            if self.reader is None and self.kept_since is None:
                self._watch_locked()

    def close(self) -> None:
        """Nobody reads stdout any more (the connection ended or it is at EOF)."""
        with self._lock:
            self.closed = True
            self.kept_since = None

    def return_to_broker_now(self) -> None:
        """If the pipe is kept for callers, let the broker read it at once: an operation whose
        answer nobody may read is in flight."""
        if self.kept_since is not None:
            with self._lock:
                if self.kept_since is not None:
                    self._watch_locked()

    def _on_readable(self) -> None:
        if not self.read_lock.acquire(blocking=False):
            with self._lock:
                if self.reader is not None and self.fd >= 0:
                    BROKER.unwatch(self.fd)  # claimed after our poll: release() watches it again
            return
        try:
            self.pipe.read_stdout(on_broker=True)
        finally:
            self.read_lock.release()

    def _watch_locked(self) -> None:
        self.kept_since = None
        if not self.closed and self.fd >= 0:
            BROKER.watch(self.fd, False, self._on_readable)

    def _return_when_idle(self) -> None:
        """Broker thread: watch stdout again once callers left it for KEEP_FOR_CALLERS. While
        callers keep taking it, this timer stays armed: arming it again from the next caller
        would wake this thread (a GIL hand-off and two context switches) every few calls."""
        with self._lock:
            since = self.kept_since
            if since is None and self.reader is not None:
                since = self._last_release  # a caller has it: look again if calls keep coming
            left = 0.0 if since is None else since + KEEP_FOR_CALLERS - time.monotonic()
            if left > 0 and not self.closed:
                BROKER.call_later(left, self._return_when_idle)
                return
            self._recheck_armed = False
            if self.kept_since is not None:
                self._watch_locked()

    # -- a caller's turn ---------------------------------------------------------------------------

    def mine(self) -> bool:
        """Whether the calling thread holds the pipe."""
        return self.reader == threading.get_ident()

    def claim(self) -> bool:
        """Take stdout for the calling thread, if free. Claim before sending a request, or the
        broker may read its answer first."""
        if not ENABLED or BROKER.in_broker_thread() or not self.read_lock.acquire(blocking=False):
            return False
        with self._lock:
            if self.closed or self.fd < 0:
                self.read_lock.release()
                return False
            self.reader = threading.get_ident()
            if self.kept_since is None:
                BROKER.pause(self.fd)
            else:
                self.kept_since = None  # the broker was not watching it: nothing to undo
        return True

    def release(self) -> None:
        """Give stdout back: to the broker at once if operations await answers, else keep it
        for the next caller (see KEEP_FOR_CALLERS)."""
        with self._lock:
            self.reader = None
            if not self.closed:
                if self.pipe.requests.operations:
                    self._watch_locked()
                else:
                    self.kept_since = self._last_release = time.monotonic()
                    if not self._recheck_armed:
                        self._recheck_armed = True
                        BROKER.call_later(KEEP_FOR_CALLERS, self._return_when_idle)
        writer = self.pipe.writer
        if writer.out and not writer.watched:  # what this thread left unwritten
            writer.hand_rest_to_broker()
        self.read_lock.release()

    def read_until(
        self, operation: Operation, deadline: float | None, interrupts: DeferredInterrupt
    ) -> None:
        """Read and handle frames on this thread (which holds the pipe) until ``operation`` is
        done, the pipe closes or ``deadline`` passes. The thread also writes what it left queued
        (a frame larger than the pipe's room), as the broker would: handing that to the broker
        costs two thread wake-ups per call."""
        poll = self._poll
        if poll is None:
            poll = self._poll = select.poll()  # not select(): no FD_SETSIZE limit
            poll.register(self.fd, select.POLLIN)
        writer = self.pipe.writer
        stdin = writer.fd  # kept: the writer forgets it when the connection ends
        writing = False
        spin = self.polls.ready()
        while not operation.done and not self.closed:
            if interrupts.pending:
                interrupts.deliver()
            if self.pipe.backlog:  # no poll would say so: they are out of the pipe
                self.pipe.read_stdout()
                continue
            if spin and not writer.out:
                spin = False
                if self._spin(operation, interrupts):
                    continue
            if writing != writer.should_caller_write():
                writing = not writing
                if writing:
                    poll.register(stdin, select.POLLOUT)
                else:
                    poll.unregister(stdin)
            wait = -1 if deadline is None else max(0, int((deadline - time.monotonic()) * 1000))
            interrupts._waiting = True  # as interrupts.waiting(), without its cost in this loop
            try:
                ready = poll.poll(wait)
            finally:
                interrupts._waiting = False
            if not ready:
                if wait == 0:
                    break
                continue
            if writing:
                writer.flush_unless_watched()
            self.pipe.read_stdout()
        if writing:
            poll.unregister(stdin)

    def _spin(self, operation: Operation, interrupts: DeferredInterrupt) -> bool:
        """Read without sleeping for up to SPIN seconds; whether the answer came meanwhile."""
        end = time.perf_counter() + _agent.SPIN
        while True:
            self.pipe.read_stdout()
            if operation.done or self.closed:
                self.polls.answered()
                return True
            if interrupts.pending:
                interrupts.deliver()
            if time.perf_counter() > end:
                self.polls.in_vain()
                return False


class DeferredInterrupt:
    """While a caller reads its pipe, Ctrl-C interrupts its waits but never the handling of a
    frame: a KeyboardInterrupt in the middle of one would lose it (maybe the answer another
    thread waits for) or the bytes just read. Only the main thread receives KeyboardInterrupt,
    so elsewhere this does nothing."""

    def __init__(self) -> None:
        self._waiting = False
        self._previous: Callable[[int, Any], Any] | None = None
        self._pending: tuple[int, Any] | None = None

    @property
    def pending(self) -> bool:
        return self._pending is not None

    def __enter__(self) -> DeferredInterrupt:
        if threading.get_ident() == threading.main_thread().ident:
            handler = _signal.getsignal(signal.SIGINT)
            if callable(handler):  # SIG_IGN and SIG_DFL raise nothing
                self._previous = handler
                _signal.signal(signal.SIGINT, self._on_sigint)
        return self

    def waiting(self) -> _Waiting:
        """A block during which Ctrl-C is raised at once (a wait, with no frame half-handled)."""
        return _Waiting(self)

    def _on_sigint(self, signum: int, frame: Any) -> None:
        assert self._previous is not None
        if self._waiting:
            self._previous(signum, frame)
        else:
            self._pending = (signum, frame)

    def deliver(self) -> None:
        """At a safe point (no frame half-handled): raise a Ctrl-C that was deferred."""
        pending, self._pending = self._pending, None
        if pending is not None and self._previous is not None:
            self._previous(*pending)

    def __exit__(self, *exc_info: object) -> None:
        if self._previous is None:
            return
        _signal.signal(signal.SIGINT, self._previous)
        if self._pending is not None:
            self.deliver()


class _Waiting:
    __slots__ = ("interrupts",)

    def __init__(self, interrupts: DeferredInterrupt) -> None:
        self.interrupts = interrupts

    def __enter__(self) -> None:
        self.interrupts._waiting = True
        if self.interrupts._pending is not None:
            self.interrupts.deliver()

    def __exit__(self, *exc_info: object) -> None:
        self.interrupts._waiting = False
