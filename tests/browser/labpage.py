"""The JupyterLab the browser tests drive: the server (:class:`Lab`), and a notebook opened in
its page (:class:`Notebook`: open, run cells through the toolbar, read outputs). The fixtures
that start them are in this folder's conftest.py."""

from __future__ import annotations

import json
import re
import subprocess
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import nbformat

from fixtures.browser import STEP_MS

__all__ = ["Lab", "Notebook"]


@dataclass
class Lab:
    """A running JupyterLab: its URL, token and notebook directory."""

    url: str
    token: str
    root: Path
    process: subprocess.Popen[bytes]
    log: Path

    def api(self, method: str, path: str, body: Any = None) -> Any:
        data = None if body is None else json.dumps(body).encode()
        headers = {"Authorization": f"token {self.token}"}
        if data is not None:
            headers["Content-Type"] = "application/json"
        request = urllib.request.Request(
            f"{self.url}{path}", data=data, method=method, headers=headers
        )
        with urllib.request.urlopen(request, timeout=30) as answer:
            body = answer.read()
        return json.loads(body) if body else None

    def write_notebook(self, name: str, cells: list[str]) -> str:
        nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in cells])
        nb.metadata["kernelspec"] = {
            "name": "python3",
            "display_name": "Python 3",
            "language": "python",
        }
        nbformat.write(nb, self.root / name)
        return name

    def shut_down_kernels(self, timeout: float = 30) -> None:
        """Stop every kernel (and so its agents) and wait until their processes are gone."""
        for session in self.api("GET", "/api/sessions"):
            self.api("DELETE", f"/api/sessions/{session['id']}")
        for kernel in self.api("GET", "/api/kernels"):
            self.api("DELETE", f"/api/kernels/{kernel['id']}")
        deadline = time.monotonic() + timeout
        while _kernel_processes(self.process.pid):
            if time.monotonic() > deadline:
                raise TimeoutError(f"kernels still running: {_kernel_processes(self.process.pid)}")
            time.sleep(0.1)


def _kernel_processes(server_pid: int) -> list[int]:
    from fixtures.leaks import live_descendants

    return [pid for pid, cmd in live_descendants(server_pid).items() if "ipykernel" in cmd]


class Notebook:
    """Drives one notebook in the page: open it, run its cells, read its outputs."""

    def __init__(self, lab: Lab, page: Any) -> None:
        self.lab = lab
        self.page = page

    def open(self, name: str, cells: list[str]) -> None:
        self.lab.write_notebook(name, cells)
        self.page.goto(f"{self.lab.url}/lab/tree/{name}?reset&token={self.lab.token}")
        # The status bar says Idle once the kernel is up (the toolbar's indicator is early).
        self.page.get_by_text(re.compile(r"\| Idle")).first.wait_for()
        self.panel.locator(".jp-CodeCell").first.wait_for()

    @property
    def panel(self) -> Any:
        return self.page.locator(".jp-NotebookPanel:visible")

    def cell(self, index: int) -> Any:
        return self.panel.locator(".jp-CodeCell").nth(index)

    def prompt(self, index: int) -> str:
        return str(self.cell(index).locator(".jp-InputPrompt").inner_text()).strip()

    def start(self, index: int) -> None:
        """Run cell ``index`` without waiting for it to finish."""
        cell = self.cell(index)
        before = self.prompt(index)
        deadline = time.monotonic() + STEP_MS / 1000
        while self.prompt(index) == before:  # retry: a click may land before the cell is ready
            if time.monotonic() > deadline:
                raise TimeoutError(f"cell {index} never started")
            cell.locator(".jp-InputArea-prompt").click()
            self.page.locator(
                "[data-command='notebook:run-cell-and-select-next']:visible"
            ).first.click()
            self._wait(lambda: self.prompt(index) != before, 2)

    def run(self, index: int) -> Any:
        """Run cell ``index``, wait until it has finished; its output area."""
        self.start(index)
        self.wait_done(index)
        return self.cell(index).locator(".jp-OutputArea")

    def wait_done(self, index: int) -> None:
        self._wait(
            lambda: re.fullmatch(r"\[\d+\]:", self.prompt(index)) is not None,
            STEP_MS / 1000,
            f"cell {index} to finish",
        )

    def _wait(self, predicate: Any, seconds: float, what: str | None = None) -> bool:
        deadline = time.monotonic() + seconds
        while not predicate():
            if time.monotonic() > deadline:
                if what:
                    raise TimeoutError(f"timed out waiting for {what}")
                return False
            time.sleep(0.1)
        return True
