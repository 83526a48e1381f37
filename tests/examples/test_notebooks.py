"""Every examples/*.ipynb runs top to bottom in a real ipykernel (nbclient) without an error.

The SSH notebooks run against the test sshds (web1..web4): they read the ssh_config path from
``CHOPSTICKS_NB_SSH_CONFIG``. Widget state is saved in the notebook's metadata, as nbclient
does by default, so a saved notebook shows its widgets. Set ``CHOPSTICKS_NB_SAVE_EXAMPLES=1``
to write the executed notebooks back into examples/ (outputs included, for GitHub readers).
"""

from __future__ import annotations

import asyncio
import copy
import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import nbformat
import pytest
from jupyter_client.kernelspec import KernelSpecManager
from nbclient import NotebookClient

from fixtures.sshd import SSHHosts

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
NOTEBOOKS = sorted(EXAMPLES.glob("*.ipynb"))
WIDGET_STATE = "application/vnd.jupyter.widget-state+json"
WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
#: the notebooks that reach the test sshds
SSH_NOTEBOOKS = {"ssh_groups.ipynb", "inventories.ipynb"}


@pytest.fixture
def python3_kernel(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """Make the kernel named "python3" this interpreter (the venv's), whatever else is installed.

    A kernelspec found first on JUPYTER_PATH wins over user and system ones, so the notebooks
    run with the package under test rather than some other installed copy.
    """
    spec_dir = tmp_path / "jupyter" / "kernels" / "python3"
    spec_dir.mkdir(parents=True)
    spec = {
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "Python 3 (tests)",
        "language": "python",
    }
    (spec_dir / "kernel.json").write_text(json.dumps(spec))
    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path / "jupyter"))
    monkeypatch.setenv("JUPYTER_RUNTIME_DIR", str(tmp_path / "runtime"))
    monkeypatch.setenv("IPYTHONDIR", str(tmp_path / "ipython"))
    monkeypatch.setenv("PATH", f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    assert KernelSpecManager().get_kernel_spec("python3").argv[0] == sys.executable
    return "python3"


@pytest.fixture
def notebook_env(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """What a notebook needs from outside: the SSH ones get the test sshds' ssh_config."""
    notebook: Path = request.node.callspec.params["notebook"]
    if notebook.name in SSH_NOTEBOOKS:
        hosts: SSHHosts = request.getfixturevalue("sshd_hosts")
        monkeypatch.setenv("CHOPSTICKS_NB_SSH_CONFIG", str(hosts.config_path))
    yield


_EXECUTED: dict[Path, nbformat.NotebookNode] = {}


def execute(notebook: Path, kernel_name: str) -> nbformat.NotebookNode:
    """The notebook executed (once per run: the tests below look at different parts of it)."""
    if notebook in _EXECUTED:
        return _EXECUTED[notebook]
    nb = nbformat.read(notebook, as_version=4)
    client = NotebookClient(
        nb, kernel_name=kernel_name, timeout=90, resources={"metadata": {"path": str(EXAMPLES)}}
    )
    # asyncio.run closes its event loop; the sync execute() would keep one open for the
    # process's lifetime (jupyter_core's run_sync), which the leak check rightly reports.
    asyncio.run(client.async_execute())  # raises CellExecutionError on any error in a cell
    _EXECUTED[notebook] = nb
    return nb


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
    if os.environ.get("CHOPSTICKS_NB_SAVE_EXAMPLES") == "1":
        nbformat.write(_shown_widgets_only(nb), notebook)


def _shown_widgets_only(nb: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """A copy keeping the saved state of the widgets an output shows (and the models they
    refer to): nbclient also keeps every closed live view's, which nothing shows any more."""
    nb = copy.deepcopy(nb)
    saved = nb.metadata.get("widgets", {}).get(WIDGET_STATE)
    if not saved:
        return nb
    state = saved["state"]
    todo = [
        out["data"][WIDGET_VIEW]["model_id"]
        for cell in nb.cells
        for out in cell.get("outputs", [])
        if WIDGET_VIEW in out.get("data", {})
    ]
    keep: set[str] = set()
    while todo:
        model = todo.pop()
        if model in keep or model not in state:
            continue
        keep.add(model)
        todo += re.findall(r"IPY_MODEL_([0-9a-f]+)", json.dumps(state[model]))
    saved["state"] = {model: value for model, value in state.items() if model in keep}
    if not saved["state"]:
        del nb.metadata["widgets"]
    return nb


def _outputs_of(nb: nbformat.NotebookNode, start: str) -> list[dict]:
    cell = next(cell for cell in nb.cells if cell.source.startswith(start))
    return list(cell.outputs)


def test_quickstart_shows_tables_live_output_and_a_collapsed_traceback(
    python3_kernel: str,
) -> None:
    nb = execute(EXAMPLES / "quickstart.ipynb", python3_kernel)
    first = _outputs_of(nb, "%%remote group\nimport os")
    table = first[-1]["data"]["text/html"]
    assert "<table>" in table and "local1" in table and "hello from process" in table
    # The live view settled into its transcript: equal output folded, stderr flagged.
    live = _outputs_of(nb, "%%remote group -o sizes")
    transcript = "".join(
        out["data"].get("text/html", "") for out in live if out["output_type"] == "display_data"
    )
    assert "step 3" in transcript and "modules loaded:" in transcript
    assert "<code>local[1-3]</code> · 3 hosts" in transcript and "on stderr" in transcript
    assert "chopsticks-nb-live" not in transcript  # no live grid left behind
    summary = _outputs_of(nb, "%%remote group\nimport json")[-1]["data"]["text/plain"]
    assert re.fullmatch(r"3 hosts: 3 ok in \d+ ms", summary)
    failed = _outputs_of(nb, "%%remote group --no-raise")[-1]["data"]["text/html"]
    assert "<details><summary>remote traceback</summary>" in failed
    assert "RuntimeError: this host is broken" in failed
    printed = "".join(out.get("text", "") for out in _outputs_of(nb, "def square_with_pid"))
    assert printed == "[local[1-3]] squaring 7\n"  # over in a moment: text, hosts folded
    # Live views leave no widget state in the notebook: they are displays, not widgets.
    assert "widgets" not in nb.metadata


def test_files_notebook_puts_one_name_per_host(python3_kernel: str) -> None:
    nb = execute(EXAMPLES / "files_and_facts.ipynb", python3_kernel)
    names = _outputs_of(nb, "named = group.put")[-1]["data"]["text/plain"]
    assert names == "['greeting-node1.txt', 'greeting-node2.txt', 'greeting-node3.txt']"


def test_ssh_notebook_saves_the_host_picker_state(
    python3_kernel: str, sshd_hosts: SSHHosts, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CHOPSTICKS_NB_SSH_CONFIG", str(sshd_hosts.config_path))
    nb = execute(EXAMPLES / "ssh_groups.ipynb", python3_kernel)
    state = nb.metadata["widgets"][WIDGET_STATE]["state"]
    # The picker's view refers to a model whose state was saved: a saved notebook renders it.
    view = _outputs_of(nb, "picker = HostPicker")[0]["data"][WIDGET_VIEW]
    picker = state[view["model_id"]]
    assert picker["model_name"] == "VBoxModel"
    assert "chopsticks-nb-picker" in picker["state"]["_dom_classes"]
    boxes = {
        m["state"]["description"]: m["state"]["value"]
        for m in state.values()
        if m["model_name"] == "CheckboxModel"
    }
    assert boxes == dict.fromkeys(sshd_hosts.names, True)  # picker.select(True) ran
    remote = _outputs_of(nb, "%%remote picker")[-1]["data"]["text/html"]
    for name in sshd_hosts.names:
        assert f"<code>{name}</code>" in remote


def test_inventory_notebook_reaches_the_hosts_the_inventory_names(
    python3_kernel: str, sshd_hosts: SSHHosts, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CHOPSTICKS_NB_SSH_CONFIG", str(sshd_hosts.config_path))
    nb = execute(EXAMPLES / "inventories.ipynb", python3_kernel)
    tunnels = _outputs_of(nb, "app = Group.from_inventory")[-1]["data"]["text/plain"]
    assert "SSHTunnel('web4', name='db1')" in tunnels
    landed = _outputs_of(nb, "%%remote app")[-1]["data"]["text/plain"]
    addresses = sshd_hosts.addresses
    for name, server in (("web1", "web1"), ("web3", "web3"), ("db1", "web4")):
        assert f"'{name}': '{addresses[server]}'" in landed
    ranged = _outputs_of(nb, "%%remote web[2-3]")[-1]["data"]["text/plain"]
    assert f"2 hosts web[2-3]: '{sshd_hosts.user}'" in ranged  # both alike: one group
    picked = _outputs_of(nb, "%%remote picker")[-1]["data"]["text/html"]
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
