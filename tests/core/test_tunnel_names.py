"""A tunnel's name (the label results are keyed by) apart from where it connects."""

from __future__ import annotations

import getpass
import os
import sys

import pytest
import remote_funcs as rf

from chopsticks_nb.errors import ConnectError
from chopsticks_nb.group import Group
from chopsticks_nb.slurm import Srun
from chopsticks_nb.tunnel import Docker, Local, SSHTunnel, Sudo
from fixtures.sshd import SSHHosts
from fixtures.sudo import SudoUsers

HOSTILE_NAMES = ["-oProxyCommand=touch /tmp/pwned", "--jobid=1", "a b", "<b>x</b>", "web[1-2]"]


def test_repr_shows_the_destination_and_the_name_where_it_differs() -> None:
    assert repr(SSHTunnel("10.0.0.5", name="web1")) == "SSHTunnel('10.0.0.5', name='web1')"
    assert repr(SSHTunnel("web1")) == "SSHTunnel('web1')"
    assert repr(SSHTunnel("web1", name="web1")) == "SSHTunnel('web1')"
    assert repr(Sudo("rpother", name="admin")) == "Sudo('rpother', name='admin')"
    assert repr(Sudo("rpother")) == "Sudo('rpother')"
    assert repr(Srun("node1", job=42, name="n1")) == "Srun('node1', job='42', name='n1')"
    assert repr(Srun("node1", job="42")) == "Srun('node1', job='42')"
    assert repr(Local("worker")) == "Local('worker')"
    assert repr(Docker("box")) == "Docker('box')"  # the container's name is its name
    assert repr(Group([SSHTunnel("10.0.0.5", name="web1")])) == (
        "Group([SSHTunnel('10.0.0.5', name='web1')])"
    )


def test_the_name_is_the_key_and_the_destination_what_is_reached() -> None:
    tunnel = SSHTunnel("10.0.0.5", name="web1", user="deploy")
    assert (tunnel.host, tunnel.destination) == ("web1", "10.0.0.5")
    assert tunnel.cmd_args()[-2] == "10.0.0.5"
    group = Group([tunnel, SSHTunnel("10.0.0.6", name="web2")])
    assert group.hosts == ["web1", "web2"] and group["web1"] is tunnel
    with pytest.raises(ValueError, match="duplicate host name 'web1'"):
        Group([tunnel, SSHTunnel("10.0.0.7", name="web1")])
    step = Srun("node2", job=7, name="gpu-a")
    assert (step.host, step.node) == ("gpu-a", "node2")
    assert "--nodelist=node2" in step.cmd_args()


@pytest.mark.parametrize("name", HOSTILE_NAMES)
def test_names_are_data_never_part_of_a_command(name: str) -> None:
    """Any one-line text is a name; it is shown and used as a key, never put on a command line
    (the destinations keep their own strict checks)."""
    for tunnel in (
        SSHTunnel("web1", name=name, user="deploy", sudo_user="app", port=2222),
        Srun("node1", job=3, name=name),
        Sudo("rpother", name=name),
        Local(name),
    ):
        assert tunnel.host == name
        assert name not in tunnel.cmd_args()
        assert not any(name in arg for arg in tunnel.cmd_args())


@pytest.mark.parametrize("name", ["", "two\nlines", "tab\there", "nul\0", "del\x7f", 3])
def test_names_are_one_line_of_text(name: object) -> None:
    for make in (SSHTunnel, Srun, Sudo):
        with pytest.raises(ValueError, match="invalid tunnel name"):
            if make is Srun:
                make("node1", job=1, name=name)
            else:
                make("web1" if make is SSHTunnel else "rpother", name=name)
    with pytest.raises(ValueError, match="invalid tunnel name"):
        Local(name)  # type: ignore[arg-type]


def test_destinations_and_users_keep_their_checks() -> None:
    with pytest.raises(ValueError, match="invalid host name '-oProxyCommand=x'"):
        SSHTunnel("-oProxyCommand=x", name="fine")
    with pytest.raises(ValueError, match="invalid sudo user '-u'"):
        SSHTunnel("web1", sudo_user="-u")
    with pytest.raises(ValueError, match="invalid Slurm node name"):
        Srun("--overlap", job=1, name="fine")
    with pytest.raises(ValueError, match="invalid user"):
        Sudo("-s", name="fine")


def test_sudo_user_runs_the_agent_as_that_user_through_sudo() -> None:
    tunnel = SSHTunnel("web1", sudo_user="app")
    assert tunnel.sudo
    remote = tunnel.cmd_args()[-1]
    assert remote.startswith("sudo -n -u app -- python3 -c ")
    root = SSHTunnel("web1", sudo=True).cmd_args()[-1]
    assert root.startswith("sudo -n -- python3 -c ")


# -- real connections ---------------------------------------------------------------------------


def test_results_and_output_carry_the_name(
    sshd_hosts: SSHHosts, capfd: pytest.CaptureFixture[str]
) -> None:
    config = str(sshd_hosts.config_path)
    web2 = sshd_hosts.hosts["web2"]
    group = Group(
        [
            SSHTunnel("web2", name="frontend", ssh_config=config),
            SSHTunnel(web2.address, name="by-address", port=web2.port, ssh_config=config),
        ]
    )
    with group:
        where = group.call(os.getenv, "SSH_CONNECTION")
        assert list(where) == ["frontend", "by-address"]
        for value in where.values():
            assert value.split()[2:] == [web2.address, str(web2.port)]
        group.call(rf.noisy, 1)
    out, err = capfd.readouterr()
    assert "[frontend] " in out + err and "[by-address] " in out + err
    assert "web2" not in out + err


def test_sudo_user_over_ssh_becomes_that_user(sshd_hosts: SSHHosts, sudo_user: SudoUsers) -> None:
    """The test user logs in and may run /usr/bin/python3 as the other user (the real rule)."""
    tunnel = SSHTunnel(
        "web3",
        name="as-other",
        sudo_user=sudo_user.target,
        python3="/usr/bin/python3",
        ssh_config=str(sshd_hosts.config_path),
    )
    with tunnel:
        assert tunnel.call(os.getuid) == sudo_user.target_uid
        assert tunnel.call(getpass.getuser) == sudo_user.target
    refused = SSHTunnel(
        "web3", sudo_user="root", python3="/usr/bin/python3", ssh_config=str(sshd_hosts.config_path)
    )
    with pytest.raises(
        ConnectError, match=r"sudo on web3 refused to run /usr/bin/python3 as root: .*password"
    ):
        refused.connect()


def test_a_local_named_tunnel_runs_here() -> None:
    with Local("anything-at-all") as tunnel:
        assert tunnel.call(os.path.realpath, sys.executable) == os.path.realpath(sys.executable)
