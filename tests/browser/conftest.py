"""A real JupyterLab server and a real headless Chromium (Debian's), driven by Playwright.

One server and one browser page per test module (startup costs seconds). Each test writes its
notebook into the server's directory, opens it, runs cells through the toolbar, and shuts its
kernel down at the end (the kernel and its agents are our descendants: the leak check sees
them). On failure a screenshot is saved under ``$CHOPSTICKS_NB_ARTIFACTS/browser`` (default
``/tmp/chopsticks-nb-artifacts/browser``) and its path printed in the summary
(``CHOPSTICKS_NB_SCREENSHOTS=always``: after every test).

Never ``playwright install``: the browser is /usr/bin/chromium (scripts/setup.sh installs it).
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import nbformat
import pytest

from fixtures.ci import startup_timer, unavailable

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-features=SpareRendererForSitePerProcess",
]
#: every browser step may take this long on a busy 2-core machine
STEP_MS = 60_000
ARTIFACTS = Path(os.environ.get("CHOPSTICKS_NB_ARTIFACTS", "/tmp/chopsticks-nb-artifacts"))
_SCREENSHOTS: list[str] = []


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


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


def _lab_environment(base: Path) -> dict[str, str]:
    dirs = {
        name: base / name
        for name in (
            "config",
            "data",
            "runtime",
            "ipython",
            "settings",
            "workspaces",
            "cache",
            "xdg-config",
            "xdg-data",
        )
    }
    for directory in dirs.values():
        directory.mkdir()
    # No "get Jupyter news?" toast over the notebook.
    settings = dirs["settings"] / "@jupyterlab" / "apputils-extension"
    settings.mkdir(parents=True)
    (settings / "notification.jupyterlab-settings").write_text(
        json.dumps({"fetchNews": "false", "checkForUpdates": False})
    )
    env = dict(os.environ)
    env.update(
        {
            "JUPYTER_CONFIG_DIR": str(dirs["config"]),
            "JUPYTER_DATA_DIR": str(dirs["data"]),
            "JUPYTER_RUNTIME_DIR": str(dirs["runtime"]),
            "IPYTHONDIR": str(dirs["ipython"]),
            "JUPYTERLAB_SETTINGS_DIR": str(dirs["settings"]),
            "JUPYTERLAB_WORKSPACES_DIR": str(dirs["workspaces"]),
            "XDG_CACHE_HOME": str(dirs["cache"]),
            "XDG_CONFIG_HOME": str(dirs["xdg-config"]),
            "XDG_DATA_HOME": str(dirs["xdg-data"]),
            "JUPYTER_PLATFORM_DIRS": "1",
            "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
        }
    )
    env.pop("JUPYTER_PATH", None)  # kernels: the server's own python3 (this interpreter)
    # The tests' remote functions (tests/output_funcs.py) import in the kernel, and so on hosts.
    tests = str(Path(__file__).resolve().parents[1])
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [tests, os.environ.get("PYTHONPATH")]))
    return env


@pytest.fixture(scope="module")
def lab() -> Iterator[Lab]:
    jupyter = Path(sys.executable).parent / "jupyter-lab"
    if not jupyter.exists():
        unavailable(f"{jupyter} not found: pip install jupyterlab (scripts/setup.sh does)")
    base = Path(tempfile.mkdtemp(prefix="chopsticks-nb-lab-"))
    root = base / "notebooks"
    root.mkdir()
    token, port = secrets.token_hex(16), _free_port()
    log = base / "lab.log"
    with startup_timer("jupyterlab"), open(log, "wb") as log_file:
        process = subprocess.Popen(
            [
                str(jupyter),
                "--no-browser",
                f"--port={port}",
                "--ip=127.0.0.1",
                "--allow-root",
                f"--IdentityProvider.token={token}",
                "--LabApp.news_url=None",
                "--ServerApp.jpserver_extensions={'jupyter_lsp': False}",
                f"--ServerApp.root_dir={root}",
            ],
            env=_lab_environment(base),
            stdout=log_file,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
        server = Lab(f"http://127.0.0.1:{port}", token, root, process, log)
        try:
            _wait_for(server)
        except BaseException:
            _stop(server)
            shutil.rmtree(base, ignore_errors=True)
            raise
    try:
        yield server
    finally:
        _stop(server)
        shutil.rmtree(base, ignore_errors=True)


def _wait_for(server: Lab, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while True:
        if server.process.poll() is not None:
            unavailable(
                f"jupyter lab exited ({server.process.returncode}):\n"
                f"{server.log.read_text()[-3000:]}"
            )
        try:
            server.api("GET", "/api/status")
            return
        except (OSError, urllib.error.URLError):
            if time.monotonic() > deadline:
                unavailable(
                    f"jupyter lab did not answer in {timeout} s:\n{server.log.read_text()[-3000:]}"
                )
            time.sleep(0.2)


def _stop(server: Lab) -> None:
    if server.process.poll() is None:
        server.process.send_signal(signal.SIGTERM)  # it shuts its kernels down
        try:
            server.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.process.kill()
            server.process.wait()


@pytest.fixture(scope="module")
def browser_page() -> Iterator[Any]:
    """One Chromium page for the module (new pages would start renderer processes per test)."""
    if not os.access(CHROMIUM, os.X_OK):
        unavailable(f"{CHROMIUM} not found: apt-get install chromium (scripts/setup.sh does)")
    from playwright.sync_api import sync_playwright

    with startup_timer("chromium"):
        playwright = sync_playwright().start()
        try:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            page = browser.new_page(viewport={"width": 1280, "height": 1000})
            page.set_default_timeout(STEP_MS)
        except BaseException:
            playwright.stop()
            raise
    try:
        yield page
    finally:
        browser.close()
        playwright.stop()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    report = yield
    setattr(item, f"report_{report.when}", report)
    return report


@pytest.fixture
def notebook(lab: Lab, browser_page: Any, request: pytest.FixtureRequest) -> Iterator[Notebook]:
    """A notebook opened in JupyterLab; its kernel is shut down after the test."""
    nb = Notebook(lab, browser_page)
    try:
        yield nb
    finally:
        failed = any(
            getattr(request.node, f"report_{when}", None) is not None
            and getattr(request.node, f"report_{when}").failed
            for when in ("setup", "call")
        )
        if failed or os.environ.get("CHOPSTICKS_NB_SCREENSHOTS") == "always":
            _screenshot(browser_page, request.node.name, lab, failed)
        try:
            browser_page.goto("about:blank")
        finally:
            lab.shut_down_kernels()


def _screenshot(page: Any, name: str, lab: Lab, failed: bool) -> None:
    directory = ARTIFACTS / "browser"
    directory.mkdir(parents=True, exist_ok=True)
    stem = re.sub(r"[^\w.-]+", "_", name)
    path = directory / f"{stem}.png"
    try:
        # As bytes: given a path, Playwright writes it from an executor thread that lingers.
        path.write_bytes(page.screenshot(full_page=True))
    except Exception as exc:  # the page may be gone; the log still helps
        print(f"screenshot failed: {exc}", file=sys.stderr)
    shutil.copyfile(lab.log, directory / f"{stem}-jupyterlab.log")
    if failed:
        _SCREENSHOTS.append(str(path))
    print(f"browser screenshot: {path}", file=sys.stderr)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    for path in _SCREENSHOTS:
        terminalreporter.write_line(f"browser screenshot (failed test): {path}", red=True)


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
