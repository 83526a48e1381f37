"""Helpers for the notebook tests: run cells in the in-process shell, drive a real kernel."""

from __future__ import annotations

import gc
import json
import queue
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from IPython.core.interactiveshell import InteractiveShell
from jupyter_client import BlockingKernelClient, KernelManager

from chopsticks_nb.tunnel import BaseTunnel

#: Closes every tunnel of a kernel (and forgets the magics' named tunnels).
CLOSE_ALL = """
import gc as _gc
from chopsticks_nb.tunnel import BaseTunnel as _BaseTunnel
for _tunnel in [o for o in _gc.get_objects() if isinstance(o, _BaseTunnel)]:
    if hasattr(_tunnel, "_lock"):  # not one whose __init__ refused its arguments
        _tunnel.close()
del _gc, _BaseTunnel
"""


def close_all_tunnels() -> None:
    for tunnel in [obj for obj in gc.get_objects() if isinstance(obj, BaseTunnel)]:
        if hasattr(tunnel, "_lock"):  # not one whose __init__ refused its arguments
            tunnel.close()


def run(shell: InteractiveShell, cell: str) -> Any:
    """Run a cell; return its value, or raise what it raised (UsageError included)."""
    result = shell.run_cell(cell)
    if result.error_before_exec is not None:
        raise result.error_before_exec
    if result.error_in_exec is not None:
        raise result.error_in_exec
    return result.result


# -- a real kernel -----------------------------------------------------------------------------


@dataclass
class Execution:
    """One cell's reply and the iopub messages seen while it ran (and a little after)."""

    reply: dict[str, Any]
    messages: list[dict[str, Any]] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def status(self) -> str:
        return str(self.reply["status"])

    def of_type(self, *types: str) -> list[dict[str, Any]]:
        return [m for m in self.messages if m["msg_type"] in types]

    def data(self, mime: str, *types: str) -> list[str]:
        """The ``mime`` parts of display messages (of ``types``), in order."""
        kinds = types or ("execute_result", "display_data", "update_display_data")
        return [
            m["content"]["data"][mime]
            for m in self.of_type(*kinds)
            if mime in m["content"].get("data", {})
        ]

    @property
    def result_html(self) -> str:
        return self.data("text/html", "execute_result")[-1]

    @property
    def stream(self) -> str:
        return "".join(m["content"]["text"] for m in self.of_type("stream"))

    @property
    def error(self) -> dict[str, Any]:
        errors = self.of_type("error")
        assert errors, f"no error message; reply {self.reply}"
        return dict(errors[-1]["content"])


class Kernel:
    def __init__(self, manager: KernelManager, client: BlockingKernelClient) -> None:
        self.manager = manager
        self.client = client

    def execute(
        self, code: str, timeout: float = 60, drain: float = 0.3, check: bool = True
    ) -> Execution:
        """Run ``code``; wait for its reply and idle status, then ``drain`` seconds more."""
        start = time.perf_counter()
        msg_id = self.client.execute(code)
        execution = self.collect(msg_id, timeout, drain)
        execution.seconds = time.perf_counter() - start
        if check and execution.status != "ok":
            content = execution.reply
            raise AssertionError(
                f"cell failed: {content.get('ename')}: {content.get('evalue')}"
                f"\n{code}\n{execution.stream}"
            )
        return execution

    def collect(self, msg_id: str, timeout: float = 60, drain: float = 0.3) -> Execution:
        deadline = time.monotonic() + timeout
        messages: list[dict[str, Any]] = []
        idle = False
        while not idle:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"no idle status within {timeout} s")
            try:
                msg = self.client.get_iopub_msg(timeout=remaining)
            except queue.Empty:
                continue
            messages.append(msg)
            idle = (
                msg["msg_type"] == "status"
                and msg["parent_header"].get("msg_id") == msg_id
                and msg["content"]["execution_state"] == "idle"
            )
        messages += self.drain(drain)
        reply = self.reply(msg_id, max(1.0, deadline - time.monotonic()))
        return Execution(reply=reply, messages=messages)

    def reply(self, msg_id: str, timeout: float) -> dict[str, Any]:
        while True:
            msg = self.client.get_shell_msg(timeout=timeout)
            if msg["parent_header"].get("msg_id") == msg_id:
                return dict(msg["content"])

    def drain(self, seconds: float) -> list[dict[str, Any]]:
        """iopub messages arriving in the next ``seconds`` (late thread and comm output)."""
        messages = []
        end = time.monotonic() + seconds
        while (left := end - time.monotonic()) > 0:
            try:
                messages.append(self.client.get_iopub_msg(timeout=left))
            except queue.Empty:
                break
        return messages


def write_kernelspec(directory: Path) -> None:
    """A kernelspec named python3 running this interpreter (the venv's) with the package."""
    spec = directory / "kernels" / "python3"
    spec.mkdir(parents=True, exist_ok=True)
    argv = [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"]
    (spec / "kernel.json").write_text(
        json.dumps({"argv": argv, "display_name": "Python 3 (tests)", "language": "python"})
    )


def start_kernel(cwd: Path) -> Kernel:
    manager = KernelManager(kernel_name="python3")
    manager.start_kernel(cwd=str(cwd))
    client = manager.client()
    client.start_channels()
    try:
        client.wait_for_ready(timeout=60)
    except BaseException:
        client.stop_channels()
        manager.shutdown_kernel(now=True)
        raise
    return Kernel(manager, client)


def stop_kernel(kernel: Kernel) -> None:
    kernel.client.stop_channels()
    kernel.manager.shutdown_kernel(now=False)
    kernel.manager.cleanup_resources()
