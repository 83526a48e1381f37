"""The static transcript of an operation's remote output: what stays under the cell at the end.

Hosts whose output is the same are folded into one section (``web[01-16]``); a section whose
hosts wrote to stderr says so in its title and shows those lines without a click. The HTML is
plain markup (details, pre) with inline styles only as decoration, coloured from JupyterLab's
theme variables (readable in the light and dark themes) with fallbacks for other viewers;
everything from a remote is escaped. The text form prefixes every line with its hosts, with
control characters escaped.
"""

from __future__ import annotations

import html
from collections.abc import Mapping
from dataclasses import dataclass

from ..hosts import fold
from ..outputlog import Line, OutputLog, printable

__all__ = ["Section", "sections", "transcript_html", "transcript_text"]

#: Up to this many sections are shown open; beyond, they start collapsed.
OPEN_SECTIONS = 4
#: stderr lines shown under a collapsed section's title.
STDERR_EXCERPT = 5

#: Colours: the theme's own for errors and text, light fallbacks outside JupyterLab.
STDERR_STYLE = (
    "background:var(--jp-rendermime-error-background,#fdd);"
    "color:var(--jp-content-font-color1,inherit);"
)
FLAG_STYLE = STDERR_STYLE + "padding:0 4px;border-radius:2px;"
PRE_STYLE = (
    "margin:0;white-space:pre-wrap;word-break:break-word;"
    "font-family:var(--jp-code-font-family,monospace);font-size:var(--jp-code-font-size,inherit);"
)
EXCERPT_STYLE = PRE_STYLE + "margin:2px 0 6px 1.2em;"


def _escape(text: str) -> str:
    return html.escape(text, quote=True)


@dataclass(frozen=True)
class Section:
    """Hosts with the same output, and that output (the first host's log)."""

    hosts: tuple[str, ...]
    log: OutputLog

    @property
    def label(self) -> str:
        return self.hosts[0] if len(self.hosts) == 1 else fold(self.hosts)

    def stderr(self) -> list[Line]:
        return [line for line in (*self.log.head, *self.log.tail) if line[0] == "stderr"]


def _key(log: OutputLog) -> tuple[object, ...]:
    return (tuple(log.head), log.hidden, tuple(log.tail), log.stderr_lines)


def sections(logs: Mapping[str, OutputLog]) -> list[Section]:
    """The hosts that wrote something, those with the same output folded together, in the
    order of each section's first host."""
    found: dict[tuple[object, ...], list[str]] = {}
    first: dict[tuple[object, ...], OutputLog] = {}
    for host, log in logs.items():
        if not log.lines:
            continue
        key = _key(log)
        found.setdefault(key, []).append(host)
        first.setdefault(key, log)
    return [Section(tuple(hosts), first[key]) for key, hosts in found.items()]


def _lines_html(pieces: list[tuple[str, str]]) -> str:
    spans = []
    for stream, text in pieces:
        if stream == "stderr":
            spans.append(f'<span style="{STDERR_STYLE}">{_escape(text)}</span>')
        elif stream == "notice":
            spans.append(f"<em>{_escape(text)}</em>")
        else:
            spans.append(_escape(text))
    return "".join(spans)


def _title(section: Section) -> str:
    log = section.log
    count = len(section.hosts)
    parts = [f"<code>{_escape(section.label)}</code>"]
    if count > 1:
        parts.append(f"{count} hosts")
    parts.append(f"{log.lines:,} line{'s' if log.lines != 1 else ''}")
    title = " · ".join(parts)
    if log.stderr_lines:
        title += f' <span style="{FLAG_STYLE}">{log.stderr_lines:,} on stderr</span>'
    return title


def transcript_html(logs: Mapping[str, OutputLog]) -> str:
    """The output as HTML, one section per set of hosts with the same output ("" if none)."""
    found = sections(logs)
    opened = len(found) <= OPEN_SECTIONS
    parts = []
    for section in found:
        body = f'<pre style="{PRE_STYLE}">{_lines_html(list(section.log.pieces()))}</pre>'
        parts.append(
            f"<details{' open' if opened else ''}><summary>{_title(section)}</summary>"
            f"{body}</details>"
        )
        stderr = section.stderr()
        if stderr and not opened:
            # Shown without a click: the last stderr lines, under the closed section.
            shown = [(stream, text + "\n") for stream, text in stderr[-STDERR_EXCERPT:]]
            more = section.log.stderr_lines - len(shown)
            if more > 0:
                shown.insert(0, ("notice", f"... {more:,} earlier on stderr\n"))
            parts.append(f'<pre style="{EXCERPT_STYLE}">{_lines_html(shown)}</pre>')
    if not parts:
        return ""
    return f'<div class="chopsticks-nb-output">{"".join(parts)}</div>'


def transcript_text(logs: Mapping[str, OutputLog]) -> str:
    """The same as text: each line prefixed with ``[hosts]`` ("" if there was no output)."""
    lines = []
    for section in sections(logs):
        prefix = f"[{section.label}] "
        lines += [printable(prefix + text.rstrip("\n")) for _, text in section.log.pieces()]
    return "\n".join(lines)
