"""Fixtures for the example notebooks: a kernel of this interpreter, and what the SSH ones need.

``python3_kernel`` makes the kernel named "python3" this interpreter (the venv's), whatever else
is installed; ``notebook_env`` gives a test parametrised over ``notebook`` the test sshds'
ssh_config when the notebook reaches them (see :mod:`example_runs`).
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from example_runs import SSH_NOTEBOOKS
from jupyter_client.kernelspec import KernelSpecManager

from fixtures.sshd import SSHHosts


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
