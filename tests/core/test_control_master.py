"""Shared SSH connections (``control_master=True``): one SSH handshake, then sessions over it.

Whether a connection is new is read from the sshd's own log: every SSH handshake that logs in
writes an ``Accepted publickey`` line; a session opened over a master connection writes none.
The masters daemonise (they outlive the process that started them, as they must to survive a
kernel restart), so they are never our children; every test stops the ones it started.
"""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from chopsticks_nb import _ssh_control
from chopsticks_nb.errors import ConnectError
from chopsticks_nb.group import Group
from chopsticks_nb.tunnel import SSHTunnel
from fixtures.leaks import live_descendants
from fixtures.sshd import SSHHosts
from fixtures.system import TEST_USER, ensure_user


@dataclass
class Places:
    """The three places a socket directory may be made, all private to this test."""

    runtime: Path  # $XDG_RUNTIME_DIR
    home: Path  # $HOME (with a .ssh directory)
    tmp: Path  # tempfile's directory


@pytest.fixture
def places(monkeypatch: pytest.MonkeyPatch) -> Iterator[Places]:
    # Short paths: a socket path has at most 107 bytes (pytest's tmp_path is too long here).
    base = Path(tempfile.mkdtemp(prefix="cm-", dir="/tmp"))
    found = Places(runtime=base / "run", home=base / "home", tmp=base / "tmp")
    for path in (found.runtime, found.home / ".ssh", found.tmp):
        path.mkdir(parents=True, mode=0o700)
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(found.runtime))
    monkeypatch.setenv("HOME", str(found.home))
    monkeypatch.setattr(tempfile, "tempdir", str(found.tmp))
    try:
        yield found
    finally:
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture
def shared(sshd_hosts: SSHHosts, places: Places) -> Iterator[list[SSHTunnel]]:
    """A list to put shared tunnels in: their tunnels are closed and masters stopped after."""
    tunnels: list[SSHTunnel] = []
    try:
        yield tunnels
    finally:
        for tunnel in tunnels:
            tunnel.close()
            tunnel.stop_master()


def logins(hosts: SSHHosts, name: str) -> int:
    """SSH handshakes that logged in to the host's sshd so far."""
    return hosts.hosts[name].log.read_text().count("Accepted publickey")


def shared_tunnel(hosts: SSHHosts, name: str, **options: object) -> SSHTunnel:
    return SSHTunnel(
        name,
        ssh_config=str(hosts.config_path),
        control_master=True,
        connect_timeout=15,
        **options,  # type: ignore[arg-type]
    )


def test_a_reconnect_rides_the_master_without_a_new_handshake(
    sshd_hosts: SSHHosts, places: Places, shared: list[SSHTunnel]
) -> None:
    tunnel = shared_tunnel(sshd_hosts, "web1")
    shared.append(tunnel)
    before = logins(sshd_hosts, "web1")
    first = tunnel.call(os.getpid)
    assert logins(sshd_hosts, "web1") == before + 1
    master = tunnel.master_pid()
    assert master is not None
    assert master not in live_descendants()  # daemonised: never one of our children
    tunnel.close()
    second = tunnel.call(os.getpid)  # a new agent, over the same SSH connection
    assert second != first
    assert logins(sshd_hosts, "web1") == before + 1
    assert tunnel.master_pid() == master
    # The master's socket: ssh's %C name, in a directory only this user can enter.
    directory = places.runtime / "chopsticks_nb"
    (socket,) = directory.iterdir()
    assert stat.S_ISSOCK(socket.lstat().st_mode) and len(socket.name) == 40
    info = directory.lstat()
    assert stat.S_IMODE(info.st_mode) == 0o700 and info.st_uid == os.geteuid()


def test_a_new_process_reuses_the_master_like_a_restarted_kernel(
    sshd_hosts: SSHHosts, shared: list[SSHTunnel]
) -> None:
    tunnel = shared_tunnel(sshd_hosts, "web2")
    shared.append(tunnel)
    tunnel.connect()
    tunnel.close()
    before = logins(sshd_hosts, "web2")
    code = (
        "import os, sys\n"
        "from chopsticks_nb import SSHTunnel\n"
        "with SSHTunnel('web2', ssh_config=sys.argv[1], control_master=True) as tunnel:\n"
        "    print(tunnel.call(os.getenv, 'SSH_CONNECTION').split()[2])\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, str(sshd_hosts.config_path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert out.stdout.strip() == sshd_hosts.hosts["web2"].address
    assert logins(sshd_hosts, "web2") == before


def test_without_control_master_every_connect_is_a_handshake(sshd_hosts: SSHHosts) -> None:
    """The measurement above can fail: a plain tunnel logs in again after close()."""
    tunnel = SSHTunnel("web3", ssh_config=str(sshd_hosts.config_path))
    before = logins(sshd_hosts, "web3")
    try:
        tunnel.connect()
        tunnel.close()
        tunnel.connect()
    finally:
        tunnel.close()
    assert logins(sshd_hosts, "web3") == before + 2
    assert tunnel.master_pid() is None and not tunnel.stop_master()


def test_a_group_wide_setting_and_stopping_the_masters(
    sshd_hosts: SSHHosts, shared: list[SSHTunnel]
) -> None:
    group = Group.from_ssh_config(
        "web[34]", sshd_hosts.config_path, control_master=True, control_persist=60
    )
    shared.extend(t for t in group if isinstance(t, SSHTunnel))
    with group:
        assert group.call(os.getpid).ok
    before = {name: logins(sshd_hosts, name) for name in ("web3", "web4")}
    with group:
        assert group.call(os.getpid).ok
    assert {name: logins(sshd_hosts, name) for name in ("web3", "web4")} == before
    for tunnel in shared:
        pid = tunnel.master_pid()
        assert pid is not None and tunnel.stop_master()
        assert tunnel.master_pid() is None and not tunnel.stop_master()
    with group:  # no master any more: a handshake each, and a new master
        assert group.call(os.getpid).ok
    assert {name: logins(sshd_hosts, name) for name in ("web3", "web4")} == {
        name: count + 1 for name, count in before.items()
    }


# -- where the sockets go ----------------------------------------------------------------------


def test_the_socket_directory_is_the_first_private_place(places: Places) -> None:
    runtime, home, tmp = (
        str(places.runtime / "chopsticks_nb"),
        str(places.home / ".ssh" / "chopsticks_nb"),
        str(places.tmp / f"chopsticks_nb-{os.geteuid()}"),
    )
    assert _ssh_control.socket_directory_candidates() == [runtime, home, tmp]
    assert _ssh_control.socket_directory() == runtime
    args = SSHTunnel("web1", control_master=True, control_persist=30).cmd_args()
    assert f"ControlPath={runtime}/%C" in args and "ControlPersist=30" in args
    assert "ControlMaster=auto" in args


def test_a_place_that_is_not_private_is_passed_over(places: Places) -> None:
    # Someone else's directory where ours would be: never used, never changed.
    other = ensure_user(TEST_USER)
    planted = places.runtime / "chopsticks_nb"
    planted.mkdir()
    planted.chmod(0o777)
    os.chown(planted, other.pw_uid, other.pw_gid)
    # A link where the next one would be: not followed.
    (places.home / ".ssh" / "chopsticks_nb").symlink_to(places.runtime)
    chosen = _ssh_control.socket_directory()
    assert chosen == str(places.tmp / f"chopsticks_nb-{os.geteuid()}")
    assert stat.S_IMODE(planted.stat().st_mode) == 0o777 and planted.stat().st_uid == other.pw_uid


def test_a_wide_directory_of_ours_is_made_private(places: Places) -> None:
    mine = places.runtime / "chopsticks_nb"
    mine.mkdir()
    mine.chmod(0o755)
    assert _ssh_control.socket_directory() == str(mine)
    assert stat.S_IMODE(mine.stat().st_mode) == 0o700


def test_places_too_long_for_a_socket_path_are_passed_over(
    places: Places, monkeypatch: pytest.MonkeyPatch
) -> None:
    deep = places.runtime / ("d" * (_ssh_control.MAX_DIRECTORY_LENGTH - len(str(places.runtime))))
    deep.mkdir(mode=0o700)
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(deep))
    assert len(str(deep / "chopsticks_nb")) > _ssh_control.MAX_DIRECTORY_LENGTH
    assert _ssh_control.socket_directory() == str(places.home / ".ssh" / "chopsticks_nb")
    shutil.rmtree(places.home / ".ssh")  # no ~/.ssh: it is not made for this
    assert _ssh_control.socket_directory() == str(places.tmp / f"chopsticks_nb-{os.geteuid()}")
    assert not (places.home / ".ssh").exists()


def test_no_private_place_at_all_is_a_clear_connect_error(
    places: Places, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("XDG_RUNTIME_DIR")
    shutil.rmtree(places.home / ".ssh")
    monkeypatch.setattr(tempfile, "tempdir", str(places.tmp / "missing" / "deeper"))
    tunnel = SSHTunnel("web1", control_master=True)
    with pytest.raises(ConnectError, match="control_master=True needs a directory of your own"):
        tunnel.connect()
    with pytest.raises(ConnectError, match="web1: control_master"):
        tunnel.call(os.getpid)


def test_control_persist_is_a_number_of_seconds() -> None:
    with pytest.raises(ValueError, match="1 second or more"):
        SSHTunnel("web1", control_master=True, control_persist=0)
    with pytest.raises(TypeError, match="number of seconds"):
        SSHTunnel("web1", control_master=True, control_persist="10m")  # type: ignore[arg-type]
