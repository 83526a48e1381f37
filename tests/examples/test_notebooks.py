"""Every examples/*.ipynb runs top to bottom in a real ipykernel without an error."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path

import nbformat
import pytest
from jupyter_client.kernelspec import KernelSpecManager
from nbclient import NotebookClient

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
NOTEBOOKS = sorted(EXAMPLES.glob("*.ipynb"))


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


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_runs_without_errors(notebook: Path, python3_kernel: str) -> None:
    nb = nbformat.read(notebook, as_version=4)
    client = NotebookClient(nb, kernel_name=python3_kernel, timeout=90,
                            resources={"metadata": {"path": str(EXAMPLES)}})
    # asyncio.run closes its event loop; the sync execute() would keep one open for the
    # process's lifetime (jupyter_core's run_sync), which the leak check rightly reports.
    asyncio.run(client.async_execute())  # raises CellExecutionError on any error in a cell
    errors = [out for cell in nb.cells for out in cell.get("outputs", [])
              if out.get("output_type") == "error"]
    assert not errors
