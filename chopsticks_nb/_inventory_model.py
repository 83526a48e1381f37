"""An Ansible inventory as read from its file: groups, hosts and variables, each with its origin.

The INI and YAML readers fill an :class:`InventoryGraph`; it keeps Ansible's rules (the implicit
``all`` and ``ungrouped`` groups, children, no group inside itself) and answers which hosts a
group holds and which variables a host ends up with, in Ansible's order of precedence.
"""

from __future__ import annotations

import ipaddress
import itertools
import string
from dataclasses import dataclass, field
from typing import Any

from .errors import HostRangeError, InventoryError
from .hosts import MAX_HOSTS

__all__ = [
    "ALL",
    "UNGROUPED",
    "InventoryError",
    "InventoryGraph",
    "Origin",
    "Variable",
    "expand_host_pattern",
]

ALL = "all"
UNGROUPED = "ungrouped"
_PRIORITY = "ansible_group_priority"


@dataclass(frozen=True)
class Origin:
    """Where something was written: a file, and a line when known (1-based)."""

    path: str
    line: int | None = None

    def error(self, message: str) -> InventoryError:
        return InventoryError(message, self.path, self.line)


@dataclass(frozen=True)
class Variable:
    value: Any
    origin: Origin


@dataclass
class _Group:
    name: str
    origin: Origin
    children: dict[str, None] = field(default_factory=dict)  # ordered set
    parents: dict[str, None] = field(default_factory=dict)
    hosts: dict[str, None] = field(default_factory=dict)
    vars: dict[str, Variable] = field(default_factory=dict)
    priority: Variable | None = None  # ansible_group_priority: orders groups, is no variable


@dataclass
class _Host:
    name: str
    origin: Origin
    groups: dict[str, None] = field(default_factory=dict)
    vars: dict[str, Variable] = field(default_factory=dict)


class InventoryGraph:
    """Groups and hosts in the order the file defines them."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._groups: dict[str, _Group] = {}
        self._hosts: dict[str, _Host] = {}
        self._vars_only: dict[str, Origin] = {}  # [name:vars] seen, the group not (yet) defined
        self._depths: dict[str, int] = {}
        for name in (ALL, UNGROUPED):
            self._groups[name] = _Group(name, Origin(path))
        self.add_child(ALL, UNGROUPED, Origin(path))

    # -- building ----------------------------------------------------------------------------

    def define_group(self, name: str, origin: Origin) -> None:
        if not name:
            raise origin.error("a group needs a name")
        if name not in self._groups:
            self._groups[name] = _Group(name, origin)
        self._vars_only.pop(name, None)

    def add_child(self, parent: str, child: str, origin: Origin) -> None:
        """Make ``child`` (defined here if new) a group inside ``parent``."""
        if child == ALL:
            raise origin.error(f"'{ALL}' holds every group; it cannot be inside {parent!r}")
        self.define_group(parent, origin)
        self.define_group(child, origin)
        if child == parent or parent in self._descendants(child):
            raise origin.error(f"group {child!r} inside {parent!r} would be inside itself")
        self._groups[parent].children.setdefault(child)
        self._groups[child].parents.setdefault(parent)
        self._depths.clear()

    def add_host(
        self, name: str, group: str, variables: dict[str, Variable], origin: Origin
    ) -> None:
        """Put a host (defined here if new) in ``group``; its variables add to earlier ones."""
        if not name:
            raise origin.error("a host needs a name")
        self.define_group(group, origin)
        host = self._hosts.setdefault(name, _Host(name, origin))
        host.groups.setdefault(group)
        host.vars.update(variables)
        self._groups[group].hosts.setdefault(name)

    def set_group_vars(
        self, group: str, variables: dict[str, Variable], origin: Origin, *, define: bool
    ) -> None:
        """Add variables to a group; ``define=False`` (an INI ``[name:vars]`` section) requires
        the group to be defined somewhere in the file."""
        if group not in self._groups:
            if define:
                self.define_group(group, origin)
            else:
                self._groups[group] = _Group(group, origin)
                self._vars_only.setdefault(group, origin)
        variables = dict(variables)
        priority = variables.pop(_PRIORITY, None)
        if priority is not None:
            self._groups[group].priority = priority
        self._groups[group].vars.update(variables)

    def finish(self) -> None:
        """Check what could only be checked at the end of the file."""
        for group, origin in self._vars_only.items():
            raise origin.error(f"variables for group {group!r}, which is never defined")

    # -- reading -----------------------------------------------------------------------------

    @property
    def groups(self) -> list[str]:
        return list(self._groups)

    def members(self, group: str) -> list[str]:
        """The hosts in ``group`` or any group inside it, in the order the file defines them."""
        if group == ALL:
            return list(self._hosts)
        if group == UNGROUPED:
            return [name for name in self._hosts if self._is_ungrouped(name)]
        inside = {group, *self._descendants(group)}
        return [name for name, host in self._hosts.items() if not inside.isdisjoint(host.groups)]

    def has_group(self, group: str) -> bool:
        return group in self._groups

    def host_groups(self, name: str) -> list[str]:
        """Every group holding the host, directly or through children, but ``all``; sorted."""
        groups = set(self._ancestors(self._hosts[name].groups))
        groups.discard(ALL)
        groups.discard(UNGROUPED)
        if self._is_ungrouped(name):
            groups.add(UNGROUPED)
        return sorted(groups)

    def host_origin(self, name: str) -> Origin:
        """Where the host is first written."""
        return self._hosts[name].origin

    def host_vars(self, name: str) -> dict[str, Variable]:
        """The host's variables after Ansible's precedence: ``all``, then its groups from the
        outermost to the innermost (equal depths by ``ansible_group_priority``, then name),
        then the host's own."""
        groups = [ALL, *self.host_groups(name)]
        merged: dict[str, Variable] = {}
        for group in sorted(groups, key=lambda g: (self._depth(g), self._priority(g), g)):
            merged.update(self._groups[group].vars)
        merged.update(self._hosts[name].vars)
        return merged

    def _is_ungrouped(self, name: str) -> bool:
        return set(self._hosts[name].groups) <= {ALL, UNGROUPED}

    def _descendants(self, group: str) -> set[str]:
        found: set[str] = set()
        todo = [group]
        while todo:
            for child in self._groups[todo.pop()].children:
                if child not in found:
                    found.add(child)
                    todo.append(child)
        return found

    def _ancestors(self, groups: Any) -> set[str]:
        found: set[str] = set()
        todo = list(groups)
        while todo:
            group = todo.pop()
            if group not in found:
                found.add(group)
                todo += self._groups[group].parents
        return found

    def _depth(self, group: str) -> int:
        """How far inside ``all`` a group sits (its longest way up)."""
        if group == ALL:
            return 0
        depth = self._depths.get(group)
        if depth is None:
            parents = self._groups[group].parents or {ALL: None}
            depth = self._depths[group] = 1 + max(self._depth(parent) for parent in parents)
        return depth

    def _priority(self, group: str) -> int:
        variable = self._groups[group].priority
        if variable is None:
            return 1
        value = variable.value
        if isinstance(value, bool) or not isinstance(value, (int, str)):
            raise variable.origin.error(f"{_PRIORITY} of {group!r} must be a number")
        try:
            return int(value)
        except ValueError:
            raise variable.origin.error(
                f"{_PRIORITY} of {group!r} must be a number, not {value!r}"
            ) from None


# -- host patterns: "web[01:20].lan", "db1:2222", "[2001:db8::1]:22" ----------------------------


def expand_host_pattern(pattern: str, origin: Origin) -> tuple[list[str], int | None]:
    """The host names an inventory's host pattern stands for, and the port it gives, if any."""
    name, port = _split_port(pattern, origin)
    if "[" not in name and "]" not in name:
        return [name], port
    try:
        return _expand_ranges(name), port
    except HostRangeError as exc:
        raise origin.error(f"bad host range: {exc}") from None


def _split_port(pattern: str, origin: Origin) -> tuple[str, int | None]:
    if pattern.startswith("[") and "]" in pattern:  # "[IPv6]" or "[IPv6]:port"
        inside, _, rest = pattern[1:].partition("]")
        if _is_ipv6(inside):
            if not rest:
                return inside, None
            if rest.startswith(":"):
                return inside, _port(rest[1:], pattern, origin)
    colons = [i for i, char in enumerate(pattern) if char == ":" and _outside_brackets(pattern, i)]
    if len(colons) != 1:
        return pattern, None  # no port, or a bare IPv6 address
    name, port = pattern[: colons[0]], pattern[colons[0] + 1 :]
    if not name:
        raise origin.error(f"host pattern {pattern!r} has no name before ':'")
    return name, _port(port, pattern, origin)


def _is_ipv6(text: str) -> bool:
    try:
        ipaddress.IPv6Address(text)
    except ValueError:
        return False
    return True


def _outside_brackets(text: str, index: int) -> bool:
    return text.count("[", 0, index) == text.count("]", 0, index)


def _port(text: str, pattern: str, origin: Origin) -> int:
    if not (text.isascii() and text.isdigit()) or not 0 < int(text) < 65536:
        raise origin.error(f"host pattern {pattern!r} ends in a bad port {text!r}")
    return int(text)


def _expand_ranges(pattern: str, limit: int = MAX_HOSTS) -> list[str]:
    """Ansible's ranges: ``[01:20]`` (padding kept), ``[a:f]``, ``[1:10:2]``, several per name."""
    choices: list[list[str]] = []
    position = 0
    total = 1
    while position < len(pattern):
        opening = pattern.find("[", position)
        closing = pattern.find("]", position)
        if opening < 0 and closing < 0:
            choices.append([pattern[position:]])
            break
        if opening < 0 or 0 <= closing < opening:
            raise HostRangeError("']' without '['", pattern, closing)
        if closing < 0:
            raise HostRangeError("this '[' is never closed", pattern, opening)
        nested = pattern.find("[", opening + 1, closing)
        if nested >= 0:
            raise HostRangeError("a '[' inside a range", pattern, nested)
        choices.append([pattern[position:opening]])
        values = _range_values(pattern, opening)
        total *= len(values)
        if total > limit:
            raise HostRangeError(f"this stands for more than {limit:,} names", pattern, opening)
        choices.append(values)
        position = closing + 1
    return list(dict.fromkeys("".join(parts) for parts in itertools.product(*choices)))


def _range_values(pattern: str, opening: int) -> list[str]:
    closing = pattern.index("]", opening)
    bounds = pattern[opening + 1 : closing].split(":")
    at = opening + 1
    if len(bounds) not in (2, 3):
        raise HostRangeError("a range is [start:end] or [start:end:step]", pattern, at)
    first, last = bounds[0] or "0", bounds[1]
    step_text = bounds[2] if len(bounds) == 3 else "1"
    if not last:
        raise HostRangeError("the range has no end", pattern, at + len(bounds[0]) + 1)
    if not (step_text.isascii() and step_text.isdigit()) or int(step_text) < 1:
        raise HostRangeError(
            f"the step must be a number, 1 or more, not {step_text!r}", pattern, at
        )
    step = int(step_text)
    letters = string.ascii_lowercase, string.ascii_uppercase
    for alphabet in letters:
        if first in alphabet and last in alphabet and len(first) == len(last) == 1:
            if first > last:
                raise HostRangeError(f"the range {first}:{last} goes down", pattern, at)
            return list(alphabet[alphabet.index(first) : alphabet.index(last) + 1 : step])
    if not all(part.isascii() and part.isdigit() for part in (first, last)):
        raise HostRangeError(
            "a range runs between two numbers or two letters of the same case", pattern, at
        )
    if len(first) > 18 or len(last) > 18:
        raise HostRangeError("a number longer than 18 digits", pattern, at)
    width = len(first) if first.startswith("0") and len(first) > 1 else 0
    if width and len(last) != width:
        raise HostRangeError(
            f"{first} and {last} must have the same number of digits (padding)", pattern, at
        )
    if int(first) > int(last):
        raise HostRangeError(f"the range {first}:{last} goes down", pattern, at)
    numbers = range(int(first), int(last) + 1, step)
    if len(numbers) > MAX_HOSTS:
        raise HostRangeError(f"this stands for more than {MAX_HOSTS:,} names", pattern, at - 1)
    return [str(number).zfill(width) for number in numbers]
