"""Remote output in a Jupyter kernel: the running cell's stream output, capped per cell and host.

ipykernel's ``sys.stdout`` turns what is written into "stream" messages, and sends what
accumulated every 0.2 s (``OutStream.flush_interval``) unless it is flushed: writing each line
and then flushing, as a terminal printer does, makes a message of every line (100,000 of them
for a loop of prints, and JupyterLab stops with "IOPub message rate exceeded"). Here lines are
written and never flushed, so a cell gets a few messages a second whatever arrives. And each
cell shows at most :data:`MAX_LINES` lines of each host (:data:`CELL_MAX_LINES` in all); past
that the lines are counted, and when the cell ends a notice gives their number and the last of
them (:class:`~chopsticks_nb.outputlog.OutputLog` keeps them, in bounded memory).

The kernel is recognised without importing it (the core never imports IPython): by
``sys.stdout`` being ipykernel's stream, whose ``parent_header`` names the request (the cell)
that output is for. The cell's end is IPython's ``post_execute`` event, registered through the
IPython already loaded in the kernel; a cell that ends without it (an event disabled) loses
only its notice, as the next cell starts afresh.
"""

from __future__ import annotations

import sys
import threading
from typing import Any

from .outputlog import Line, OutputLog, printable

__all__ = ["CELL_MAX_LINES", "MAX_LINES", "TAIL_LINES", "KernelOutput", "kernel_output"]

#: Lines of one host shown in one cell; later ones are counted and the last shown at its end.
MAX_LINES = 500
#: Lines of all hosts together shown in one cell.
CELL_MAX_LINES = 2000
#: Lines of a host shown at the end of a cell where some were hidden.
TAIL_LINES = 20


class KernelOutput:
    """Writes remote output into the running cell's streams; one for the kernel's process."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._cell: object = None
        self._logs: dict[str, OutputLog] = {}
        self._shown = 0  # lines shown in this cell, all hosts together
        self._hooked = False

    def write(self, host: str, stream: str, text: str) -> None:
        """Show a piece of ``host``'s output in the cell it arrived in."""
        if not self._hooked:
            self._hook_cell_end()
        cell = _cell_of(sys.stdout)
        with self._lock:
            if cell != self._cell:
                self._cell, self._logs, self._shown = cell, {}, 0
            log = self._logs.get(host)
            if log is None:
                log = self._logs[host] = OutputLog(MAX_LINES, TAIL_LINES, keep_head=False)
                if self._shown >= CELL_MAX_LINES:
                    log.close_head()
            lines = self._budget(log, log.add(stream, text))
            self._print(host, lines)  # under the lock: lines keep their order across threads

    def end_cell(self, *_: Any) -> None:
        """The cell ended: its unterminated lines, and for each host whose lines were hidden, a
        notice and the last of them. (IPython's ``post_execute`` event.)"""
        with self._lock:
            logs, self._logs = self._logs, {}
            self._cell = None
            for host, log in logs.items():
                self._print(host, self._budget(log, log.finish()))
                notice = log.hidden_notice()
                if notice:
                    self._print(host, [("stdout", notice), *log.tail])
            self._shown = 0

    def _budget(self, log: OutputLog, lines: list[Line]) -> list[Line]:
        """The lines the cell's budget still allows; the rest are hidden, as are later ones."""
        room = CELL_MAX_LINES - self._shown
        if len(lines) > room:
            for line in lines[room:]:
                log.tail.append(line)
            log.hidden += len(lines) - room
            lines = lines[:room]
        self._shown += len(lines)
        if self._shown >= CELL_MAX_LINES:
            for other in self._logs.values():
                other.close_head()
        return lines

    @staticmethod
    def _print(host: str, lines: list[Line]) -> None:
        if not lines:
            return
        prefix = printable(f"[{host}] ")
        for name in ("stdout", "stderr"):
            text = "".join(f"{prefix}{printable(t)}\n" for s, t in lines if s == name)
            if text:
                # No flush: the kernel sends what accumulated every 0.2 s, one message.
                (sys.stdout if name == "stdout" else sys.stderr).write(text)

    def _hook_cell_end(self) -> None:
        self._hooked = True
        ipython = sys.modules.get("IPython")
        get_ipython = getattr(ipython, "get_ipython", None)
        shell = get_ipython() if get_ipython is not None else None
        events = getattr(shell, "events", None)
        if events is not None:
            events.register("post_execute", self.end_cell)


_KERNEL_OUTPUT: KernelOutput | None = None
_CREATE = threading.Lock()


def _cell_of(stream: object) -> object:
    """The id of the request (cell) that ``stream``'s output goes to now."""
    header = getattr(stream, "parent_header", None)
    return header.get("msg_id") if isinstance(header, dict) else None


def kernel_output() -> KernelOutput | None:
    """The kernel's :class:`KernelOutput` if ``sys.stdout`` is ipykernel's stream, else None."""
    global _KERNEL_OUTPUT
    if "ipykernel" not in sys.modules or not type(sys.stdout).__module__.startswith("ipykernel"):
        return None
    if _KERNEL_OUTPUT is None:
        with _CREATE:
            if _KERNEL_OUTPUT is None:
                _KERNEL_OUTPUT = KernelOutput()
    return _KERNEL_OUTPUT
