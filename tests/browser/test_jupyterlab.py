"""%%remote and the HostPicker in JupyterLab, in a real browser: what a user sees."""

from __future__ import annotations

import re

from conftest import Notebook

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

    # While the cell runs: the live view, with the remote stderr as Jupyter shows stderr.
    notebook.start(1)
    live = notebook.cell(1).locator(".chopsticks-nb-live")
    live.wait_for()
    stderr = live.locator(
        ".chopsticks-nb-host-output [data-mime-type='application/vnd.jupyter.stderr']"
    )
    stderr.first.wait_for()
    assert "<b>step 0</b>" in stderr.first.inner_text()  # as text: escaped, not bold
    assert live.locator(".widget-tab").count() == 1
    assert re.search(r"of 3 done", live.inner_text())
    assert notebook.prompt(1) == "[*]:"  # seen while still running

    # At the end: the static transcript and the table; the live widgets are gone.
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
