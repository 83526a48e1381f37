"""Groups over real remote kinds: sshd hosts on loopback, a podman container, local agents."""

from __future__ import annotations

import contextlib
import getpass
import hashlib
import os
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import test_group_helpers as helpers

from chopsticks_nb import facts
from chopsticks_nb.errors import GroupInterrupted
from chopsticks_nb.group import Group
from chopsticks_nb.queue import Queue
from chopsticks_nb.result import ErrorResult
from chopsticks_nb.tunnel import Docker, Local, SSHTunnel
from fixtures.podman import PodmanImage
from fixtures.sshd import SSHHosts


def ssh_group(hosts: SSHHosts, names: list[str] | None = None) -> Group:
    return Group(
        [SSHTunnel(name, ssh_config=str(hosts.config_path)) for name in names or hosts.names]
    )


def container(image: PodmanImage, name: str) -> Docker:
    tunnel = Docker(name, image=image.image, docker_options=["--network", "none"])
    tunnel.docker = str(image.docker)  # podman behind a `docker` shim
    return tunnel


@pytest.fixture
def web(sshd_hosts: SSHHosts) -> Iterator[Group]:
    group = ssh_group(sshd_hosts)
    try:
        yield group
    finally:
        group.close()


def test_group_over_several_ssh_hosts(web: Group, sshd_hosts: SSHHosts, tmp_path: Path) -> None:
    users = web.call(getpass.getuser)
    assert users == dict.fromkeys(sshd_hosts.names, sshd_hosts.user)
    pids = web.call(os.getpid)
    assert pids.ok and len(set(pids.values())) == 4
    assert web.call(facts.python_version, short=True).ok

    data = os.urandom(200_000)
    (tmp_path / "up.bin").write_bytes(data)
    put = web.put(tmp_path / "up.bin")
    assert put.ok, put
    assert {info["sha1sum"] for info in put.values()} == {hashlib.sha1(data).hexdigest()}
    remote_paths = {host: info["remote_path"] for host, info in put.items()}
    try:
        fetched = web.run(helpers.read_bytes, (remote_paths["web2"],))
        assert set(fetched.values()) == {data}
        back = Group([web["web1"], web["web4"]]).fetch(
            remote_paths["web1"], str(tmp_path / "{host}" / "copy")
        )
        assert back.ok and (tmp_path / "web4" / "copy").read_bytes() == data
    finally:
        for path in remote_paths.values():
            web["web1"].call(helpers.remove, path)


def test_mixed_group_of_ssh_local_and_container(
    sshd_hosts: SSHHosts, podman_image: PodmanImage
) -> None:
    group = (
        ssh_group(sshd_hosts, ["web1", "web2", "web3"])
        + Local("here")
        + container(podman_image, "chopsticks-nb-group-mixed")
    )
    with contextlib.closing(group), sshd_hosts.down("web3"):
        result = group.call(facts.hostname)
        assert list(result) == ["web1", "web2", "web3", "here", "chopsticks-nb-group-mixed"]
        assert result["web1"] == result["here"]  # sshd on loopback: the same machine
        assert isinstance(result["chopsticks-nb-group-mixed"], str)
        down = result["web3"]
        assert isinstance(down, ErrorResult) and down.status == "unreachable"
        assert "ssh could not connect" in down.msg
        assert [host for host, _ in result.failures()] == ["web3"]
        versions = group.run(facts.python_version, kwargs={"short": True}, timeout=60)
        assert len(list(versions.successful())) == 4


def test_interrupting_ssh_sleepers(web: Group) -> None:
    if signal.getsignal(signal.SIGINT) is not signal.default_int_handler:
        pytest.skip("SIGINT is not handled by Python's default handler here")
    pids = web.call(os.getpid)
    main = threading.main_thread().ident
    assert main is not None
    timer = threading.Timer(0.7, signal.pthread_kill, (main, signal.SIGINT))
    start = time.monotonic()
    timer.start()
    try:
        with pytest.raises(GroupInterrupted) as caught:
            web.run(time.sleep, (60,))
    finally:
        timer.cancel()
        timer.join()
    # A hang bound, not a speed test: without the interrupt the call sleeps 60 s; it ends
    # about 0.7 s in, and 20 s leaves room for a loaded machine.
    assert time.monotonic() - start < 20
    assert {e.status for e in caught.value.result.values()} == {"interrupted"}
    assert web.call(os.getpid) == pids  # the same agents answer: no host reconnected


def test_queue_over_ssh_hosts(web: Group) -> None:
    queue = Queue()
    results = [queue.call(web, helpers.stamp, i, 0.05) for i in range(5)]
    queue.run(timeout=60)
    for host in web.hosts:
        assert [r.value[host][0] for r in results] == list(range(5))
