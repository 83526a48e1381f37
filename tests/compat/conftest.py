"""Fixtures for running chopsticks 1.0's documented examples against the real components.

- ``doc_hosts``: every host name the documentation uses (``troy.example.com``, ``web1``, ...)
  reaches one of the loopback sshds of ``fixtures.sshd``, through an ``ssh`` on PATH that reads
  a generated ssh_config (the part a user's ``~/.ssh/config`` plays). Names map onto web1..web4
  in turn; the traffic never leaves the machine.
- ``docker_is_podman``: ``docker`` on PATH runs podman (no Docker engine runs on the test
  machines), so the examples' ``Docker(...)`` tunnels run unchanged but for their image.
- ``examples``: runs ported examples (doc_examples.py) and closes what they leave open.
"""

from __future__ import annotations

import os
import shutil
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from doc_examples import Examples

from fixtures.podman import PodmanImage
from fixtures.sshd import SSHHosts, client_defaults, host_entry

#: Every host name in the original's code examples.
DOC_HOST_NAMES = (
    "troy.example.com",
    "www.chopsticks.io",
    "web1.example.com",
    "web2.example.com",
    "web3.example.com",
    "web1",
    "web2",
    "worker1",
    "worker2",
    "worker3",
    "host1.example.com",
    "host2.example.com",
    "host3.example.com",
    "remote",
    "www1",
    "www2",
    "www3",
)


@pytest.fixture(scope="session")
def doc_ssh_bin(sshd_hosts: SSHHosts, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A directory holding an ``ssh`` that knows every host name of the documentation."""
    base = tmp_path_factory.mktemp("doc-ssh")
    real_ssh = shutil.which("ssh")
    assert real_ssh is not None
    hosts = list(sshd_hosts.hosts.values())
    entries = [
        host_entry(name, hosts[i % len(hosts)].address, hosts[i % len(hosts)].port)
        for i, name in enumerate(DOC_HOST_NAMES)
    ]
    config = base / "ssh_config"
    config.write_text("".join(entries) + client_defaults(sshd_hosts.user, sshd_hosts.key_path))
    shim = base / "bin" / "ssh"
    shim.parent.mkdir()
    shim.write_text(
        f'#!/bin/sh\n# ssh with the test ssh_config\nexec {real_ssh} -F {config} "$@"\n'
    )
    shim.chmod(0o755)
    return shim.parent


def _prepend_path(monkeypatch: pytest.MonkeyPatch, directory: Path) -> None:
    monkeypatch.setenv("PATH", f"{directory}{os.pathsep}{os.environ.get('PATH', '')}")


@pytest.fixture
def doc_hosts(doc_ssh_bin: Path, sshd_hosts: SSHHosts, monkeypatch: pytest.MonkeyPatch) -> SSHHosts:
    """The documentation's host names reach the loopback sshds (logging in as the test user)."""
    _prepend_path(monkeypatch, doc_ssh_bin)
    return sshd_hosts


@pytest.fixture
def docker_is_podman(podman_image: PodmanImage, monkeypatch: pytest.MonkeyPatch) -> PodmanImage:
    """``docker`` on PATH is podman with the test configuration: podman stands in for the engine."""
    _prepend_path(monkeypatch, podman_image.bin_dir)
    return podman_image


@pytest.fixture
def examples() -> Iterator[Examples]:
    runner = Examples()
    try:
        yield runner
    finally:
        runner.close()


@pytest.fixture
def in_tmp_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Run in a fresh directory: examples use relative local paths."""
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.fixture
def shared_dir() -> Iterator[Path]:
    """A directory every test user can write, standing in for a server path such as /srv/www."""
    path = Path(tempfile.mkdtemp(prefix="chopsticks-nb-compat-"))
    path.chmod(stat.S_IRWXU | stat.S_IRWXG | stat.S_IRWXO)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)
