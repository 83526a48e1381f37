"""``%%remote`` targets written as host ranges (``%%remote web[1-4]``) or holding them (a list of
ranges in the notebook): in the in-process shell, and in a real kernel over the test sshds."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from IPython.core.error import UsageError
from IPython.core.interactiveshell import InteractiveShell
from nbhelpers import Kernel, run

from fixtures.sshd import SSHHosts


@pytest.fixture
def sshd_shell(shell: InteractiveShell, sshd_hosts: SSHHosts) -> Iterator[InteractiveShell]:
    shell.run_line_magic("config", f"RemoteMagics.ssh_config = {str(sshd_hosts.config_path)!r}")
    try:
        yield shell
    finally:
        shell.run_line_magic("config", "RemoteMagics.ssh_config = None")


def test_a_range_as_target_runs_on_each_host_it_names(
    sshd_shell: InteractiveShell, sshd_hosts: SSHHosts
) -> None:
    first = run(sshd_shell, "%%remote web[1-3] -q\nimport os\nmine = os.getpid()\nmine")
    assert list(first) == ["web1", "web2", "web3"] and first.ok, first
    # The same tunnels, and namespaces, from cell to cell; any spelling of the same names.
    assert run(sshd_shell, "%remote web[1-2],web3 -q mine") == first
    where = run(sshd_shell, "%remote web[3-4] -q __import__('os').getenv('SSH_CONNECTION')")
    assert {host: value.split()[2] for host, value in where.items()} == {
        "web3": sshd_hosts.hosts["web3"].address,
        "web4": sshd_hosts.hosts["web4"].address,
    }
    magics = sshd_shell.magics_manager.registry["RemoteMagics"]
    assert sorted(name for name, _ in magics._named) == ["web1", "web2", "web3", "web4"]


def test_a_list_of_ranges_in_the_notebook_is_a_target(sshd_shell: InteractiveShell) -> None:
    run(sshd_shell, "hosts = ['web[1-2]', 'web4']")
    result = run(sshd_shell, "%remote hosts -q 1")
    assert result == {"web1": 1, "web2": 1, "web4": 1}


@pytest.mark.parametrize(
    ("cell", "message"),
    [
        # the error points at the place, as HostRangeError does
        (
            "%%remote web[3-1]\n1",
            r"TARGET 'web\[3-1\]' is not a host range: the range 3-1 goes down"
            r"\n  web\[3-1\]\n      \^",
        ),
        ("%%remote web[01-3]\n1", r"3 is not padded like 01"),
        ("%%remote g[0]\n1", r"not Python code: 'g\[0\]' starts with the notebook variable 'g'"),
        ("%%remote other,g\n1", r"starts with the notebook variable 'g'"),
        ("%%remote bad\n1", r"'bad': the range 9-2 goes down"),
        ("%%remote -- -oProxyCommand=x,web1\n1", r"invalid host name '-oProxyCommand=x'"),
    ],
)
def test_bad_ranges_are_usage_errors_that_say_where(
    shell: InteractiveShell, cell: str, message: str
) -> None:
    run(shell, "from chopsticks_nb import Group, Local\ng = Group([Local('a')])\nbad = ['n[9-2]']")
    with pytest.raises(UsageError, match=message):
        run(shell, cell)
    magics = shell.magics_manager.registry["RemoteMagics"]
    assert not magics._named  # nothing was made, nothing started


def test_a_range_target_in_a_real_kernel(kernel: Kernel, sshd_hosts: SSHHosts) -> None:
    kernel.execute(f"%config RemoteMagics.ssh_config = {str(sshd_hosts.config_path)!r}")
    try:
        cell = kernel.execute("%%remote web[1-4] -o res\nimport getpass\ngetpass.getuser()")
        html = cell.result_html
        for name in sshd_hosts.names:
            assert f"<code>{name}</code>" in html
        assert "4 hosts: 4 ok" in html
        check = kernel.execute("print(sorted(res.items()))")
        assert check.stream.strip() == repr([(name, sshd_hosts.user) for name in sshd_hosts.names])
        failed = kernel.execute("%%remote web[2-1]\n1", check=False)
        assert failed.status == "error" and "the range 2-1 goes down" in failed.stream
    finally:
        kernel.execute("%config RemoteMagics.ssh_config = None")
