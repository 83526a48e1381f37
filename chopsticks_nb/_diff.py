"""``GroupResult.diff()``: how each minority group's value differs from the majority's.

The majority is the largest group of hosts with identical values (the first, on a tie).
Text values (``str``, and ``bytes`` read as UTF-8) give a unified diff, dicts the keys whose
values differ, anything else both values. Shown as plain text and as coloured HTML (escaped:
the values came from remote hosts).
"""

from __future__ import annotations

import difflib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from . import render
from ._grouping import ValueGroup, value_key

__all__ = ["GroupDiff", "ResultDiff"]

#: Lines shown per minority group; the rest are counted.
MAX_DIFF_LINES = 500
#: Lines of each value compared at most (difflib's time grows faster than the input's size).
MAX_COMPARED_LINES = 20_000


@dataclass(frozen=True)
class GroupDiff:
    """One minority group against the majority: its hosts and value, the diff's lines
    (``-`` the majority's, ``+`` this group's) and, for dicts, the keys that differ."""

    hosts: list[str]
    value: Any
    lines: list[str]
    keys: list[Any]


class ResultDiff:
    """Each minority group of a result against its majority value.

    ``majority`` is the majority's value and ``majority_hosts`` its hosts; ``groups`` the
    :class:`GroupDiff` of every other group of successful hosts, smallest first;
    ``failed_hosts`` the hosts that failed (not compared). ``str(diff)`` is the text view.
    """

    def __init__(self, groups: Sequence[ValueGroup]) -> None:
        succeeded = [group for group in groups if not group.failed]
        self.failed_hosts = [host for group in groups if group.failed for host in group.hosts]
        self.majority_hosts: list[str] = []
        self.majority: Any = None
        self.groups: list[GroupDiff] = []
        if not succeeded:
            return
        top = max(succeeded, key=lambda group: (len(group.hosts), -group.first))
        self.majority, self.majority_hosts = top.value, list(top.hosts)
        before = _label(top.hosts)
        for group in succeeded:
            if group is not top:
                lines, keys = _compare(top.value, group.value, before, _label(group.hosts))
                self.groups.append(GroupDiff(list(group.hosts), group.value, lines, keys))

    def _notes(self) -> tuple[str, list[str]]:
        """The heading line, and the closing lines (failed hosts)."""
        ending = []
        if self.failed_hosts:
            ending.append(f"{_count(self.failed_hosts)} failed (not compared)")
        if not self.majority_hosts:
            return "no host succeeded: nothing to compare", ending
        if not self.groups:
            heading = (
                f"every host that succeeded returned the same value: {_count(self.majority_hosts)}"
            )
            return heading, ending
        return f"against the majority value: {_count(self.majority_hosts)}", ending

    @property
    def text(self) -> str:
        """The diff as plain text."""
        heading, ending = self._notes()
        lines = [heading]
        for group in self.groups:
            lines += ["", *group.lines]
        if ending:
            lines += ["", *ending]
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.text

    def __repr__(self) -> str:
        return self.text

    def _repr_html_(self) -> str:
        heading, ending = self._notes()
        return render.diff_html(heading, [group.lines for group in self.groups], ending)


def _count(hosts: Sequence[str]) -> str:
    noun = "host" if len(hosts) == 1 else "hosts"
    return f"{len(hosts)} {noun} {render.fold_hosts(hosts)}"


def _label(hosts: Sequence[str]) -> str:
    noun = "host" if len(hosts) == 1 else "hosts"
    return f"{render.fold_hosts(hosts)} ({len(hosts)} {noun})"


def _compare(old: Any, new: Any, before: str, after: str) -> tuple[list[str], list[Any]]:
    header = [f"--- {before}", f"+++ {after}"]
    if isinstance(old, (str, bytes)) and type(old) is type(new):
        return header + _text_diff(_as_text(old), _as_text(new)), []
    if isinstance(old, dict) and isinstance(new, dict):
        keys = [k for k in old if k not in new or value_key(old[k]) != value_key(new[k])]
        keys += [k for k in new if k not in old]
        lines = []
        for key in keys:
            name = render.format_value(key, pretty=False)
            if key in old:
                lines.append(f"-{name}: {render.format_value(old[key], pretty=False)}")
            if key in new:
                lines.append(f"+{name}: {render.format_value(new[key], pretty=False)}")
        return header + _capped(lines), keys
    old_text, new_text = (
        render.format_value(old, pretty=False),
        render.format_value(new, pretty=False),
    )
    return [*header, f"-{old_text}", f"+{new_text}"], []


def _as_text(value: str | bytes) -> str:
    return value if isinstance(value, str) else value.decode("utf-8", "backslashreplace")


def _text_diff(old: str, new: str) -> list[str]:
    old_lines, new_lines = old.splitlines(), new.splitlines()
    cut = max(len(old_lines), len(new_lines)) - MAX_COMPARED_LINES
    body = list(
        difflib.unified_diff(
            old_lines[:MAX_COMPARED_LINES], new_lines[:MAX_COMPARED_LINES], lineterm="", n=3
        )
    )[2:]  # the ---/+++ lines: the caller writes its own, naming the hosts
    if not body and cut <= 0:
        body = ["(the same lines; they differ only in line endings or a final newline)"]
    lines = _capped(body)
    if cut > 0:
        lines.append(f"(only the first {MAX_COMPARED_LINES:,} lines were compared)")
    return lines


def _capped(lines: list[str]) -> list[str]:
    if len(lines) <= MAX_DIFF_LINES:
        return lines
    return [*lines[:MAX_DIFF_LINES], f"... {len(lines) - MAX_DIFF_LINES:,} more lines"]
