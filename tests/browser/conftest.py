"""A real JupyterLab server and a real headless Chromium (Debian's), driven by Playwright.

One server and one browser page per test module (in the session's ``chromium``: startup costs
seconds). Each test writes its notebook into the server's directory, opens it, runs cells
through the toolbar, and shuts its kernel down at the end (the kernel and its agents are our
descendants: the leak check sees them). On failure a screenshot is saved under
``$CHOPSTICKS_NB_ARTIFACTS/browser`` (default ``/tmp/chopsticks-nb-artifacts/browser``) and its
path printed in the summary (``CHOPSTICKS_NB_SCREENSHOTS=always``: after every test).

Never ``playwright install``: the browser is /usr/bin/chromium (scripts/setup.sh installs it).
"""

from __future__ import annotations

import json
import os
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
from pathlib import Path
from typing import Any

import pytest
from labpage import Lab, Notebook

from fixtures.browser import STEP_MS, connect, save_screenshot
from fixtures.ci import startup_timer, unavailable

_SCREENSHOTS: list[str] = []


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


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
def browser_page(chromium: str) -> Iterator[Any]:
    """One page of the session's Chromium for the module (new pages would start renderer
    processes per test)."""
    with connect(chromium) as browser:
        context = browser.new_context(viewport={"width": 1280, "height": 1000})
        page = context.new_page()
        page.set_default_timeout(STEP_MS)
        yield page


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
    path = save_screenshot(page, "browser", name)
    shutil.copyfile(lab.log, path.with_name(f"{path.stem}-jupyterlab.log"))
    if failed:
        _SCREENSHOTS.append(str(path))
    print(f"browser screenshot: {path}", file=sys.stderr)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    for path in _SCREENSHOTS:
        terminalreporter.write_line(f"browser screenshot (failed test): {path}", red=True)
