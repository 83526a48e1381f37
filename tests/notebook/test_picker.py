"""HostPicker: hosts from ssh configs, ranges and inventories, filter and group selector,
select all/none, the check, and use as a target."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
import traitlets
from IPython.core.interactiveshell import InteractiveShell
from nbhelpers import run
from security.hostile import HONEST_HELLO, HostileTunnel

from chopsticks_nb import HostPicker
from chopsticks_nb.group import Group
from chopsticks_nb.result import ErrorResult
from chopsticks_nb.tunnel import Local, SSHTunnel
from fixtures.sshd import SSHHosts

CONFIG = """\
# a comment: Host commented
Host alpha beta
    HostName 10.0.0.1
Host *.example.com !gamma
  User x
host=delta
Host  "quoted-host"  # trailing comment
Match host alpha
    Port 22
Host gamma? alpha
HostName not-a-host
"""


@pytest.fixture
def picker() -> Iterator[HostPicker]:
    picker = HostPicker([Local("web1"), Local("web2"), Local("db1"), "db2"])
    try:
        yield picker
    finally:
        picker.close()


def test_ssh_config_host_entries_without_patterns(tmp_path: Path) -> None:
    (tmp_path / "more").write_text("Host epsilon web-*\n")
    path = tmp_path / "config"
    path.write_text(f"Include {tmp_path}/more\n" + CONFIG)
    picker = HostPicker(ssh_config=path)
    try:
        assert picker.hosts == ["epsilon", "alpha", "beta", "delta", "quoted-host"]
        tunnel = picker.tunnels[0]
        assert isinstance(tunnel, SSHTunnel) and tunnel.ssh_config == str(path)
    finally:
        picker.close()
    picker = HostPicker.from_ssh_config("*a", path, connect_timeout=3)
    try:
        assert picker.hosts == ["alpha", "beta", "delta"]
        assert all(t.connect_timeout == 3 for t in picker.tunnels)
    finally:
        picker.close()


def test_host_ranges_are_host_names() -> None:
    picker = HostPicker(["web[01-03]", Local("db1")], user="ops")
    try:
        assert picker.hosts == ["web01", "web02", "web03", "db1"]
        assert [getattr(t, "user", None) for t in picker.tunnels] == ["ops", "ops", "ops", None]
    finally:
        picker.close()
    single = HostPicker("n[1-2]")
    try:
        assert single.hosts == ["n1", "n2"]
    finally:
        single.close()
    with pytest.raises(ValueError, match="the range 3-1 goes down"):
        HostPicker(["web[3-1]"])


def test_filter_select_all_and_none_act_on_the_hosts_shown(picker: HostPicker) -> None:
    assert picker.selected == [] and len(picker.group) == 0
    picker.filter_box.value = "web"
    assert picker.shown == ["web1", "web2"]
    picker.all_button.click()
    assert picker.selected == ["web1", "web2"]
    picker.filter_box.value = "*1"  # a glob
    assert picker.shown == ["web1", "db1"]
    picker.all_button.click()
    assert picker.selected == ["web1", "web2", "db1"]
    picker.none_button.click()
    assert picker.selected == ["web2"]
    assert "1 of 4 hosts selected (2 hidden by the filter)" in picker.summary.value
    hidden = {host for host, row in picker._rows.items() if row.layout.display == "none"}
    assert hidden == {"web2", "db2"}


def test_checkboxes_and_selection_follow_each_other(picker: HostPicker) -> None:
    picker._boxes["db1"].value = True
    picker._boxes["web2"].value = True
    assert picker.selected == ["web2", "db1"]  # the hosts' order, whatever the clicks' order
    picker.selected = ["db2", "web1", "db2"]
    assert picker.selected == ["web1", "db2"]
    assert [h for h, box in picker._boxes.items() if box.value] == ["web1", "db2"]
    with pytest.raises(traitlets.TraitError, match="not hosts of this picker: nope"):
        picker.selected = ["nope"]
    picker.select("db")
    assert picker.selected == ["db1", "db2"]
    picker.select(True)
    assert picker.selected == picker.hosts


def test_group_is_the_selection_with_the_same_tunnels(picker: HostPicker) -> None:
    picker.select(["web2", "web1"])
    group = picker.group
    assert isinstance(group, Group) and group.hosts == ["web1", "web2"]
    assert group["web1"] is picker.group["web1"] is picker.tunnels[0]
    assert isinstance(picker.tunnels[3], SSHTunnel)
    with pytest.raises(ValueError, match="duplicate host name"):
        HostPicker([Local("x"), Local("x")])


def test_check_shows_reachability_and_python_version(picker: HostPicker, tmp_path: Path) -> None:
    broken = HostPicker([Local("ok"), Local("gone", python3=str(tmp_path / "no-python"))])
    try:
        broken.check_button.click()
        status = {host: html.value for host, html in broken._status.items()}
        assert "✓ Python 3." in status["ok"]
        assert "✗ unreachable" in status["gone"]
        result = broken.check(timeout=30)
        assert result["ok"]["version"][0] == 3 and isinstance(result["gone"], ErrorResult)
    finally:
        broken.close()
    picker.filter_box.value = "web"
    result = picker.check()
    assert list(result) == ["web1", "web2"]  # only the hosts shown
    assert picker._status["db2"].value == ""


def test_a_malformed_handshake_fails_that_host_only() -> None:
    # A handshake field of the wrong type once broke check() for every host of the picker.
    hostile = HostileTunnel("odd", "wrong_hello", hello={**HONEST_HELLO, "version": "3.11"})
    picker = HostPicker([Local("fine"), hostile])
    try:
        result = picker.check(timeout=30)
        assert result["fine"]["version"][0] == 3
        assert isinstance(result["odd"], ErrorResult)
        assert "malformed HELLO field 'version'" in result["odd"].msg
        assert "✓ Python 3." in picker._status["fine"].value
        assert "✗" in picker._status["odd"].value
    finally:
        picker.close()


def test_picker_over_ssh_config_is_a_remote_target(
    shell: InteractiveShell, sshd_hosts: SSHHosts
) -> None:
    run(
        shell,
        f"from chopsticks_nb import HostPicker\n"
        f"picker = HostPicker(ssh_config={str(sshd_hosts.config_path)!r})",
    )
    picker: HostPicker = shell.user_ns["picker"]
    assert picker.hosts == sshd_hosts.names
    result = picker.check(timeout=30)
    assert result.ok, result
    assert "Python 3." in picker._status["web1"].value
    from IPython.core.error import UsageError

    with pytest.raises(UsageError, match="'picker' has no hosts selected"):
        run(shell, "%%remote picker\n1")
    picker.select(["web2", "web3"])
    value = run(shell, "%%remote picker -q\nimport getpass\ngetpass.getuser()")
    assert value == {"web2": sshd_hosts.user, "web3": sshd_hosts.user}
    assert list(run(shell, "%remote picker.group -q 1")) == ["web2", "web3"]


def test_static_html_fallback_lists_hosts_escaped() -> None:
    """Where widgets do not render (GitHub, offline HTML), the picker still reads as a list."""
    picker = HostPicker([Local("<b>x</b>"), Local("plain")], selected=["plain"])
    try:
        bundle = picker._repr_mimebundle_()
        assert bundle is not None and "application/vnd.jupyter.widget-view+json" in bundle
        page = bundle["text/html"]
        assert "☐ <code>&lt;b&gt;x&lt;/b&gt;</code>" in page and "☑ <code>plain</code>" in page
    finally:
        picker.close()


INVENTORY = """\
[web]
web[1:3]

[db]
db1 ansible_host=web4

[front:children]
web

[local]
here ansible_connection=local
"""


def test_picker_from_an_inventory_shows_its_groups(sshd_hosts: SSHHosts, tmp_path: Path) -> None:
    """The group selector narrows the hosts shown; "all" ticks the hosts shown; the check
    reaches the real sshds the inventory names (through the ssh config given as an option)."""
    path = tmp_path / "inventory.ini"
    path.write_text(INVENTORY)
    picker = HostPicker.from_inventory(path, ssh_config=str(sshd_hosts.config_path))
    try:
        assert picker.hosts == ["web1", "web2", "web3", "db1", "here"]
        assert picker.groups == {
            "web": ["web1", "web2", "web3"],
            "db": ["db1"],
            "front": ["web1", "web2", "web3"],
            "local": ["here"],
        }
        labels = [label for label, _ in picker.group_selector.options]
        assert labels == ["every host", "web (3)", "db (1)", "front (3)", "local (1)"]
        assert picker.group_selector.layout.display is None  # shown: there are groups
        picker.group_selector.value = "db"
        assert picker.shown == ["db1"]
        assert "(4 hidden by the filter)" in picker.summary.value
        picker.all_button.click()
        picker.group_selector.value = "web"
        picker.filter_box.value = "*3"
        assert picker.shown == ["web3"]
        picker.all_button.click()
        assert picker.selected == ["web3", "db1"]
        picker.filter_box.value = ""
        result = picker.check(timeout=30)  # the hosts shown: the web group
        assert list(result) == ["web1", "web2", "web3"] and result.ok, result
        assert "Python 3." in picker._status["web2"].value
        assert picker._status["db1"].value == ""
        group = picker.group
        assert group.hosts == ["web3", "db1"]
        where = group.call(os.getenv, "SSH_CONNECTION").raise_failures()
        assert where["db1"].split()[2] == sshd_hosts.hosts["web4"].address
        picker.group_selector.value = ""
        assert picker.shown == picker.hosts
    finally:
        picker.close()
    web_only = HostPicker.from_inventory(path, "front")
    try:
        assert web_only.hosts == ["web1", "web2", "web3"]
        assert web_only.groups == {"web": ["web1", "web2", "web3"]}
    finally:
        web_only.close()


def test_groups_must_name_the_pickers_hosts() -> None:
    picker = HostPicker([Local("a"), Local("b")], groups={"pair": ["b", "a"]})
    try:
        assert picker.groups == {"pair": ["a", "b"]}  # the hosts' order
    finally:
        picker.close()
    without = HostPicker([Local("a")])
    try:
        assert without.group_selector.layout.display == "none"  # nothing to choose from
    finally:
        without.close()
    with pytest.raises(ValueError, match="group 'g' names hosts the picker does not have: c"):
        HostPicker([Local("a")], groups={"g": ["a", "c"]})
