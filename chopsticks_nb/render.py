"""Text and HTML views of group results and remote output (plain markup, stdlib only).

They must read well in a terminal, in JupyterLab, in nbconvert's HTML and on GitHub (which
strips styles), so the markup is plain (table, pre, details) and styles are only decoration.
Everything that came from a remote host is escaped (host names, values, messages, tracebacks,
output). ``GroupResult``'s ``__repr__`` and ``_repr_html_`` call in here, and so do the
notebook layer's live views; nothing here imports IPython or the notebook layer.
"""

from __future__ import annotations

import contextlib
import html
import pprint
from collections import deque
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING

from ._bounded import short_repr, short_text, whole_repr

if TYPE_CHECKING:  # the result model imports this module, not the other way round
    from .result import ErrorResult, GroupResult

__all__ = [
    "HostLog",
    "error_result_html",
    "format_seconds",
    "group_result_html",
    "group_result_text",
    "logs_html",
    "logs_text",
    "summary",
]

#: Longest text shown for one value in a table cell; the rest is cut with a notice.
MAX_VALUE_CHARS = 2000
#: Longest text shown for one value in a result's one-line-per-host text view.
MAX_VALUE_REPR = 200
#: Up to this many hosts' output sections are shown open; beyond, all start collapsed.
OPEN_SECTIONS = 4
_STDERR_STYLE = "background:#fdd;"
_FAILED_STYLE = "color:#b00020;font-weight:bold;"
_CELL_STYLE = "text-align:left;vertical-align:top;padding:2px 8px;"
_PRE_STYLE = "margin:0;white-space:pre-wrap;word-break:break-word;"


def _escape(text: object) -> str:
    return html.escape(str(text), quote=True)


def format_seconds(seconds: float | None) -> str:
    """``0.012`` -> ``"12 ms"``, ``3.4`` -> ``"3.40 s"``; ``""`` when unknown."""
    if seconds is None:
        return ""
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    return f"{seconds:.2f} s"


def _value_text(value: object) -> str:
    """The value as the table shows it: pretty-printed when short, cut when long (the text of
    a huge value is never built whole: see _bounded)."""
    text = whole_repr(value, MAX_VALUE_CHARS)
    if text is None:
        text = short_repr(value, MAX_VALUE_CHARS)
        return f"{text} (more characters)" if len(text) == MAX_VALUE_CHARS else text
    if len(text) > 60:
        with contextlib.suppress(Exception):  # a short repr pretty-prints in bounded time
            pretty = pprint.pformat(value, width=80)
            if len(pretty) <= MAX_VALUE_CHARS:
                text = pretty
    return text


def _short_repr(value: object) -> str:
    # An int with more digits than Python converts to text, a 100 MB bytes value: a remote may
    # return them, and the repr of the whole result must neither fail nor build them whole.
    return short_repr(value, MAX_VALUE_REPR)


def group_result_text(result: GroupResult) -> str:
    """``GroupResult({'a': 1, 'b': ErrorResult('...')})``, one host a line when that is long."""
    items = [f"{host!r}: {_short_repr(value)}" for host, value in result.items()]
    one_line = "GroupResult({" + ", ".join(items) + "})"
    if len(one_line) <= 100:
        return one_line
    return "GroupResult({\n" + "".join(f"    {item},\n" for item in items) + "})"


def summary(result: GroupResult) -> str:
    """One line: ``4 hosts: 3 ok, 1 error in 0.52 s``."""
    failures = dict(result.failures())
    counts: dict[str, int] = {}
    for host in result:
        status = failures[host].status if host in failures else "ok"
        counts[status] = counts.get(status, 0) + 1
    noun = "host" if len(result) == 1 else "hosts"
    parts = ", ".join(f"{n} {status}" for status, n in counts.items()) or "nothing to do"
    return f"{len(result)} {noun}: {parts} in {format_seconds(result.elapsed)}"


def _traceback_details(tb: str, summary_text: str = "remote traceback") -> str:
    return (
        f"<details><summary>{_escape(summary_text)}</summary>"
        f'<pre style="{_PRE_STYLE}">{_escape(tb.rstrip())}</pre></details>'
    )


def _error_cell(error: ErrorResult) -> str:
    body = f'<pre style="{_PRE_STYLE}">{_escape(short_text(error.msg, MAX_VALUE_CHARS))}</pre>'
    if error.tb:
        body += _traceback_details(error.tb)
    return body


def error_result_html(error: ErrorResult) -> str:
    """An ErrorResult on its own: status, host and message; the traceback collapsed."""
    where = f" on <code>{_escape(error.host)}</code>" if error.host else ""
    return (
        f'<div><span style="{_FAILED_STYLE}">{_escape(error.status)}</span>{where}'
        f"{_error_cell(error)}</div>"
    )


def group_result_html(result: GroupResult) -> str:
    """The result table: one row per host with its status, value or error, and time."""
    failures = dict(result.failures())
    rows = []
    for host, value in result.items():
        error = failures.get(host)
        if error is not None:
            status = f'<span style="{_FAILED_STYLE}">{_escape(error.status)}</span>'
            cell = _error_cell(error)
        else:
            status = "ok"
            cell = f'<pre style="{_PRE_STYLE}">{_escape(_value_text(value))}</pre>'
        seconds = format_seconds(result.timings.get(host))
        rows.append(
            f'<tr><td style="{_CELL_STYLE}"><code>{_escape(host)}</code></td>'
            f'<td style="{_CELL_STYLE}">{status}</td>'
            f'<td style="{_CELL_STYLE}">{cell}</td>'
            f'<td style="{_CELL_STYLE}white-space:nowrap;">{_escape(seconds)}</td></tr>'
        )
    head = "".join(
        f'<th style="{_CELL_STYLE}">{name}</th>' for name in ("host", "status", "value", "time")
    )
    return (
        '<div class="chopsticks-nb-result">'
        f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"
        f"<small>{_escape(summary(result))}</small></div>"
    )


class HostLog:
    """The remote output of one host: everything up to ``max_lines`` lines, then only a count
    of the lines hidden and the last ``tail_lines`` of them (shown when the work is over).

    :meth:`add` returns what of the new text is to be shown live, so a live view and the
    final transcript always agree. Not thread-safe: callers hold their own lock.
    """

    def __init__(self, max_lines: int = 500, tail_lines: int = 20) -> None:
        self.max_lines = max_lines
        #: (stream, text) pieces shown in full, in arrival order
        self.head: list[tuple[str, str]] = []
        #: the last lines past the limit: (stream, line)
        self.tail: deque[tuple[str, str]] = deque(maxlen=tail_lines)
        #: complete lines received after the limit was reached
        self.hidden = 0
        self._lines = 0
        self._partial = {"stdout": "", "stderr": ""}

    @property
    def lines(self) -> int:
        """Lines received so far (shown or not)."""
        return self._lines + self.hidden

    def add(self, stream: str, text: str) -> str:
        """Record ``text``; the part of it to show now (empty once past the limit)."""
        shown = []
        for line in text.splitlines(keepends=True):
            if self._lines < self.max_lines:
                shown.append(line)
                if line.endswith(("\n", "\r")):
                    self._lines += 1
                continue
            # Past the limit: keep whole lines for the tail, counting each one hidden.
            pending = self._partial[stream] + line
            if pending.endswith(("\n", "\r")):
                self._partial[stream] = ""
                self.tail.append((stream, pending))
                self.hidden += 1
            else:
                self._partial[stream] = pending
        visible = "".join(shown)
        if visible:
            if self.head and self.head[-1][0] == stream:
                self.head[-1] = (stream, self.head[-1][1] + visible)
            else:
                self.head.append((stream, visible))
        return visible

    def finish(self) -> None:
        """Count the unterminated lines past the limit (the work is over)."""
        for stream, rest in self._partial.items():
            if rest:
                self.tail.append((stream, rest + "\n"))
                self.hidden += 1
                self._partial[stream] = ""

    @property
    def hidden_notice(self) -> str:
        """``"1234 lines hidden"`` (past the limit), or ``""``."""
        if not self.hidden:
            return ""
        noun = "line" if self.hidden == 1 else "lines"
        return f"{self.hidden} {noun} hidden"

    def pieces(self) -> Iterable[tuple[str, str]]:
        """The transcript: the head, a notice of the hidden lines, then the tail."""
        yield from self.head
        omitted = self.hidden - len(self.tail)
        if self.hidden:
            noun = "line" if self.hidden == 1 else "lines"
            if omitted:
                yield "notice", f"... {omitted} of {self.hidden} more {noun} hidden; the last:\n"
            else:
                yield "notice", f"... {self.hidden} more {noun}:\n"
        yield from self.tail


def logs_html(logs: Mapping[str, HostLog], title: str = "output") -> str:
    """Each host's remote output, stderr highlighted, one collapsible section per host."""
    sections = []
    writers = [host for host, log in logs.items() if log.lines or log.head]
    # A few hosts' output reads best open; many hosts' is an index to open one by one.
    state = " open" if len(writers) <= OPEN_SECTIONS else ""
    for host, log in logs.items():
        if host not in writers:
            continue
        spans = []
        for stream, text in log.pieces():
            if stream == "stderr":
                spans.append(f'<span style="{_STDERR_STYLE}">{_escape(text)}</span>')
            elif stream == "notice":
                spans.append(f"<em>{_escape(text)}</em>")
            else:
                spans.append(_escape(text))
        count = log.lines
        label = f"{host} {title} ({count} line{'s' if count != 1 else ''})"
        sections.append(
            f"<details{state}><summary><code>{_escape(label)}</code></summary>"
            f'<pre style="{_PRE_STYLE}">{"".join(spans)}</pre></details>'
        )
    return f'<div class="chopsticks-nb-output">{"".join(sections)}</div>' if sections else ""


def logs_text(logs: Mapping[str, HostLog]) -> str:
    """The same as plain text: each line prefixed with ``[host]``."""
    lines = []
    for host, log in logs.items():
        text = "".join(piece for _, piece in log.pieces())
        lines += [f"[{host}] {line}" for line in text.splitlines()]
    return "\n".join(lines)
