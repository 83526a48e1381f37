"""Fixtures for the notebook layer: an in-process IPython shell and a real kernel.

``shell``: IPython's InteractiveShell in this process (history in memory: no thread), with
``%load_ext chopsticks_nb`` done; every tunnel a test leaves in the namespace is closed after it.

``kernel``: one real ipykernel per test module (this interpreter, through jupyter_client), with
:meth:`Kernel.execute` collecting every iopub message of a cell, comm and display updates from
the broker thread included. After each test every tunnel in the kernel is closed, so the leak
check (which sees the kernel's agents as our grandchildren) stays quiet.
"""

from __future__ import annotations

import gc
import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from IPython.core.interactiveshell import InteractiveShell
from nbhelpers import (
    CLOSE_ALL,
    Kernel,
    close_all_tunnels,
    start_kernel,
    stop_kernel,
    write_kernelspec,
)
from traitlets.config import Config


@pytest.fixture(scope="session")
def ipython() -> Iterator[InteractiveShell]:
    config = Config()
    config.HistoryManager.hist_file = ":memory:"  # no history thread, no sqlite file
    shell = InteractiveShell.instance(config=config)
    try:
        yield shell
    finally:
        InteractiveShell.clear_instance()


@pytest.fixture
def shell(ipython: InteractiveShell) -> Iterator[InteractiveShell]:
    """The in-process shell with the extension loaded and a clean namespace."""
    ipython.run_line_magic("load_ext", "chopsticks_nb")
    try:
        yield ipython
    finally:
        ipython.run_line_magic("unload_ext", "chopsticks_nb")
        close_all_tunnels()
        ipython.reset(new_session=False)
        gc.collect()


@pytest.fixture(scope="module")
def kernel_env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """JUPYTER_PATH, runtime and IPython directories of the tests' own (no user settings)."""
    base = tmp_path_factory.mktemp("jupyter")
    write_kernelspec(base / "jupyter")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("JUPYTER_PATH", str(base / "jupyter"))
        patch.setenv("JUPYTER_RUNTIME_DIR", str(base / "runtime"))
        patch.setenv("IPYTHONDIR", str(base / "ipython"))
        patch.setenv("PATH", f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
        yield base


@pytest.fixture(scope="module")
def module_kernel(kernel_env: Path) -> Iterator[Kernel]:
    kernel = start_kernel(kernel_env)
    try:
        kernel.execute("%load_ext chopsticks_nb")
        yield kernel
    finally:
        stop_kernel(kernel)


@pytest.fixture
def kernel(module_kernel: Kernel) -> Iterator[Kernel]:
    """The module's kernel; its tunnels are closed after the test."""
    module_kernel.drain(0.05)
    try:
        yield module_kernel
    finally:
        module_kernel.execute(CLOSE_ALL)
