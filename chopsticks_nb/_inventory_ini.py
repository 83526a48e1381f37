"""Reads an Ansible inventory in INI form into an :class:`~._inventory_model.InventoryGraph`.

::

    web1 ansible_host=10.0.0.5          # before any section: in "ungrouped"

    [web]                               # a group and its hosts, one per line, with variables
    web[01:20].lan ansible_user=deploy
    db1:2222                            # a port after the name

    [web:vars]                          # variables of a group
    ansible_python_interpreter=/usr/bin/python3

    [prod:children]                     # groups inside a group
    web

Values are read as Ansible reads them: Python literals where they parse (``2222`` is a number,
``"x"`` a string, ``True`` a boolean), the text as it is otherwise (``yes``, ``10.0.0.5``).
"""

from __future__ import annotations

import ast
import re
import shlex
import warnings
from typing import Any

from ._inventory_model import UNGROUPED, InventoryGraph, Origin, Variable, expand_host_pattern

__all__ = ["read_ini"]

_SECTION = re.compile(r"\[([^:\]\s]+)(?::(\w+))?\]\s*(?:#.*)?\Z")
_GROUP_NAME = re.compile(r"([^:\]\s]+)\s*(?:#.*)?\Z")
_KINDS = ("hosts", "children", "vars")


def read_ini(text: str, path: str, graph: InventoryGraph) -> None:
    """Add what an INI inventory's ``text`` (read from ``path``) defines to ``graph``."""
    group, kind = UNGROUPED, "hosts"
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line[0] in "#;":
            continue
        origin = Origin(path, number)
        section = _SECTION.match(line)
        if section is not None:
            group, kind = section.group(1), section.group(2) or "hosts"
            if kind not in _KINDS:
                raise origin.error(f"unknown section kind [{group}:{kind}]: :vars or :children")
            if kind == "vars":
                graph.set_group_vars(group, {}, origin, define=False)
            else:
                graph.define_group(group, origin)
        elif line.startswith("[") and line.endswith("]"):
            raise origin.error(f"not a section header: {line} (no spaces, one ':' at most)")
        elif kind == "hosts":
            _host_line(line, group, origin, graph)
        elif kind == "children":
            child = _GROUP_NAME.match(line)
            if child is None:
                raise origin.error(f"expected the name of a group inside {group!r}, not {line!r}")
            graph.add_child(group, child.group(1), origin)
        else:
            key, equals, value = line.partition("=")
            if not equals or not key.strip():
                raise origin.error(f"expected name=value in [{group}:vars], not {line!r}")
            variable = Variable(_value(value.strip()), origin)
            graph.set_group_vars(group, {key.strip(): variable}, origin, define=False)
    graph.finish()


def _host_line(line: str, group: str, origin: Origin, graph: InventoryGraph) -> None:
    try:
        words = shlex.split(line, comments=True)
    except ValueError as exc:  # "No closing quotation"
        raise origin.error(f"cannot split the host line: {exc}") from None
    if not words:
        return
    pattern, assignments = words[0], words[1:]
    variables: dict[str, Variable] = {}
    for assignment in assignments:
        key, equals, value = assignment.partition("=")
        if not equals or not key:
            raise origin.error(
                f"expected name=value after the host pattern {pattern!r}, not {assignment!r}"
            )
        variables[key] = Variable(_value(value), origin)
    names, port = expand_host_pattern(pattern, origin)
    if port is not None:
        variables["ansible_port"] = Variable(port, origin)
    for name in names:
        graph.add_host(name, group, variables, origin)


def _value(text: str) -> Any:
    """A Python literal where the text is one (as Ansible reads INI values), else the text."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # e.g. SyntaxWarning: invalid escape sequence
            return ast.literal_eval(text)
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        return text
