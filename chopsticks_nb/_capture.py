"""Remote output kept on a result: each host's output in a bounded OutputLog, fed as it comes.

A group operation passes every piece of a host's remote stdout and stderr to the user's
handler (or the tunnel's own) *and* to that host's :class:`~chopsticks_nb.outputlog.OutputLog`,
which keeps the first :data:`HEAD_LINES` lines (at most :data:`HEAD_CHARS` characters), then
a count of the lines past them and the last :data:`TAIL_LINES`, each line cut at
:data:`LINE_CHARS` characters and ``\\r`` redraws resolved as a terminal shows them. So a result
holds at most about 40 KiB of output per host, however much a host prints (lines, or a
progress bar redrawn without a newline for hours), and ``result.output(host)`` still shows how
it began and how it ended.
"""

from __future__ import annotations

import threading
from typing import Callable

from .outputlog import OutputLog

__all__ = ["HEAD_CHARS", "HEAD_LINES", "LINE_CHARS", "TAIL_LINES", "OutputCapture"]

HEAD_LINES = 100
HEAD_CHARS = 16 * 1024
TAIL_LINES = 20
LINE_CHARS = 1000

#: (stream, text) -> None: the tunnel-level output handler type (see chopsticks_nb.output)
_Handler = Callable[[str, str], None]
_STREAMS = ("stdout", "stderr")


def result_log() -> OutputLog:
    """An empty log with a result's bounds."""
    return OutputLog(HEAD_LINES, TAIL_LINES, max_line_chars=LINE_CHARS, max_chars=HEAD_CHARS)


class OutputCapture:
    """The output logs of one group operation, and the handlers that feed them.

    :meth:`handler` makes a tunnel-level handler that records each piece and passes it on.
    :meth:`close` ends the logs' unterminated lines and freezes them: output that still
    arrives is passed on but no longer recorded.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._logs: dict[str, OutputLog] = {}
        self._open = True

    def handler(self, host: str, then: _Handler) -> _Handler:
        """The handler for ``host``'s output: kept here, then given to ``then``."""

        def record(stream: str, text: str) -> None:
            with self._lock:
                if self._open and text and stream in _STREAMS:
                    log = self._logs.get(host)
                    if log is None:
                        log = self._logs[host] = result_log()
                    log.add(stream, text)
            then(stream, text)

        return record

    def close(self) -> dict[str, OutputLog]:
        """Stop recording; the logs of the hosts that printed a line (their last lines ended)."""
        with self._lock:
            if self._open:
                self._open = False
                for log in self._logs.values():
                    log.finish()
            return {host: log for host, log in self._logs.items() if log.lines}
