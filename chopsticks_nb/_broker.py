"""The broker: the one I/O thread that serves every pipe of every tunnel, and their timers.

Nothing on the controller costs a thread per host. The thread starts with the first pipe or
timer and ends when it has none left, so a closed program leaves no thread behind.
"""

from __future__ import annotations

import contextlib
import heapq
import itertools
import logging
import os
import selectors
import threading
import time
from collections import deque
from typing import Callable

log = logging.getLogger("chopsticks_nb")

Callback = Callable[[], None]


class TimerHandle:
    """A pending :meth:`Broker.call_later`; ``cancel()`` stops it."""

    __slots__ = ("callback", "cancelled", "when")

    def __init__(self, when: float, callback: Callback) -> None:
        self.when = when
        self.callback = callback
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True


class Broker:
    """A selector loop on a thread of its own; every method but the ``call_*`` ones is for it."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._pending: deque[Callback] = deque()
        self._timers: list[tuple[float, int, TimerHandle]] = []
        self._seq = itertools.count()
        self._thread: threading.Thread | None = None
        self._selector: selectors.BaseSelector | None = None
        self._wake_r = self._wake_w = -1
        self._woken = False

    # -- any thread ---------------------------------------------------------------------------

    def call_soon(self, callback: Callback) -> None:
        """Run ``callback`` on the broker thread, soon."""
        with self._lock:
            self._pending.append(callback)
            self._wake_locked()

    def call_later(self, delay: float, callback: Callback) -> TimerHandle:
        """Run ``callback`` on the broker thread after ``delay`` seconds, unless cancelled."""
        handle = TimerHandle(time.monotonic() + delay, callback)
        with self._lock:
            heapq.heappush(self._timers, (handle.when, next(self._seq), handle))
            self._wake_locked()
        return handle

    def run_and_wait(self, callback: Callback, timeout: float = 10.0) -> None:
        """Run ``callback`` on the broker thread and wait until it has run."""
        if self.in_broker_thread():
            callback()
            return
        done = threading.Event()

        def run() -> None:
            try:
                callback()
            finally:
                done.set()

        self.call_soon(run)
        done.wait(timeout)

    def in_broker_thread(self) -> bool:
        return threading.current_thread() is self._thread

    def _wake_locked(self) -> None:
        if self._thread is None:
            self._start_locked()
        elif not self._woken and threading.current_thread() is not self._thread:
            self._woken = True
            os.write(self._wake_w, b"\0")

    def _start_locked(self) -> None:
        self._selector = selectors.DefaultSelector()
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_r, False)
        os.set_blocking(self._wake_w, False)
        self._selector.register(self._wake_r, selectors.EVENT_READ, None)
        self._woken = False
        self._thread = threading.Thread(target=self._run, name="chopsticks-broker", daemon=True)
        self._thread.start()

    # -- broker thread only ----------------------------------------------------------------------

    def watch(self, fd: int, writable: bool, callback: Callback) -> None:
        """Call ``callback`` whenever ``fd`` is readable (or writable)."""
        assert self._selector is not None
        events = selectors.EVENT_WRITE if writable else selectors.EVENT_READ
        try:
            self._selector.modify(fd, events, callback)
        except KeyError:
            self._selector.register(fd, events, callback)

    def unwatch(self, fd: int) -> None:
        if self._selector is not None:
            with contextlib.suppress(KeyError, ValueError):
                self._selector.unregister(fd)

    def _run(self) -> None:
        selector = self._selector
        assert selector is not None
        while True:
            for key, _ in selector.select(self._next_timeout()):
                if key.data is None:
                    self._drain_wake_pipe()
                else:
                    self._guarded(key.data)
            with self._lock:
                self._woken = False
                batch = list(self._pending)
                self._pending.clear()
            for callback in batch:
                self._guarded(callback)
            self._run_due_timers()
            if self._stop_if_idle():
                return

    def _next_timeout(self) -> float | None:
        with self._lock:
            if self._pending:
                return 0
            if not self._timers:
                return None
            return max(0.0, self._timers[0][0] - time.monotonic())

    def _drain_wake_pipe(self) -> None:
        try:
            while os.read(self._wake_r, 4096):
                pass
        except BlockingIOError:
            pass

    def _run_due_timers(self) -> None:
        now = time.monotonic()
        while True:
            with self._lock:
                if not self._timers or self._timers[0][0] > now:
                    return
                handle = heapq.heappop(self._timers)[2]
            if not handle.cancelled:
                self._guarded(handle.callback)

    def _stop_if_idle(self) -> bool:
        assert self._selector is not None
        if len(self._selector.get_map()) > 1:  # the cheap test first: this runs every turn
            return False
        with self._lock:
            self._timers = [t for t in self._timers if not t[2].cancelled]
            heapq.heapify(self._timers)
            if self._pending or self._timers:
                return False
            self._selector.close()
            os.close(self._wake_r)
            os.close(self._wake_w)
            self._selector = None
            self._thread = None
            return True

    @staticmethod
    def _guarded(callback: Callback) -> None:
        try:
            callback()
        except Exception:  # one tunnel's bug must not stop every other tunnel's I/O
            log.exception("chopsticks_nb broker callback failed")

    def _after_fork_in_child(self) -> None:
        # The parent's thread does not exist here; its pipes belong to the parent.
        self._lock = threading.Lock()
        self._pending.clear()
        self._timers = []
        self._thread = None
        self._selector = None


BROKER = Broker()
os.register_at_fork(after_in_child=BROKER._after_fork_in_child)
