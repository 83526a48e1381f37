"""Where remote output goes: handlers that print it as it comes or pass it on in batches.

The handler types; :func:`default_output`, what a tunnel uses unless told otherwise (lines
prefixed with their host, printed as they complete in a terminal, capped per cell in a Jupyter
kernel); :class:`HostPrefixPrinter`, the terminal's; :class:`OutputBatcher`, which passes output
on in batches, on the library's I/O thread; :func:`printable`, remote text made safe for a
terminal.

Remote stdout and stderr arrive on the broker thread (the one I/O thread of the controller), or
in the thread waiting for a call's answer, in pieces as the remote writes them. A handler is
called with each piece: an :data:`OutputHandler` ``(stream, text)`` for one tunnel, a
:data:`HostOutput` ``(host, stream, text)`` for a group operation. Printing each piece is fine
in a terminal; a display that is costly to update wants the pieces in batches, which
:class:`OutputBatcher` makes without a thread of its own::

    def show(batch):                 # a list of (host, stream, text), in arrival order
        for host, stream, text in batch:
            print(f"[{host}:{stream}] {text}", end="")

    with OutputBatcher(show, interval=0.5) as batcher:
        group.run(work, output=batcher)

Remote text is data: :func:`printable` shows terminal control sequences (a window title, a
clear screen, a clipboard write) as escapes such as ``\\x1b`` instead of passing them to the
terminal, and every handler here prints through it.
"""

from __future__ import annotations

import shutil
import sys
import threading
import time
from typing import Callable

from ._broker import BROKER, TimerHandle
from .outputlog import OutputLog, printable

__all__ = [
    "HostOutput",
    "HostPrefixPrinter",
    "OutputBatch",
    "OutputBatcher",
    "OutputHandler",
    "StatusLine",
    "default_output",
    "printable",
    "status_line",
]

#: Receives (stream name, text) for one tunnel; stream is "stdout" or "stderr".
OutputHandler = Callable[[str, str], None]

#: Receives ``(host, stream, text)`` for the remote stdout/stderr of one group operation;
#: ``stream`` is ``"stdout"`` or ``"stderr"``. Called on the broker thread: keep it quick.
HostOutput = Callable[[str, str, str], None]

#: What an :class:`OutputBatcher` passes on: ``(host, stream, text)`` pieces in arrival order,
#: consecutive pieces of one host and stream joined into one.
OutputBatch = list[tuple[str, str, str]]

#: Longest line a printer keeps whole; the rest of a longer one is counted, not printed.
MAX_LINE_CHARS = 64 * 1024


class StatusLine:
    """One line of status redrawn in place at the bottom of a terminal (on stderr).

    Printers clear it before they print (:meth:`clear`); its owner draws it again at its next
    update. Only one operation shows it at a time: the latest to :meth:`show` it.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._shown = False

    def show(self, text: str) -> None:
        """Draw ``text`` (cut to the terminal's width) in place of the line shown."""
        width = max(20, shutil.get_terminal_size().columns - 1)
        line = printable(text)[:width]
        with self._lock:
            self._write(f"\r{line}\x1b[K")
            self._shown = True

    def clear(self) -> None:
        """Erase the line, if it is shown."""
        if not self._shown:
            return
        with self._lock:
            if self._shown:
                self._write("\r\x1b[K")
                self._shown = False

    @staticmethod
    def _write(text: str) -> None:
        try:
            sys.stderr.write(text)
            sys.stderr.flush()
        except (OSError, ValueError):  # a closed or broken terminal: nothing to draw on
            pass


#: The terminal's status line (what ``Group`` operations draw their progress on).
status_line = StatusLine()


class HostPrefixPrinter:
    """Prints each complete remote line as ``[host] line`` to the matching local stream.

    For terminals and scripts: each line as soon as it is complete, with ``\\r`` resolved (a
    progress bar's line is its last state), control characters escaped (:func:`printable`) and
    lines longer than :data:`MAX_LINE_CHARS` cut.
    """

    def __init__(self, host: str) -> None:
        self.host = host
        self._prefix = printable(f"[{host}] ")
        self._lines = OutputLog(
            sys.maxsize, 0, max_line_chars=MAX_LINE_CHARS, max_chars=sys.maxsize, keep_head=False
        )
        self._lock = threading.Lock()

    def __call__(self, stream: str, text: str) -> None:
        with self._lock:
            lines = self._lines.add(stream, text)
        self._print(lines)

    def flush(self) -> None:
        """Print any unterminated lines (the tunnel is closing, the work is over)."""
        with self._lock:
            lines = self._lines.finish()
        self._print(lines)

    def _print(self, lines: list[tuple[str, str]]) -> None:
        if not lines:
            return
        status_line.clear()
        for stream in ("stdout", "stderr"):
            text = "".join(f"{self._prefix}{printable(t)}\n" for s, t in lines if s == stream)
            if text:
                out = sys.stdout if stream == "stdout" else sys.stderr
                out.write(text)
                out.flush()


def default_output(host: str) -> OutputHandler:
    """A tunnel's output handler unless it is given one: ``[host] line`` as each line completes.

    In a Jupyter kernel the lines become the running cell's stream output, which the kernel
    sends a few times a second whatever the number of lines, and each cell shows at most the
    first lines of each host and, when it ends, a count of the rest and the last of them
    (:mod:`chopsticks_nb._kernel_output`). Elsewhere (a terminal, a script) every line is
    printed as it completes (:class:`HostPrefixPrinter`). Which one is decided for each piece,
    so that a tunnel made before a kernel redirected ``sys.stdout`` behaves.
    """
    from ._kernel_output import kernel_output

    printer = HostPrefixPrinter(host)

    def handler(stream: str, text: str) -> None:
        cells = kernel_output()
        if cells is None:
            printer(stream, text)
        else:
            cells.write(host, stream, text)

    return handler


class OutputBatcher:
    """Collects remote output and passes it to ``flush`` in batches, once per ``interval`` at most.

    An instance is a :data:`HostOutput` (give it to a group operation as ``output=``), and
    :meth:`for_host` makes an :data:`OutputHandler` for a tunnel's ``output=``. The first
    piece after a quiet spell is passed on within ``interval`` seconds; pieces that arrive
    meanwhile join its batch. ``flush(batch)`` runs on the library's I/O thread (or in the
    thread that calls :meth:`flush` or :meth:`close`), never twice at once: keep it quick,
    and never call :meth:`flush` or :meth:`close` from it.

    ``tick``: also call ``on_tick()`` every ``tick`` seconds, from :meth:`start` until
    :meth:`close`, on the same thread and never at the same time as ``flush`` (for what moves
    on without output, such as an elapsed time). Without ``tick`` nothing runs but the
    batches, and nothing needs closing, though :meth:`close` passes on what is left at once.
    Used as a context manager, it starts on entry and closes on exit.

    After :meth:`close`, each piece that still arrives is passed on at once, in a batch of its
    own: late output is never lost.
    """

    def __init__(
        self,
        flush: Callable[[OutputBatch], None],
        *,
        interval: float = 0.1,
        tick: float | None = None,
        on_tick: Callable[[], None] | None = None,
    ) -> None:
        if interval < 0:
            raise ValueError(f"interval must be 0 or more seconds, not {interval!r}")
        if (tick is None) != (on_tick is None):
            raise ValueError("tick and on_tick go together: give both or neither")
        if tick is not None and tick <= 0:
            raise ValueError(f"tick must be a positive number of seconds, not {tick!r}")
        self.interval = interval
        self.tick = tick
        self._on_flush = flush
        self._on_tick = on_tick
        # _lock guards the batch and the timers; _turn is held while a callback runs, so that
        # callbacks run one at a time and in order. A callback may take a lock of its own that
        # is held while calling __call__ or wake() (they take only _lock).
        self._lock = threading.Lock()
        self._turn = threading.Lock()
        # Runs of pieces of one host and stream, joined when passed on: joining each piece as it
        # came would copy the run again for every piece (quadratic in a flood of short lines).
        self._batch: list[tuple[str, str, list[str]]] = []
        self._woken = False
        self._timer: TimerHandle | None = None
        self._ticker: TimerHandle | None = None
        self._last_flush = float("-inf")
        self._state = "new"  # new -> running (ticks) -> closed

    # -- feeding it ------------------------------------------------------------------------------

    def __call__(self, host: str, stream: str, text: str) -> None:
        """Add a piece of ``host``'s output (a :data:`HostOutput`; any thread)."""
        with self._lock:
            closed = self._state == "closed"
            if not closed:
                batch = self._batch
                if batch and batch[-1][0] == host and batch[-1][1] == stream:
                    batch[-1][2].append(text)
                else:
                    batch.append((host, stream, [text]))
                self._schedule()
        if closed:
            with self._turn:
                self._on_flush([(host, stream, text)])

    def for_host(self, host: str) -> OutputHandler:
        """An :data:`OutputHandler` for one tunnel (``Local(name, output=...)``): its pieces
        join this batcher's batches under ``host``."""

        def handler(stream: str, text: str) -> None:
            self(host, stream, text)

        return handler

    def wake(self) -> None:
        """Call ``flush`` within ``interval`` even if no output arrives (with an empty batch
        then): something else that the flush shows has changed."""
        with self._lock:
            if self._state != "closed":
                self._woken = True
                self._schedule()

    # -- its life --------------------------------------------------------------------------------

    def start(self) -> OutputBatcher:
        """Start the ticks (if ``tick`` was given). Idempotent; returns self."""
        with self._lock:
            if self._state == "new":
                self._state = "running"
                if self.tick is not None:
                    self._ticker = BROKER.call_later(self.tick, self._tick)
        return self

    def flush(self) -> None:
        """Pass on what has been collected now, in this thread (nothing if there is nothing)."""
        with self._turn:
            self._flush_locked()

    def close(self) -> None:
        """Stop the ticks and pass on what is left, in this thread. Idempotent."""
        with self._turn:
            with self._lock:
                if self._state == "closed":
                    return
                self._state = "closed"
                for timer in (self._timer, self._ticker):
                    if timer is not None:
                        timer.cancel()
                self._timer = self._ticker = None
            self._flush_locked()

    def __enter__(self) -> OutputBatcher:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- internals -------------------------------------------------------------------------------

    def _schedule(self) -> None:
        """Arm the flush timer, unless it is armed (_lock is held)."""
        if self._timer is None:
            delay = max(0.0, self.interval - (time.monotonic() - self._last_flush))
            self._timer = BROKER.call_later(delay, self._timer_flush)

    def _timer_flush(self) -> None:
        with self._turn:
            with self._lock:
                self._timer = None
            self._flush_locked()

    def _flush_locked(self) -> None:
        """Take the batch and pass it on (_turn is held)."""
        with self._lock:
            runs, self._batch = self._batch, []
            woken, self._woken = self._woken, False
            self._last_flush = time.monotonic()
        if runs or woken:
            self._on_flush([(host, stream, "".join(texts)) for host, stream, texts in runs])

    def _tick(self) -> None:
        with self._turn:
            with self._lock:
                if self._state != "running":
                    return
                self._ticker = None
            assert self._on_tick is not None
            try:
                self._on_tick()
            finally:
                with self._lock:
                    if self._state == "running" and self.tick is not None:
                        self._ticker = BROKER.call_later(self.tick, self._tick)
