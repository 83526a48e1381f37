"""Loopback sshds for the runner, started the way the tests start theirs.

Reuses ``start_hosts`` from tests/fixtures/sshd.py: one OpenSSH sshd per host on 127.0.0.2..,
a generated key and ssh_config, logins as the non-root test user (root's shell runs
``pyenv init``). Needs root, openssh-server and openssh-client.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

TESTS = Path(__file__).resolve().parents[2] / "tests"


def unavailable_reason() -> str | None:
    """Why loopback sshds cannot run here, or None when they can."""
    if os.geteuid() != 0:
        return "needs root (it adds a user and starts sshd)"
    for tool in ("/usr/sbin/sshd", shutil.which("ssh"), shutil.which("ssh-keygen")):
        if not tool or not os.access(tool, os.X_OK):
            return "needs openssh-server and openssh-client (scripts/setup.sh installs them)"
    return None


@contextmanager
def loopback_hosts(count: int = 4, python: str = "/usr/bin/python3") -> Iterator[Any]:
    """Start ``count`` sshds; yield the fixture's ``SSHHosts`` (config_path, names, user).

    ``python`` is the interpreter the test user will run: the directories above it and above
    this venv (pyenv's and the clone's may lie under /root, or any directory others cannot
    read) get search permission for the duration, taken back after.
    """
    if str(TESTS) not in sys.path:
        sys.path.insert(0, str(TESTS))
    from fixtures.sshd import start_hosts
    from fixtures.system import TEST_USER, ensure_user, searchable

    ensure_user(TEST_USER)
    Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)
    base = Path(tempfile.mkdtemp(prefix="chopsticks-nb-bench-sshd-"))
    base.chmod(0o755)
    cluster = None
    try:
        with searchable(python, sys.prefix, __file__):
            cluster = start_hosts(base, count)
            yield cluster
    finally:
        if cluster is not None:
            cluster.stop_all()
        shutil.rmtree(base, ignore_errors=True)


def alias_config(cluster: Any, count: int, path: Path) -> list[str]:
    """Write an ssh_config naming ``count`` hosts n0, n1, ... spread over the running sshds.

    Tunnels in a group need distinct host names; ``n{i}`` reaches ``web{i % hosts + 1}``.
    Returns the names."""
    hosts = list(cluster.hosts.values())
    names, blocks = [], []
    for i in range(count):
        host = hosts[i % len(hosts)]
        names.append(f"n{i}")
        blocks.append(f"Host n{i}\n  HostName {host.address}\n  Port {host.port}\n")
    path.write_text("".join(blocks) + Path(cluster.config_path).read_text())
    return names


def controlmaster_options(directory: Path) -> list[str]:
    return [
        "-o", "ControlMaster=auto",
        "-o", f"ControlPath={directory}/cm-%C",
        "-o", "ControlPersist=600",
    ]  # fmt: skip


NO_CONTROLMASTER = ["-o", "ControlMaster=no", "-o", "ControlPath=none"]


def open_masters(config: Path, options: list[str], hosts: list[str]) -> None:
    """Start one master connection per host, so that every later session reuses it."""
    for host in hosts:
        subprocess.run(["ssh", "-F", str(config), *options, host, "true"], check=True, timeout=30)


def close_masters(config: Path, options: list[str], hosts: list[str]) -> None:
    for host in hosts:
        subprocess.run(
            ["ssh", "-F", str(config), *options, "-O", "exit", host],
            capture_output=True,
            timeout=30,
            check=False,
        )
