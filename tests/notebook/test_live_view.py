"""The live view of a group operation (text, HTML, widgets), and what the notebook imports."""

from __future__ import annotations

import html
import subprocess
import sys
import time

import pytest
from IPython.core.interactiveshell import InteractiveShell

from chopsticks_nb.group import Group
from chopsticks_nb.notebook.widgets import LiveView
from chopsticks_nb.tunnel import Local

HOSTILE = "<script>alert('x')</script><img src=x onerror=alert(1)>&amp;"


def test_the_live_transcript_is_escaped() -> None:
    group = Group([Local(HOSTILE)])
    try:
        view = LiveView(group.hosts, mode="text")
        group.exec(f"print({HOSTILE!r})", output=view.output)
        view.finish()
    finally:
        group.close()
    page = view.transcript_html()
    assert html.escape(HOSTILE) in page and "<script>" not in page and "<img" not in page


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
