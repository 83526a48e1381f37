"""Where remote output goes: the handler types, and the default handler that prints each line
prefixed by its host."""

from __future__ import annotations

import sys
import threading
from typing import Callable

__all__ = ["HostOutput", "HostPrefixPrinter", "OutputHandler"]

#: Receives (stream name, text) for one tunnel; stream is "stdout" or "stderr".
OutputHandler = Callable[[str, str], None]

#: Receives ``(host, stream, text)`` for the remote stdout/stderr of one group operation;
#: ``stream`` is ``"stdout"`` or ``"stderr"``. Called on the broker thread: keep it quick.
HostOutput = Callable[[str, str, str], None]

MAX_PARTIAL_LINE = 64 * 1024


class HostPrefixPrinter:
    """Writes each complete remote line as ``[host] line`` to the matching local stream."""

    def __init__(self, host: str) -> None:
        self.host = host
        self._partial = {"stdout": "", "stderr": ""}
        self._lock = threading.Lock()

    def __call__(self, stream: str, text: str) -> None:
        with self._lock:
            text = self._partial[stream] + text
            lines = text.split("\n")
            rest = lines.pop()
            if len(rest) > MAX_PARTIAL_LINE:
                lines.append(rest)
                rest = ""
            self._partial[stream] = rest
        if lines:
            out = sys.stdout if stream == "stdout" else sys.stderr
            out.write("".join(f"[{self.host}] {line}\n" for line in lines))
            out.flush()

    def flush(self) -> None:
        """Print any partial lines (the tunnel is closing)."""
        for stream in ("stdout", "stderr"):
            with self._lock:
                rest, self._partial[stream] = self._partial[stream], ""
            if rest:
                self(stream, rest + "\n")
