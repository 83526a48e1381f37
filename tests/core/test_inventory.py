"""Ansible inventories, INI and YAML, read into host records; then hosts reached over real ssh.

The expected variables in the precedence and value tests were checked against
``ansible-inventory --list`` (ansible-core 2.21) on the same files; Ansible is not needed here.
"""

from __future__ import annotations

import dataclasses
import getpass
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from chopsticks_nb._inventory import (
    InventoryError,
    InventoryHost,
    inventory_hosts,
    read_inventory,
)
from chopsticks_nb._inventory_model import Origin, expand_host_pattern
from chopsticks_nb.tunnel import SSHTunnel
from fixtures.sshd import SSHHosts, client_defaults

INI = """\
# A comment; hosts before any section are "ungrouped"
lonely ansible_host=10.0.0.9

[web]
web[01:03].lan ansible_user=deploy
old-web:2222 ansible_host=10.0.0.5 ansible_become=yes ansible_become_user=admin

[db]
db-[a:c] ansible_python_interpreter=/usr/bin/python3

[prod:children]
web
db

[prod:vars]
ansible_user=produser
tier=1

[all:vars]
ansible_port=22
"""

YAML = """\
all:
  hosts:
    lonely:
      ansible_host: 10.0.0.9
  vars:
    ansible_port: 22
  children:
    prod:
      vars: {ansible_user: produser, tier: 1}
      children:
        web:
          hosts:
            web[01:03].lan: {ansible_user: deploy}
            old-web:2222:
              ansible_host: 10.0.0.5
              ansible_become: yes
              ansible_become_user: admin
        db:
          hosts:
            db-[a:c]:
              ansible_python_interpreter: /usr/bin/python3
"""


def write(path: Path, text: str) -> Path:
    path.write_text(textwrap.dedent(text))
    return path


def plain(host: InventoryHost) -> dict[str, Any]:
    """A record as a dict, without its variables (which keep each form's types)."""
    fields = dataclasses.asdict(dataclasses.replace(host, vars={}))
    del fields["vars"]
    return fields


def web(name: str, **changes: Any) -> dict[str, Any]:
    record = {
        "name": name,
        "address": name,
        "port": 22,
        "user": "deploy",
        "python": None,
        "become": False,
        "become_user": None,
        "connection": "ssh",
        "ssh_args": (),
        "groups": ("prod", "web"),
    }
    return record | changes


EXPECTED = [
    web("lonely", address="10.0.0.9", user=None, groups=("ungrouped",)),
    web("web01.lan"),
    web("web02.lan"),
    web("web03.lan"),
    web(
        "old-web",
        address="10.0.0.5",
        port=2222,
        user="produser",
        become=True,
        become_user="admin",
    ),
    *(
        web(f"db-{x}", user="produser", python="/usr/bin/python3", groups=("db", "prod"))
        for x in "abc"
    ),
]


@pytest.mark.parametrize(("filename", "text"), [("hosts.ini", INI), ("hosts.yml", YAML)])
def test_the_same_inventory_in_either_form(tmp_path: Path, filename: str, text: str) -> None:
    inventory = read_inventory(write(tmp_path / filename, text))
    assert [plain(host) for host in inventory.hosts()] == EXPECTED
    assert inventory.host_names("prod") == [record["name"] for record in EXPECTED[1:]]
    assert inventory.host_names("web") == ["web01.lan", "web02.lan", "web03.lan", "old-web"]
    assert inventory.host_names("ungrouped") == ["lonely"]
    assert [host.name for host in inventory.hosts("db")] == ["db-a", "db-b", "db-c"]
    assert set(inventory.groups) == {"all", "ungrouped", "prod", "web", "db"}
    assert inventory.groups[:2] == ["all", "ungrouped"]
    old_web = inventory.hosts("web")[3]
    assert dict(old_web.vars) == {
        "ansible_port": 2222,
        "ansible_user": "produser",
        "tier": 1,
        "ansible_host": "10.0.0.5",
        "ansible_become": "yes" if filename.endswith(".ini") else True,
        "ansible_become_user": "admin",
    }
    assert inventory_hosts(inventory.path, "db") == inventory.hosts("db")


def test_records_are_frozen_and_hashable(tmp_path: Path) -> None:
    (host,) = inventory_hosts(write(tmp_path / "hosts", "web1 ansible_port=2200\n"))
    assert host == InventoryHost("web1", "web1", port=2200, groups=("ungrouped",), vars=host.vars)
    with pytest.raises(dataclasses.FrozenInstanceError):
        host.port = 1  # type: ignore[misc]
    with pytest.raises(TypeError):
        host.vars["ansible_port"] = 1  # type: ignore[index]
    assert len({host, host}) == 1


PRECEDENCE_INI = """\
h0 a=from_host
[zeta]
h1
h2 a=host
[alpha]
h1
h3
[alpha:vars]
a=alpha
b=alpha
[zeta:vars]
a=zeta
c=zeta
[outer:children]
alpha
zeta
[outer:vars]
a=outer
b=outer
c=outer
d=outer
[inner:children]
deep
[outer:children]
inner
[deep]
h3 a=h3deep
h4
[deep:vars]
d=deep
[all:vars]
a=all
e=all
[prio]
h1
[prio:vars]
a=prio
ansible_group_priority=5
[dup1]
h5 v=1 w=1
[dup2]
h5 v=2
h0
"""

# ansible-inventory --list gave exactly these.
PRECEDENCE = {
    "h0": {"a": "from_host", "e": "all"},
    # zeta and alpha sit at the same depth: by name, zeta comes last and wins; prio sits
    # higher up (depth 1), so its priority of 5 does not lift it over them.
    "h1": {"a": "zeta", "b": "alpha", "c": "zeta", "d": "outer", "e": "all"},
    "h2": {"a": "host", "c": "zeta", "b": "outer", "d": "outer", "e": "all"},
    "h3": {"a": "h3deep", "b": "alpha", "c": "outer", "d": "deep", "e": "all"},
    "h4": {"a": "outer", "b": "outer", "c": "outer", "d": "deep", "e": "all"},
    "h5": {"a": "all", "e": "all", "v": 2, "w": 1},  # host variables add up, the last wins
}


def test_variable_precedence_follows_ansible(tmp_path: Path) -> None:
    inventory = read_inventory(write(tmp_path / "prec.ini", PRECEDENCE_INI))
    assert {host.name: dict(host.vars) for host in inventory.hosts()} == PRECEDENCE
    assert inventory.host_names("outer") == ["h1", "h2", "h3", "h4"]
    assert inventory.host_names("ungrouped") == []  # h0 went into dup2 later
    h3 = inventory.hosts("inner")[0]
    assert h3.groups == ("alpha", "deep", "inner", "outer")


def test_ini_values_are_read_as_ansible_reads_them(tmp_path: Path) -> None:
    path = write(
        tmp_path / "values.ini",
        r"""
        [g]
        q1 x="1" y='a b' z=True n=None l=[1,2] s="'s'" t=yes f=1.5 c=a#b
        q2 x=\"quoted\" path=/usr/bin/python3 e= u=hello\ world  # a comment
        [g:vars]
        gv1 = 42
        gv2=two words # not a comment here
        gv3="quoted"
        gv4 = {'k': 1}
        """,
    )
    group_vars = {"gv1": 42, "gv2": "two words # not a comment here", "gv3": "quoted"}
    group_vars["gv4"] = {"k": 1}
    q1, q2 = read_inventory(path).hosts()
    assert dict(q1.vars) == group_vars | {
        "x": 1,  # the shell-like split takes the quotes, then the value is a Python literal
        "y": "a b",
        "z": True,
        "n": None,
        "l": [1, 2],
        "s": "s",
        "t": "yes",
        "f": 1.5,
        "c": "a",  # as in Ansible: "#" starts a comment even inside a word
    }
    assert dict(q2.vars) == group_vars | {
        "x": "quoted",
        "path": "/usr/bin/python3",
        "e": "",
        "u": "hello world",
    }


def test_host_ranges_and_ports(tmp_path: Path) -> None:
    path = write(
        tmp_path / "ranges.ini",
        """
        [r]
        n[1:10:3]
        l-[a:c]-[1:2]
        z[:2]
        w[08:11]
        host:2200
        10.0.0.1:22
        [2001:db8::1]:2222
        2001:db8::2
        """,
    )
    names = {host.name: host.port for host in read_inventory(path).hosts()}
    assert names == {
        "n1": None,
        "n4": None,
        "n7": None,
        "n10": None,
        **{f"l-{letter}-{number}": None for letter in "abc" for number in (1, 2)},
        "z0": None,
        "z1": None,
        "z2": None,
        "w08": None,
        "w09": None,
        "w10": None,
        "w11": None,
        "host": 2200,
        "10.0.0.1": 22,
        "2001:db8::1": 2222,
        "2001:db8::2": None,
    }
    assert list(names)[:4] == ["n1", "n4", "n7", "n10"]


def test_yaml_ranges_ports_and_yaml_values(tmp_path: Path) -> None:
    path = write(
        tmp_path / "inventory.yaml",
        """
        # YAML 1.1, as Ansible reads it: yes/no/on/off are booleans
        ranges:
          hosts:
            "host:2200": {x: 1}
            w[08:09]:
              ansible_become: no
              anchor: &shared {k: v}
            v1: {ref: *shared, t: yes, o: on, y: y, ansible_port: "2201"}
            t1:
              <<: {merged: 1, a: merged}
              a: own
        """,
    )
    hosts = {host.name: host for host in read_inventory(path).hosts()}
    assert list(hosts) == ["host", "w08", "w09", "v1", "t1"]
    assert hosts["host"].port == 2200
    assert dict(hosts["w08"].vars) == {"ansible_become": False, "anchor": {"k": "v"}}
    assert dict(hosts["v1"].vars) == {
        "ref": {"k": "v"},
        "t": True,
        "o": True,
        "y": "y",
        "ansible_port": "2201",
    }
    assert hosts["v1"].port == 2201  # a port written as text is still a port
    assert dict(hosts["t1"].vars) == {"merged": 1, "a": "own"}


# -- connection variables -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "become"),
    [
        ("yes", True),
        ("Yes", True),
        ("true", True),
        ("True", True),
        ("on", True),
        ("1", True),
        ("y", True),
        ("t", True),
        ("no", False),
        ("false", False),
        ("False", False),
        ("off", False),
        ("0", False),
        ("n", False),
    ],
)
def test_become_is_read_as_ansible_reads_booleans(tmp_path: Path, value: str, become: bool) -> None:
    (host,) = inventory_hosts(write(tmp_path / "hosts.ini", f"h ansible_become={value}\n"))
    assert host.become is become


def test_connection_kinds(tmp_path: Path) -> None:
    path = write(
        tmp_path / "hosts.ini",
        """
        [linux]
        a ansible_connection=ssh
        b ansible_connection=paramiko
        c ansible_connection=smart
        d ansible_connection=ansible.builtin.ssh
        e
        here ansible_connection=local
        [windows]
        win1 ansible_connection=winrm
        [containers]
        box ansible_connection=docker
        """,
    )
    inventory = read_inventory(path)
    linux = {host.name: host.connection for host in inventory.hosts("linux")}
    assert linux == {"a": "ssh", "b": "ssh", "c": "ssh", "d": "ssh", "e": "ssh", "here": "local"}
    # A group without such hosts is fine; the hosts themselves are refused, named, with where.
    with pytest.raises(InventoryError) as caught:
        inventory.hosts("windows")
    assert (caught.value.path, caught.value.line) == (str(path), 10)
    assert "host 'win1' uses ansible_connection=winrm" in str(caught.value)
    with pytest.raises(InventoryError, match=r"line 12: host 'box' uses ansible_connection=docker"):
        inventory.hosts("containers")
    with pytest.raises(InventoryError, match=r"line 10: host 'win1'"):  # the first one
        inventory.hosts()
    assert inventory.host_names() == ["a", "b", "c", "d", "e", "here", "win1", "box"]


@pytest.mark.parametrize(
    ("line", "message"),
    [
        (
            "h ansible_port=http",
            "ansible_port of host 'h' must be a port number (1-65535), not 'http'",
        ),
        ("h ansible_port=0", "ansible_port of host 'h' must be a port number (1-65535), not 0"),
        ("h ansible_port=70000", "must be a port number (1-65535), not 70000"),
        ("h ansible_port=True", "must be a port number (1-65535), not True"),
        ("h ansible_port=22.5", "must be a port number (1-65535), not 22.5"),
        ("h ansible_become=maybe", "ansible_become of host 'h' must be yes or no"),
        ("h ansible_become=2", "ansible_become of host 'h' must be yes or no"),
        ("h ansible_user=[1]", "ansible_user of host 'h' must be text, not [1]"),
        ("h ansible_host=", "ansible_host of host 'h' must be text, not ''"),
        (
            'h ansible_user=\'{{ lookup("env", "USER") }}\'',
            "ansible_user of host 'h' is a template",
        ),
        (
            "h ansible_become=yes ansible_become_method=su",
            "host 'h' becomes another user with 'su': only sudo is supported",
        ),
        ("h ansible_password=secret", "host 'h' sets ansible_password: chopsticks_nb never"),
        ("h ansible_become_pass=secret", "host 'h' sets ansible_become_pass: chopsticks_nb"),
        (
            """h ansible_ssh_common_args="-o 'unclosed" """,
            "ansible_ssh_common_args of host 'h' cannot be split as a shell would",
        ),
    ],
)
def test_bad_connection_variables_name_the_host_and_line(
    tmp_path: Path, line: str, message: str
) -> None:
    path = write(tmp_path / "hosts.ini", f"[g]\nfine\n{line}\n")
    inventory = read_inventory(path)
    with pytest.raises(InventoryError) as caught:
        inventory.hosts()
    assert (caught.value.path, caught.value.line) == (str(path), 3)
    assert str(caught.value).startswith(f"{path}, line 3: ")
    assert message in caught.value.message


def test_group_variables_are_checked_where_they_are_written(tmp_path: Path) -> None:
    path = write(tmp_path / "hosts.ini", "[g]\nh1\n[g:vars]\nansible_port=ssh\n")
    with pytest.raises(InventoryError, match=r"line 4: ansible_port of host 'h1' must be a port"):
        inventory_hosts(path)


def test_other_connection_values(tmp_path: Path) -> None:
    path = write(
        tmp_path / "hosts.ini",
        """
        a ansible_python_interpreter=auto_silent ansible_ssh_host=10.1.1.1 ansible_ssh_port=2
        b ansible_ssh_user=old ansible_user=new ansible_become_method=doas
        """,
    )
    a, b = inventory_hosts(path)
    assert (a.python, a.address, a.port) == (None, "10.1.1.1", 2)
    assert (b.user, b.become) == ("new", False)  # a become method only matters with become


def test_ssh_arguments_from_the_inventory(tmp_path: Path) -> None:
    path = write(
        tmp_path / "hosts.ini",
        """
        a ansible_ssh_private_key_file=~/keys/a ansible_ssh_extra_args=-v
        b ansible_private_key_file=/k ansible_ssh_common_args='-o "ProxyJump=j 1"'
        c
        [all:vars]
        ansible_ssh_common_args="-o ProxyJump=bastion"
        """,
    )
    a, b, c = inventory_hosts(path)
    home = os.path.expanduser("~")
    assert a.ssh_args == ("-i", f"{home}/keys/a", "-o", "ProxyJump=bastion", "-v")
    assert b.ssh_args == ("-i", "/k", "-o", "ProxyJump=j 1")
    assert c.ssh_args == ("-o", "ProxyJump=bastion")


def test_an_unknown_group_lists_the_groups(tmp_path: Path) -> None:
    path = write(tmp_path / "hosts.ini", "[web]\nw1\n")
    with pytest.raises(InventoryError) as caught:
        inventory_hosts(path, "webs")
    assert str(caught.value) == (
        f"{path}: no group 'webs' in this inventory (groups: all, ungrouped, web)"
    )


# -- errors in the files ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "line", "message"),
    [
        ("[a:vars]\nx=1\n", 1, "variables for group 'a', which is never defined"),
        ("[a:vars]\nx=1\n[b]\nh\n", 1, "variables for group 'a', which is never defined"),
        ("[a:children]\nb\n[b:children]\na\n", 4, "group 'a' inside 'b' would be inside itself"),
        ("[a:children]\na\n", 2, "group 'a' inside 'a' would be inside itself"),
        ("[a:children]\nall\n", 2, "'all' holds every group; it cannot be inside 'a'"),
        ("[a:foo]\n", 1, "unknown section kind [a:foo]: :vars or :children"),
        ("[a b]\n", 1, "not a section header: [a b]"),
        ("[a]\nw x\n", 2, "expected name=value after the host pattern 'w', not 'x'"),
        ("[a]\nw =x\n", 2, "expected name=value after the host pattern 'w', not '=x'"),
        ("[a]\nw x='open\n", 2, "cannot split the host line: No closing quotation"),
        ("[a:vars]\njunk\n[a]\n", 2, "expected name=value in [a:vars], not 'junk'"),
        ("[a:children]\nb c\n", 2, "expected the name of a group inside 'a', not 'b c'"),
        ("[a]\nw:abc\n", 2, "host pattern 'w:abc' ends in a bad port 'abc'"),
        ("[a]\n:22\n", 2, "host pattern ':22' has no name before ':'"),
        ("[a]\nw[3:1]\n", 2, "bad host range: the range 3:1 goes down\n  w[3:1]\n    ^"),
        ("[a]\nw[1:3\n", 2, "bad host range: this '[' is never closed\n  w[1:3\n   ^"),
        ("[a]\nw[01:3]\n", 2, "01 and 3 must have the same number of digits (padding)"),
        ("[a]\nw[a:C]\n", 2, "a range runs between two numbers or two letters of the same case"),
        ("[a]\nw[1:2:0]\n", 2, "the step must be a number, 1 or more, not '0'"),
        ("[a]\nw[1-2]\n", 2, "a range is [start:end] or [start:end:step]"),
        ("[a]\nw[1:]\n", 2, "the range has no end"),
        ("[a]\nw[1:99999999]\n", 2, "this stands for more than 100,000 names"),
        ("[a]\nw[1:1000]-[1:1000]\n", 2, "this stands for more than 100,000 names"),
        ("[a]\nw]\n", 2, "']' without '['"),
    ],
)
def test_ini_errors_name_the_file_and_line(
    tmp_path: Path, text: str, line: int, message: str
) -> None:
    path = write(tmp_path / "hosts.ini", text)
    with pytest.raises(InventoryError) as caught:
        read_inventory(path)
    assert isinstance(caught.value, ValueError)
    assert (caught.value.path, caught.value.line) == (str(path), line)
    assert message in caught.value.message


@pytest.mark.parametrize(
    ("text", "line", "message"),
    [
        (
            "all:\n  hosts:\n    a: {\n",
            4,
            "not valid YAML: expected the node content, but found '<stream end>'",
        ),
        (
            "all:\n  hosts: [a, b]\n",
            2,
            "the hosts of 'all' map host names to their variables, not a list",
        ),
        (
            "web:\n  host:\n    a:\n",
            2,
            "unknown key 'host' in group 'web': hosts, vars or children",
        ),
        ("- web\n", 1, "a YAML inventory maps group names to groups, not a list"),
        ("web: [a]\n", 1, "group 'web' maps hosts, vars and children, not a list"),
        ("web:\n  vars: [1]\n", 2, "the vars of group 'web' are a mapping of names to values"),
        ("web:\n  hosts:\n    a: 5\n", 3, "the variables of host 'a' are a mapping"),
        ("web:\n  hosts:\n    a:\n      1: x\n", 4, "a variable name must be text, not 1"),
        ("web:\n  children:\n    ~: {}\n", 3, "expected a group name, not '~'"),
        ("web:\n  hosts:\n\n    w[3:1]:\n", 4, "bad host range: the range 3:1 goes down"),
        ("a:\n  children:\n    b:\n      children:\n        a:\n", 5, "inside itself"),
        ("web:\n  vars: {x: *nothing}\n", 2, "not valid YAML: found undefined alias 'nothing'"),
        (
            "web:\n  vars: !!python/object:os.system {}\n",
            2,
            "not a value tagged tag:yaml.org,2002:python/object:os.system",
        ),
    ],
)
def test_yaml_errors_name_the_file_and_line(
    tmp_path: Path, text: str, line: int, message: str
) -> None:
    path = write(tmp_path / "hosts.yml", text)
    with pytest.raises(InventoryError) as caught:
        read_inventory(path)
    assert (caught.value.path, caught.value.line) == (str(path), line)
    assert message in caught.value.message


def test_an_empty_inventory_has_no_hosts(tmp_path: Path) -> None:
    for name in ("empty.ini", "empty.yml"):
        inventory = read_inventory(write(tmp_path / name, "# nothing yet\n"))
        assert inventory.hosts() == []
        assert inventory.groups == ["all", "ungrouped"]


def test_the_form_is_told_by_the_name_or_the_first_line(tmp_path: Path) -> None:
    ini = write(tmp_path / "production", "# hosts\n\nweb1:2222 ansible_user=x\n")
    yaml = write(tmp_path / "staging", "# hosts\n---\nall:\n  hosts:\n    web1:\n")
    json = write(tmp_path / "inv.json", '{"web": {"hosts": {"web1": {"ansible_port": 2}}}}')
    bare = write(tmp_path / "list", "web1\nweb2\n")
    assert [host.port for host in inventory_hosts(ini)] == [2222]
    assert [host.name for host in inventory_hosts(yaml)] == ["web1"]
    assert [host.port for host in inventory_hosts(json)] == [2]
    assert [host.name for host in inventory_hosts(bare)] == ["web1", "web2"]
    # An INI file named .yml can still be read, when told.
    odd = write(tmp_path / "odd.yml", "[web]\nweb1\n")
    assert [host.name for host in inventory_hosts(odd, format="ini")] == ["web1"]
    with pytest.raises(ValueError, match="format is 'ini' or 'yaml', not 'toml'"):
        read_inventory(odd, format="toml")


def test_what_is_not_an_inventory_file(tmp_path: Path) -> None:
    with pytest.raises(InventoryError, match="an inventory directory: give one inventory file"):
        read_inventory(tmp_path)
    (tmp_path / "latin1.ini").write_bytes(b"[web]\nh\xe9\n")
    with pytest.raises(InventoryError, match=r"latin1.ini: not UTF-8 text \(invalid .* byte 7\)"):
        read_inventory(tmp_path / "latin1.ini")
    with pytest.raises(FileNotFoundError):
        read_inventory(tmp_path / "missing.ini")


def test_pyyaml_is_imported_only_for_a_yaml_inventory(tmp_path: Path) -> None:
    ini = write(tmp_path / "hosts.ini", "[web]\nweb1\n")
    yml = write(tmp_path / "hosts.yml", "web:\n  hosts:\n    web1:\n")
    code = (
        "import sys\n"
        "from chopsticks_nb._inventory import read_inventory\n"
        "read_inventory(sys.argv[1]).hosts()\n"
        "before = 'yaml' in sys.modules\n"
        "read_inventory(sys.argv[2]).hosts()\n"
        "print(before, 'yaml' in sys.modules)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, str(ini), str(yml)], capture_output=True, text=True, check=True
    )
    assert out.stdout.split() == ["False", "True"]


# -- real hosts ---------------------------------------------------------------------------------


def test_inventory_hosts_are_reached_over_real_ssh(sshd_hosts: SSHHosts, tmp_path: Path) -> None:
    """Records for the loopback sshds (address, port, user, python from the inventory) become
    tunnels that land on the right sshd as the right user."""
    hosts = sshd_hosts.hosts
    lines = [f"web{i} ansible_host={hosts[f'web{i}'].address}" for i in range(1, 5)]
    path = write(
        tmp_path / "inventory.ini",
        "[web]\n"
        + "\n".join(lines)
        + f"\n[web:vars]\nansible_port={sshd_hosts.port}\nansible_user={sshd_hosts.user}\n"
        "ansible_python_interpreter=/usr/bin/python3\n",
    )
    # Only what the inventory does not say: the client key and test-only host key options.
    ssh_config = write(tmp_path / "ssh_config", client_defaults("nobody", sshd_hosts.key_path))
    records = inventory_hosts(path, "web")
    assert [record.name for record in records] == ["web1", "web2", "web3", "web4"]
    for record in records:
        assert record.port is not None and record.user is not None
        with SSHTunnel(
            record.address,
            user=record.user,
            port=record.port,
            ssh_config=str(ssh_config),
            python3=record.python,
            connect_timeout=15,
        ) as tunnel:
            assert tunnel.call(getpass.getuser) == sshd_hosts.user
            server = tunnel.call(os.getenv, "SSH_CONNECTION").split()[2:]
            assert server == [hosts[record.name].address, str(sshd_hosts.port)]
            assert tunnel.call(os.path.realpath, "/proc/self/exe").startswith("/usr/bin/python3")


@given(st.text(st.sampled_from("ab019:[]x"), min_size=1, max_size=16))
def test_any_host_pattern_expands_or_names_its_line(pattern: str) -> None:
    origin = Origin("inventory.ini", 7)
    try:
        names, port = expand_host_pattern(pattern, origin)
    except InventoryError as exc:
        assert (exc.path, exc.line) == ("inventory.ini", 7)
    else:
        assert names and all("[" not in name or ":" in name for name in names)
        assert port is None or 0 < port < 65536
