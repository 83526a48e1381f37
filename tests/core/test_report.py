"""GroupResult.to_html() and to_markdown(): reports to paste into a ticket or a chat, grouped
as the display, readable as they are rendered elsewhere (a page of their own, GitHub's
Markdown), with everything remote kept as text."""

from __future__ import annotations

import html
import re

import mistune
from test_render import SAFE_TAGS, tags_of

from chopsticks_nb._capture import OutputCapture
from chopsticks_nb.errors import RemoteException
from chopsticks_nb.result import ErrorResult, GroupResult

#: What GitHub's Markdown makes of a report: tables, code, collapsed sections.
MARKDOWN_TAGS = {
    "p",
    "strong",
    "code",
    "pre",
    "table",
    "thead",
    "tbody",
    "tr",
    "th",
    "td",
    "details",
    "summary",
}


def markdown_html(text: str) -> str:
    """``text`` rendered as Markdown with tables, raw HTML let through (as GitHub lets
    ``<details>`` through): whatever became a tag shows here."""
    render = mistune.create_markdown(escape=False, plugins=["table"])
    return str(render(text))


def failed(host: str, message: str) -> ErrorResult:
    tb = f'Traceback (most recent call last):\n  File "job.py"\nOSError: {message}\n'
    return ErrorResult.from_exception(RemoteException(message, host, "OSError", tb))


def report() -> GroupResult:
    """Ten hosts: eight agree, one differs, one failed; some printed something."""
    values: dict[str, object] = {f"db{i:02d}": {"ok": True} for i in range(1, 11)}
    values["db04"] = {"ok": False, "why": "disk `full` | 98%"}
    values["db09"] = failed("db09", "no space left on device")
    capture = OutputCapture()
    for host in values:
        write = capture.handler(host, lambda *_: None)
        write("stdout", "checking\r50%\r100%\n")
        if host == "db04":
            write("stderr", "```\nfenced? no\n\x1b[2Jwarning\n")
    return GroupResult(values, elapsed=2.0, outputs=capture.close())


def test_the_html_report_is_a_fragment_with_its_own_small_stylesheet() -> None:
    result = report()
    result["db10"] = "ünïcode ✓"
    page = result.to_html()
    assert page.startswith('<div class="chopsticks-nb-report"><style>')
    assert page.isascii() and "&#252;n&#239;code &#10003;" in page  # any page's encoding
    style = re.search(r"<style>(.*?)</style>", page, re.S)
    assert style is not None
    rules = re.findall(r"([^{}]+)\{[^{}]*\}", style.group(1))
    for rule in rules:  # scoped: it styles the report and nothing else on the page
        assert all(part.startswith(".chopsticks-nb-report ") for part in rule.split(",")), rule
    assert "font-family:var(--jp-code-font-family," in style.group(1)
    # The display's table inside, grouped the same way.
    assert result._repr_html_().encode("ascii", "xmlcharrefreplace").decode() in page
    assert tags_of(page) <= SAFE_TAGS | {"style"}
    assert "every host (10)" in page
    flat = result.to_html(grouped=False)
    assert "every host" not in flat and flat.count("<tr>") == 11


def test_the_markdown_report_renders_as_a_table_with_details() -> None:
    result = report()
    markdown = result.to_markdown()
    page = markdown_html(markdown)
    assert tags_of(page) <= MARKDOWN_TAGS, page
    rows = re.findall(r"<tr>(.*?)</tr>", page.split("<tbody>")[1].split("</tbody>")[0], re.S)
    cells = [re.findall(r"<td>(.*?)</td>", row, re.S)[:3] for row in rows]
    assert cells[0][0] == "<code>db04</code>"
    assert "why" in cells[0][2] and "full" in cells[0][2]
    assert cells[1][:2] == ["<code>db09</code>", "<strong>error</strong>"]
    assert cells[2][0] == "8 hosts <code>db[01-03,05-08,10]</code>"
    # The traceback and each set of hosts' output: a collapsed section, a fenced block.
    summaries = re.findall(r"<summary>(.*?)</summary>", page)
    assert summaries == [
        "remote traceback: 1 host db09",
        "1 host db04 printed 4 lines",
        "9 hosts db[01-03,05-10] printed the same 1 line",
    ]
    fenced = re.findall(r"<pre><code[^>]*>(.*?)</code></pre>", page, re.S)
    blocks = [html.unescape(block) for block in fenced]
    assert "OSError: no space left on device" in blocks[0]
    # A fence inside the output does not end the block; control characters show as escapes.
    assert blocks[1] == "100%\n```\nfenced? no\n\\x1b[2Jwarning\n"
    assert blocks[2] == "100%\n"  # a redrawn line: its last state


def test_markdown_keeps_one_row_per_host_when_asked() -> None:
    result = report()
    lines = result.to_markdown(grouped=False).splitlines()
    assert lines[2] == "| host | status | value | time |"
    table = [line for line in lines if line.startswith("| `db")]
    assert len(table) == 10
    assert table[3].startswith("| `db04` | ok | ``{'ok': False, 'why': 'disk `full` \\| 98%'}`` |")


def test_the_html_views_hold_no_line_break_to_end_a_markdown_block() -> None:
    """nbconvert's Markdown keeps an output's HTML as is, and a blank line ends an HTML block:
    output with empty lines, chained tracebacks and long values must not cut a view short."""
    tb = (
        "Traceback (most recent call last):\n  ValueError: first\n\n"
        "During handling of the above exception, another exception occurred:\n\n"
        "Traceback (most recent call last):\n  KeyError: 'second'\n"
    )
    capture = OutputCapture()
    capture.handler("a", lambda *_: None)("stdout", "one\n\n   \ntwo\r\n")
    result = GroupResult(
        {
            "a": {f"key{i}": "x" * 20 for i in range(8)},  # pretty-printed over lines
            "b": ErrorResult.from_exception(RemoteException("second", "b", "KeyError", tb)),
        },
        outputs=capture.close(),
    )
    for page in (result._repr_html_(), result.to_html(), result.diff()._repr_html_()):
        assert "\n" not in page and "\r" not in page
    page = result._repr_html_()
    assert "one&#10;&#10;   &#10;two&#10;" in page and "occurred:&#10;&#10;Traceback" in page
    embedded = markdown_html(f"Before.\n\n{page}\n\nAfter.\n")
    assert embedded.count("<tr>") == page.count("<tr>") and "<p>After.</p>" in embedded
    assert tags_of(embedded) <= SAFE_TAGS | {"p"}
