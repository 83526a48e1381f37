"""Ansible inventories (INI or YAML) read as plain host records, without Ansible.

The public face, and the description of what is read, is :mod:`chopsticks_nb.inventory`.
"""

from __future__ import annotations

import os
import re
import shlex
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from ._inventory_ini import read_ini
from ._inventory_model import ALL, InventoryError, InventoryGraph, Origin, Variable
from ._inventory_yaml import read_yaml

__all__ = ["Inventory", "InventoryError", "InventoryHost", "inventory_hosts", "read_inventory"]

_YAML_SUFFIXES = (".yml", ".yaml", ".json")
_INI_SUFFIXES = (".ini", ".cfg")
_YAML_START = re.compile(r"(---|%YAML|\{|[^\s=\[]+:(\s|\Z))")
_TRUE = frozenset({"y", "yes", "on", "1", "true", "t"})
_FALSE = frozenset({"n", "no", "off", "0", "false", "f"})
_SSH_CONNECTIONS = frozenset({"ssh", "paramiko", "paramiko_ssh", "smart"})
_AUTO_PYTHON = frozenset({"auto", "auto_silent", "auto_legacy", "auto_legacy_silent"})
#: Passwords: ssh runs in batch mode (keys, an agent) and sudo with -n, so none can be used.
_PASSWORDS = (
    "ansible_password",
    "ansible_ssh_pass",
    "ansible_ssh_password",
    "ansible_become_password",
    "ansible_become_pass",
)


@dataclass(frozen=True)
class InventoryHost:
    """One host of an inventory, as chopsticks_nb connects to it.

    ``name`` is the inventory's name for it (the label results are keyed by); ``address`` is
    where to connect. ``groups`` are every group holding the host, directly or through
    children, but ``all``. ``vars`` are all its variables after precedence (read-only).
    ``ssh_args`` are extra ssh arguments: the private key and the common and extra arguments
    the inventory gives.
    """

    name: str
    address: str
    port: int | None = None
    user: str | None = None
    python: str | None = None
    become: bool = False
    become_user: str | None = None
    connection: str = "ssh"
    ssh_args: tuple[str, ...] = ()
    groups: tuple[str, ...] = ()
    vars: Mapping[str, Any] = field(default_factory=dict, hash=False, repr=False)


class Inventory:
    """An inventory file, read: its groups, and its hosts as :class:`InventoryHost` records."""

    def __init__(self, path: str, graph: InventoryGraph) -> None:
        self.path = path
        self._graph = graph

    def __repr__(self) -> str:
        return f"<Inventory {self.path}: {len(self.host_names())} hosts>"

    @property
    def groups(self) -> list[str]:
        """Every group, ``all`` and ``ungrouped`` first, then in the order the file has them."""
        return self._graph.groups

    def host_names(self, group: str = ALL) -> list[str]:
        """The names of the hosts in ``group`` (children included), in file order."""
        self._check_group(group)
        return self._graph.members(group)

    def hosts(self, group: str = ALL) -> list[InventoryHost]:
        """The hosts in ``group`` (children included), in file order.

        Raises :class:`InventoryError` for an unknown group, or for a host chopsticks_nb cannot
        reach as the inventory says (a connection that is not SSH, a bad port...), naming it.
        """
        return [self._record(name) for name in self.host_names(group)]

    def error(self, host: str, message: str, *variables: str) -> InventoryError:
        """An error about ``host``, placed where the first of ``variables`` that the host has
        was set, or else where the host is first written."""
        found = self._graph.host_vars(host)
        for key in variables:
            if key in found:
                return found[key].origin.error(message)
        return self._graph.host_origin(host).error(message)

    def _check_group(self, group: str) -> None:
        if not self._graph.has_group(group):
            known = ", ".join(self._graph.groups)
            raise InventoryError(
                f"no group {group!r} in this inventory (groups: {known})", self.path
            )

    def _record(self, name: str) -> InventoryHost:
        variables = self._graph.host_vars(name)
        read = _Reader(name, variables)
        connection = read.connection()
        read.refuse_passwords()
        become = read.boolean("ansible_become")
        method = read.text("ansible_become_method")
        if become and method not in (None, "sudo"):
            raise read.origin("ansible_become_method").error(
                f"host {name!r} becomes another user with {method!r}: only sudo is supported"
            )
        return InventoryHost(
            name=name,
            address=read.text("ansible_host", "ansible_ssh_host") or name,
            port=read.port(),
            user=read.text("ansible_user", "ansible_ssh_user"),
            python=read.python(),
            become=become,
            become_user=read.text("ansible_become_user"),
            connection=connection,
            ssh_args=read.ssh_args(),
            groups=tuple(self._graph.host_groups(name)),
            vars=MappingProxyType({key: variable.value for key, variable in variables.items()}),
        )


def read_inventory(path: str | os.PathLike[str], *, format: str | None = None) -> Inventory:
    """Read an Ansible inventory file.

    ``format`` is ``"ini"`` or ``"yaml"``; by default ``.yml``, ``.yaml`` and ``.json`` files
    are YAML, ``.ini`` and ``.cfg`` files INI, and other files are told apart by their first
    line (``all:`` is YAML, ``[web]`` or ``web1 ansible_port=22`` INI). PyYAML is imported
    only for a YAML inventory. Raises :class:`InventoryError` naming the file and line.
    """
    name = os.path.expanduser(os.fspath(path))
    if os.path.isdir(name):
        raise InventoryError("an inventory directory: give one inventory file", name)
    try:
        with open(name, encoding="utf-8") as file:
            text = file.read()
    except UnicodeDecodeError as exc:
        raise InventoryError(f"not UTF-8 text ({exc.reason} at byte {exc.start})", name) from None
    graph = InventoryGraph(name)
    if _format(name, text, format) == "yaml":
        read_yaml(text, name, graph)
    else:
        read_ini(text, name, graph)
    return Inventory(name, graph)


def inventory_hosts(
    path: str | os.PathLike[str], group: str = ALL, *, format: str | None = None
) -> list[InventoryHost]:
    """The hosts of ``group`` (default: all) in an inventory file.

    Short for ``read_inventory(path, format=format).hosts(group)``.
    """
    return read_inventory(path, format=format).hosts(group)


def _format(path: str, text: str, wanted: str | None) -> str:
    if wanted is not None:
        if wanted not in ("ini", "yaml"):
            raise ValueError(f"format is 'ini' or 'yaml', not {wanted!r}")
        return wanted
    suffix = os.path.splitext(path)[1].lower()
    if suffix in _YAML_SUFFIXES:
        return "yaml"
    if suffix in _INI_SUFFIXES:
        return "ini"
    for line in text.splitlines():
        stripped = line.strip()
        if stripped and stripped[0] not in "#;":
            return "yaml" if _YAML_START.match(stripped) else "ini"
    return "ini"


class _Reader:
    """Reads one host's connection variables, each error naming where the value was set."""

    def __init__(self, host: str, variables: dict[str, Variable]) -> None:
        self.host = host
        self.variables = variables

    def origin(self, key: str) -> Origin:
        return self.variables[key].origin

    def raw(self, *keys: str) -> tuple[str, Any] | None:
        for key in keys:
            if key in self.variables:
                value = self.variables[key].value
                if isinstance(value, str) and ("{{" in value or "{%" in value):
                    raise self.origin(key).error(
                        f"{key} of host {self.host!r} is a template ({value!r}): "
                        "templates are not evaluated here"
                    )
                return key, value
        return None

    def text(self, *keys: str) -> str | None:
        found = self.raw(*keys)
        if found is None:
            return None
        key, value = found
        if isinstance(value, bool) or not isinstance(value, (str, int)) or value == "":
            raise self.origin(key).error(f"{key} of host {self.host!r} must be text, not {value!r}")
        return str(value)

    def port(self) -> int | None:
        found = self.raw("ansible_port", "ansible_ssh_port")
        if found is None:
            return None
        key, value = found
        port = (
            int(value) if isinstance(value, str) and value.isascii() and value.isdigit() else value
        )
        if isinstance(port, bool) or not isinstance(port, int) or not 0 < port < 65536:
            raise self.origin(key).error(
                f"{key} of host {self.host!r} must be a port number (1-65535), not {value!r}"
            )
        return port

    def boolean(self, key: str) -> bool:
        found = self.raw(key)
        if found is None:
            return False
        value = found[1]
        if isinstance(value, bool):
            return value
        if isinstance(value, (int, float)) and value in (0, 1):
            return bool(value)
        if isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
            return value.strip().lower() in _TRUE
        raise self.origin(key).error(
            f"{key} of host {self.host!r} must be yes or no (true/false, on/off, 1/0), "
            f"not {value!r}"
        )

    def python(self) -> str | None:
        python = self.text("ansible_python_interpreter")
        return None if python is None or python in _AUTO_PYTHON else python

    def ssh_args(self) -> tuple[str, ...]:
        key = self.text("ansible_ssh_private_key_file", "ansible_private_key_file")
        args = [] if key is None else ["-i", os.path.expanduser(key)]
        for name in ("ansible_ssh_common_args", "ansible_ssh_extra_args"):
            text = self.text(name)
            if text is None:
                continue
            try:
                args += shlex.split(text)
            except ValueError as exc:
                raise self.origin(name).error(
                    f"{name} of host {self.host!r} cannot be split as a shell would: {exc}"
                ) from None
        return tuple(args)

    def refuse_passwords(self) -> None:
        for name in _PASSWORDS:
            if name in self.variables:
                raise self.origin(name).error(
                    f"host {self.host!r} sets {name}: chopsticks_nb never types a password "
                    "(ssh runs in batch mode, with keys or an agent; sudo with -n); "
                    "use a key (ansible_ssh_private_key_file) or a NOPASSWD sudo rule"
                )

    def connection(self) -> str:
        connection = self.text("ansible_connection") or "ssh"
        plain = connection.removeprefix("ansible.builtin.")
        if plain in _SSH_CONNECTIONS:
            return "ssh"
        if plain == "local":
            return "local"
        raise self.origin("ansible_connection").error(
            f"host {self.host!r} uses ansible_connection={connection}: chopsticks_nb reaches "
            "hosts over SSH (ssh, paramiko, smart) or runs locally (local), nothing else"
        )
