"""The live view's HTML: a row per host (hosts with the same output folded), a filter, counts.

Two displays make the view. The *controls* are drawn once: a filter box, a hidden checkbox per
row and the stylesheet. The *grid* is redrawn as the work goes on: the counts of hosts in each
state, then a row per host in the group's order with its full name, state, elapsed time,
number of stderr lines and last line of output, each followed by a panel with its latest lines.

What the reader does happens in the browser, never in the kernel (which is busy running the
cell and reads no widget messages until it ends), and survives the grid's redraws because it
lives in the controls: a row's name is a ``<label>`` for its checkbox, and a ``:has()`` rule
shows the row's panel while the box is ticked; the filter box writes one CSS rule hiding the
rows whose host and state do not contain its text (the only script: an ``oninput`` attribute;
without scripts the box does nothing and the rest works). Colours are JupyterLab's theme
variables. Everything from a remote is escaped.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from dataclasses import dataclass

from ..outputlog import Line
from ..render import format_seconds

__all__ = ["STATES", "Row", "controls_html", "grid_html"]

#: The states of a host, in the order the counts list them.
STATES = ("connecting", "running", "done", "failed", "interrupted", "timed out")
_MARKS = {
    "connecting": "…",
    "running": "▶",
    "done": "✓",
    "failed": "✗",
    "interrupted": "■",
    "timed out": "⏱",
}
_FAILED = ("failed", "interrupted", "timed out")
#: Characters of a line shown in the grid (last line) and in a row's panel.
LAST_LINE_CHARS = 120
PANEL_LINE_CHARS = 200


def _escape(text: str) -> str:
    return html.escape(text, quote=True)


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


@dataclass(frozen=True)
class Row:
    """One row of the grid: a host, or hosts whose output is the same."""

    index: int  # the first host's place in the group: names the row's checkbox
    label: str  # the host, or the folded names of the hosts
    hosts: int
    state: str
    elapsed: float
    lines: int
    stderr_lines: int
    last: Line | None
    recent: tuple[Line, ...]
    hidden: int = 0
    error: str | None = None  # why the host failed, shown in place of its last line


def _css_class(state: str) -> str:
    return "cnb-s-" + state.replace(" ", "-")


def _style(view: str, rows: int) -> str:
    """The stylesheet: theme colours, and the rules that open the panel of a ticked row."""
    scope = f".cnb-live-{view}"
    opened = "".join(
        f"body:has(#cnb-{view}-c{i}:checked) .cnb-{view}-o{i}{{display:table-row}}"
        f"body:has(#cnb-{view}-c{i}:checked) .cnb-{view}-l{i}::before{{content:'▾ '}}"
        for i in range(rows)
    )
    error = (
        "background:var(--jp-rendermime-error-background,#fdd);"
        "color:var(--jp-content-font-color1,inherit);"
    )
    return (
        "<style>"
        f"{scope}{{color:var(--jp-content-font-color1,inherit);"
        "font-size:var(--jp-content-font-size1,13px)}"
        f"{scope} .cnb-head{{margin:2px 0 4px}}"
        f"{scope} table.cnb-grid{{border-collapse:collapse;width:100%;table-layout:auto}}"
        f"{scope} .cnb-grid td{{padding:1px 8px;text-align:left;vertical-align:top;"
        "white-space:nowrap;border-bottom:1px solid var(--jp-border-color2,#e0e0e0)}"
        f"{scope} .cnb-grid td.cnb-last{{white-space:pre;overflow:hidden;max-width:60ch;"
        "text-overflow:ellipsis;width:100%}"
        f"{scope} code,{scope} pre{{font-family:var(--jp-code-font-family,monospace);"
        "font-size:var(--jp-code-font-size,12px)}"
        f"{scope} pre{{margin:0;white-space:pre-wrap;word-break:break-word}}"
        f"{scope} label.cnb-host{{cursor:pointer;white-space:nowrap}}"
        f"{scope} label.cnb-host code{{white-space:nowrap}}"
        f"{scope} label.cnb-host::before{{content:'▸ '}}"
        f"{scope} .cnb-panel{{display:none}}"
        f"{scope} .cnb-err,{scope} .cnb-s-failed,{scope} .cnb-s-interrupted,"
        f"{scope} .cnb-s-timed-out{{{error}}}"
        f"{scope} .cnb-s-connecting{{color:var(--jp-content-font-color2,inherit)}}"
        f"{opened}"
        "</style>"
    )


def controls_html(view: str, rows: int) -> str:
    """The part drawn once: stylesheet, filter box, and a checkbox for each of ``rows``."""
    script = (
        f"var v=this.value.trim(),s=document.getElementById('cnb-{view}-f');"
        f"s.textContent=v?'.cnb-live-{view} [data-find]:not([data-find*=\"'"
        "+CSS.escape(v.toLowerCase())+'\"]){display:none}':''"
    )
    boxes = "".join(f'<input type="checkbox" id="cnb-{view}-c{i}">' for i in range(rows))
    return (
        f'<div class="cnb-controls cnb-controls-{view}">{_style(view, rows)}'
        f'<style id="cnb-{view}-f"></style>'
        f'<input type="search" class="cnb-filter" placeholder="filter: host or state" '
        f'aria-label="filter hosts" oninput="{_escape(script)}">'
        f'<span hidden style="display:none">{boxes}</span></div>'
    )


def counts_text(title: str, states: Sequence[str], elapsed: float) -> str:
    """``call on web[01-16]: 2 connecting · 9 running · 4 done · 1 failed · 2.4 s``"""
    counts = dict.fromkeys(STATES, 0)
    for state in states:
        counts[state] += 1
    shown = [f"{n} {state}" for state, n in counts.items() if n or state in ("running", "done")]
    return f"{title}: {' · '.join(shown)} · {format_seconds(elapsed)}"


def _counts_html(title: str, states: Sequence[str], elapsed: float) -> str:
    counts = dict.fromkeys(STATES, 0)
    for state in states:
        counts[state] += 1
    shown = [
        f'<span class="{_css_class(state)}">{n} {state}</span>'
        for state, n in counts.items()
        if n or state in ("running", "done")
    ]
    return (
        f'<div class="cnb-head"><b>{_escape(title)}</b>: {" · ".join(shown)} · '
        f"{_escape(format_seconds(elapsed))}</div>"
    )


def _row_html(view: str, row: Row) -> str:
    find = _escape(f"{row.label} {row.state}".lower())
    label = _escape(row.label) + (f" ({row.hosts} hosts)" if row.hosts > 1 else "")
    stderr = f'<span class="cnb-err">{row.stderr_lines:,} err</span>' if row.stderr_lines else ""
    last = ""
    if row.error is not None:
        last = f'<span class="cnb-err">{_escape(_cut(row.error, LAST_LINE_CHARS))}</span>'
    elif row.last is not None:
        text = _escape(_cut(row.last[1], LAST_LINE_CHARS))
        last = f'<span class="cnb-err">{text}</span>' if row.last[0] == "stderr" else text
    last = f"<code>{last}</code>" if last else ""
    cells = (
        f'<td><label class="cnb-host cnb-{view}-l{row.index}" for="cnb-{view}-c{row.index}">'
        f"<code>{label}</code></label></td>"
        f'<td class="{_css_class(row.state)}">{_MARKS[row.state]} {row.state}</td>'
        f"<td>{_escape(format_seconds(row.elapsed))}</td>"
        f"<td>{stderr}</td>"
        f'<td class="cnb-last">{last}</td>'
    )
    panel_lines = []
    if row.hidden:
        panel_lines.append(f"<em>... {row.hidden:,} lines hidden; the latest:</em>\n")
    for stream, text in row.recent:
        text = _escape(_cut(text, PANEL_LINE_CHARS)) + "\n"
        panel_lines.append(f'<span class="cnb-err">{text}</span>' if stream == "stderr" else text)
    if not panel_lines:
        panel_lines.append("<em>no output yet</em>")
    panel = (
        f'<tr class="cnb-panel cnb-{view}-o{row.index}" data-find="{find}">'
        f'<td colspan="5"><pre>{"".join(panel_lines)}</pre></td></tr>'
    )
    return f'<tr class="cnb-row" data-find="{find}">{cells}</tr>{panel}'


def grid_html(
    view: str, title: str, rows: Sequence[Row], states: Sequence[str], elapsed: float
) -> str:
    """The part redrawn: the counts of hosts in each state, then the rows."""
    body = "".join(_row_html(view, row) for row in rows)
    return (
        f'<div class="chopsticks-nb-live cnb-live-{view}">{_counts_html(title, states, elapsed)}'
        f'<table class="cnb-grid"><tbody>{body}</tbody></table></div>'
    )
