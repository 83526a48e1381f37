"""Host names folded into one range expression (``web[01-03,05]``), or listed when they cannot be.

The folding itself (:func:`fold_names`) for :func:`chopsticks_nb.hosts.fold`, which checks the
names first; and :func:`hosts_text`, the one way every display and error message writes a list
of hosts: folded when every name can stand in an expression, else the names separated by commas.
It imports nothing of the package, so that the exception tree can use it too.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

__all__ = ["fold_names", "hosts_text", "unfoldable"]

_NOT_IN_NAMES = re.compile(r"[\s\[\],]")
_DIGIT_RUNS = re.compile(r"([0-9]+)")


def hosts_text(names: Iterable[str]) -> str:
    """``names`` folded (``web[01-05,07]``); names that cannot stand in a range expression
    (``web 1``, ``root@[::1]``) follow the folded rest as they are, after ``", "``
    (``web[01-05], web 1``)."""
    names = list(names)
    if len(names) == 1:
        return str(names[0])
    unique = set(map(str, names))
    if unfoldable(unique) is None:
        return fold_names(unique)
    odd = [name for name in dict.fromkeys(map(str, names)) if unfoldable({name}) is not None]
    foldable = unique.difference(odd)
    return ", ".join([fold_names(foldable)] * bool(foldable) + odd)


def unfoldable(names: set[Any]) -> tuple[object, int] | None:
    """The first name (in a stable order) that a range expression cannot hold, and the position
    of the character that stops it; None when every name can be folded."""
    try:
        everything = "/".join(names)  # one search for the usual case: every name is fine
    except TypeError:
        everything = None
    if everything is not None and "" not in names and not _NOT_IN_NAMES.search(everything):
        return None
    for name in sorted(names, key=repr):
        if not isinstance(name, str):
            return name, 0
        bad = _NOT_IN_NAMES.search(name)
        if not name or bad is not None:
            return name, 0 if bad is None else bad.start()
    return None


def fold_names(unique: set[str]) -> str:
    """The names (each one that :func:`unfoldable` accepts) as one expression, patterns in
    natural order."""
    patterns: dict[tuple[str, ...], list[tuple[str, ...]]] = {}
    split = _DIGIT_RUNS.split
    for name in unique:
        pieces = split(name)
        literals = tuple(pieces[0::2])
        rows = patterns.get(literals)
        if rows is None:
            rows = patterns[literals] = []
        rows.append(tuple(pieces[1::2]))
    folded: list[tuple[tuple[object, ...], str]] = []
    for literals, rows in patterns.items():
        for box in _boxes(rows, len(literals) - 1):
            fields = [_Field(values) for values in box]
            folded.append((_sort_key(literals, fields), _join(literals, fields)))
    return ",".join(text for _, text in sorted(folded))


def _boxes(rows: list[tuple[str, ...]], width: int) -> list[tuple[frozenset[str], ...]]:
    """Cover ``rows`` (distinct tuples of digit strings) exactly with boxes: a set of values
    per number field, standing for every combination of them.

    Folds the last field first: rows equal but for it become one row holding a set, then rows
    equal but for the field before it (its sets compared whole), and so on to the first.
    """
    if width == 0:
        return [()]
    if width == 1:
        return [(frozenset([row[0] for row in rows]),)]
    entries: list[tuple[tuple[str, ...], tuple[frozenset[str], ...]]] = [(row, ()) for row in rows]
    for _ in range(width):
        grouped: dict[tuple[tuple[str, ...], tuple[frozenset[str], ...]], set[str]] = {}
        for head, tail in entries:
            key = (head[:-1], tail)
            values = grouped.get(key)
            if values is None:
                values = grouped[key] = set()
            values.add(head[-1])
        entries = [(head, (frozenset(values), *tail)) for (head, tail), values in grouped.items()]
    return [tail for _, tail in entries]


class _Field:
    """The values one number field takes in a box, written as ranges; ``first`` is the least."""

    def __init__(self, values: frozenset[str]) -> None:
        if len(values) == 1:
            (self.first,) = values
            self.text = self.first
        else:
            spans = _spans(values)
            self.first = str(spans[0][0]).zfill(spans[0][2])
            self.text = f"[{','.join(_span_text(*span) for span in spans)}]"


def _spans(values: frozenset[str]) -> list[tuple[int, int, int]]:
    """``[(1, 3, 2), (5, 5, 2)]`` (first, last, width) for ``{"01", "02", "03", "05"}``, in order.

    A zero-padded value (``08``) keeps its width. A plain value (``10``) is as wide as it is,
    so it may join a padded run of that width or less (``08-10``) if it continues it.
    """
    by_width: dict[int, set[int]] = {0: set()}
    plain: list[int] = []
    for digits in values:
        if digits[0] == "0" and len(digits) > 1:
            numbers = by_width.get(len(digits))
            if numbers is None:
                numbers = by_width[len(digits)] = set()
            numbers.add(int(digits))
        else:
            plain.append(int(digits))
    if len(by_width) == 1:
        by_width[0].update(plain)
    else:
        widths = sorted(by_width, reverse=True)
        for number in sorted(plain):
            size = len(str(number))
            home = next((w for w in widths if 0 < w <= size and number - 1 in by_width[w]), 0)
            by_width[home].add(number)
    spans: list[tuple[int, int, int]] = []
    for width, numbers in by_width.items():
        ordered = sorted(numbers)
        run_start = 0
        for i in range(1, len(ordered) + 1):
            if i == len(ordered) or ordered[i] != ordered[i - 1] + 1:
                spans.append((ordered[run_start], ordered[i - 1], width))
                run_start = i
    spans.sort(key=lambda span: (span[0], span[2]))
    return spans


def _span_text(first: int, last: int, width: int) -> str:
    low = str(first).zfill(width)
    return low if first == last else f"{low}-{str(last).zfill(width)}"


def _join(literals: tuple[str, ...], fields: list[_Field]) -> str:
    out = [literals[0]]
    for field, literal in zip(fields, literals[1:]):
        out += (field.text, literal)
    return "".join(out)


def _sort_key(literals: tuple[str, ...], fields: list[_Field]) -> tuple[object, ...]:
    """Natural order of the first name a folded part stands for (``db2`` before ``db10``)."""
    key: list[object] = [literals[0]]
    for field, literal in zip(fields, literals[1:]):
        key += ((int(field.first), len(field.first)), literal)
    return tuple(key)
