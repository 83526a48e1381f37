"""Remote output kept on a result: the first and the last lines each host printed, bounded.

A group operation passes every piece of a host's remote stdout and stderr to the user's
handler (or the tunnel's own) *and* to that host's :class:`Transcript`, which keeps the first
:data:`HEAD_LINES` lines (at most :data:`HEAD_CHARS` characters), then only the last
:data:`TAIL_LINES` lines (at most :data:`TAIL_CHARS` characters), counting what it dropped
between them. So a result holds at most about 20 KiB of output per host, however much a
host prints, and ``result.output(host)`` still shows how it began and how it ended.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Iterator
from typing import Callable

__all__ = ["HEAD_CHARS", "HEAD_LINES", "TAIL_CHARS", "TAIL_LINES", "OutputCapture", "Transcript"]

HEAD_LINES = 100
HEAD_CHARS = 16 * 1024
TAIL_LINES = 20
TAIL_CHARS = 4 * 1024

#: (stream, text) -> None: the tunnel-level output handler type (see chopsticks_nb.output)
_Handler = Callable[[str, str], None]
#: (host, stream, text) -> None: the group-level output handler type
_HostHandler = Callable[[str, str, str], None]


class Transcript:
    """One host's remote output, bounded: a head, a count of what was dropped, a tail.

    Pieces are ``(stream, text)`` with stream ``"stdout"`` or ``"stderr"``, in arrival order;
    consecutive pieces of one stream are joined. Not thread-safe: :class:`OutputCapture` locks.
    """

    __slots__ = (
        "_head_chars",
        "_head_lines",
        "_head_open",
        "_tail_chars",
        "_tail_lines",
        "dropped_chars",
        "dropped_lines",
        "head",
        "tail",
        "total_chars",
        "total_lines",
    )

    def __init__(self) -> None:
        self.head: list[tuple[str, str]] = []
        self.tail: deque[tuple[str, str]] = deque()
        self.dropped_lines = self.dropped_chars = 0
        self.total_lines = self.total_chars = 0
        self._head_lines = self._head_chars = 0
        self._tail_lines = self._tail_chars = 0
        self._head_open = True

    def add(self, stream: str, text: str) -> None:
        if not text:
            return
        self.total_chars += len(text)
        self.total_lines += text.count("\n")
        if self._head_open:
            taken = self._head_room(text)
            if taken:
                _append(self.head, stream, text[:taken])
                self._head_chars += taken
                self._head_lines += text.count("\n", 0, taken)
            if taken == len(text):
                return
            self._head_open = False
            text = text[taken:]
        _append(self.tail, stream, text)
        self._tail_chars += len(text)
        self._tail_lines += text.count("\n")
        self._trim_tail()

    def _head_room(self, text: str) -> int:
        """How much of ``text`` still fits in the head."""
        limit = min(len(text), HEAD_CHARS - self._head_chars)
        lines_left = HEAD_LINES - self._head_lines
        at = -1
        while lines_left > 0:
            at = text.find("\n", at + 1, limit)
            if at < 0:
                return limit
            lines_left -= 1
        return at + 1

    def _trim_tail(self) -> None:
        while self._tail_lines > TAIL_LINES or self._tail_chars > TAIL_CHARS:
            stream, text = self.tail[0]
            if self._tail_lines > TAIL_LINES:
                cut = text.find("\n") + 1 or len(text)
            else:
                cut = min(len(text), self._tail_chars - TAIL_CHARS)
            gone = text[:cut]
            if cut == len(text):
                self.tail.popleft()
            else:
                self.tail[0] = (stream, text[cut:])
            self._tail_chars -= cut
            self._tail_lines -= gone.count("\n")
            self.dropped_chars += cut
            self.dropped_lines += gone.count("\n")

    @property
    def lines(self) -> int:
        """Lines printed (a last line without a newline counts too)."""
        last = self.tail[-1][1] if self.tail else self.head[-1][1] if self.head else "\n"
        return self.total_lines + (not last.endswith("\n"))

    @property
    def dropped_notice(self) -> str:
        """``"... 120 lines (9,000 characters) not kept ..."``, or ``""``."""
        if not self.dropped_chars:
            return ""
        noun = "line" if self.dropped_lines == 1 else "lines"
        return f"... {self.dropped_lines:,} {noun} ({self.dropped_chars:,} characters) not kept ..."

    def pieces(self, stream: str | None = None) -> Iterator[tuple[str, str]]:
        """``(stream, text)`` in order, with ``("notice", ...)`` where output was dropped."""
        for kind, text in self.head:
            if stream is None or kind == stream:
                yield kind, text
        if self.dropped_chars:
            before = self.head[-1][1] if self.head else "\n"
            yield "notice", ("" if before.endswith("\n") else "\n") + self.dropped_notice + "\n"
        for kind, text in self.tail:
            if stream is None or kind == stream:
                yield kind, text

    def text(self, stream: str | None = None) -> str:
        """The transcript as one string (only ``stream``'s pieces if given)."""
        return "".join(text for _, text in self.pieces(stream))

    def key(self) -> tuple[object, ...]:
        """Equal for two transcripts that read the same (for folding hosts' output)."""
        return (tuple(self.head), self.dropped_lines, self.dropped_chars, tuple(self.tail))

    def __reduce__(self) -> tuple[object, ...]:
        state = {name: getattr(self, name) for name in self.__slots__}
        return (_rebuild, (state,))


def _rebuild(state: dict[str, object]) -> Transcript:
    transcript = Transcript()
    for name, value in state.items():
        setattr(transcript, name, value)
    return transcript


def _append(pieces: list[tuple[str, str]] | deque[tuple[str, str]], stream: str, text: str) -> None:
    if pieces and pieces[-1][0] == stream:
        pieces[-1] = (stream, pieces[-1][1] + text)
    else:
        pieces.append((stream, text))


class OutputCapture:
    """The transcripts of one group operation, and the handlers that feed them.

    :meth:`handler` makes a tunnel-level handler that records each piece and passes it on
    (to the user's group-level handler, else to the tunnel's own). :meth:`close` freezes the
    transcripts: output that still arrives is passed on but no longer recorded.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._transcripts: dict[str, Transcript] = {}
        self._open = True

    def handler(self, host: str, user: _HostHandler | None, tunnel: _Handler) -> _Handler:
        """The handler for ``host``'s output: kept here, then given to ``user`` or ``tunnel``."""

        def record(stream: str, text: str) -> None:
            with self._lock:
                if self._open:
                    transcript = self._transcripts.get(host)
                    if transcript is None:
                        transcript = self._transcripts[host] = Transcript()
                    transcript.add(stream, text)
            if user is not None:
                user(host, stream, text)
            else:
                tunnel(stream, text)

        return record

    def close(self) -> dict[str, Transcript]:
        """Stop recording; the transcripts of the hosts that printed anything."""
        with self._lock:
            self._open = False
            return dict(self._transcripts)
