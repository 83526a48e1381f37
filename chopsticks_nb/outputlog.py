"""A host's remote output kept within bounds: its first lines, a count of the rest, its last lines.

Remote output is text a remote chose, of any size: a flood of lines, or a progress bar redrawn
with ``\\r`` for hours without a newline. An :class:`OutputLog` keeps what a person can read of
it in a bounded amount of memory, whatever arrives, and costs a bounded amount of work per byte:

- the first ``max_lines`` lines (fewer if they hold more than ``max_chars`` characters);
- past those, only a count of the hidden lines and the last ``tail_lines`` of them;
- each line cut to ``max_line_chars`` characters (the rest counted, not kept);
- ``\\r`` as a terminal reads it: the text after the last carriage return of a line replaces
  what came before it (``"10%\\r20%\\n"`` is the line ``20%``; ``\\r\\n`` ends a line).

``add()`` returns the lines that joined the head, so a live display shows exactly what the
final transcript will. Not thread-safe: callers hold their own lock.

Its text is still the remote's: :func:`printable` shows the control characters in it as
escapes, for a terminal (HTML views escape it their own way).
"""

from __future__ import annotations

import re
from collections import deque
from collections.abc import Iterator

__all__ = ["Line", "OutputLog", "printable"]

#: One line of output: (stream, text without its newline); stream is "stdout" or "stderr".
Line = tuple[str, str]


# C0 and C1 controls but tab and newline (ESC starts every terminal sequence), DEL, the
# Unicode line separators and bidirectional overrides (they reorder what a reader sees), and
# lone surrogates (no terminal or JSON encoder takes them).
_UNPRINTABLE = re.compile(
    "[\x00-\x08\x0b-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069\ud800-\udfff]"
)


def _escape(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def printable(text: str) -> str:
    """``text`` with every control character but tab and newline shown as an escape.

    ``"\\x1b]0;title\\x07"`` becomes the 14 characters ``\\x1b]0;title\\x07``: remote text can
    neither drive the terminal nor hide itself. Carriage returns are escaped too (printers
    resolve them into lines first, as :class:`~chopsticks_nb.outputlog.OutputLog` does).
    """
    return _UNPRINTABLE.sub(_escape, text)


class _Partial:
    """The line being written on one stream: its text (cut at a bound) and what was cut."""

    __slots__ = ("cut", "overwrite", "text")

    def __init__(self) -> None:
        self.text = ""
        self.cut = 0  # characters past the bound, counted and dropped
        self.overwrite = False  # the last piece ended with \r: what comes next replaces the line


class OutputLog:
    """The remote output of one host, bounded in lines and in characters (see the module)."""

    def __init__(
        self,
        max_lines: int = 500,
        tail_lines: int = 20,
        *,
        max_line_chars: int = 2000,
        max_chars: int = 200_000,
        keep_head: bool = True,
    ) -> None:
        if min(max_lines, tail_lines, max_line_chars, max_chars) < 0:
            raise ValueError("OutputLog bounds must be 0 or more")
        self.max_lines = max_lines
        self.max_line_chars = max_line_chars
        self.max_chars = max_chars
        self.keep_head = keep_head
        #: the first lines, in arrival order (unless ``keep_head`` is false: a printer that
        #: prints each line as it completes keeps only the count)
        self.head: list[Line] = []
        #: the last lines past the head
        self.tail: deque[Line] = deque(maxlen=tail_lines)
        #: complete lines past the head (kept in ``tail`` or not)
        self.hidden = 0
        #: characters received (all of them, kept or not)
        self.chars = 0
        #: complete lines written to stderr
        self.stderr_lines = 0
        self._head_count = 0
        self._head_chars = 0
        self._head_open = max_lines > 0
        self._partials = {"stdout": _Partial(), "stderr": _Partial()}
        self._last_line: Line | None = None
        self._last_stream = "stdout"

    # -- what it holds -------------------------------------------------------------------------

    @property
    def lines(self) -> int:
        """Complete lines received so far (shown or hidden)."""
        return self._head_count + self.hidden

    @property
    def last_line(self) -> Line | None:
        """The line being written now on the stream written last (a progress bar's latest
        state), else the last complete line; None before any output."""
        partial = self._partials[self._last_stream]
        if partial.text:
            return self._last_stream, partial.text
        return self._last_line

    def close_head(self) -> None:
        """Hide every later line, as if the head were full (when a budget that several logs
        share has run out)."""
        self._head_open = False

    def pieces(self) -> Iterator[tuple[str, str]]:
        """The transcript as (stream, text) pieces: the head, a ``"notice"`` of the hidden
        lines, then the tail; each line ends with a newline. Call :meth:`finish` first for
        unterminated lines to be in it."""
        for stream, text in self.head:
            yield stream, text + "\n"
        notice = self.hidden_notice()
        if notice:
            yield "notice", notice + "\n"
        for stream, text in self.tail:
            yield stream, text + "\n"

    def hidden_notice(self) -> str:
        """``"... 1,234 more lines hidden; the last 20:"``, or ``""`` if nothing was hidden."""
        if not self.hidden:
            return ""
        noun = "line" if self.hidden == 1 else "lines"
        shown = len(self.tail)
        if shown == self.hidden:
            return f"... {self.hidden:,} more {noun}:"
        if not shown:
            return f"... {self.hidden:,} more {noun} hidden"
        return f"... {self.hidden:,} more {noun} hidden; the last {shown}:"

    def text(self) -> str:
        """The transcript as plain text."""
        return "".join(text for _, text in self.pieces())

    # -- feeding it ----------------------------------------------------------------------------

    def add(self, stream: str, text: str) -> list[Line]:
        """Record a piece of ``stream``'s output; the complete lines that joined the head."""
        partial = self._partials.get(stream)
        if partial is None:
            raise ValueError(f"stream must be 'stdout' or 'stderr', not {stream!r}")
        if not text:
            return []
        self.chars += len(text)
        self._last_stream = stream
        shown: list[Line] = []
        start = 0
        if partial.overwrite:
            partial.overwrite = False
            if text[0] == "\n":  # the \r was half of a \r\n: the line ends as it was
                self._end_line(stream, partial, shown)
                start = 1
            else:
                partial.text, partial.cut = "", 0
        end = text.find("\n", start)
        while end >= 0 and self._head_open:
            self._extend(partial, text[start:end], last=False)
            self._end_line(stream, partial, shown)
            start = end + 1
            end = text.find("\n", start)
        if end >= 0:
            start = self._hide_lines(stream, partial, text, start)
        self._extend(partial, text[start:], last=True)
        return shown

    def finish(self) -> list[Line]:
        """End the unterminated lines (the work is over); the lines that joined the head."""
        shown: list[Line] = []
        for stream, partial in self._partials.items():
            if partial.text or partial.cut:
                self._end_line(stream, partial, shown)
            partial.overwrite = False
        return shown

    # -- internals -----------------------------------------------------------------------------

    def _extend(self, partial: _Partial, segment: str, *, last: bool) -> None:
        """Add ``segment`` (no newline in it) to the line being written. A \r in it starts the
        line again; one at its very end is a \r\n (not ``last``) or waits for the next piece."""
        if segment.endswith("\r"):
            segment = segment[:-1]
            partial.overwrite = last
        cr = segment.rfind("\r")
        if cr >= 0:
            partial.text, partial.cut = "", 0
            segment = segment[cr + 1 :]
        room = self.max_line_chars - len(partial.text)
        if room >= len(segment):
            partial.text += segment
        else:
            partial.text += segment[: max(room, 0)]
            partial.cut += len(segment) - max(room, 0)

    def _end_line(self, stream: str, partial: _Partial, shown: list[Line]) -> None:
        text = partial.text
        if partial.cut:
            text += f" ... ({partial.cut:,} more characters)"
        partial.text, partial.cut = "", 0
        line = (stream, text)
        self._last_line = line
        if stream == "stderr":
            self.stderr_lines += 1
        if (
            self._head_open
            and self._head_count < self.max_lines
            and self._head_chars + len(text) <= self.max_chars
        ):
            if self.keep_head:
                self.head.append(line)
            self._head_count += 1
            self._head_chars += len(text)
            shown.append(line)
            return
        self._head_open = False
        self.tail.append(line)
        self.hidden += 1

    def _hide_lines(self, stream: str, partial: _Partial, text: str, start: int) -> int:
        """Past the head: count the complete lines of ``text[start:]`` and keep the last
        ``tail_lines`` of them, looking at no others (the work does not grow with their
        number); where the unterminated rest begins."""
        count = text.count("\n", start)
        keep = self.tail.maxlen or 0
        if count > keep:
            skipped = count - keep
            self.hidden += skipped
            if stream == "stderr":
                self.stderr_lines += skipped
            partial.text, partial.cut = "", 0  # its line is among the skipped ones
            cut = len(text)
            for _ in range(keep + 1):
                cut = text.rfind("\n", start, cut)
            start = cut + 1
        end = text.find("\n", start)
        while end >= 0:
            self._extend(partial, text[start:end], last=False)
            self._end_line(stream, partial, [])
            start = end + 1
            end = text.find("\n", start)
        return start
