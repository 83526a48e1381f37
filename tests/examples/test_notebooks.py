"""Every examples/*.ipynb runs top to bottom in a real ipykernel (nbclient) without an error.

The SSH notebooks run against the test sshds (web1..web4): they read the ssh_config path from
``CHOPSTICKS_NB_SSH_CONFIG``. Widget state is saved in the notebook's metadata, as nbclient
does by default: a saved notebook holds only what its outputs show (no dead widget state), and
a text form of every view. Set ``CHOPSTICKS_NB_SAVE_EXAMPLES=1`` to write the executed
notebooks back into examples/ (outputs included, for GitHub readers). ``test_export`` exports
them to HTML and Markdown and reads them in a browser.
"""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import nbformat
import pytest
from example_runs import (
    EXAMPLES,
    NOTEBOOKS,
    WIDGET_VIEW,
    execute,
    outputs_of,
    run,
    saved_models,
    saved_size,
    shown_models,
)

from fixtures.sshd import SSHHosts

#: The most a saved example may weigh: its size follows what it shows (the outputs, a picker's
#: few widget models a host), not how long its cells ran.
MAX_SAVED_BYTES = {
    "quickstart.ipynb": 48_000,
    "files_and_facts.ipynb": 24_000,
    "ssh_groups.ipynb": 56_000,
    "inventories.ipynb": 56_000,
}


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_runs_without_errors(
    notebook: Path, python3_kernel: str, notebook_env: None
) -> None:
    nb = execute(notebook, python3_kernel)
    outputs = [out for cell in nb.cells for out in cell.get("outputs", [])]
    assert not [out for out in outputs if out.get("output_type") == "error"]
    # Live views settle into static output: no widget view is left in a %%remote cell.
    for cell in nb.cells:
        if cell.source.startswith("%%remote"):
            assert not any(WIDGET_VIEW in out.get("data", {}) for out in cell.outputs), cell.source
    # No dead widget state: every model saved is one an output shows.
    assert set(saved_models(nb)) == shown_models(nb)
    assert saved_size(nb) <= MAX_SAVED_BYTES[notebook.name], saved_size(nb)
    # Every view of ours has a text form (for viewers that show neither HTML nor widgets).
    for out in outputs:
        data = out.get("data", {})
        if "chopsticks-nb-" in data.get("text/html", ""):
            assert data.get("text/plain", "").strip(), data["text/html"][:200]
    if os.environ.get("CHOPSTICKS_NB_SAVE_EXAMPLES") == "1":
        nbformat.write(nb, notebook)


def _progress_notebook(seconds: float) -> nbformat.NotebookNode:
    """Three hosts redraw a progress line for ``seconds``: the live view shows and redraws,
    then settles; what stays shown is the same however long it ran."""
    cells = [
        "%load_ext chopsticks_nb\nfrom chopsticks_nb import Group, Local\n"
        "group = Group([Local(f'n{i}') for i in range(3)])",
        "%%remote group\nimport sys, time\n"
        f"end = time.monotonic() + {seconds}\n"
        "while time.monotonic() < end:\n"
        "    print(f'\\rworking {time.monotonic():.3f}', end='', flush=True)\n"
        "    time.sleep(0.02)\n"
        "print('\\rdone' + ' ' * 20)\n"
        "'finished'",
        "group.close()",
    ]
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in cells])
    nb.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    return nb


def test_a_saved_notebook_grows_with_what_it_shows_not_with_how_long_it_ran(
    python3_kernel: str,
) -> None:
    sizes = []
    for seconds in (1.5, 4.5):
        nb = _progress_notebook(seconds)
        run(nb, python3_kernel)
        shown = outputs_of(nb, "%%remote group")
        # The live view showed (its two displays, now its last state), then the table.
        kinds = [out["output_type"] for out in shown]
        assert kinds == ["display_data", "display_data", "execute_result"], shown
        assert "done" in shown[-2]["data"]["text/plain"]  # the transcript, the line's last state
        assert "finished" in shown[-1]["data"]["text/plain"]
        assert "widgets" not in nb.metadata
        sizes.append(saved_size(nb))
    # Three times as long, hundreds more redraws: the same outputs (a few digits of the times
    # differ).
    assert abs(sizes[1] - sizes[0]) < 64, sizes


def test_quickstart_shows_tables_live_output_and_a_collapsed_traceback(
    python3_kernel: str,
) -> None:
    nb = execute(EXAMPLES / "quickstart.ipynb", python3_kernel)
    first = outputs_of(nb, "%%remote group\nimport os")
    table = first[-1]["data"]["text/html"]
    assert "<table>" in table and "local1" in table and "hello from process" in table
    # The live view settled into its transcript: equal output folded, stderr flagged.
    live = outputs_of(nb, "%%remote group -o sizes")
    transcript = "".join(
        out["data"].get("text/html", "") for out in live if out["output_type"] == "display_data"
    )
    assert "step 3" in transcript and "modules loaded:" in transcript
    assert "<code>local[1-3]</code> · 3 hosts" in transcript and "on stderr" in transcript
    assert "chopsticks-nb-live" not in transcript  # no live grid left behind
    summary = outputs_of(nb, "%%remote group\nimport json")[-1]["data"]["text/plain"]
    assert re.fullmatch(r"3 hosts: 3 ok in \d+ ms", summary)
    failed = outputs_of(nb, "%%remote group --no-raise")[-1]["data"]["text/html"]
    assert "<details><summary>remote traceback</summary>" in failed
    assert "RuntimeError: this host is broken" in failed
    printed = "".join(out.get("text", "") for out in outputs_of(nb, "def square_with_pid"))
    assert printed == "[local[1-3]] squaring 7\n"  # over in a moment: text, hosts folded
    # Live views leave no widget state in the notebook: they are displays, not widgets.
    assert "widgets" not in nb.metadata


def test_files_notebook_puts_one_name_per_host(python3_kernel: str) -> None:
    nb = execute(EXAMPLES / "files_and_facts.ipynb", python3_kernel)
    names = outputs_of(nb, "named = group.put")[-1]["data"]["text/plain"]
    assert names == "['greeting-node1.txt', 'greeting-node2.txt', 'greeting-node3.txt']"


def test_ssh_notebook_saves_the_host_picker_state(
    python3_kernel: str, sshd_hosts: SSHHosts, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CHOPSTICKS_NB_SSH_CONFIG", str(sshd_hosts.config_path))
    nb = execute(EXAMPLES / "ssh_groups.ipynb", python3_kernel)
    static, widget = outputs_of(nb, "picker = HostPicker")
    # The static rendering shows the picker's last state: picker.select(True) and the check
    # of a later cell ran after it was shown.
    page = static["data"]["text/html"]
    assert "HostPicker</strong>: 4 of 4 hosts selected: web[1-4]" in page
    for name in sshd_hosts.names:
        assert re.search(f"☑ <code>{name}</code> <span><span[^>]*>✓</span> Python 3\\.", page)
    assert static["data"]["text/plain"].startswith("HostPicker: 4 of 4 hosts selected: web[1-4]")
    # The widget's view refers to a model whose state was saved: a saved notebook renders it
    # where widgets render; a few models a host, not one per widget part.
    state = saved_models(nb)
    picker = state[widget["data"][WIDGET_VIEW]["model_id"]]
    assert picker["model_name"] == "VBoxModel"
    assert "chopsticks-nb-picker" in picker["state"]["_dom_classes"]
    boxes = {
        m["state"]["description"]: m["state"]["value"]
        for m in state.values()
        if m["model_name"] == "CheckboxModel"
    }
    assert boxes == dict.fromkeys(sshd_hosts.names, True)  # picker.select(True) ran
    assert len(state) <= 3 * len(sshd_hosts.names) + 20
    remote = outputs_of(nb, "%%remote picker")[-1]["data"]["text/html"]
    for name in sshd_hosts.names:
        assert f"<code>{name}</code>" in remote


def test_inventory_notebook_reaches_the_hosts_the_inventory_names(
    python3_kernel: str, sshd_hosts: SSHHosts, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CHOPSTICKS_NB_SSH_CONFIG", str(sshd_hosts.config_path))
    nb = execute(EXAMPLES / "inventories.ipynb", python3_kernel)
    tunnels = outputs_of(nb, "app = Group.from_inventory")[-1]["data"]["text/plain"]
    assert "SSHTunnel('web4', name='db1')" in tunnels
    landed = outputs_of(nb, "%%remote app")[-1]["data"]["text/plain"]
    addresses = sshd_hosts.addresses
    for name, server in (("web1", "web1"), ("web3", "web3"), ("db1", "web4")):
        assert f"'{name}': '{addresses[server]}'" in landed
    ranged = outputs_of(nb, "%%remote web[2-3]")[-1]["data"]["text/plain"]
    assert f"2 hosts web[2-3]: '{sshd_hosts.user}'" in ranged  # both alike: one group
    picked = outputs_of(nb, "%%remote picker")[-1]["data"]["text/html"]
    assert "<code>db1</code>" in picked and "<code>notebook</code>" in picked


def test_binder_opens_the_quickstart(tmp_path: Path) -> None:
    """binder/postBuild, run as repo2docker would, points JupyterLab at the quickstart."""
    post_build = EXAMPLES.parent / "binder" / "postBuild"
    subprocess.run(
        [str(post_build)], env={**os.environ, "HOME": str(tmp_path)}, check=True, timeout=30
    )
    config = (tmp_path / ".jupyter" / "jupyter_server_config.py").read_text()
    found = re.search(r'default_url = "/lab/tree/([^"]+)"', config)
    assert found is not None and found.group(1) == "examples/quickstart.ipynb"
    assert (EXAMPLES.parent / found.group(1)).is_file()
