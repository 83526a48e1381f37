"""The live view of a running group operation: progress and each host's output as it comes.

It lives under the cell that started the work, whatever runs later, because nothing here relies
on the kernel's notion of the current cell: widgets are updated through their own comms (an
Output widget's ``outputs``, as ``Output.append_stdout`` sets them, never ``with out:``), and
plain displays through their display id. Remote output arrives on the library's I/O thread;
it is batched by :class:`~chopsticks_nb.output.OutputBatcher` (one update per ``interval`` at
most, and no thread added) and capped per host. When the work ends, the view settles into a
static transcript that reads the same in nbconvert's HTML and on GitHub.
"""

from __future__ import annotations

import html
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, Protocol

from ..output import HostPrefixPrinter, OutputBatch, OutputBatcher
from ..render import HostLog, format_seconds, logs_html, logs_text

if TYPE_CHECKING:
    from ..result import HostDone

#: IPython's DisplayHandle (untyped)
DisplayHandle = Any

__all__ = ["LiveView", "ViewMode", "in_kernel"]

#: ``"widgets"`` (ipywidgets), ``"html"`` (a display updated in place), ``"text"`` (lines
#: printed with a ``[host]`` prefix, for terminals) or ``"auto"``: widgets in a kernel that has
#: ipywidgets, html in one that has not, text elsewhere.
ViewMode = Literal["auto", "widgets", "html", "text"]

_PendingOutput = dict[str, list[tuple[str, str]]]

#: seconds between updates of the elapsed time while nothing else happens
TICK = 1.0


def in_kernel() -> bool:
    """True inside a Jupyter kernel (rich displays work), False in a terminal or a script."""
    if "IPython" not in sys.modules:
        return False
    from IPython import get_ipython

    shell = get_ipython()
    return shell is not None and getattr(shell, "kernel", None) is not None


def _auto_mode() -> ViewMode:
    if not in_kernel():
        return "text"
    try:
        import ipywidgets  # noqa: F401
    except ImportError:
        return "html"
    return "widgets"


@dataclass(frozen=True)
class Progress:
    """How far the operation is, as the views show it."""

    done: int
    total: int
    failed: int
    elapsed: float
    waiting: tuple[str, ...]

    def text(self) -> str:
        parts = [f"{self.done} of {self.total} done"]
        if self.failed:
            parts.append(f"{self.failed} failed")
        parts.append(format_seconds(self.elapsed))
        if self.waiting and self.done:
            names = ", ".join(self.waiting[:5])
            more = f" and {len(self.waiting) - 5} more" if len(self.waiting) > 5 else ""
            parts.append(f"waiting for {names}{more}")
        return " · ".join(parts)


class _Backend(Protocol):
    def start(self, progress: Progress) -> None: ...
    def output(
        self, pending: _PendingOutput, touched: set[str], logs: dict[str, HostLog]
    ) -> None: ...
    def progress(self, progress: Progress, done: HostDone | None) -> None: ...
    def finish(self, logs: dict[str, HostLog]) -> None: ...


class LiveView:
    """Progress and per-host remote output of one group operation, shown while it runs.

    Pass its :meth:`output` and :meth:`progress` methods to a group operation::

        with LiveView(group.hosts) as view:
            result = group.run(work, output=view.output, progress=view.progress)
        result   # the static table

    On exit the live view settles into a static transcript of the output (nothing if there was
    none). ``mode`` is a :data:`ViewMode`; ``max_lines`` caps the lines shown per host (the
    rest are counted, and the last ``tail_lines`` of them shown at the end); ``interval`` is
    the longest time output waits before it is shown (updates are batched).
    """

    def __init__(
        self,
        hosts: Sequence[str],
        *,
        mode: ViewMode = "auto",
        max_lines: int = 500,
        tail_lines: int = 20,
        interval: float = 0.1,
    ) -> None:
        if mode not in ("auto", "widgets", "html", "text"):
            raise ValueError(f"mode must be auto, widgets, html or text, not {mode!r}")
        self.hosts = list(hosts)
        self.mode: ViewMode = _auto_mode() if mode == "auto" else mode
        self.interval = interval
        self._max_lines = max_lines
        self._tail_lines = tail_lines
        #: each host's output so far (up to the last batch), in the hosts' order
        self.logs: dict[str, HostLog] = {h: HostLog(max_lines, tail_lines) for h in self.hosts}
        self._lock = threading.Lock()
        self._dirty = False  # progress to show with the next batch (html mode)
        self._started = time.perf_counter()
        self._finished: dict[str, bool] = {}
        self._state = "new"  # -> running -> done
        self._finishing = False
        self._backend: _Backend = self._make_backend()
        ticks = self.mode != "text"  # the elapsed time moves on in the progress line
        self._batcher = OutputBatcher(
            self._show_batch,
            interval=interval,
            tick=TICK if ticks else None,
            on_tick=self._tick if ticks else None,
        )

    def _make_backend(self) -> _Backend:
        if self.mode == "widgets":
            return _WidgetBackend(self.hosts)
        if self.mode == "html":
            return _HTMLBackend()
        return _TextBackend()

    # -- lifecycle -----------------------------------------------------------------------------

    def start(self) -> LiveView:
        """Show the view (under the current cell)."""
        with self._lock:
            if self._state != "new" or self._finishing:
                return self
            self._state = "running"
            self._started = time.perf_counter()
            self._backend.start(self._progress())
        self._batcher.start()
        return self

    def finish(self) -> None:
        """Show the last output and settle into the static transcript. Idempotent."""
        with self._lock:
            if self._finishing:
                return
            self._finishing = True
        # Not under self._lock: the batcher shows the last batch through _show_batch, which
        # takes it (and a batch being shown on the I/O thread holds the batcher's turn).
        self._batcher.close()
        with self._lock:
            started = self._state == "running"
            self._state = "done"
            for log in self.logs.values():
                log.finish()
            if started:
                self._backend.finish(self.logs)

    def __enter__(self) -> LiveView:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.finish()

    # -- callbacks for group operations ------------------------------------------------------

    def output(self, host: str, stream: str, text: str) -> None:
        """A :data:`~chopsticks_nb.output.HostOutput` callback (runs on the I/O thread)."""
        self._batcher(host, stream, text)

    def progress(self, done: HostDone) -> None:
        """A :data:`~chopsticks_nb.result.ProgressCallback` (runs in the waiting thread)."""
        with self._lock:
            self._finished[done.host] = done.ok
            if self._state == "running":
                self._show_progress(done)

    def _tick(self) -> None:
        """Once a second on the I/O thread: the elapsed time moves on without events."""
        with self._lock:
            if self._state == "running":
                self._show_progress(None)

    def _show_batch(self, batch: OutputBatch) -> None:
        """The batcher's flush: record each piece, and show what is new if the view is up."""
        with self._lock:
            pending: _PendingOutput = {}
            touched: set[str] = set()
            for host, stream, text in batch:
                log = self.logs.get(host)
                if log is None:  # not one of the hosts named at first
                    log = self.logs[host] = HostLog(self._max_lines, self._tail_lines)
                visible = log.add(stream, text)
                if visible:
                    pending.setdefault(host, []).append((stream, visible))
                touched.add(host)
            if self._state == "running" and (pending or touched or self._dirty):
                self._dirty = False
                self._backend.output(pending, touched, self.logs)

    # -- internals (the lock is held) ----------------------------------------------------------

    def _progress(self) -> Progress:
        failed = sum(1 for ok in self._finished.values() if not ok)
        waiting = tuple(h for h in self.hosts if h not in self._finished)
        elapsed = time.perf_counter() - self._started
        return Progress(len(self._finished), len(self.hosts), failed, elapsed, waiting)

    def _show_progress(self, done: HostDone | None) -> None:
        self._backend.progress(self._progress(), done)
        if self.mode == "html":  # the display is redrawn with the next batch
            self._dirty = True
            self._batcher.wake()

    # -- the static result -------------------------------------------------------------------

    def transcript_html(self) -> str:
        """The output so far as escaped HTML, one collapsible section per host."""
        with self._lock:
            return logs_html(self.logs)

    def transcript_text(self) -> str:
        """The output so far as ``[host] line`` text."""
        with self._lock:
            return logs_text(self.logs)


def _display(obj: Any, **kwargs: Any) -> DisplayHandle:
    from IPython import display

    show: Any = display.display
    return show(obj, display_id=True, **kwargs)


def _static_bundle(logs: dict[str, HostLog]) -> dict[str, str]:
    return {"text/plain": logs_text(logs), "text/html": logs_html(logs)}


class _WidgetBackend:
    """ipywidgets: a progress bar and one tab per host that writes, filled through comms.

    Few models on purpose (each costs a comm, and nbclient saves every one in the notebook):
    layouts are shared, the tabs appear with the first output, and a host's "lines hidden"
    notice is the last entry of its Output rather than a widget of its own.
    """

    def __init__(self, hosts: Sequence[str]) -> None:
        import ipywidgets as w

        self._w = w
        self.shared_layout = w.Layout()
        self.bar = w.IntProgress(
            value=0, min=0, max=max(1, len(hosts)), bar_style="info", layout=self.shared_layout
        )
        self.label = w.Label(value="", layout=self.shared_layout)
        self.box = w.VBox(
            [w.HBox([self.bar, self.label], layout=self.shared_layout)], layout=self.shared_layout
        )
        self.box.add_class("chopsticks-nb-live")
        self.tabs: Any = None
        self.output_layout: Any = None
        self.outputs: dict[str, Any] = {}
        self.failed: set[str] = set()
        self.handle: DisplayHandle | None = None

    def start(self, progress: Progress) -> None:
        self.label.value = progress.text()
        self.handle = _display(self.box)

    def _output(self, host: str) -> Any:
        out = self.outputs.get(host)
        if out is None:
            w = self._w
            if self.tabs is None:
                self.tabs = w.Tab(layout=self.shared_layout)
                self.output_layout = w.Layout(max_height="24em", overflow="auto")
                self.box.children = (*self.box.children, self.tabs)
            out = self.outputs[host] = w.Output(layout=self.output_layout)
            out.add_class("chopsticks-nb-host-output")
            with self.tabs.hold_sync():
                self.tabs.children = (*self.tabs.children, out)
                self.tabs.titles = tuple(self._title(name) for name in self.outputs)
                if self.tabs.selected_index is None:
                    self.tabs.selected_index = 0
        return out

    def _title(self, host: str) -> str:
        return f"✗ {host}" if host in self.failed else host

    def output(self, pending: _PendingOutput, touched: set[str], logs: dict[str, HostLog]) -> None:
        for host in touched:
            pieces = pending.get(host, [])
            notice = logs[host].hidden_notice
            if not pieces and not notice:
                continue
            out = self._output(host)
            # What Output.append_stdout/append_stderr do, as one update per host and batch
            # (each update carries the whole list), merging runs of the same stream.
            outputs = [entry for entry in out.outputs if entry.get("output_type") == "stream"]
            for stream, text in pieces:
                name = "stderr" if stream == "stderr" else "stdout"
                if outputs and outputs[-1].get("name") == name:
                    outputs[-1] = {**outputs[-1], "text": outputs[-1]["text"] + text}
                else:
                    outputs.append({"output_type": "stream", "name": name, "text": text})
            if notice:
                outputs.append(
                    {
                        "output_type": "display_data",
                        "metadata": {},
                        "data": {"text/plain": notice, "text/html": f"<em>{notice}</em>"},
                    }
                )
            out.outputs = tuple(outputs)

    def progress(self, progress: Progress, done: HostDone | None) -> None:
        with self.bar.hold_sync():
            self.bar.value = progress.done
            if progress.failed:
                self.bar.bar_style = "danger"
        self.label.value = progress.text()
        if done is not None and not done.ok:
            self.failed.add(done.host)
            if done.host in self.outputs:
                self.tabs.titles = tuple(self._title(host) for host in self.outputs)

    def finish(self, logs: dict[str, HostLog]) -> None:
        if self.handle is not None:
            self.handle.update(_static_bundle(logs), raw=True)
        widgets = [self.box, *self.box.children, self.bar, self.label, *self.outputs.values()]
        styles = [getattr(widget, "style", None) for widget in widgets]
        for widget in [*widgets, *styles, self.shared_layout, self.output_layout]:
            if widget is not None:
                widget.close()


class _HTMLBackend:
    """No widgets: one display, replaced in place (through its display id) at each batch."""

    def __init__(self) -> None:
        self.handle: DisplayHandle | None = None
        self.progress_text = ""

    def _bundle(self, logs: dict[str, HostLog]) -> dict[str, str]:
        bundle = _static_bundle(logs)
        progress = html.escape(self.progress_text)
        bundle["text/html"] = f"<div><small>{progress}</small></div>{bundle['text/html']}"
        bundle["text/plain"] = f"{self.progress_text}\n{bundle['text/plain']}".rstrip()
        return bundle

    def start(self, progress: Progress) -> None:
        self.progress_text = progress.text()
        self.handle = _display(self._bundle({}), raw=True)

    def output(self, pending: _PendingOutput, touched: set[str], logs: dict[str, HostLog]) -> None:
        if self.handle is not None:
            self.handle.update(self._bundle(logs), raw=True)

    def progress(self, progress: Progress, done: HostDone | None) -> None:
        self.progress_text = progress.text()  # shown with the next batch of output, or at the end

    def finish(self, logs: dict[str, HostLog]) -> None:
        if self.handle is not None:
            self.handle.update(_static_bundle(logs), raw=True)


class _TextBackend:
    """Terminals and scripts: each line printed as it completes, prefixed with ``[host]``."""

    def __init__(self) -> None:
        self.printers: dict[str, HostPrefixPrinter] = {}

    def start(self, progress: Progress) -> None:
        pass

    def _printer(self, host: str) -> HostPrefixPrinter:
        return self.printers.setdefault(host, HostPrefixPrinter(host))

    def output(self, pending: _PendingOutput, touched: set[str], logs: dict[str, HostLog]) -> None:
        for host, pieces in pending.items():
            printer = self._printer(host)
            for stream, text in pieces:
                printer(stream, text)

    def progress(self, progress: Progress, done: HostDone | None) -> None:
        pass

    def finish(self, logs: dict[str, HostLog]) -> None:
        for host, printer in self.printers.items():
            printer.flush()
            notice = logs[host].hidden_notice
            if notice:
                tail = "".join(text for _, text in logs[host].tail)
                printer("stdout", f"... {notice}; the last:\n{tail}")
