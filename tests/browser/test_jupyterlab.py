"""%%remote and the HostPicker in JupyterLab, in a real browser: what a user sees."""

from __future__ import annotations

import json
import re

from conftest import Notebook
from playwright.sync_api import expect

from fixtures.sshd import SSHHosts

SETUP = (
    "%load_ext chopsticks_nb\n"
    "from chopsticks_nb import Group, HostPicker, Local\n"
    "group = Group([Local(f'host{i}') for i in range(3)])"
)
LIVE = (
    "%%remote group\n"
    "import sys, time\n"
    "for i in range(6):\n"
    "    print(f'<b>step {i}</b>', file=sys.stderr)\n"
    "    time.sleep(0.5)\n"
    "'<i>done</i>'"
)
FAILING = "%%remote group\n1 / 0"


def test_remote_cell_shows_live_stderr_then_the_result_table(notebook: Notebook) -> None:
    notebook.open("remote.ipynb", [SETUP, LIVE, FAILING])
    notebook.run(0)
    page = notebook.page

    # While the cell runs: the live grid, the hosts' equal output folded into one row, its
    # last line the remote stderr, as text.
    notebook.start(1)
    live = notebook.cell(1).locator(".chopsticks-nb-live")
    live.wait_for()
    # (Retried: hosts still connecting, or one a line ahead of the others, are rows apart.)
    expect(live.locator(".cnb-head")).to_contain_text(re.compile(r"3 running · 0 done"))
    rows = live.locator("tr.cnb-row")
    expect(rows).to_have_count(1)
    expect(rows.first).to_contain_text("host[0-2] (3 hosts)")
    live.locator(".cnb-last .cnb-err").get_by_text(re.compile(r"^<b>step \d</b>$")).wait_for()
    # A click on the row opens its latest lines, and they stay open through redraws.
    panel = live.locator("tr.cnb-panel[class$='-o0']")  # the panel of host0's row
    assert not panel.is_visible()
    rows.first.locator("label").click()
    panel.get_by_text("<b>step 3</b>").wait_for()
    assert notebook.prompt(1) == "[*]:"  # seen while still running

    # At the end: the static transcript and the table; the live view is gone.
    notebook.wait_done(1)
    outputs = notebook.cell(1).locator(".jp-OutputArea")
    outputs.locator(".chopsticks-nb-result > table").wait_for()
    assert outputs.locator(".chopsticks-nb-live").count() == 0
    # Every host answered the same: one row for the three of them.
    rows = outputs.locator(".chopsticks-nb-result > table > tbody > tr")
    assert rows.count() == 1
    assert rows.first.locator("td").first.inner_text() == "3 hosts host[0-2]"
    assert "'<i>done</i>'" in rows.first.inner_text()
    transcript = outputs.locator(".chopsticks-nb-output")
    assert "<b>step 5</b>" in transcript.inner_text()
    assert "6 on stderr" in transcript.locator("summary").inner_text()
    # Nothing remote became markup.
    assert outputs.locator(".chopsticks-nb-output b, .chopsticks-nb-result i").count() == 0

    # A failed host: the table first (traceback collapsed, opens on click), then the error.
    failed = notebook.run(2)
    failed.locator(".chopsticks-nb-result > table").wait_for()
    error = failed.locator("[data-mime-type='application/vnd.jupyter.stderr']").last
    assert "GroupError: 3 of 3 hosts failed: host0, host1, host2" in error.inner_text()
    details = failed.locator(".chopsticks-nb-result details").first
    assert details.get_attribute("open") is None
    details.locator("summary").click()
    assert "ZeroDivisionError: division by zero" in details.locator("pre").inner_text()
    assert page.locator(".jp-NotebookPanel:visible").count() == 1


def test_host_picker_selects_checks_and_runs_on_the_selection(
    notebook: Notebook, sshd_hosts: SSHHosts
) -> None:
    config = str(sshd_hosts.config_path)
    notebook.open(
        "picker.ipynb",
        [
            f"%load_ext chopsticks_nb\nfrom chopsticks_nb import HostPicker\n"
            f"picker = HostPicker(ssh_config={config!r})\npicker",
            "%%remote picker\nimport getpass\ngetpass.getuser()",
            "picker.selected",
        ],
    )
    picker = notebook.run(0).locator(".chopsticks-nb-picker")
    picker.wait_for()
    rows = picker.locator(".chopsticks-nb-picker-row")
    assert rows.count() == 4

    # Filter with a glob, select what is shown, check it.
    picker.locator(".widget-text input").fill("web[12]")
    notebook.page.wait_for_function(
        "() => [...document.querySelectorAll('.chopsticks-nb-picker-row')]"
        ".filter(r => r.offsetParent !== null).length === 2"
    )
    picker.get_by_role("button", name="all").click()
    picker.get_by_role("button", name="check").click()
    for name in ("web1", "web2"):
        row = rows.filter(has_text=name)
        row.get_by_text(re.compile(r"✓ Python 3\.")).wait_for()
    # Clear the filter, tick web4 by hand.
    picker.locator(".widget-text input").fill("")
    rows.filter(has_text="web4").locator("input[type=checkbox]").check()
    picker.get_by_text("3 of 4 hosts selected").wait_for()

    table = notebook.run(1).locator(".chopsticks-nb-result > table > tbody > tr")
    table.first.wait_for()
    assert table.count() == 1  # the same user on the three hosts: one row
    assert table.first.locator("td").first.inner_text() == "3 hosts web[1-2,4]"
    assert sshd_hosts.user in table.first.inner_text()
    selected = notebook.run(2).inner_text()
    assert "['web1', 'web2', 'web4']" in selected


GRID_SETUP = (
    "%load_ext chopsticks_nb\n"
    "from chopsticks_nb import Group, Local\n"
    "big = Group([Local(f'n{i:02d}') for i in range(64)])\n"
    "big.connect(quiet=True).raise_failures()\n"
    "for tunnel in big:\n"
    "    tunnel.exec(f'me = {tunnel.host!r}')"
)
#: n00-n31 print the same lines, n32-n63 their own; n05, n21, n37 and n53 also write stderr.
GRID = (
    "%%remote big\n"
    "import sys, time\n"
    "n = int(me[1:])\n"
    "for step in range(10):\n"
    "    print('the same line', step) if n < 32 else print(me, 'step', step)\n"
    "    if n % 16 == 5:\n"
    "        print(me, 'warning', step, file=sys.stderr)\n"
    "    time.sleep(0.4)\n"
    "n"
)


def test_the_live_grid_of_64_hosts(notebook: Notebook) -> None:
    notebook.open("grid.ipynb", [GRID_SETUP, GRID])
    notebook.run(0)
    notebook.start(1)
    live = notebook.cell(1).locator(".chopsticks-nb-live")
    live.wait_for()
    # The counts show from the first drawing on.
    assert re.search(
        r"exec on n\[00-63\]: (\d+ connecting · )?\d+ running · \d+ done", live.inner_text()
    )
    # A row per host in the group's order, full names; the 30 with equal output folded.
    rows = live.locator("tr.cnb-row")
    notebook.page.wait_for_function(
        "() => document.querySelectorAll('.chopsticks-nb-live tr.cnb-row').length === 35"
    )
    labels = [label.strip() for label in rows.locator("label").all_inner_texts()]  # at once
    assert labels[0] == "n[00-04,06-20,22-31] (30 hosts)"
    assert labels[1:3] == ["n05", "n21"] and labels[3:] == [f"n{i}" for i in range(32, 64)]
    assert "err" in rows.nth(1).inner_text()  # n05's stderr lines, counted
    # A row opens its host's output; the filter box hides the rows that do not match.
    row = rows.filter(has_text="n40")
    row.locator("label").click()
    live.locator("tr.cnb-panel").filter(has_text="n40 step").first.wait_for()
    notebook.cell(1).locator("input.cnb-filter").fill("n4")
    notebook.page.wait_for_function(
        "() => [...document.querySelectorAll('.chopsticks-nb-live tr.cnb-row')]"
        ".filter(r => r.offsetParent !== null).length === 10"
    )
    assert live.locator("tr.cnb-panel").filter(has_text="n40 step").first.is_visible()
    # It settles into the transcript: equal output folded, stderr flagged and shown.
    notebook.wait_done(1)
    outputs = notebook.cell(1).locator(".jp-OutputArea")
    transcript = outputs.locator(".chopsticks-nb-output")
    transcript.wait_for()
    assert outputs.locator(".chopsticks-nb-live").count() == 0
    titles = transcript.locator("summary").all_inner_texts()
    assert titles[0].startswith("n[00-04,06-20,22-31] · 30 hosts · 10 lines")
    assert "10 on stderr" in titles[1] and titles[1].startswith("n05")
    assert "n53 warning 9" in transcript.inner_text()  # shown without a click
    assert outputs.locator(".chopsticks-nb-result tbody tr").count() == 64


CONTRAST = """
(selectors) => {
  const rgba = (text) => {
    const m = text.match(/rgba?\\(([^)]+)\\)/);
    if (!m) return [0, 0, 0, 0];
    const p = m[1].split(',').map(Number);
    return [p[0], p[1], p[2], p.length > 3 ? p[3] : 1];
  };
  const over = (top, bottom) => {
    const a = top[3];
    return [0, 1, 2].map(i => top[i] * a + bottom[i] * (1 - a)).concat([1]);
  };
  const background = (el) => {
    const layers = [];
    for (let e = el; e; e = e.parentElement) {
      const c = rgba(getComputedStyle(e).backgroundColor);
      if (c[3] > 0) layers.push(c);
      if (c[3] >= 1) break;
    }
    let color = [255, 255, 255, 1];
    for (const layer of layers.reverse()) color = over(layer, color);
    return color;
  };
  const luminance = (c) => {
    const [r, g, b] = c.slice(0, 3).map(v => {
      v /= 255;
      return v <= 0.03928 ? v / 12.92 : Math.pow((v + 0.055) / 1.055, 2.4);
    });
    return 0.2126 * r + 0.7152 * g + 0.0722 * b;
  };
  const found = {};
  for (const selector of selectors) {
    const el = document.querySelector(selector);
    if (!el) { found[selector] = null; continue; }
    const bg = background(el);
    const fg = over(rgba(getComputedStyle(el).color), bg);
    const [l1, l2] = [luminance(fg), luminance(bg)].sort((a, b) => b - a);
    found[selector] = (l1 + 0.05) / (l2 + 0.05);
  }
  return found;
}
"""
THEMES = "/lab/api/settings/@jupyterlab/apputils-extension:themes"


def _set_theme(notebook: Notebook, theme: str) -> None:
    notebook.lab.api("PUT", THEMES, {"raw": json.dumps({"theme": theme})})


def test_stderr_and_states_are_readable_in_the_dark_theme(notebook: Notebook) -> None:
    _set_theme(notebook, "JupyterLab Dark")
    try:
        notebook.open(
            "dark.ipynb",
            [
                SETUP,
                "group['host0'].exec('broken = True')",
                "%%remote group --no-raise\nimport sys, time\n"
                "if globals().get('broken'):\n    raise RuntimeError('broken')\n"
                "for i in range(8):\n    print('warning', i, file=sys.stderr)\n"
                "    time.sleep(0.4)",
            ],
        )
        notebook.page.locator("body[data-jp-theme-name='JupyterLab Dark']").wait_for(
            state="attached"
        )
        notebook.run(0)
        notebook.run(1)
        notebook.start(2)
        live = notebook.cell(2).locator(".chopsticks-nb-live")
        live.locator(".cnb-s-failed").first.wait_for()
        live.locator(".cnb-last .cnb-err").first.wait_for()
        during = notebook.page.evaluate(
            CONTRAST,
            [
                ".chopsticks-nb-live .cnb-last .cnb-err",
                ".chopsticks-nb-live td.cnb-s-failed",
                ".chopsticks-nb-live td.cnb-s-running",
                ".chopsticks-nb-live .cnb-head .cnb-s-running",
                ".chopsticks-nb-live label code",
            ],
        )
        notebook.wait_done(2)
        transcript = notebook.cell(2).locator(".chopsticks-nb-output")
        transcript.wait_for()
        after = notebook.page.evaluate(
            CONTRAST,
            [
                ".chopsticks-nb-output pre span[style*='error-background']",
                ".chopsticks-nb-output summary span",
                ".chopsticks-nb-output summary code",
            ],
        )
    finally:
        _set_theme(notebook, "JupyterLab Light")
    for selector, ratio in {**during, **after}.items():
        assert ratio is not None and ratio >= 4.5, (selector, ratio)


def test_100000_lines_from_tunnel_call_leave_the_kernel_idle(notebook: Notebook) -> None:
    notebook.open(
        "flood.ipynb",
        [
            "from chopsticks_nb import Local\nimport output_funcs\nt = Local('t')",
            "t.call(output_funcs.lines, 100_000)",
            "'after'",
        ],
    )
    notebook.run(0)
    output = notebook.run(1)
    output.get_by_text("100000").wait_for()
    # Idle at once (it stayed Busy for minutes, the frontend behind 100,000 messages).
    notebook.page.get_by_text(re.compile(r"\| Idle")).first.wait_for(timeout=5_000)
    text = output.inner_text()
    assert "[t] line 0" in text and "[t] line 99999" in text
    assert "99,500 more lines hidden; the last 20:" in text
    page_text = notebook.page.locator("body").inner_text()
    assert "IOPub" not in page_text and "rate exceeded" not in page_text
    assert "'after'" in notebook.run(2).inner_text()
