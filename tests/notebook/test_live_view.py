"""The live view of a group operation (its grid, its transcript, text mode), driven by real Local
tunnels, and what the notebook package imports."""

from __future__ import annotations

import html
import re
import subprocess
import sys
import time
import tracemalloc

import output_funcs
import pytest
from IPython.core.interactiveshell import InteractiveShell

from chopsticks_nb.group import Group
from chopsticks_nb.notebook.live import LiveView
from chopsticks_nb.notebook.transcript import transcript_html, transcript_text
from chopsticks_nb.outputlog import OutputLog
from chopsticks_nb.result import ErrorResult, HostDone
from chopsticks_nb.tunnel import Local

HOSTILE = "<script>alert('x')</script><img src=x onerror=alert(1)>&amp;"


def test_the_live_transcript_is_escaped() -> None:
    group = Group([Local(HOSTILE)])
    try:
        view = LiveView(group.hosts, mode="text")
        group.exec(f"print({HOSTILE!r})", output=view.output, quiet=True)
        view.finish()
    finally:
        group.close()
    page = view.transcript_html()
    assert html.escape(HOSTILE) in page and "<script>" not in page and "<img" not in page


def test_text_mode_prints_prefixed_lines(capfd: pytest.CaptureFixture[str]) -> None:
    view = LiveView(["a", "b"], mode="text", interval=0.05)
    with view:
        view.output("a", "stdout", "one\ntw")
        view.output("b", "stderr", "oops \x1b[2J\n")
        time.sleep(0.3)  # passed on by a broker timer, not by finish()
        out, err = capfd.readouterr()
        assert out == "[a] one\n" and err == "[b] oops \\x1b[2J\n"
        view.output("a", "stdout", "o\n")
    out, _ = capfd.readouterr()
    assert out == "[a] two\n"
    assert view.transcript_text() == "[a] one\n[a] two\n[b] oops \\x1b[2J"


def test_html_mode_shows_a_row_per_host_and_settles_into_the_transcript(
    shell: InteractiveShell, capsys: pytest.CaptureFixture[str]
) -> None:
    view = LiveView(["a", "b", "c"], mode="html", interval=0.01, title="call on a,b,c")
    with view:
        view.output("a", "stdout", "same\n")
        view.output("b", "stdout", "same\n")
        view.output("c", "stderr", "<b>bad</b>\nworse\n")
        view.done(HostDone("c", ErrorResult("no", status="error"), 0.1, 1, 3))
        time.sleep(0.2)
        with view._lock:
            page = view._grid_bundle()["text/html"]
    printed = capsys.readouterr().out
    assert "call on a,b,c: 2 running · 0 done · 1 failed" in printed  # the counts, as text
    rows = re.findall(r'<tr class="cnb-row" data-find="([^"]*)">', page)
    assert rows == ["a,b running", "c failed"]  # a and b printed the same: one row
    assert "a,b (2 hosts)" in page and "2 err" in page
    assert "&lt;b&gt;bad&lt;/b&gt;" in page and "<b>bad" not in page
    final = view.transcript_html()
    assert "<code>a,b</code> · 2 hosts · 1 line" in final
    assert "2 on stderr" in final and "&lt;b&gt;bad&lt;/b&gt;" in final


def test_a_host_still_connecting_says_so(shell: InteractiveShell) -> None:
    group = Group([Local("never-started")])
    view = LiveView(group, mode="html", show_after=3600)
    with view._lock:
        rows, states = view._rows(time.monotonic())
    assert states == ["connecting"] and rows[0].label == "never-started"


def test_the_transcript_folds_equal_output_and_shows_stderr_without_a_click() -> None:
    logs = {f"n{i:02d}": OutputLog() for i in range(12)}
    for name, log in logs.items():
        log.add("stdout", "ready\n")
        if name in ("n03", "n07"):
            log.add("stderr", f"disk almost full on {name}\n")
        elif name == "n11":
            log.add("stdout", "extra\n")
    page = transcript_html(logs)
    sections = page.count("<details")
    assert sections == 4  # n00-n10 but the stderr ones; n03; n07; n11
    assert "<code>n[00-02,04-06,08-10]</code> · 9 hosts · 1 line" in page
    # Four sections or fewer are open; these are, so their stderr shows at once.
    assert page.count("<details open>") == 4
    assert "disk almost full on n03" in page and "1 on stderr" in page
    text = transcript_text(logs)
    assert "[n[00-02,04-06,08-10]] ready" in text and "[n07] disk almost full on n07" in text


def test_many_sections_start_closed_but_stderr_is_still_shown() -> None:
    logs = {f"h{i}": OutputLog() for i in range(8)}
    for name, log in logs.items():
        log.add("stdout", f"own line of {name}\n")
    logs["h5"].add("stderr", "".join(f"problem {i}\n" for i in range(9)))
    page = transcript_html(logs)
    assert "<details open>" not in page
    excerpt = page.split("</details>")[6]  # what follows h5's closed section
    assert "problem 8" in excerpt and "problem 3" not in excerpt
    assert "4 earlier on stderr" in excerpt


def test_a_progress_bar_flood_of_96_mib_keeps_memory_and_the_grid_bounded(
    shell: InteractiveShell, capsys: pytest.CaptureFixture[str]
) -> None:
    """A remote redraws a progress bar with \\r for 96 MiB, never a newline: the real live view
    keeps one bounded line and redraws a small grid (the old one kept the whole text). What is
    in flight at once (a batch, the pipe's buffers) is all the memory it takes."""
    group = Group([Local("bar")])
    flood = 96 * 2**20
    try:
        group.connect().raise_failures()
        view = LiveView(group, mode="html", interval=0.05)
        tracemalloc.start()
        try:
            with view:
                result = group.run(
                    output_funcs.progress_bar, (flood,), output=view.output, quiet=True
                )
                with view._lock:
                    page = view._grid_bundle()["text/html"]
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
    finally:
        group.close()
    sent = result["bar"]
    assert sent >= flood
    log = view._hosts["bar"].log
    assert log.chars == sent
    assert log.lines == 1  # the one line, ended when the work was
    (line,) = log.head
    assert re.fullmatch(r"#{48} +\d+", line[1])  # the bar's last state, not all of them
    assert len(page) < 10_000
    assert peak < 32 * 2**20, f"peak {peak / 2**20:.1f} MiB while {sent / 2**20:.0f} MiB flowed"
    capsys.readouterr()


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
