"""Text, HTML and Markdown views of group results, and of remote output (plain markup).

They must read well in a terminal, in JupyterLab, in nbconvert's HTML and on GitHub (which
strips styles), so the markup is plain (table, pre, details) and styles are only decoration.
Everything that came from a remote host is escaped (host names, values, messages, tracebacks,
output). When values repeat, a result is shown grouped: a row per group of hosts with identical
outcomes, the outliers first, host lists folded into ranges (``195 hosts web[001-195]``), times
as min / median / max; in HTML the table of every host is one click away (a ``<details>``, no
script), in text ``grouped=False`` lists them. ``GroupResult``'s views call in here, and so do
the notebook layer's live views; nothing here imports IPython or the notebook layer.
"""

from __future__ import annotations

import contextlib
import functools
import html
import pprint
import re
import statistics
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

from ._bounded import short_repr, short_text, whole_repr
from .hosts import HostRangeError, fold

if TYPE_CHECKING:  # the result model imports this module, not the other way round
    from ._capture import Transcript
    from ._grouping import ValueGroup
    from .result import ErrorResult, GroupResult

__all__ = [
    "diff_html",
    "error_result_html",
    "fold_hosts",
    "format_seconds",
    "format_value",
    "group_result_html",
    "group_result_markdown",
    "group_result_text",
    "summary",
    "time_summary",
]

#: Longest text shown for one value in a table cell; the rest is cut with a notice.
MAX_VALUE_CHARS = 2000
#: Longest text shown for one value on one line (text views, the table of every host).
MAX_VALUE_REPR = 200
#: Values whose repr is longer are spread over lines of this width.
_PRETTY_WIDTH = 80
#: Longest value shown in the table of every host (each group's row shows more of it).
MAX_VALUE_CELL = 80
#: Longest folded host list shown for one group (the table of every host has them all).
MAX_HOSTS_CHARS = 300
#: Groups of hosts that printed the same output, shown in HTML (text: a few of them).
MAX_OUTPUT_GROUPS = 20
MAX_OUTPUT_GROUPS_TEXT = 5
_STDERR_STYLE = "background:#fdd;"
_FAILED_STYLE = "color:#b00020;font-weight:bold;"
_CELL_STYLE = "text-align:left;vertical-align:top;padding:2px 8px;"
_PRE_STYLE = "margin:0;white-space:pre-wrap;word-break:break-word;"
#: The cells of the table of every host: short, as it may have thousands of rows.
_LEFT = ' style="text-align:left;"'
#: What str.splitlines() splits at.
_LINE_BREAK = re.compile("[\n\r\v\f\x1c-\x1e\x85\u2028\u2029]")
_BACKTICKS = re.compile("`+")
_DIFF_STYLES = {"+": "background:#e6ffec;", "-": "background:#ffebe9;", "@": "color:#0550ae;"}


def _escape(text: object) -> str:
    return html.escape(str(text), quote=True)


# -- pieces: values, times, host lists ------------------------------------------------------------


def format_value(value: object, limit: int = MAX_VALUE_CHARS, *, pretty: bool = True) -> str:
    """How every view shows a value: its repr, cut at ``limit`` characters; ``pretty`` spreads
    a longer one over lines (pprint) and says that it was cut, else it stays on one line.

    A 100 MB bytes value, an int of a million digits (Python refuses its repr), a broken
    ``__repr__``: the text is bounded before it is built and never fails (see _bounded)."""
    text = whole_repr(value, limit)
    if text is None:  # longer than limit, or not the repr itself (an int too long to show)
        text = short_repr(value, limit)
        cut = len(text) == limit
        return f"{text[:-3]}... (more characters)" if pretty and cut else text
    if pretty and _PRETTY_WIDTH < len(text) <= limit:
        with contextlib.suppress(Exception):  # else the plain repr stays
            text = pprint.pformat(value, width=_PRETTY_WIDTH, sort_dicts=False)
    if len(text) <= limit:
        return text
    if pretty:
        return f"{text[:limit]}... ({len(text) - limit} more characters)"
    return text[: limit - 3] + "..."


def format_seconds(seconds: float | None) -> str:
    """``0.012`` -> ``"12 ms"``, ``3.4`` -> ``"3.40 s"``; ``""`` when unknown."""
    if seconds is None:
        return ""
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    return f"{seconds:.2f} s"


def time_summary(seconds: Iterable[float]) -> str:
    """One time as itself; several as ``min / median / max``; ``""`` when none is known."""
    known = sorted(seconds)
    if not known:
        return ""
    if len(known) == 1:
        return format_seconds(known[0])
    middle = statistics.median(known)
    return " / ".join(format_seconds(t) for t in (known[0], middle, known[-1]))


def fold_hosts(hosts: Sequence[str], limit: int | None = None) -> str:
    """The hosts as one range expression (``web[01-05,07]``), or as a comma-separated list
    when some name cannot be written in one; cut at ``limit`` characters."""
    text = hosts[0] if len(hosts) == 1 else _fold(tuple(hosts))
    if limit is not None and len(text) > limit:
        return text[: limit - 3] + "..."
    return text


@functools.lru_cache(maxsize=32)
def _fold(hosts: tuple[str, ...]) -> str:
    # Cached: a result's text, HTML and diff fold the same lists, and folding 10,000 names
    # takes tens of milliseconds.
    try:
        return fold(hosts)
    except (HostRangeError, TypeError):
        return ", ".join(hosts)


def _hosts_count(count: int) -> str:
    return "1 host" if count == 1 else f"{count} hosts"


def _group_message(group: ValueGroup) -> str:
    """A failure's message; for several hosts, each one's own name written ``{host}``."""
    return group.message if len(group.hosts) > 1 else str(group.value.msg)


def _one_line(text: str, limit: int = MAX_VALUE_REPR) -> str:
    text = text[: 4 * limit]  # a remote's message may be a megabyte: only its start is shown
    if _LINE_BREAK.search(text):
        text = " | ".join(line for line in text.splitlines() if line.strip()) or text
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _times(result: GroupResult, hosts: Sequence[str]) -> str:
    timings = result.timings
    return time_summary(timings[host] for host in hosts if host in timings)


def _grouping(result: GroupResult, grouped: bool | None) -> list[ValueGroup] | None:
    """The groups to show, or None for a row per host (asked for, or no value repeats)."""
    if grouped is False or not result or (grouped is None and not result._values_repeat()):
        return None
    return result._value_groups()


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


def _printed(transcript: Transcript, hosts: Sequence[str], limit: int | None = None) -> str:
    """``12 hosts web[01-12] printed the same 3 lines``."""
    return (
        f"{_hosts_count(len(hosts))} {fold_hosts(hosts, limit)} {_what_printed(transcript, hosts)}"
    )


def _what_printed(transcript: Transcript, hosts: Sequence[str]) -> str:
    lines = transcript.lines
    what = f"{lines} line{'s' if lines != 1 else ''}" if lines else "text"
    return f"printed {'the same ' if len(hosts) > 1 else ''}{what}"


# -- text ---------------------------------------------------------------------------------------


def group_result_text(result: GroupResult, grouped: bool | None = None) -> str:
    """The text view: ``GroupResult({'a': 1, ...})``, one host a line when that is long; when
    values repeat (or ``grouped``), a line per group of hosts with identical outcomes."""
    groups = _grouping(result, grouped)
    text = _hosts_text(result) if groups is None else _groups_text(result, groups)
    return text + _outputs_text(result)


def _hosts_text(result: GroupResult) -> str:
    failures = dict(result.failures())
    items = [
        f"{host!r}: {failures[host]!r}"
        if host in failures
        else f"{host!r}: {format_value(value, MAX_VALUE_REPR, pretty=False)}"
        for host, value in result.items()
    ]
    one_line = "GroupResult({" + ", ".join(items) + "})"
    if len(one_line) <= 100:
        return one_line
    return "GroupResult({\n" + "".join(f"    {item},\n" for item in items) + "})"


def _groups_text(result: GroupResult, groups: list[ValueGroup]) -> str:
    width = len(str(max(len(group.hosts) for group in groups)))
    legend = "; times min / median / max" if result.timings else ""
    lines = [f"GroupResult ({summary(result)}), grouped by value{legend}:"]
    for group in groups:
        count = len(group.hosts)
        noun = "host " if count == 1 else "hosts"
        hosts = fold_hosts(group.hosts, MAX_HOSTS_CHARS)
        if group.failed:
            shown = f"{group.value.status}: {_one_line(_group_message(group))}"
        else:
            shown = format_value(group.value, MAX_VALUE_REPR, pretty=False)
        times = _times(result, group.hosts)
        lines.append(
            f"  {count:>{width}} {noun} {hosts}: {shown}" + (f"  [{times}]" if times else "")
        )
    return "\n".join(lines)


def _outputs_text(result: GroupResult) -> str:
    groups = result._output_groups()
    if not groups:
        return ""
    lines = [
        f"  {_printed(t, hosts, MAX_HOSTS_CHARS)}" for t, hosts in groups[:MAX_OUTPUT_GROUPS_TEXT]
    ]
    rest = sum(len(hosts) for _, hosts in groups[MAX_OUTPUT_GROUPS_TEXT:])
    if rest:
        lines.append(f"  {_hosts_count(rest)} more printed other output")
    return "\nprinted (result.output(host) shows it):\n" + "\n".join(lines)


# -- HTML -----------------------------------------------------------------------------------------


def _traceback_details(tb: str, summary_text: str = "remote traceback") -> str:
    return (
        f"<details><summary>{_escape(summary_text)}</summary>"
        f'<pre style="{_PRE_STYLE}">{_escape(tb.rstrip())}</pre></details>'
    )


def _error_cell(error: ErrorResult, message: str | None = None) -> str:
    text = short_text(error.msg if message is None else message, MAX_VALUE_CHARS)
    body = f'<pre style="{_PRE_STYLE}">{_escape(text)}</pre>'
    if error.tb:
        body += _traceback_details(error.tb)
    return body


def _status_html(error: ErrorResult | None) -> str:
    if error is None:
        return "ok"
    return f'<span style="{_FAILED_STYLE}">{_escape(error.status)}</span>'


def error_result_html(error: ErrorResult) -> str:
    """An ErrorResult on its own: status, host and message; the traceback collapsed."""
    where = f" on <code>{_escape(error.host)}</code>" if error.host else ""
    return f"<div>{_status_html(error)}{where}{_error_cell(error)}</div>"


def _table(head: Sequence[str], rows: Iterable[str]) -> str:
    cells = "".join(f'<th style="{_CELL_STYLE}">{name}</th>' for name in head)
    return f"<table><thead><tr>{cells}</tr></thead><tbody>{''.join(rows)}</tbody></table>"


def _row(*cells: str) -> str:
    shown = "".join(f'<td style="{_CELL_STYLE}">{cell}</td>' for cell in cells[:-1])
    return f'<tr>{shown}<td style="{_CELL_STYLE}white-space:nowrap;">{cells[-1]}</td></tr>'


def group_result_html(result: GroupResult, grouped: bool | None = None) -> str:
    """The result table: a row per group of hosts with identical outcomes when values repeat
    (or ``grouped``), with every host's row one click away; else a row per host. Then the
    output the hosts printed, folded the same way."""
    groups = _grouping(result, grouped)
    if groups is None:
        table, every_host = _hosts_table(result), ""
    else:
        table, every_host = _groups_table(result, groups), _every_host_html(result, groups)
    return (
        f'<div class="chopsticks-nb-result">{table}<small>{_escape(summary(result))}</small>'
        f"{every_host}{_outputs_html(result)}</div>"
    )


def _hosts_table(result: GroupResult) -> str:
    failures = dict(result.failures())
    rows = []
    for host, value in result.items():
        error = failures.get(host)
        if error is not None:
            cell = _error_cell(error)
        else:
            cell = f'<pre style="{_PRE_STYLE}">{_escape(format_value(value))}</pre>'
        seconds = format_seconds(result.timings.get(host))
        rows.append(_row(f"<code>{_escape(host)}</code>", _status_html(error), cell, seconds))
    return _table(("host", "status", "value", "time"), rows)


def _groups_table(result: GroupResult, groups: list[ValueGroup]) -> str:
    rows = []
    for group in groups:
        hosts = f"<code>{_escape(fold_hosts(group.hosts, MAX_HOSTS_CHARS))}</code>"
        if len(group.hosts) > 1:
            hosts = f"{len(group.hosts)} hosts {hosts}"
        if group.failed:
            status = _status_html(group.value)
            cell = _error_cell(group.value, _group_message(group))
        else:
            status = "ok"
            cell = f'<pre style="{_PRE_STYLE}">{_escape(format_value(group.value))}</pre>'
        rows.append(_row(hosts, status, cell, _escape(_times(result, group.hosts))))
    return _table(("hosts", "status", "value", "time (min / median / max)"), rows)


def _every_host_html(result: GroupResult, groups: list[ValueGroup]) -> str:
    """A row per host, in a ``<details>``: one click shows them, no script needed."""
    shown: dict[str, tuple[str, str]] = {}  # host -> (status, value) cells
    for group in groups:
        if group.failed:
            status = _status_html(group.value)
            for host in group.hosts:
                error = result[host]
                shown[host] = (status, _escape(_one_line(str(error.msg))))
        else:
            value = format_value(group.value, MAX_VALUE_CELL, pretty=False)
            cell = ("ok", f"<code>{_escape(value)}</code>")
            for host in group.hosts:
                shown[host] = cell
    timings = result.timings
    rows = [
        f"<tr><td{_LEFT}><code>{_escape(host)}</code></td><td{_LEFT}>{shown[host][0]}</td>"
        f"<td{_LEFT}>{shown[host][1]}</td><td{_LEFT}>{format_seconds(timings.get(host))}</td></tr>"
        for host in result
    ]
    return (
        f'<details class="chopsticks-nb-every-host"><summary>every host ({len(result)})</summary>'
        f"<table><thead><tr><th{_LEFT}>host</th><th{_LEFT}>status</th><th{_LEFT}>value</th>"
        f"<th{_LEFT}>time</th></tr></thead><tbody>{''.join(rows)}</tbody></table></details>"
    )


def _transcript_html(pieces: Iterable[tuple[str, str]]) -> str:
    spans = []
    for stream, text in pieces:
        if stream == "stderr":
            spans.append(f'<span style="{_STDERR_STYLE}">{_escape(text)}</span>')
        elif stream == "notice":
            spans.append(f"<em>{_escape(text)}</em>")
        else:
            spans.append(_escape(text))
    return f'<pre style="{_PRE_STYLE}">{"".join(spans)}</pre>'


def _outputs_html(result: GroupResult) -> str:
    """What the hosts printed: a collapsed section per group of hosts with the same output."""
    groups = result._output_groups()
    if not groups:
        return ""
    sections = [
        f"<details><summary>{_escape(_printed(transcript, hosts, MAX_HOSTS_CHARS))}</summary>"
        f"{_transcript_html(transcript.pieces())}</details>"
        for transcript, hosts in groups[:MAX_OUTPUT_GROUPS]
    ]
    rest = sum(len(hosts) for _, hosts in groups[MAX_OUTPUT_GROUPS:])
    if rest:
        sections.append(f"<small>{_hosts_count(rest)} more printed other output</small>")
    return f'<div class="chopsticks-nb-printed">{"".join(sections)}</div>'


def diff_html(heading: str, sections: Sequence[Sequence[str]], notes: Sequence[str]) -> str:
    """A diff (see ``GroupResult.diff``): added lines green, removed red; all escaped."""
    parts = [f"<div>{_escape(heading)}</div>"]
    for lines in sections:
        parts.append(f'<pre style="{_PRE_STYLE}">{"".join(map(_diff_line, lines))}</pre>')
    parts += [f"<div>{_escape(note)}</div>" for note in notes]
    return f'<div class="chopsticks-nb-diff">{"".join(parts)}</div>'


def _diff_line(line: str) -> str:
    text = _escape(line) + "\n"
    if line.startswith(("+++ ", "--- ")):
        return f"<strong>{text}</strong>"
    style = _DIFF_STYLES.get(line[:1])
    return text if style is None else f'<span style="{style}">{text}</span>'


# -- Markdown --------------------------------------------------------------------------------------


def group_result_markdown(result: GroupResult, grouped: bool | None = None) -> str:
    """A Markdown table (GitHub's flavour) for a ticket or a chat, grouped as the other views;
    everything remote is in code spans, so none of it becomes markup."""
    groups = _grouping(result, grouped)
    lines = [f"**GroupResult**: {summary(result)}", ""]
    timings = result.timings
    if groups is None:
        lines += ["| host | status | value | time |", "| --- | --- | --- | --- |"]
        failures = dict(result.failures())
        for host, value in result.items():
            error = failures.get(host)
            status, shown = _markdown_outcome(value if error is None else error, error, None)
            seconds = format_seconds(timings.get(host))
            lines.append(f"| {_code(host)} | {status} | {shown} | {seconds} |")
    else:
        lines += [
            "| hosts | status | value | time (min / median / max) |",
            "| --- | --- | --- | --- |",
        ]
        for group in groups:
            who = _code(fold_hosts(group.hosts, MAX_HOSTS_CHARS))
            if len(group.hosts) > 1:
                who = f"{len(group.hosts)} hosts {who}"
            error = group.value if group.failed else None
            message = _group_message(group) if group.failed else None
            status, shown = _markdown_outcome(group.value, error, message)
            lines.append(f"| {who} | {status} | {shown} | {_times(result, group.hosts)} |")
    printed = result._output_groups()
    if printed:
        lines.append("")
        for transcript, hosts in printed[:MAX_OUTPUT_GROUPS]:
            folded = _code(fold_hosts(hosts, MAX_HOSTS_CHARS))
            lines.append(
                f"- {_hosts_count(len(hosts))} {folded} {_what_printed(transcript, hosts)}"
            )
    return "\n".join(lines) + "\n"


def _markdown_outcome(
    value: Any, error: ErrorResult | None, message: str | None
) -> tuple[str, str]:
    if error is not None:
        return f"**{error.status}**", _code(_one_line(error.msg if message is None else message))
    return "ok", _code(format_value(value, MAX_VALUE_REPR, pretty=False))


def _code(text: str) -> str:
    """``text`` as a Markdown code span in a table cell: literal, on one line."""
    text = _one_line(text, MAX_VALUE_REPR * 2).replace("|", "\\|")
    longest = max(map(len, _BACKTICKS.findall(text)), default=0) if "`" in text else 0
    fence = "`" * (longest + 1)
    pad = " " if text.startswith("`") or text.endswith("`") or not text.strip() else ""
    return f"{fence}{pad}{text}{pad}{fence}"
