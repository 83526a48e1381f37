"""Result tables, output transcripts and the live view: readable, capped, and escaped."""

from __future__ import annotations

import html
import re
import subprocess
import sys
import time
from html.parser import HTMLParser

import pytest
from IPython.core.interactiveshell import InteractiveShell

from chopsticks_nb.errors import ConnectError, RemoteException
from chopsticks_nb.group import Group
from chopsticks_nb.notebook.widgets import LiveView
from chopsticks_nb.render import HostLog, group_result_html, logs_html, logs_text
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
    """A host returning, raising and printing markup: nothing of it becomes a tag."""
    group = Group([Local(HOSTILE), Local("plain")])
    try:
        result = group.exec(
            f"import sys\nprint({HOSTILE!r}); print({HOSTILE!r}, file=sys.stderr)\n{HOSTILE!r}",
        )
        failed = group.exec(f"raise ValueError({HOSTILE!r})")
        view = LiveView(group.hosts, mode="text")
        group.exec(f"print({HOSTILE!r})", output=view.output)
        view.finish()
    finally:
        group.close()
    assert result.ok, result
    for fragment in (
        result._repr_html_(),
        failed._repr_html_(),
        failed[HOSTILE]._repr_html_(),
        view.transcript_html(),
    ):
        assert tags_of(fragment) <= SAFE_TAGS, fragment
        assert "<script>" not in fragment and "<img" not in fragment
    assert html.escape(HOSTILE) in view.transcript_html()
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


def test_host_log_keeps_the_head_counts_the_rest_and_keeps_the_tail() -> None:
    log = HostLog(max_lines=3, tail_lines=2)
    shown = log.add("stdout", "1\n2\n") + log.add("stderr", "3\n4\n5") + log.add("stderr", "\n6\n")
    assert shown == "1\n2\n3\n"
    assert log.lines == 6 and log.hidden == 3 and log.hidden_notice == "3 lines hidden"
    log.add("stdout", "7 no newline")
    log.finish()
    assert [piece for _, piece in log.pieces()][-3:] == [
        "... 2 of 4 more lines hidden; the last:\n",
        "6\n",
        "7 no newline\n",
    ]
    assert logs_text({"h": log}).splitlines()[0] == "[h] 1"
    assert '<span style="background:#fdd;">3\n</span>' in logs_html({"h": log})


def test_live_view_text_mode_prints_prefixed_lines(capfd: pytest.CaptureFixture[str]) -> None:
    view = LiveView(["a", "b"], mode="text", interval=0.05)
    with view:
        view.output("a", "stdout", "one\ntw")
        view.output("b", "stderr", "oops\n")
        time.sleep(0.2)  # flushed by a broker timer, not by finish()
        out, err = capfd.readouterr()
        assert out == "[a] one\n" and err == "[b] oops\n"
        view.output("a", "stdout", "o\n")
    out, _ = capfd.readouterr()
    assert out == "[a] two\n"
    assert view.transcript_text() == "[a] one\n[a] two\n[b] oops"


def test_live_view_html_mode_updates_one_display(
    shell: InteractiveShell, capsys: pytest.CaptureFixture[str]
) -> None:
    """Without widgets: a display updated in place; here the shell prints each state."""
    view = LiveView(["a"], mode="html", interval=0.01)
    with view:
        view.output("a", "stdout", "<b>live</b>\n")
        time.sleep(0.2)
    printed = capsys.readouterr().out
    assert "[a] <b>live</b>" in printed  # text/plain of the updates
    assert "&lt;b&gt;live&lt;/b&gt;" in view.transcript_html()


def test_live_view_widgets_mode_builds_and_closes_its_widgets(shell: InteractiveShell) -> None:
    import ipywidgets

    view = LiveView(["a", "b"], mode="widgets", interval=0.01, max_lines=2)
    with view:
        backend = view._backend
        view.output("a", "stderr", "e1\ne2\ne3\n")
        time.sleep(0.2)
        out = backend.outputs["a"]  # type: ignore[attr-defined]
        assert [o.get("name") for o in out.outputs] == ["stderr", None]
        assert out.outputs[0]["text"] == "e1\ne2\n"
        assert out.outputs[1]["data"]["text/plain"] == "1 line hidden"
        assert backend.tabs.titles == ("a",)  # type: ignore[attr-defined]
    assert backend.box.comm is None  # type: ignore[attr-defined]
    assert isinstance(backend.bar, ipywidgets.IntProgress)  # type: ignore[attr-defined]


def test_import_chopsticks_nb_never_imports_ipython_or_widgets() -> None:
    code = (
        "import sys, chopsticks_nb\n"
        "from chopsticks_nb.result import GroupResult, ErrorResult\n"
        "page = GroupResult({'a': 1, 'b': ErrorResult('x', 'tb')})._repr_html_()\n"
        "import chopsticks_nb.notebook\n"
        "assert '<table>' in page\n"
        "print(sorted(m for m in ('IPython', 'ipywidgets') if m in sys.modules))\n"
        "import chopsticks_nb.notebook.magics\n"
        "print('ipywidgets' in sys.modules)\n"
        "picker = chopsticks_nb.HostPicker\n"
        "from chopsticks_nb.notebook.picker import HostPicker\n"
        "print(picker is HostPicker, 'ipywidgets' in sys.modules)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert out.stdout.split("\n")[:3] == ["[]", "False", "True True"]


def test_notebook_package_all_lists_its_public_names() -> None:
    import chopsticks_nb.notebook as notebook

    assert notebook.__all__ == sorted(notebook.__all__)
    assert set(notebook.__all__) == {
        *notebook._EXPORTS,
        "load_ipython_extension",
        "unload_ipython_extension",
    }
    for name in notebook.__all__:
        assert getattr(notebook, name) is not None
