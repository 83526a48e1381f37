"""The live view of a running group operation: every host's state and output as it goes.

In a kernel it is two displays under the cell that started the work (:mod:`.grid` draws
them), updated through their display ids, so they stay under that cell whatever runs later, and
no widget model is made (none is left in a saved notebook, nothing needs a comm). Remote output
arrives on the library's I/O thread; it is batched by
:class:`~chopsticks_nb.output.OutputBatcher` and kept per host in bounded
:class:`~chopsticks_nb.outputlog.OutputLog` s; the grid is redrawn at most ten times a second,
less often when it is large (its bytes per second are bounded). When the work ends, the view
settles into the static transcript (:mod:`.transcript`); work that ends before the view was
shown leaves its output as the cell's text, like any other.

The notebook layer registers :meth:`LiveView.for_operation` with
:func:`chopsticks_nb.progress.set_presenter` when it is loaded, so every group operation and
queue run in a kernel shows one once it has run about a second.
"""

from __future__ import annotations

import hashlib
import itertools
import sys
import threading
import time
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, Literal

from ..output import HostPrefixPrinter, OutputBatch, OutputBatcher, default_output
from ..outputlog import OutputLog
from ..progress import SHOW_AFTER, Operation
from ..result import ErrorResult
from ..tunnel import BaseTunnel
from .grid import Row, controls_html, counts_text, grid_html
from .transcript import sections, transcript_html, transcript_text

if TYPE_CHECKING:
    from ..result import HostDone

#: IPython's DisplayHandle (untyped)
DisplayHandle = Any

__all__ = ["LiveView", "ViewMode", "in_kernel"]

#: ``"html"`` (displays updated in place, in a kernel), ``"text"`` (lines printed with a
#: ``[host]`` prefix, for terminals) or ``"auto"``: html in a kernel, text elsewhere.
#: ``"widgets"`` is the old name of ``"html"``.
ViewMode = Literal["auto", "widgets", "html", "text"]

#: Seconds between redraws while nothing else happens (the elapsed times move on).
TICK = 1.0
#: Bytes per second the redraws of one view may send, at most (a large grid redraws less often).
BYTES_PER_SECOND = 250_000
#: Lines of a host shown in its row's panel while the work runs.
PANEL_LINES = 8

_VIEW_IDS = itertools.count(1)


def in_kernel() -> bool:
    """True inside a Jupyter kernel (rich displays work), False in a terminal or a script."""
    if "IPython" not in sys.modules:
        return False
    from IPython import get_ipython

    shell = get_ipython()
    return shell is not None and getattr(shell, "kernel", None) is not None


def _display(bundle: dict[str, str]) -> DisplayHandle:
    """Show ``bundle``; its handle (None where IPython shows nothing: a plain script)."""
    from IPython import display

    show: Any = display.display
    return show(bundle, raw=True, display_id=True)


def _update(handle: DisplayHandle, bundle: dict[str, str]) -> None:
    if handle is not None:
        handle.update(bundle, raw=True)


class _Host:
    """What the view knows of one host."""

    __slots__ = ("digest", "ended", "log", "outcome", "tunnel")

    def __init__(self, log: OutputLog, tunnel: BaseTunnel | None) -> None:
        self.log = log
        self.tunnel = tunnel
        self.outcome: object = None  # None while it runs; then True (ok) or its ErrorResult
        self.ended: float | None = None
        self.digest = hashlib.blake2b(digest_size=16)  # of its shown lines: folds equal output

    def state(self) -> str:
        if self.outcome is None:
            if self.tunnel is not None and not self.tunnel.connected:
                return "connecting"
            return "running"
        if isinstance(self.outcome, ErrorResult):
            if self.outcome.status == "interrupted":
                return "interrupted"
            if self.outcome.status == "timeout":
                return "timed out"
            return "failed"
        return "done"


class LiveView:
    """Every host's state and remote output while a group operation runs, then its transcript.

    Pass its :meth:`output` and :meth:`progress` methods to a group operation::

        with LiveView(group) as view:
            result = group.run(work, output=view.output, progress=view.progress, quiet=True)
        result   # the static table

    ``hosts`` are host names or tunnels (a Group is a list of tunnels; with tunnels, a host
    that is still connecting shows as such). In a kernel the view is a grid with a row per host
    (``mode="html"``); elsewhere each line is printed as it completes (``"text"``). It shows
    once it has run ``show_after`` seconds; work that ends sooner leaves its output as the
    cell's text. ``max_lines`` caps the lines kept per host (the rest are counted, and the last
    ``tail_lines`` of them shown at the end); ``interval`` is the longest time output waits
    before it is shown; ``title`` heads the grid.
    """

    def __init__(
        self,
        hosts: Iterable[str | BaseTunnel],
        *,
        mode: ViewMode = "auto",
        max_lines: int = 500,
        tail_lines: int = 20,
        interval: float = 0.1,
        show_after: float = 0.0,
        title: str | None = None,
        total: int | None = None,
    ) -> None:
        if mode not in ("auto", "widgets", "html", "text"):
            raise ValueError(f"mode must be auto, html or text, not {mode!r}")
        tunnels = list(hosts)
        self.hosts = [t.host if isinstance(t, BaseTunnel) else str(t) for t in tunnels]
        if mode == "auto":
            mode = "html" if in_kernel() else "text"
        self.mode: ViewMode = "html" if mode == "widgets" else mode
        self.interval = interval
        self.show_after = show_after
        self.title = title or f"{len(self.hosts)} host{'s' if len(self.hosts) != 1 else ''}"
        self.total = len(self.hosts) if total is None else total
        self._max_lines = max_lines
        self._tail_lines = tail_lines
        self._hosts: dict[str, _Host] = {}
        for item, name in zip(tunnels, self.hosts):
            tunnel = item if isinstance(item, BaseTunnel) else None
            self._hosts[name] = _Host(self._new_log(), tunnel)
        self._lock = threading.Lock()
        self._view_id = f"{next(_VIEW_IDS)}x{id(self) & 0xFFFF:x}"
        self._started = time.monotonic()
        self._done_units = 0
        self._state = "new"  # -> running -> done
        self._finishing = False
        self._shown = False
        self._dirty = False
        self._controls: DisplayHandle = None
        self._grid: DisplayHandle = None
        self._printers: dict[str, HostPrefixPrinter] = {}
        self._batcher = OutputBatcher(
            self._show_batch, interval=interval, tick=TICK, on_tick=self._tick
        )

    @classmethod
    def for_operation(
        cls, operation: Operation, *, max_lines: int = 500, mode: ViewMode = "auto"
    ) -> LiveView | None:
        """The live view of a group operation in a kernel (None elsewhere: the core draws its
        own terminal line); what the notebook layer registers as the presenter."""
        if mode == "text" or not in_kernel():
            return None
        view = cls(
            operation.tunnels,
            mode="html",
            max_lines=max_lines,
            show_after=SHOW_AFTER,
            title=f"{operation.what} on {_fold(operation.hosts)}",
            total=operation.total,
        )
        return view.start()

    def _new_log(self) -> OutputLog:
        return OutputLog(self._max_lines, self._tail_lines)

    # -- lifecycle -----------------------------------------------------------------------------

    def start(self) -> LiveView:
        """Start watching; the view shows now, or after ``show_after`` seconds."""
        with self._lock:
            if self._state != "new" or self._finishing:
                return self
            self._state = "running"
            self._started = time.monotonic()
            if self.mode == "html" and self.show_after <= 0:
                self._show()
        self._batcher.start()
        return self

    def finish(self) -> None:
        """Show the last output and settle into the static transcript. Idempotent."""
        with self._lock:
            if self._finishing:
                return
            self._finishing = True
        # Not under self._lock: the batcher passes its last batch through _show_batch, which
        # takes it (and a batch being shown on the I/O thread holds the batcher's turn).
        self._batcher.close()
        with self._lock:
            started = self._state == "running"
            for name, host in self._hosts.items():
                self._note_lines(name, host, host.log.finish())
            self._state = "done"
            if not started:
                return
            if self.mode == "text":
                self._finish_text()
            elif self._shown:
                _update(self._controls, {"text/plain": ""})
                _update(self._grid, self._static_bundle())
            else:
                self._leave_as_text()

    def __enter__(self) -> LiveView:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.finish()

    # -- callbacks for group operations ------------------------------------------------------

    #: The view takes the remote output it is given (a :class:`~chopsticks_nb.progress.Watch`).
    takes_output = True

    def output(self, host: str, stream: str, text: str) -> None:
        """A :data:`~chopsticks_nb.output.HostOutput` callback (runs on the I/O thread)."""
        self._batcher(host, stream, text)

    def progress(self, done: HostDone) -> None:
        """A :data:`~chopsticks_nb.result.ProgressCallback`: ``done.host`` has finished."""
        self.done(done)

    def done(self, done: HostDone, *, host_finished: bool = True) -> None:
        """One unit of work ended (a :class:`~chopsticks_nb.progress.Watch` method)."""
        with self._lock:
            self._done_units += 1
            host = self._hosts.get(done.host)
            if host is None:
                host = self._hosts[done.host] = _Host(self._new_log(), None)
                self.hosts.append(done.host)
            if not done.ok:
                host.outcome = done.value  # a failed task marks its host failed for good
            if host_finished:
                if host.outcome is None:
                    host.outcome = True
                host.ended = time.monotonic()
            self._dirty = True
        self._batcher.wake()

    def _tick(self) -> None:
        """Once a second on the I/O thread: show the view when its time comes, and redraw (the
        elapsed times move on without events)."""
        with self._lock:
            if self._state != "running" or self.mode != "html":
                return
            if not self._shown and time.monotonic() - self._started >= self.show_after:
                self._show()
            elif self._shown:
                self._redraw()

    def _show_batch(self, batch: OutputBatch) -> None:
        """The batcher's flush: record each piece, and redraw (or print) what is new."""
        with self._lock:
            for host, stream, text in batch:
                entry = self._hosts.get(host)
                if entry is None:  # not one of the hosts named at first
                    entry = self._hosts[host] = _Host(self._new_log(), None)
                    self.hosts.append(host)
                self._note_lines(host, entry, entry.log.add(stream, text))
            if self._state != "running" or self.mode != "html":
                return
            if not self._shown and time.monotonic() - self._started >= self.show_after:
                self._show()
            elif self._shown and (batch or self._dirty):
                self._redraw()

    # -- internals (the lock is held) ----------------------------------------------------------

    def _note_lines(self, name: str, host: _Host, lines: list[tuple[str, str]]) -> None:
        for stream, text in lines:
            host.digest.update(f"{stream}\0{text}\0".encode("utf-8", "surrogatepass"))
        if self.mode == "text" and lines and self._state == "running":
            printer = self._printers.setdefault(name, HostPrefixPrinter(name))
            for stream, text in lines:
                printer(stream, text + "\n")

    def _show(self) -> None:
        self._shown = True
        self._controls = _display(
            {"text/plain": "", "text/html": controls_html(self._view_id, len(self.hosts))}
        )
        self._grid = _display(self._grid_bundle())
        self._dirty = False

    def _redraw(self) -> None:
        bundle = self._grid_bundle()
        _update(self._grid, bundle)
        self._dirty = False
        size = len(bundle["text/html"]) + len(bundle["text/plain"])
        self._batcher.interval = max(self.interval, size / BYTES_PER_SECOND)

    def _rows(self, now: float) -> tuple[list[Row], list[str]]:
        """The grid's rows (hosts with the same output and state folded into the row of the
        first of them) and every host's state."""
        groups: list[list[str]] = []
        folded: dict[tuple[object, ...], list[str]] = {}
        states = []
        for name, host in self._hosts.items():
            state = host.state()
            states.append(state)
            log = host.log
            error = host.outcome.msg if isinstance(host.outcome, ErrorResult) else None
            key = (state, error, host.digest.digest(), log.hidden, tuple(log.tail), log.last_line)
            if log.chars and key in folded:
                folded[key].append(name)
                continue
            groups.append([name])
            if log.chars:
                folded[key] = groups[-1]
        index = {name: i for i, name in enumerate(self._hosts)}
        return [self._row(index[names[0]], names, now) for names in groups], states

    def _row(self, index: int, names: list[str], now: float) -> Row:
        host = self._hosts[names[0]]
        log = host.log
        ended = host.ended if host.ended is not None else now
        last = log.last_line
        recent = list(log.tail if log.hidden else log.head)[-PANEL_LINES:]
        if last is not None and (not recent or recent[-1] is not last):
            recent = [*recent, last][-PANEL_LINES:]
        return Row(
            index=index,
            label=names[0] if len(names) == 1 else _fold(names),
            hosts=len(names),
            state=host.state(),
            elapsed=ended - self._started,
            lines=log.lines,
            stderr_lines=log.stderr_lines,
            last=last,
            recent=tuple(recent),
            hidden=log.hidden,
            error=host.outcome.msg if isinstance(host.outcome, ErrorResult) else None,
        )

    def _grid_bundle(self) -> dict[str, str]:
        now = time.monotonic()
        rows, states = self._rows(now)
        title = self.title
        if self.total != len(self.hosts):
            title += f" ({self._done_units} of {self.total} tasks done)"
        return {
            "text/plain": counts_text(title, states, now - self._started),
            "text/html": grid_html(self._view_id, title, rows, states, now - self._started),
        }

    def _logs(self) -> dict[str, OutputLog]:
        return {name: host.log for name, host in self._hosts.items()}

    def _static_bundle(self) -> dict[str, str]:
        logs = self._logs()
        return {"text/plain": transcript_text(logs), "text/html": transcript_html(logs)}

    def _leave_as_text(self) -> None:
        """The work ended before the view was shown: its output joins the cell's text."""
        for section in sections(self._logs()):
            write = default_output(section.label)
            for stream, text in section.log.pieces():
                write("stdout" if stream == "notice" else stream, text)

    def _finish_text(self) -> None:
        for name, printer in self._printers.items():
            printer.flush()
            notice = self._hosts[name].log.hidden_notice()
            if notice:
                tail = "".join(f"{text}\n" for _, text in self._hosts[name].log.tail)
                printer("stdout", f"{notice}\n{tail}")

    # -- the static result -------------------------------------------------------------------

    def transcript_html(self) -> str:
        """The output so far as escaped HTML, one section per set of hosts with equal output."""
        with self._lock:
            return transcript_html(self._logs())

    def transcript_text(self) -> str:
        """The output so far as ``[host] line`` text."""
        with self._lock:
            return transcript_text(self._logs())


def _fold(hosts: list[str]) -> str:
    from ..hosts import fold

    return fold(hosts) if len(hosts) > 1 else (hosts[0] if hosts else "no hosts")
