"""Groups from where hosts are written down: host ranges, ssh configs, Ansible inventories.

Real files (an ssh config with Include and wildcards, INI and YAML inventories with children,
ranges and vars) and real connections to the loopback sshds they name, real sudo for become.
"""

from __future__ import annotations

import getpass
import os
import subprocess
import sys
from pathlib import Path

import pytest

from chopsticks_nb import HostRangeError, InventoryError, SSHConfigError
from chopsticks_nb.group import Group
from chopsticks_nb.tunnel import Local, SSHTunnel, Sudo
from fixtures.sshd import SSHHosts, client_defaults, host_entry
from fixtures.sudo import SudoUsers

PYTHON = "/usr/bin/python3"


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def landed_on(group: Group) -> dict[str, str]:
    """Each host's sshd address, as the remote side sees its connection."""
    result = group.call(os.getenv, "SSH_CONNECTION").raise_failures()
    return {host: value.split()[2] for host, value in result.items()}


def test_importing_group_reads_no_file_parser_nor_the_slurm_client() -> None:
    """The host sources are imported by the methods that use them."""
    code = (
        "import sys, chopsticks_nb.group\n"
        "print(sorted(m for m in sys.modules if m in ('yaml', 'chopsticks_nb.slurm',"
        " 'chopsticks_nb._inventory', 'chopsticks_nb._ssh_config', 'chopsticks_nb._host_sources')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


# -- host ranges ----------------------------------------------------------------------------------


def test_ranges_stand_for_their_names_wherever_names_are() -> None:
    assert Group("web[01-03]").hosts == ["web01", "web02", "web03"]
    assert Group("db1").hosts == ["db1"]  # a plain name is a range of one
    mixed = Group(["web[1-2]", "db[1-3,7]", Local("here"), "cache1"])
    assert mixed.hosts == ["web1", "web2", "db1", "db2", "db3", "db7", "here", "cache1"]
    assert all(isinstance(t, SSHTunnel) for t in mixed if t.host != "here")
    options = Group("rack[1-2]-n[1-2]", user="ops", port=2200, connect_timeout=3)
    assert options.hosts == ["rack1-n1", "rack1-n2", "rack2-n1", "rack2-n2"]
    for tunnel in options:
        assert isinstance(tunnel, SSHTunnel)
        assert (tunnel.user, tunnel.port, tunnel.connect_timeout) == ("ops", 2200, 3)
    with pytest.raises(ValueError, match="duplicate host name 'web2'"):
        Group(["web[1-3]", "web2"])


@pytest.mark.parametrize(
    ("hosts", "reason", "position"),
    [
        ("web[3-1]", "the range 3-1 goes down", 4),
        (["db1", "web[01-"], "this '[' is never closed", 3),
        ("web[1-2],,db", "a host name is missing after a comma", 9),
    ],
)
def test_a_bad_range_says_where(hosts: str | list[str], reason: str, position: int) -> None:
    with pytest.raises(HostRangeError) as caught:
        Group(hosts)
    error = caught.value
    assert isinstance(error, ValueError)
    assert (error.reason, error.position) == (reason, position)
    assert str(error).splitlines()[-1] == "  " + " " * position + "^"


def test_a_range_of_real_hosts(sshd_hosts: SSHHosts) -> None:
    with Group("web[1-4]", ssh_config=sshd_hosts.config_path) as group:
        assert landed_on(group) == sshd_hosts.addresses


# -- ssh config -----------------------------------------------------------------------------------


def ssh_config_with_includes(directory: Path, hosts: SSHHosts) -> Path:
    """web1..web4 in two included files (a glob), wildcard and negated entries, a Match block."""
    entries = {
        name: host_entry(name, host.address, host.port) for name, host in hosts.hosts.items()
    }
    write(directory / "conf.d" / "10-front", entries["web1"] + entries["web2"])
    write(directory / "conf.d" / "20-back", entries["web3"] + entries["web4"])
    write(directory / "conf.d" / "30-other", "Host db1 db2\n  HostName 127.0.0.1\n  Port 1\n")
    return write(
        directory / "config",
        f"""\
Include {directory}/conf.d/*
Host *.example.com !skip.example.com
    User nobody
Host web?
    ServerAliveInterval 5
Match host nothing-matches-this
    Port 1
{client_defaults(hosts.user, hosts.key_path)}""",
    )


def test_from_ssh_config_follows_includes_and_connects(
    sshd_hosts: SSHHosts, tmp_path: Path
) -> None:
    config = ssh_config_with_includes(tmp_path, sshd_hosts)
    everything = Group.from_ssh_config(path=config)
    assert everything.hosts == ["web1", "web2", "web3", "web4", "db1", "db2"]
    group = Group.from_ssh_config("WEB*", config, connect_timeout=15)
    assert group.hosts == ["web1", "web2", "web3", "web4"]
    for tunnel in group:
        assert isinstance(tunnel, SSHTunnel) and tunnel.ssh_config == str(config)
        assert tunnel.connect_timeout == 15
    with group:
        # ssh read each entry itself: HostName and Port come from the included files.
        assert landed_on(group) == sshd_hosts.addresses
        assert set(group.call(getpass.getuser).values()) == {sshd_hosts.user}


def test_from_ssh_config_errors_name_the_file_and_line(tmp_path: Path) -> None:
    write(tmp_path / "inc", "Host fine\n\nHost 'unbalanced\n")
    config = write(tmp_path / "config", f"Host a\nInclude {tmp_path}/inc\n")
    with pytest.raises(SSHConfigError) as caught:
        Group.from_ssh_config(path=config)
    assert (caught.value.path, caught.value.line) == (str(tmp_path / "inc"), 3)
    assert isinstance(caught.value, ValueError)
    # ssh takes "web+1" as a destination; a tunnel does not: said where it is written.
    odd = write(tmp_path / "odd", "Host web1\nHost ok web+1\n")
    with pytest.raises(SSHConfigError, match=r"odd, line 2: invalid host name 'web\+1'"):
        Group.from_ssh_config(path=odd)
    assert Group.from_ssh_config("web1", odd).hosts == ["web1"]  # a narrower pattern
    with pytest.raises(TypeError, match="ssh_config= from the file"):
        Group.from_ssh_config(path=odd, ssh_config=str(odd))
    with pytest.raises(FileNotFoundError):
        Group.from_ssh_config(path=tmp_path / "missing")


# -- Ansible inventories --------------------------------------------------------------------------

INVENTORY_INI = """\
# web1 and web2 are names in the ssh config (ssh reads their entries); the rest are addresses.
[web]
web[1:2] ansible_python_interpreter={python}

[db]
database ansible_host={db_address} ansible_port={port}

[app:children]
web
db

[app:vars]
ansible_user={user}

[admin]
as-other ansible_host={admin_address} ansible_port={port} ansible_user={user} \
ansible_become=yes ansible_become_user={other} ansible_python_interpreter={python}

[local]
controller ansible_connection=local
"""

INVENTORY_YAML = """\
all:
  children:
    app:
      vars:
        ansible_user: {user}
      children:
        web:
          hosts:
            web[1:2]:
              ansible_python_interpreter: {python}
        db:
          hosts:
            database:
              ansible_host: {db_address}
              ansible_port: {port}
    admin:
      hosts:
        as-other:
          ansible_host: {admin_address}
          ansible_port: {port}
          ansible_user: {user}
          ansible_become: true
          ansible_become_user: {other}
          ansible_python_interpreter: {python}
    local:
      hosts:
        controller:
          ansible_connection: local
"""


@pytest.fixture(params=["inventory.ini", "inventory.yml"])
def inventory(request: pytest.FixtureRequest, sshd_hosts: SSHHosts, tmp_path: Path) -> Path:
    text = INVENTORY_INI if request.param.endswith(".ini") else INVENTORY_YAML
    return write(
        tmp_path / request.param,
        text.format(
            python=PYTHON,
            user=sshd_hosts.user,
            other="rpother",
            port=sshd_hosts.port,
            db_address=sshd_hosts.hosts["web3"].address,
            admin_address=sshd_hosts.hosts["web4"].address,
        ),
    )


def test_from_inventory_makes_the_tunnels_the_inventory_describes(
    inventory: Path, sshd_hosts: SSHHosts
) -> None:
    config = str(sshd_hosts.config_path)
    group = Group.from_inventory(inventory, ssh_config=config, connect_timeout=20)
    assert group.hosts == ["web1", "web2", "database", "as-other", "controller"]
    web1, database, admin, controller = (
        group[h] for h in ("web1", "database", "as-other", "controller")
    )
    assert isinstance(web1, SSHTunnel) and web1.destination == "web1"
    assert (web1.user, web1.port, web1.python3, web1.ssh_config) == (
        sshd_hosts.user,
        None,
        PYTHON,
        config,
    )
    assert isinstance(database, SSHTunnel)
    assert (database.destination, database.port) == (
        sshd_hosts.hosts["web3"].address,
        sshd_hosts.port,
    )
    assert database.python3 == "python3"  # no interpreter said: the default
    assert isinstance(admin, SSHTunnel) and (admin.sudo, admin.sudo_user) == (True, "rpother")
    assert type(controller) is Local and controller.connect_timeout == 20
    assert repr(database) == f"SSHTunnel({database.destination!r}, name='database')"
    assert Group.from_inventory(inventory, "app", ssh_config=config).hosts == [
        "web1",
        "web2",
        "database",
    ]
    assert Group.from_inventory(inventory, "local").hosts == ["controller"]


def test_inventory_hosts_are_reached_as_written(
    inventory: Path, sshd_hosts: SSHHosts, sudo_user: SudoUsers
) -> None:
    """Each host lands on the sshd its entry names, as its user; become goes through the real
    sudo rule (the test user may run /usr/bin/python3 as the other user); the local host runs
    here, in this very interpreter."""
    assert sudo_user.target == "rpother" and sudo_user.user == sshd_hosts.user
    admin_log = sshd_hosts.hosts["web4"].log
    logins_before = admin_log.read_text().count("Accepted publickey")
    with Group.from_inventory(inventory, ssh_config=str(sshd_hosts.config_path)) as group:
        ssh = group - group["controller"] - group["as-other"]
        assert landed_on(ssh) == {
            "web1": sshd_hosts.hosts["web1"].address,
            "web2": sshd_hosts.hosts["web2"].address,
            "database": sshd_hosts.hosts["web3"].address,
        }
        # sudo leaves SSH_CONNECTION out of the environment: web4's sshd saw the login.
        assert admin_log.read_text().count("Accepted publickey") == logins_before + 1
        users = group.call(getpass.getuser).raise_failures()
        assert users == {
            "web1": sshd_hosts.user,
            "web2": sshd_hosts.user,
            "database": sshd_hosts.user,
            "as-other": sudo_user.target,
            "controller": getpass.getuser(),
        }
        executables = group.call(os.path.realpath, "/proc/self/exe").raise_failures()
        assert executables["web1"].startswith("/usr/bin/python3")
        assert executables["controller"] == os.path.realpath(sys.executable)


def test_the_inventorys_key_and_ssh_arguments_are_what_reach_the_host(
    sshd_hosts: SSHHosts, tmp_path: Path
) -> None:
    """No ssh config at all (``-F /dev/null``): the key and the host key options come from the
    inventory alone, and without the key the login is refused."""
    web1 = sshd_hosts.hosts["web1"]
    common = "-o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR"
    line = (
        f"web1 ansible_host={web1.address} ansible_port={sshd_hosts.port} "
        f"ansible_user={sshd_hosts.user} ansible_python_interpreter={PYTHON} "
        f'ansible_ssh_common_args="{common}"'
    )
    keyed = write(
        tmp_path / "keyed.ini", f"{line} ansible_ssh_private_key_file={sshd_hosts.key_path}\n"
    )
    keyless = write(tmp_path / "keyless.ini", line + "\n")
    with Group.from_inventory(keyed, ssh_config="/dev/null", connect_timeout=20) as group:
        assert group.call(getpass.getuser).raise_failures() == {"web1": sshd_hosts.user}
    with Group.from_inventory(keyless, ssh_config="/dev/null", connect_timeout=20) as group:
        refused = group.call(getpass.getuser, quiet=True)["web1"]
    assert "Permission denied" in str(refused), refused


def test_group_options_fill_in_what_the_inventory_does_not_say(tmp_path: Path) -> None:
    path = write(
        tmp_path / "hosts",
        "own ansible_user=alice ansible_port=2201 ansible_python_interpreter=/opt/py\n"
        "plain\n"
        "here ansible_connection=local\n"
        "here-as-root ansible_connection=local ansible_become=true\n",
    )
    group = Group.from_inventory(
        path, user="deploy", port=22, python3="/usr/bin/python3", control_master=True
    )
    own, plain, here, root = group
    assert isinstance(own, SSHTunnel) and isinstance(plain, SSHTunnel)
    assert (own.user, own.port, own.python3) == ("alice", 2201, "/opt/py")
    assert (plain.user, plain.port, plain.python3) == ("deploy", 22, "/usr/bin/python3")
    assert own.control_master and plain.control_master
    # ssh's options mean nothing to a local host; the others still apply.
    assert type(here) is Local and here.python3 == "/usr/bin/python3"
    assert type(root) is Sudo and (root.host, root.user) == ("here-as-root", "root")
    with pytest.raises(TypeError, match="name= from the file"):
        Group.from_inventory(path, name="x")
    with pytest.raises(TypeError, match="unexpected keyword argument 'bogus'"):
        Group.from_inventory(path, bogus=1)


@pytest.mark.parametrize(
    ("text", "line", "message"),
    [
        ("[web]\nweb1\n\n[web:vars]\nansible_host=-oProxyCommand=x\n", 5, "invalid host name"),
        ("a\nb ansible_user='-o x'\n", 2, "invalid user '-o x'"),
        (
            "[all:vars]\nansible_become=yes\n[g]\nh ansible_become_user=-s\n",
            4,
            "invalid user '-s'",
        ),
        ("ok\nbad ansible_connection=winrm\n", 2, "ansible_connection=winrm"),
        ("web[3:1]\n", 1, "goes down"),
    ],
)
def test_inventory_errors_name_the_file_and_line(
    tmp_path: Path, text: str, line: int, message: str
) -> None:
    path = write(tmp_path / "inventory.ini", text)
    with pytest.raises(InventoryError, match=message) as caught:
        Group.from_inventory(path)
    assert (caught.value.path, caught.value.line) == (str(path), line)
    assert isinstance(caught.value, ValueError)


def test_an_unknown_inventory_group_lists_the_groups(tmp_path: Path) -> None:
    path = write(tmp_path / "inventory.ini", "[web]\nweb1\n")
    with pytest.raises(InventoryError, match=r"no group 'db' in this inventory \(groups: all, "):
        Group.from_inventory(path, "db")


# -- resources held by a group --------------------------------------------------------------------


def test_what_a_group_holds_is_released_once_when_it_closes() -> None:
    released: list[str] = []
    group = Group([Local("a")])
    group.on_close(lambda: released.append("first"))
    group.on_close(lambda: released.append("second"))
    with group:
        assert group.call(os.getpid).ok
        assert released == []
        part = group & group["a"]
    assert released == ["first", "second"] and not group["a"].connected
    group.close()
    part.close()  # groups made from it do not hold what it holds
    assert released == ["first", "second"]


def test_a_failed_release_does_not_stop_the_others() -> None:
    released: list[str] = []
    group = Group([Local("a")])

    def broken() -> None:
        raise RuntimeError("could not release")

    group.on_close(broken)
    group.on_close(lambda: released.append("after"))
    group.connect()
    with pytest.raises(RuntimeError, match="could not release"):
        group.close()
    assert released == ["after"] and not group["a"].connected
