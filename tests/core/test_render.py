"""Result tables, text views and output transcripts: readable, capped, and escaped."""

from __future__ import annotations

import html
import re
from html.parser import HTMLParser

from chopsticks_nb.errors import ConnectError, RemoteException
from chopsticks_nb.group import Group
from chopsticks_nb.render import group_result_html
from chopsticks_nb.result import ErrorResult, GroupResult
from chopsticks_nb.tunnel import Local

HOSTILE = "<script>alert('x')</script><img src=x onerror=alert(1)>&amp;"


class _Tags(HTMLParser):
    """Every tag an HTML fragment would create in a browser."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        assert not [name for name, _ in attrs if name.startswith("on")], attrs


def tags_of(fragment: str) -> set[str]:
    parser = _Tags()
    parser.feed(fragment)
    return set(parser.tags)


SAFE_TAGS = {
    "div",
    "table",
    "thead",
    "tbody",
    "tr",
    "th",
    "td",
    "code",
    "pre",
    "span",
    "details",
    "summary",
    "small",
    "em",
}


def test_remote_values_errors_tracebacks_and_output_are_escaped() -> None:
    """A host returning, raising and printing markup: nothing of it becomes a tag (the result
    shows what the hosts printed too)."""
    group = Group([Local(HOSTILE), Local("plain")])
    try:
        result = group.exec(
            f"import sys\nprint({HOSTILE!r}); print({HOSTILE!r}, file=sys.stderr)\n{HOSTILE!r}",
            output=lambda host, stream, text: None,
        )
        failed = group.exec(f"raise ValueError({HOSTILE!r})")
    finally:
        group.close()
    assert result.ok, result
    for fragment in (result._repr_html_(), failed._repr_html_(), failed[HOSTILE]._repr_html_()):
        assert tags_of(fragment) <= SAFE_TAGS, fragment
        assert "<script>" not in fragment and "<img" not in fragment
    assert result.output(HOSTILE).count(HOSTILE) == 2  # printed to stdout and to stderr
    assert html.escape(HOSTILE) in result._repr_html_()
    # The escaped text still reads as what the host sent.
    assert HOSTILE in html.unescape(re.sub(r"<[^>]+>", "", failed._repr_html_()))


def test_table_has_host_status_value_and_time_with_tracebacks_collapsed() -> None:
    remote = RemoteException("boom", "b", "ValueError", "Traceback...\nValueError: boom\n")
    result = GroupResult(
        {
            "a": {"k": [1, 2]},
            "b": ErrorResult.from_exception(remote),
            "c": ErrorResult.from_exception(ConnectError("refused", "c")),
        },
        timings={"a": 0.0123, "b": 2.5},
        elapsed=2.6,
    )
    page = result._repr_html_()
    assert re.findall(r"<th[^>]*>(\w+)</th>", page) == ["host", "status", "value", "time"]
    rows = re.findall(r"<tr>(.*?)</tr>", page.split("<tbody>")[1], re.S)
    assert len(rows) == 3
    assert "<code>a</code>" in rows[0] and ">ok<" in rows[0] and "12 ms" in rows[0]
    assert html.escape("{'k': [1, 2]}") in rows[0]
    assert ">error<" in rows[1] and "2.50 s" in rows[1]
    assert "<details><summary>remote traceback</summary>" in rows[1]
    assert ">unreachable<" in rows[2] and "refused" in rows[2] and "<details>" not in rows[2]
    assert "3 hosts: 1 ok, 1 error, 1 unreachable in 2.60 s" in page


def test_long_values_are_cut_with_a_notice() -> None:
    page = group_result_html(GroupResult({"a": "x" * 10_000}))
    assert "more characters)" in page and len(page) < 4_000


def test_text_repr_stays_the_terminal_view() -> None:
    result = GroupResult({"a": 1, "b": ErrorResult("ValueError: no")})
    assert repr(result) == "GroupResult({'a': 1, 'b': ErrorResult('ValueError: no')})"
