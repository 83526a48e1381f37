"""Tunnels for hosts written down elsewhere: the Host entries of an ssh config, an inventory.

Only names, addresses and settings are read from the files, each checked as the tunnels check
them before anything starts: a value that could not be used is an error naming the file and
the line it was written on.
"""

from __future__ import annotations

import inspect
import os
from collections.abc import Mapping
from typing import Any, Callable

from ._inventory import Inventory, InventoryHost, read_inventory
from ._ssh_config import ssh_config_entries
from .errors import SSHConfigError
from .tunnel import (
    _USER,
    BaseTunnel,
    Local,
    SSHTunnel,
    SubprocessTunnel,
    Sudo,
    _check,
    _check_name,
)

__all__ = ["inventory_tunnels", "ssh_config_tunnels"]


def _keywords(function: Any) -> set[str]:
    return set(inspect.signature(function).parameters)


#: SSHTunnel's own options: a host run here (``ansible_connection=local``) has no use for them.
_SSH_ONLY = frozenset(
    _keywords(SSHTunnel.__init__)
    - _keywords(SubprocessTunnel.__init__)
    - _keywords(BaseTunnel.__init__)
)
#: what the file says for every host: group-wide options may not say it too
_FROM_THE_FILE = ("name", "host")


def _refuse(options: Mapping[str, Any], source: str, keys: tuple[str, ...]) -> None:
    for key in keys:
        if key in options:
            raise TypeError(f"{source} takes {key}= from the file, not as an option")


def ssh_config_tunnels(
    pattern: str, path: str | os.PathLike[str] | None, options: Mapping[str, Any]
) -> list[SSHTunnel]:
    """One SSHTunnel per concrete Host entry of the config matching ``pattern``.

    ssh reads the entry itself when the tunnel connects (``-F path`` when a path is given).
    """
    _refuse(options, "Group.from_ssh_config()", (*_FROM_THE_FILE, "ssh_config"))
    settings = dict(options)
    if path is not None:
        settings["ssh_config"] = os.path.abspath(os.path.expanduser(os.fspath(path)))
    tunnels = []
    for entry in ssh_config_entries(pattern, path):
        try:
            _check("host name", entry.name)
        except ValueError as exc:
            raise SSHConfigError(
                f"{exc} (choose the hosts with a narrower pattern than {pattern!r})",
                entry.path,
                entry.line,
            ) from None
        tunnels.append(SSHTunnel(entry.name, **settings))
    return tunnels


def inventory_tunnels(
    path: str | os.PathLike[str], group: str, options: Mapping[str, Any]
) -> list[BaseTunnel]:
    """A tunnel per host of the inventory's ``group``, named as the inventory names it.

    Over SSH (``SSHTunnel(ansible_host, name=..., user=, port=, python3=, sudo_user=)``), or a
    ``Local`` for ``ansible_connection=local`` (a ``Sudo`` if it becomes another user). What
    the inventory says of a host wins over ``options``, which fill in the rest.
    """
    _refuse(options, "Group.from_inventory()", _FROM_THE_FILE)
    inventory = read_inventory(path)
    tunnels: list[BaseTunnel] = []
    for host in inventory.hosts(group):
        _check_values(inventory, host)
        if host.connection == "local":
            tunnels.append(_local_tunnel(host, options))
        else:
            tunnels.append(_ssh_tunnel(host, options))
    return tunnels


def _check_user(user: str) -> str:
    return _check("user", user, _USER)


def _check_destination(address: str) -> str:
    return _check("host name", address)


def _check_values(inventory: Inventory, host: InventoryHost) -> None:
    """The values the tunnel will use, checked as the tunnels check them, each error placed
    where the value was written."""
    checks: list[tuple[str | None, Callable[[str], str], tuple[str, ...]]] = [
        (host.name, _check_name, ())
    ]
    if host.connection == "ssh":
        checks.append((host.address, _check_destination, ("ansible_host", "ansible_ssh_host")))
        checks.append((host.user, _check_user, ("ansible_user", "ansible_ssh_user")))
    if host.become:
        checks.append((host.become_user, _check_user, ("ansible_become_user",)))
    for value, check, variables in checks:
        if value is None:
            continue
        try:
            check(value)
        except ValueError as exc:
            raise inventory.error(host.name, f"host {host.name!r}: {exc}", *variables) from None


def _ssh_tunnel(host: InventoryHost, options: Mapping[str, Any]) -> SSHTunnel:
    settings = dict(options)
    if host.user is not None:
        settings["user"] = host.user
    if host.port is not None:
        settings["port"] = host.port
    if host.python is not None:
        settings["python3"] = host.python
    if host.become:
        settings["sudo"] = True
        settings["sudo_user"] = host.become_user  # None: sudo's default, root
    return SSHTunnel(host.address, name=host.name, **settings)


def _local_tunnel(host: InventoryHost, options: Mapping[str, Any]) -> SubprocessTunnel:
    # Not through a relay either (via=): for Ansible, "local" is the machine that runs it.
    settings = {
        key: value for key, value in options.items() if key not in _SSH_ONLY and key != "via"
    }
    if host.python is not None:
        settings["python3"] = host.python
    if host.become:
        return Sudo(host.become_user or "root", name=host.name, **settings)
    return Local(host.name, **settings)
