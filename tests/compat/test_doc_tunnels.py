"""The tunnels chapter of the chopsticks 1.0 documentation: its reference and its examples.

Differences found (each listed in docs/migrating.md):
- Python 2 is refused, with a clear message: the agent needs Python 3.6 or newer remotely.
- A tunnel written the 1.0 way (set ``self.host``, then ``super().__init__()``) must pass the
  name to ``__init__`` instead.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import uuid
from pathlib import Path

import doc_stand_ins as stand_ins
import pytest
from doc_examples import Examples

import chopsticks_nb
from chopsticks_nb import errors
from chopsticks_nb.facts import python_version
from chopsticks_nb.tunnel import Local, RemoteException, SSHTunnel, Sudo, Tunnel
from fixtures.podman import PodmanImage
from fixtures.pythons import RemotePythons
from fixtures.sshd import SSHHosts
from fixtures.sudo import SudoUsers

RECURSIVE = """
def recursive():
    with Local() as tun:
        tun.call(recursive)
"""

DEPTH_LIMIT_3 = """
chopsticks.DEPTH_LIMIT = 3
"""

DEPTH_LIMIT_PLUS_1 = """
chopsticks.DEPTH_LIMIT += 1
"""

#: The Docker reference's default image, in the introduction's Docker example.
PYTHON_27_CONTAINER = """
from chopsticks.tunnel import Docker
from chopsticks.facts import python_version

dkr = Docker('py27', image='python:2.7')
print(dkr.call(python_version))
"""


def test_put_and_fetch_return_the_documented_dicts(
    doc_hosts: SSHHosts, tmp_path: Path, shared_dir: Path
) -> None:
    data = os.urandom(300_000)
    (tmp_path / "local").write_bytes(data)
    digest = hashlib.sha1(data).hexdigest()
    remote = str(shared_dir / "copy")
    with Tunnel("troy.example.com") as tun:
        put = tun.put(str(tmp_path / "local"), remote, mode=0o600)
        assert {k: put[k] for k in ("remote_path", "size", "sha1sum")} == {
            "remote_path": remote,
            "size": len(data),
            "sha1sum": digest,
        }
        assert os.stat(remote).st_mode & 0o777 == 0o600
        fetched = tun.fetch(remote, str(tmp_path / "back"))
        assert {k: fetched[k] for k in ("local_path", "remote_path", "size", "sha1sum")} == {
            "local_path": str(tmp_path / "back"),
            "remote_path": remote,
            "size": len(data),
            "sha1sum": digest,
        }
        temporary = tun.fetch(remote)  # no local_path: a temporary file
        try:
            assert Path(temporary["local_path"]).read_bytes() == data
        finally:
            os.unlink(temporary["local_path"])
        anywhere = tun.put(str(tmp_path / "local"))  # no remote_path: a temporary file there
        tun.call(os.unlink, anywhere["remote_path"])
    assert (tmp_path / "back").read_bytes() == data


def test_a_remote_exception_is_raised_as_tunnel_remote_exception(doc_hosts: SSHHosts) -> None:
    with Tunnel("troy.example.com") as tun, pytest.raises(RemoteException) as caught:
        tun.call(os.listdir, "/no/such/directory")
    assert caught.value.host == "troy.example.com"
    assert caught.value.remote_type == "FileNotFoundError"


def test_ssh_tunnel_user_and_sudo(doc_hosts: SSHHosts) -> None:
    """``SSHTunnel(host, user=None, sudo=False)``: here root logs in and sudo runs as root."""
    with SSHTunnel("web1", user=doc_hosts.user) as tun:
        assert tun.call(os.getuid) != 0
    with SSHTunnel("web1", user="root", sudo=True) as tun:
        assert tun.call(os.getuid) == 0


def test_sudo_and_local_tunnels(sudo_user: SudoUsers) -> None:
    with Sudo(sudo_user.target) as tun:
        assert tun.call(os.getuid) == sudo_user.target_uid
        assert tun.host == sudo_user.target  # 1.0 named it "rpother@localhost"
    with Sudo(user=sudo_user.target, name="as-other") as tun:
        assert tun.host == "as-other"
    with Local() as tun:
        assert tun.host == "localhost" and tun.call(os.getpid) != os.getpid()


def test_docker_rm_false_keeps_the_container(docker_is_podman: PodmanImage) -> None:
    from chopsticks_nb.tunnel import Docker

    name = f"kept-{uuid.uuid4().hex[:8]}"
    tun = Docker(name, image=docker_is_podman.image, rm=False)
    try:
        with tun:
            assert tun.call(python_version, short=True)[0] == 3
        listed = subprocess.run(
            ["docker", "ps", "-a", "--filter", f"name=^{name}$", "--format", "{{.Names}}"],
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )
        assert listed.stdout.split() == [name]
    finally:
        subprocess.run(["docker", "rm", "-f", name], capture_output=True, timeout=60, check=False)


def test_a_python_2_7_container_is_refused_with_a_clear_message(
    examples: Examples, docker_is_podman: PodmanImage, remote_pythons: RemotePythons
) -> None:
    """No python:2.7 image here: the test image runs pyenv's Python 2.7, mounted in."""
    prefix = remote_pythons.path("2.7").parent.parent
    python_27_image = (
        f"image={docker_is_podman.image!r}, python3='{prefix}/bin/python', "
        f"docker_options=['-v', '{prefix}:{prefix}:ro']"
    )
    with pytest.raises(errors.ConnectError) as caught:
        examples.run(PYTHON_27_CONTAINER, {"image='python:2.7'": python_27_image})
    assert str(caught.value) == (
        "py27: the remote Python is too old: "
        "chopsticks_nb: the agent needs Python 3.6 or newer, this is Python 2.7"
    )


def test_recursive_tunnels_stop_at_the_depth_limit(examples: Examples) -> None:
    namespace = examples.run("from chopsticks.tunnel import Local\n" + RECURSIVE)  # assumed
    with pytest.raises(RemoteException) as caught:
        namespace["recursive"]()
    text = str(caught.value) + (caught.value.remote_traceback or "")
    assert "DepthLimitExceeded" in text and "DEPTH_LIMIT is 2" in text


def test_default_depth_limit_is_2() -> None:
    assert chopsticks_nb.DEPTH_LIMIT == 2
    with Local() as tun:
        assert tun.call(stand_ins.deepest) == 2


def test_depth_limit_set_on_the_controller(
    examples: Examples, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(chopsticks_nb, "DEPTH_LIMIT", chopsticks_nb.DEPTH_LIMIT)
    examples.run("import chopsticks\n" + DEPTH_LIMIT_3)  # the page assumes the import
    assert chopsticks_nb.DEPTH_LIMIT == 3
    with Local() as tun:
        assert tun.call(stand_ins.deepest) == 3  # passed on to the remotes, as in 1.0


def test_depth_limit_plus_equals(examples: Examples, monkeypatch: pytest.MonkeyPatch) -> None:
    """The docs' caution: ``+= 1`` in remote code undoes the limit, each level adding one to the
    limit it was given (passed on, as in 1.0): only ``stop_at`` ends this recursion."""
    monkeypatch.setattr(chopsticks_nb, "DEPTH_LIMIT", chopsticks_nb.DEPTH_LIMIT)
    examples.run("import chopsticks\n" + DEPTH_LIMIT_PLUS_1)  # the page assumes the import
    assert chopsticks_nb.DEPTH_LIMIT == 3
    with Local() as tun:
        assert tun.call(stand_ins.deepest, raise_limit=True, stop_at=6) == 6


def test_recursive_tunnelling_ssh_then_sudo(doc_hosts: SSHHosts, sudo_user: SudoUsers) -> None:
    """ "You could create an SSHTunnel to a remote host and then Sudo to execute certain actions
    as root" (here as the sudo rule's target user)."""
    with SSHTunnel("web1.example.com") as tun:
        assert tun.call(os.getuid) == sudo_user.user_uid
        assert tun.call(stand_ins.uid_through_sudo, sudo_user.target) == sudo_user.target_uid


def test_writing_a_new_tunnel() -> None:
    """Subclass SubprocessTunnel; give it a ``host``; wrap the interpreter's command line."""
    from chopsticks_nb.tunnel import SubprocessTunnel

    class Nice(SubprocessTunnel):
        def __init__(self, name: str = "nice") -> None:
            self.host = name
            super().__init__()  # type: ignore[call-arg] # the 1.0 way

        def cmd_args(self) -> list[str]:
            return ["nice", *super().cmd_args()]

    with pytest.raises(TypeError, match="host"):
        Nice()

    class NiceNow(SubprocessTunnel):
        def __init__(self, name: str = "nice") -> None:
            super().__init__(name)  # the smallest change: pass the name

        def cmd_args(self) -> list[str]:
            return ["nice", *super().cmd_args()]

    with NiceNow() as tun:
        assert tun.host == "nice"
        assert tun.call(os.nice, 0) == min(os.nice(0) + 10, 19)  # nice(1) adds 10
