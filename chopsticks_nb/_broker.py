"""The broker: the one I/O thread that serves every pipe of every tunnel, and their timers.

Nothing on the controller costs a thread per host. The thread starts with the first pipe or
timer and ends when it has none left, so a closed program leaves no thread behind.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import os
import select
import threading
import time
from collections import deque
from typing import Any, Callable

log = logging.getLogger("chopsticks_nb")

Callback = Callable[[], None]

READABLE = select.POLLIN
WRITABLE = select.POLLOUT


class _Poller:
    """Which fds to wait for, and each one's callback: epoll where there is one, else poll().

    Any thread may change it (a caller that reads its own answer pauses its fd and resumes
    it, one syscall each). epoll sees a change made while the broker waits in it; poll() only
    on its next call, so ``sees_changes_at_once`` tells the caller to wake the broker.
    """

    def __init__(self) -> None:
        self._epoll = getattr(select, "epoll", None)
        self._backend: Any = self._epoll() if self._epoll else select.poll()
        self.sees_changes_at_once = self._epoll is not None
        self.callbacks: dict[int, Callback | None] = {}

    def set(self, fd: int, events: int, callback: Callback | None) -> None:
        if fd in self.callbacks:
            self._backend.modify(fd, events)
        else:
            self._backend.register(fd, events)
        self.callbacks[fd] = callback

    def pause(self, fd: int) -> None:
        """Stop reporting ``fd`` but keep it registered: resuming it with set() is a cheaper
        syscall than registering it again. (Hang-ups are still reported.)"""
        if fd in self.callbacks:
            self._backend.modify(fd, 0)

    def remove(self, fd: int) -> None:
        if self.callbacks.pop(fd, 0) != 0:
            try:  # noqa: SIM105 - suppress() costs more, and this runs on every call()
                self._backend.unregister(fd)
            except (KeyError, OSError):  # closed: the kernel dropped it
                pass

    def wait(self, timeout: float | None) -> list[tuple[int, int]]:
        if self._epoll is not None:
            return self._backend.poll(-1 if timeout is None else timeout)  # type: ignore[no-any-return]
        return self._backend.poll(None if timeout is None else timeout * 1000)  # type: ignore[no-any-return]

    def close(self) -> None:
        if self._epoll is not None:
            self._backend.close()


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
    """A poll loop on a thread of its own, serving callbacks for fds and timers."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._pending: deque[Callback] = deque()
        self._timers: list[tuple[float, int, TimerHandle]] = []
        self._seq = itertools.count()
        self._thread: threading.Thread | None = None
        self._ident: int | None = None  # the thread's, for a cheap in_broker_thread()
        self._poller: _Poller | None = None
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
        return threading.get_ident() == self._ident

    def _wake_locked(self) -> None:
        if self._thread is None:
            self._start_locked()
        elif not self._woken and threading.current_thread() is not self._thread:
            self._woken = True
            os.write(self._wake_w, b"\0")

    def _start_locked(self) -> None:
        self._poller = _Poller()
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_r, False)
        os.set_blocking(self._wake_w, False)
        self._poller.set(self._wake_r, READABLE, None)
        self._woken = False
        self._thread = threading.Thread(target=self._run, name="chopsticks-broker", daemon=True)
        self._thread.start()

    def watch(self, fd: int, writable: bool, callback: Callback) -> None:
        """Call ``callback`` on the broker thread whenever ``fd`` is readable (or writable).

        Any thread may call it, and :meth:`unwatch`: a caller that reads its own answer takes
        its pipe from the broker and gives it back.
        """
        with self._lock:
            if self._poller is None:
                self._start_locked()
            assert self._poller is not None
            self._poller.set(fd, WRITABLE if writable else READABLE, callback)
            if not self._poller.sees_changes_at_once:
                self._wake_locked()

    def pause(self, fd: int) -> None:
        """Stop watching ``fd`` for a while: a caller reads it itself, then watch()es it again."""
        with self._lock:
            if self._poller is not None:
                self._poller.pause(fd)

    def unwatch(self, fd: int) -> None:
        """Stop watching ``fd``. A callback for it that a wait had already returned may still
        run: callbacks check that their fd is still theirs."""
        with self._lock:
            if self._poller is not None:
                self._poller.remove(fd)

    # -- broker thread only ----------------------------------------------------------------------

    def _run(self) -> None:
        self._ident = threading.get_ident()  # first: its callbacks may ask in_broker_thread()
        poller = self._poller
        assert poller is not None
        callbacks = poller.callbacks
        while True:
            for fd, _ in poller.wait(self._next_timeout()):
                callback = callbacks.get(fd)
                if callback is not None:
                    self._guarded(callback)
                elif fd == self._wake_r:
                    self._drain_wake_pipe()
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
        assert self._poller is not None
        if len(self._poller.callbacks) > 1:  # the cheap test first: this runs every turn
            return False
        with self._lock:
            # Again under the lock: another thread may have given a pipe back meanwhile.
            if len(self._poller.callbacks) > 1:
                return False
            self._timers = [t for t in self._timers if not t[2].cancelled]
            heapq.heapify(self._timers)
            if self._pending or self._timers:
                return False
            self._poller.close()
            os.close(self._wake_r)
            os.close(self._wake_w)
            self._poller = None
            self._thread = self._ident = None
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
        self._thread = self._ident = None
        self._poller = None


BROKER = Broker()
os.register_at_fork(after_in_child=BROKER._after_fork_in_child)
