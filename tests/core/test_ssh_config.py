"""Listing the hosts of an ssh config: Host entries, Include, Match, quoting; then real ssh."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from chopsticks_nb._ssh_config import SSHConfigError, ssh_config_hosts
from chopsticks_nb.tunnel import SSHTunnel
from fixtures.sshd import SSHHosts, client_defaults, host_entry
from fixtures.system import need_tool, run


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A home directory of our own: ``~`` and relative Includes point into it."""
    home = tmp_path / "home"
    (home / ".ssh").mkdir(parents=True)
    monkeypatch.setenv("HOME", str(home))
    return home


def test_a_config_with_every_kind_of_line(home: Path, tmp_path: Path) -> None:
    extra = tmp_path / "elsewhere"
    write(extra / "20-db.conf", "Host db1 db2\n  HostName 10.0.1.1\n")
    write(extra / "10-web.conf", "Include nested.conf\nhost web3\n")
    write(extra / "notes.txt", "Host not-included\n")
    (extra / "30-a-directory.conf").mkdir()  # a glob may match a directory: ssh skips it
    write(home / ".ssh" / "nested.conf", "Host nested1\n")  # relative: from ~/.ssh
    write(home / ".ssh" / "conf.d" / "lab", "Host lab1\n")
    config = write(
        home / ".ssh" / "config",
        f"""\
# A comment line; the next line is blank

Host web1 web2 *.example.com !web9 db-?
    HostName %h.example.com
  HOST=gateway
Host = "quoted name" "q2" 'q3' "with space" bad;name -dash "$(evil)"
Host web1   # listed once, at its first place
Match host web* exec "test -e /tmp"
    User admin
Include {extra}/*.conf conf.d/*
Include /nonexistent/*.conf
  # indented comment
Host tab\tafter  # Host web-commented
Host esc\\ aped
Host LastOne
""",
    )
    assert ssh_config_hosts(path=config) == [
        "web1",
        "web2",
        "gateway",
        "q2",
        "q3",
        "nested1",  # 10-web.conf before 20-db.conf: lexical order
        "web3",
        "db1",
        "db2",
        "lab1",
        "tab",
        "after",
        "LastOne",
    ]


def test_real_ssh_applies_an_entry_to_exactly_the_listed_names(home: Path) -> None:
    entry = "  HostName %h.configured\n"
    write(home / ".ssh" / "inc" / "a.conf", f"Host from-include\n{entry}")
    config = write(
        home / ".ssh" / "config",
        "Include inc/*.conf\n"
        f"HOST=eq1\n{entry}"
        f"host = eq2 \"quoted1\" 'quoted2'\n{entry}"
        f"Host\ttab1\ttab2 # commented1 commented2\n{entry}"
        f"Host pre-* !pre-no\n{entry}"
        f"Host hash#inside\n{entry}"
        f"# Host commented3\n{entry}"
        f"Host last\n{entry}",
    )
    listed = ssh_config_hosts(path=config)
    assert listed == [
        *("from-include", "eq1", "eq2", "quoted1", "quoted2", "tab1", "tab2"),
        *("hash#inside", "last"),
    ]
    decoys = ["commented1", "commented2", "commented3", "pre-*", "pre-no", "inc", "other"]
    assert {name for name in listed + decoys if configured_by_ssh(config, name)} == {
        *listed,
        "pre-*",  # a pattern matches itself, but it is not a host
    }


def test_the_default_path_is_the_users_config(home: Path) -> None:
    write(home / ".ssh" / "config", "Host mine\n")
    assert ssh_config_hosts() == ["mine"]
    assert ssh_config_hosts(path="~/.ssh/config") == ["mine"]


def test_pattern_is_a_glob_without_case(home: Path) -> None:
    config = write(home / ".ssh" / "config", "Host Web1 web2 db1 web10 webby\n")
    assert ssh_config_hosts("web?", path=config) == ["Web1", "web2"]
    assert ssh_config_hosts("WEB*", path=config) == ["Web1", "web2", "web10", "webby"]
    assert ssh_config_hosts("web[12]", path=config) == ["Web1", "web2"]
    assert ssh_config_hosts("nothing*", path=config) == []


def configured_by_ssh(config: Path, name: str) -> bool:
    """Whether real ssh applies an entry of ``config`` to ``name`` (every entry there sets
    ``HostName %h.configured``), as ``ssh -G`` shows."""
    ssh = need_tool("ssh", "openssh-client")
    shown = run([ssh, "-G", "-F", config, "--", name], timeout=30).stdout.decode()
    return f"hostname {name}.configured" in shown.splitlines()


def test_an_include_inside_a_host_block_only_counts_for_the_names_it_matches(
    home: Path, tmp_path: Path
) -> None:
    # ssh reads an Include inside "Host bastion-*" for every name, but its entries only apply
    # to names that "bastion-*" matches: web9's entry there never applies, so web9 is not listed.
    entry = "  HostName %h.configured\n"
    inner = write(
        tmp_path / "inner.conf",
        f"Include deeper.conf\nHost bastion-1 web9 bastion-2\n{entry}Include deeper.conf\n",
    )
    write(home / ".ssh" / "deeper.conf", f"Host bastion-3 web8 bastion-1\n{entry}")
    config = write(
        home / ".ssh" / "config",
        f"Host bastion-* !bastion-2\n  Include {inner}\nMatch host x*\n  Include {inner}\n"
        f"Host x\n{entry}",
    )
    listed = ssh_config_hosts(path=config)
    # Match conditions are not evaluated: what it includes is listed.
    assert listed == ["bastion-3", "bastion-1", "web8", "web9", "bastion-2", "x"]
    # ssh agrees for every name but those under the Match block.
    candidates = ["bastion-1", "bastion-2", "bastion-3", "web8", "web9", "x"]
    applied = {name for name in candidates if configured_by_ssh(config, name)}
    assert applied == {"bastion-1", "bastion-3", "x"}
    assert set(listed) - applied == {"web9", "bastion-2", "web8"}  # all from the Match block


def test_the_same_file_may_be_included_twice(home: Path, tmp_path: Path) -> None:
    common = write(tmp_path / "common.conf", "Host common1\n")
    config = write(home / ".ssh" / "config", f"Include {common}\nHost a\nInclude {common}\n")
    assert ssh_config_hosts(path=config) == ["common1", "a"]


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ('Host ok "unbalanced', "unbalanced quotes"),
        ("Host", "Host with nothing after it"),
        ("host =", "host with nothing after it"),
        ('Host a ""', "an empty argument to Host"),
        ("Include", "Include with nothing after it"),
        ("Match host 'x", "unbalanced quotes"),
    ],
)
def test_lines_ssh_would_refuse_name_the_file_and_line(home: Path, line: str, message: str) -> None:
    config = write(home / ".ssh" / "config", f"Host fine\n# comment\n{line}\nHost later\n")
    with pytest.raises(SSHConfigError) as caught:
        ssh_config_hosts(path=config)
    error = caught.value
    assert isinstance(error, ValueError)
    assert (error.path, error.line, error.message) == (str(config), 3, message)
    assert str(error) == f"{config}, line 3: {message}"


def test_an_include_loop_is_refused_where_it_closes(home: Path) -> None:
    first = write(home / ".ssh" / "config", "Host a\nInclude second.conf\n")
    second = write(home / ".ssh" / "second.conf", "Host b\n\nInclude config\n")
    with pytest.raises(SSHConfigError) as caught:
        ssh_config_hosts(path=first)
    assert (caught.value.path, caught.value.line) == (str(second), 3)
    assert caught.value.message == f"Include loop: {first} is already being read"


def chain_of_includes(directory: Path, files: int) -> Path:
    for depth in range(files):
        include = f"Include level{depth + 1}\n" if depth + 1 < files else ""
        write(directory / f"level{depth}", f"{include}Host h{depth}\n")
    return directory / "level0"


def test_includes_nest_at_most_as_deep_as_ssh_allows(home: Path) -> None:
    # ssh 9.2 reads a chain of 17 files (16 Includes deep) and refuses 18.
    assert len(ssh_config_hosts(path=chain_of_includes(home / ".ssh", 17))) == 17
    with pytest.raises(SSHConfigError, match="Includes nest more than 16 deep") as caught:
        ssh_config_hosts(path=chain_of_includes(home / ".ssh", 18))
    assert (caught.value.path, caught.value.line) == (str(home / ".ssh" / "level16"), 1)


def test_a_missing_config_is_an_error(home: Path) -> None:
    with pytest.raises(FileNotFoundError):
        ssh_config_hosts()
    with pytest.raises(FileNotFoundError):
        ssh_config_hosts(path=home / "no-such-config")


def test_the_listed_names_reach_the_real_sshds(sshd_hosts: SSHHosts, tmp_path: Path) -> None:
    """ssh, given the same config, connects each listed name to its own sshd."""
    hosts = sshd_hosts.hosts
    write(
        tmp_path / "hosts.d" / "10-web12",
        host_entry("web1", hosts["web1"].address, sshd_hosts.port)
        + host_entry("web2", hosts["web2"].address, sshd_hosts.port),
    )
    write(
        tmp_path / "hosts.d" / "20-web34",
        host_entry("web3", hosts["web3"].address, sshd_hosts.port)
        + host_entry("web4", hosts["web4"].address, sshd_hosts.port),
    )
    config = write(
        tmp_path / "ssh_config",
        f"""\
# An Include after a Host or Match line would only count for the names that line matches.
Include {tmp_path}/hosts.d/*
Host web-*.example.com !web-0.example.com
    User nobody
Match host nothing-matches-this
    Port 1
Host db1
    HostName 127.0.0.1
    Port 1
{client_defaults(sshd_hosts.user, sshd_hosts.key_path)}""",
    )
    names = ssh_config_hosts("web*", path=config)
    assert names == ["web1", "web2", "web3", "web4"]
    for name in names:
        with SSHTunnel(name, ssh_config=str(config), connect_timeout=15) as tunnel:
            # SSH_CONNECTION: "client-address client-port server-address server-port"
            server = tunnel.call(os.getenv, "SSH_CONNECTION").split()[2:]
            assert server == [hosts[name].address, str(sshd_hosts.port)]
