"""What a group operation shows while it runs: a line in a terminal, a live view in a notebook.

Each group operation (``call``, ``run``, ``exec``, ``put``, ``fetch``, ``connect``) and each
``Queue.run`` opens a :class:`Watch` at its start, tells it of every host (or task) that
finishes and of the remote output, and finishes it at the end. What the watch shows is
decided once, at the start:

- nothing with ``quiet=True``, or when no one watches (output to a file or a pipe);
- in a Jupyter kernel where the notebook layer is loaded (``%load_ext chopsticks_nb``), its
  live view: the notebook layer registers it with :func:`set_presenter` (the core never imports
  the notebook layer); it appears once the operation has run about a second;
- in a terminal (stderr is a tty), one line, drawn once the operation has run
  :data:`SHOW_AFTER` seconds, redrawn a few times a second and erased at the end::

      call on web[01-16]: 2 connecting, 9 running, 4 done, 1 failed · 2.4 s
"""

from __future__ import annotations

import functools
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Optional, Protocol

from ._broker import BROKER, TimerHandle
from .hosts import fold
from .output import HostOutput, OutputHandler, status_line
from .render import format_seconds

if TYPE_CHECKING:
    from .result import HostDone, ProgressCallback
    from .tunnel import BaseTunnel

__all__ = [
    "SHOW_AFTER",
    "Operation",
    "Presenter",
    "Watch",
    "Watching",
    "set_presenter",
    "start_watch",
]

#: Seconds an operation runs before its progress is shown.
SHOW_AFTER = 1.0
#: Seconds between redraws of the terminal's line.
REDRAW = 0.25


@dataclass(frozen=True)
class Operation:
    """What a watch is told of an operation when it starts."""

    #: ``"call"``, ``"exec"``, ``"put"``, ``"fetch"``, ``"connect"`` or ``"queue"``
    what: str
    #: the tunnels it runs on, in the group's order
    tunnels: Sequence[BaseTunnel]
    #: the units of work: one per host, or one per task for a queue
    total: int
    #: whether the remote output of the operation can be passed to the watch
    output: bool = True

    @property
    def hosts(self) -> list[str]:
        return [tunnel.host for tunnel in self.tunnels]


class Watch(Protocol):
    """What an operation tells the display that watches it (any thread but the broker's)."""

    #: whether :meth:`output` wants the remote output (else it goes where it would anyway)
    takes_output: bool

    def output(self, host: str, stream: str, text: str) -> None:
        """A piece of ``host``'s remote output (a :data:`~chopsticks_nb.output.HostOutput`)."""

    def done(self, done: HostDone, *, host_finished: bool = True) -> None:
        """One unit of work ended; ``host_finished`` is false when the host has more to do."""

    def finish(self) -> None:
        """The operation is over (done, failed or interrupted): settle the display."""


#: Makes the watch of an operation, or returns None to leave it to the next choice.
Presenter = Callable[[Operation], Optional[Watch]]

_presenter: Presenter | None = None


def set_presenter(presenter: Presenter | None) -> Presenter | None:
    """Use ``presenter`` for the operations that start from now on; the one it replaces.

    The notebook layer registers its live view here when it is loaded.
    """
    global _presenter
    previous, _presenter = _presenter, presenter
    return previous


def start_watch(operation: Operation, *, quiet: bool = False) -> Watch | None:
    """The watch for ``operation`` (None: nothing is shown)."""
    if quiet:
        return None
    presenter = _presenter
    if presenter is not None:
        watch = presenter(operation)
        if watch is not None:
            return watch
    if _is_terminal(sys.stderr) and "ipykernel" not in sys.modules:
        return TerminalLine(operation)
    return None


def _is_terminal(stream: Any) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError, OSError):
        return False


class Watching:
    """One operation's watch, fed alongside the callbacks the user gave.

    ``handler(host)`` is the output handler for the host's part of the operation (None: the
    tunnel's own), ``progress`` the progress callback; used as a context manager, it finishes
    the watch on the way out, whatever happened.
    """

    def __init__(
        self,
        operation: Operation,
        *,
        quiet: bool = False,
        output: HostOutput | None = None,
        progress: ProgressCallback | None = None,
    ) -> None:
        self.watch = start_watch(operation, quiet=quiet)
        self._output = output
        self._progress = progress
        self._takes_output = self.watch is not None and operation.output and self.watch.takes_output

    def handler(self, host: str) -> OutputHandler | None:
        user = self._output
        if not self._takes_output:
            return None if user is None else functools.partial(user, host)
        assert self.watch is not None
        watched = self.watch.output
        if user is None:
            return functools.partial(watched, host)

        def both(stream: str, text: str) -> None:
            watched(host, stream, text)
            user(host, stream, text)

        return both

    def progress(self, done: HostDone) -> None:
        self.report(done)

    def report(self, done: HostDone, *, host_finished: bool = True) -> None:
        if self.watch is not None:
            self.watch.done(done, host_finished=host_finished)
        if self._progress is not None:
            self._progress(done)

    @property
    def progress_callback(self) -> ProgressCallback | None:
        """:meth:`progress` if anyone listens, else None."""
        if self.watch is None and self._progress is None:
            return None
        return self.progress

    def finish(self) -> None:
        if self.watch is not None:
            self.watch.finish()

    def __enter__(self) -> Watching:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.finish()


class TerminalLine:
    """The progress of an operation on the terminal's status line (see the module)."""

    takes_output = False

    def __init__(self, operation: Operation, *, show_after: float | None = None) -> None:
        self.operation = operation
        self._label = f"{operation.what} on {fold(operation.hosts)}"
        self._started = time.monotonic()
        self._lock = threading.Lock()
        self._done = 0
        self._failed = 0
        self._finished_hosts: set[str] = set()
        self._over = False
        delay = SHOW_AFTER if show_after is None else show_after
        self._timer: TimerHandle | None = BROKER.call_later(delay, self._draw)

    def output(self, host: str, stream: str, text: str) -> None:
        pass

    def done(self, done: HostDone, *, host_finished: bool = True) -> None:
        with self._lock:
            self._done += 1
            self._failed += not done.ok
            if host_finished:
                self._finished_hosts.add(done.host)

    def text(self) -> str:
        """``call on web[01-16]: 2 connecting, 9 running, 4 done, 1 failed · 2.4 s``"""
        connecting = running = 0
        for tunnel in self.operation.tunnels:
            if tunnel.host not in self._finished_hosts:
                if tunnel.connected:
                    running += 1
                else:
                    connecting += 1
        parts = []
        if connecting:
            parts.append(f"{connecting} connecting")
        parts.append(f"{running} running")
        unit = "tasks " if self.operation.what == "queue" else ""
        parts.append(f"{self._done} of {self.operation.total} {unit}done")
        if self._failed:
            parts.append(f"{self._failed} failed")
        elapsed = format_seconds(time.monotonic() - self._started)
        return f"{self._label}: {', '.join(parts)} · {elapsed}"

    def _draw(self) -> None:
        with self._lock:
            if self._over:
                return
            status_line.show(self.text())
            self._timer = BROKER.call_later(REDRAW, self._draw)

    def finish(self) -> None:
        with self._lock:
            self._over = True
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None
        status_line.clear()
