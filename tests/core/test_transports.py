"""Tunnels over real transports: OpenSSH to loopback sshds, sudo, and podman for docker."""

from __future__ import annotations

import os
import subprocess
import uuid
from pathlib import Path

import pytest
import remote_funcs as rf

from chopsticks_nb import errors
from chopsticks_nb.tunnel import Docker, Podman, SSHTunnel, Sudo
from fixtures.podman import PodmanImage
from fixtures.sshd import SSHHosts
from fixtures.sudo import SudoUsers


def ssh(hosts: SSHHosts, name: str = "web1", **options: object) -> SSHTunnel:
    return SSHTunnel(name, ssh_config=str(hosts.config_path), connect_timeout=15, **options)  # type: ignore[arg-type]


def test_ssh_call_runs_as_the_remote_user(sshd_hosts: SSHHosts) -> None:
    with ssh(sshd_hosts) as tunnel:
        assert tunnel.call(rf.uid) != 0
        assert tunnel.call(rf.echo, b"\x00" * 70000)[0][0] == b"\x00" * 70000
        assert tunnel.remote_info["pid"] == tunnel.call(rf.getpid)


def test_ssh_exception_import_hook_and_files(sshd_hosts: SSHHosts, tmp_path: Path) -> None:
    source = tmp_path / "payload"
    source.write_bytes(os.urandom(3 * 1024 * 1024))
    remote = f"/tmp/chopsticks-test-{uuid.uuid4().hex}"
    with ssh(sshd_hosts, "web2") as tunnel:
        with pytest.raises(errors.RemoteException, match="boom over ssh") as info:
            tunnel.call(rf.boom, "boom over ssh")
        assert info.value.host == "web2"
        put = tunnel.put(str(source), remote)
        back = tunnel.fetch(remote, str(tmp_path / "back"))
        tunnel.call(os.unlink, remote)
    assert put["sha1sum"] == back["sha1sum"]
    assert (tmp_path / "back").read_bytes() == source.read_bytes()


def test_ssh_recursive_tunnel_through_real_sudo(sshd_hosts: SSHHosts, sudo_user: SudoUsers) -> None:
    """web1 (as the test user) opens a Sudo tunnel to another user: chopsticks_nb is served."""
    with ssh(sshd_hosts) as tunnel:
        assert tunnel.call(rf.sudo_uid, sudo_user.target) == sudo_user.target_uid


def test_ssh_stderr_is_relayed_with_host_prefix(sshd_hosts: SSHHosts) -> None:
    seen: list[tuple[str, str]] = []
    with ssh(sshd_hosts, "web3", output=lambda stream, text: seen.append((stream, text))) as t:
        t.call(rf.noisy, 2)
    assert (
        "".join(text for stream, text in seen if stream == "stderr") == "err line 0\nerr line 1\n"
    )


def test_ssh_keepalive_is_on_by_default(sshd_hosts: SSHHosts) -> None:
    args = ssh(sshd_hosts).cmd_args()
    assert "ServerAliveInterval=2" in args and "BatchMode=yes" in args
    assert args[args.index("--") + 1] == "web1"  # the host comes after the end of options


def test_ssh_unknown_host_is_one_readable_error() -> None:
    tunnel = SSHTunnel("no-such-host.invalid", connect_timeout=15)
    with pytest.raises(
        errors.ConnectError, match=r"no-such-host.invalid: ssh could not connect.*resolve"
    ):
        tunnel.connect()


def test_ssh_refused_when_sshd_is_down(sshd_hosts: SSHHosts) -> None:
    with (
        sshd_hosts.down("web4"),
        pytest.raises(errors.ConnectError, match=r"web4: ssh could not connect.*refused"),
    ):
        ssh(sshd_hosts, "web4").connect()


def test_ssh_authentication_failure(sshd_hosts: SSHHosts, tmp_path: Path) -> None:
    wrong = tmp_path / "wrong_key"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(wrong)], check=True)
    tunnel = SSHTunnel(
        sshd_hosts.addresses["web1"],
        user=sshd_hosts.user,
        port=sshd_hosts.port,
        connect_timeout=15,
        ssh_options=["-o", f"IdentityFile={wrong}", "-o", "IdentitiesOnly=yes", "-F", "/dev/null",
                     "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null"],
    )  # fmt: skip
    with pytest.raises(errors.ConnectError, match="Permission denied"):
        tunnel.connect()


def test_ssh_missing_remote_interpreter(sshd_hosts: SSHHosts) -> None:
    with pytest.raises(errors.ConnectError, match="web1: the remote interpreter was not found"):
        ssh(sshd_hosts, python3="/nonexistent/python3").connect()


def test_ssh_sudo_without_a_rule_says_so(sshd_hosts: SSHHosts) -> None:
    with pytest.raises(errors.ConnectError, match="password is required"):
        ssh(sshd_hosts, sudo=True).connect()


def test_missing_ssh_binary() -> None:
    class NoSSH(SSHTunnel):
        ssh = "/nonexistent/ssh"

    with pytest.raises(errors.ConnectError, match="cannot run '/nonexistent/ssh'"):
        NoSSH("web1").connect()


@pytest.mark.parametrize("name", ["-oProxyCommand=touch /tmp/pwned", "web 1", "", "a\nb"])
def test_host_names_that_could_become_options_are_rejected(name: str) -> None:
    with pytest.raises(ValueError, match="must not start with '-'"):
        SSHTunnel(name)


def test_users_and_images_are_validated() -> None:
    with pytest.raises(ValueError):
        SSHTunnel("web1", user="-lroot")
    with pytest.raises(ValueError):
        Sudo("-u")
    with pytest.raises(ValueError):
        Docker("c1", image="--privileged")


def test_port_may_be_an_int(sshd_hosts: SSHHosts) -> None:
    tunnel = SSHTunnel("web1", port=sshd_hosts.port, ssh_config=str(sshd_hosts.config_path))
    assert tunnel.cmd_args()[tunnel.cmd_args().index("-p") + 1] == str(sshd_hosts.port)


def test_sudo_runs_as_the_target_user(sudo_user: SudoUsers) -> None:
    with Sudo(sudo_user.target, name="as-other") as tunnel:
        assert tunnel.call(rf.uid) == sudo_user.target_uid
        assert tunnel.host == "as-other"


def test_docker_tunnel_through_podman(podman_image: PodmanImage, tmp_path: Path) -> None:
    """podman stands in for the docker engine (none runs here): same `run -i --rm --name` CLI."""
    tunnel = Docker(f"ctr-{uuid.uuid4().hex[:8]}", image=podman_image.image)
    tunnel.docker = str(podman_image.docker)
    (tmp_path / "f").write_bytes(b"into the container")
    with tunnel:
        assert tunnel.call(rf.version)[0] == 3
        assert tunnel.put(str(tmp_path / "f"), "/tmp/f")["size"] == 18
        assert tunnel.fetch("/tmp/f", str(tmp_path / "g"))["size"] == 18
    assert (tmp_path / "g").read_bytes() == b"into the container"


def test_podman_tunnel(podman_image: PodmanImage, monkeypatch: pytest.MonkeyPatch) -> None:
    for key, value in podman_image.conf_env.items():
        monkeypatch.setenv(key, value)
    with Podman(f"ctr-{uuid.uuid4().hex[:8]}", image=podman_image.image) as tunnel:
        assert tunnel.call(rf.uid) == 0


def test_docker_missing_image_is_explained(podman_image: PodmanImage) -> None:
    tunnel = Docker("ctr-missing", image="localhost/no-such-image:latest")
    tunnel.docker = str(podman_image.docker)
    with pytest.raises(errors.ConnectError, match=r"ctr-missing: .*(could not start|exited)"):
        tunnel.connect()
