"""Host ranges: ``web[01-20]`` stands for twenty host names, and twenty names fold back to it.

The syntax is ClusterShell's node sets:

- ``web[01-20]``: a numeric range in brackets; zero padding is kept (``web[08-11]`` gives
  ``web08 web09 web10 web11``); both ends are written with the same padding;
- ``db-[1-3,7]``: several ranges and single numbers, separated by commas, in one bracket;
- ``n[1-9/2]``: a step (``n1 n3 n5 n7 n9``);
- ``rack[1-2]-n[01-16]``: several brackets in one name give every combination, the first
  bracket varying slowest (``rack1-n01`` ... ``rack1-n16``, ``rack2-n01`` ...);
- ``web[1-2],db1``: several expressions separated by commas (spaces around them allowed);
- a plain name such as ``db1`` is itself.

>>> expand("web[08-10],db1")
['web08', 'web09', 'web10', 'db1']
>>> fold(["web08", "web09", "web10", "db1"])
'db1,web[08-10]'
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterable
from dataclasses import dataclass

from .errors import HostRangeError

__all__ = ["MAX_HOSTS", "HostRangeError", "expand", "fold", "is_expression"]

#: The most names one expression may stand for: a typo such as ``web[1-99999999]`` fails at
#: once instead of filling the memory. ``expand(..., limit=N)`` sets another bound.
MAX_HOSTS = 100_000

# Longer numbers are surely a typo, and int() refuses very long ones anyway.
_MAX_DIGITS = 18
_NOT_IN_NAMES = re.compile(r"[\s\[\],]")
_DIGIT_RUNS = re.compile(r"([0-9]+)")


def is_expression(text: str) -> bool:
    """Whether ``text`` is written in range syntax (brackets or commas), not as one plain name.

    It does not check that the expression is valid: :func:`expand` does, and says where it is not.
    """
    return "[" in text or "]" in text or "," in text


def expand(expression: str, *, limit: int = MAX_HOSTS) -> list[str]:
    """The host names an expression stands for, each once, in the order written.

    Raises :class:`HostRangeError`, pointing at the position, for a bad expression or for one
    standing for more than ``limit`` names.
    """
    if not isinstance(expression, str):
        raise TypeError(f"expand() takes a string, not {type(expression).__name__}")
    parts = _Parser(expression).parts()
    counts = [part.count() for part in parts]
    if sum(counts) > limit:
        running = itertools.accumulate(counts)
        culprit = next(part for part, total in zip(parts, running) if total > limit)
        raise HostRangeError(
            f"this stands for {sum(counts):,} names, more than the limit of {limit:,}",
            expression,
            culprit.start,
        )
    names: dict[str, None] = {}
    for part in parts:
        names.update(dict.fromkeys(part.names()))
    return list(names)


def fold(names: Iterable[str]) -> str:
    """One expression standing for exactly ``names``: the inverse of :func:`expand`.

    Names that differ only in their numbers are grouped into ranges, padding kept:
    ``fold(["web01", "web02", "web03", "web05"]) == "web[01-03,05]"``, and over several
    numbers at once: ``rack[1-2]-n[01-16]``. Different patterns are joined by commas, in natural
    order (``db2`` before ``db10``). The result depends only on the set of names, and
    ``expand(fold(names))`` gives back the same set. Duplicates are ignored; no names gives ``""``.
    Raises :class:`HostRangeError` for a name that an expression could not hold (empty, or with
    a space, a comma or a bracket).
    """
    if isinstance(names, str):
        raise TypeError("fold() takes a list of names, not a string (expand() reads expressions)")
    unique = set(names)
    _check_names(unique)
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


# -- reading expressions ------------------------------------------------------------------------


@dataclass(frozen=True)
class _Span:
    """``first-last/step`` in a bracket; numbers are formatted ``width`` digits wide."""

    first: int
    last: int
    step: int
    width: int

    def count(self) -> int:
        return len(range(self.first, self.last + 1, self.step))

    def values(self) -> list[str]:
        return [str(n).zfill(self.width) for n in range(self.first, self.last + 1, self.step)]


@dataclass(frozen=True)
class _Part:
    """One comma-separated expression: literal text and brackets (lists of spans) in turn."""

    start: int
    pieces: tuple[str | tuple[_Span, ...], ...]

    def count(self) -> int:
        total = 1
        for piece in self.pieces:
            if not isinstance(piece, str):
                total *= sum(span.count() for span in piece)
        return total

    def names(self) -> Iterable[str]:
        choices = [
            [piece] if isinstance(piece, str) else _bracket_values(piece) for piece in self.pieces
        ]
        return ("".join(combination) for combination in itertools.product(*choices))


def _bracket_values(spans: tuple[_Span, ...]) -> list[str]:
    return list(dict.fromkeys(value for span in spans for value in span.values()))


class _Parser:
    """Reads an expression left to right; every error names the position it stopped at."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0

    def fail(self, reason: str, position: int | None = None) -> HostRangeError:
        return HostRangeError(reason, self.text, self.pos if position is None else position)

    def peek(self) -> str:
        return self.text[self.pos] if self.pos < len(self.text) else ""

    def parts(self) -> list[_Part]:
        if not self.text.strip():
            raise self.fail("an empty host expression", 0)
        parts = [self.part()]
        while self.peek() == ",":
            self.pos += 1
            parts.append(self.part())
        return parts

    def part(self) -> _Part:
        while self.peek() in (" ", "\t"):
            self.pos += 1
        start = self.pos
        pieces: list[str | tuple[_Span, ...]] = []
        literal_start = self.pos
        while self.pos < len(self.text):
            char = self.text[self.pos]
            if char == "[":
                if self.pos > literal_start:
                    pieces.append(self.text[literal_start : self.pos])
                pieces.append(self.bracket())
                literal_start = self.pos
            elif char == "]":
                raise self.fail("']' without '['")
            elif char == "," or char.isspace():
                break
            else:
                self.pos += 1
        if self.pos > literal_start:
            pieces.append(self.text[literal_start : self.pos])
        name_end = self.pos
        while self.peek().isspace():
            self.pos += 1
        if self.peek() not in ("", ","):
            raise self.fail("a space inside a host name", name_end)
        if not pieces:
            where = "before the first comma" if start == 0 else "after a comma"
            raise self.fail(f"a host name is missing {where}", start)
        return _Part(start, tuple(pieces))

    def bracket(self) -> tuple[_Span, ...]:
        opening = self.pos
        closing = self.text.find("]", opening)
        inner = self.text.find("[", opening + 1)
        if inner >= 0 and (inner < closing or closing < 0):
            raise self.fail("a '[' inside a range", inner)
        if closing < 0:
            raise self.fail("this '[' is never closed", opening)
        self.pos += 1
        if self.pos == closing:
            raise self.fail("an empty range")
        spans = [self.span()]
        while self.peek() == ",":
            self.pos += 1
            spans.append(self.span())
        if self.peek() != "]":
            raise self.fail(f"expected ',' or ']' in the range, found {self.peek()!r}")
        self.pos += 1
        return tuple(spans)

    def span(self) -> _Span:
        first_at = self.pos
        first = self.number("a number")
        width = len(first) if len(first) > 1 and first.startswith("0") else 0
        last, step = first, 1
        if self.peek() == "-":
            self.pos += 1
            last_at = self.pos
            last = self.number("a number after '-'")
            if last != str(int(last)).zfill(width):
                raise self.fail(f"{last} is not padded like {first}", last_at)
            if int(last) < int(first):
                raise self.fail(f"the range {first}-{last} goes down", first_at)
            if self.peek() == "/":
                self.pos += 1
                step_at = self.pos
                step = int(self.number("a step after '/'"))
                if step < 1:
                    raise self.fail("the step must be 1 or more", step_at)
        return _Span(int(first), int(last), step, width)

    def number(self, wanted: str) -> str:
        start = self.pos
        while self.peek().isdigit() and self.peek().isascii():
            self.pos += 1
        digits = self.text[start : self.pos]
        if not digits:
            found = repr(self.peek()) if self.peek() else "the end"
            raise self.fail(f"expected {wanted}, found {found}")
        if len(digits) > _MAX_DIGITS:
            raise self.fail(f"a number longer than {_MAX_DIGITS} digits", start)
        return digits


# -- folding names ------------------------------------------------------------------------------


def _check_names(names: set[str]) -> None:
    try:
        everything = "/".join(names)  # one search for the usual case: every name is fine
    except TypeError:
        everything = None
    if everything is not None and "" not in names and not _NOT_IN_NAMES.search(everything):
        return
    for name in sorted(names, key=repr):
        if not isinstance(name, str):
            raise TypeError(f"host names are strings, not {type(name).__name__}: {name!r}")
        bad = _NOT_IN_NAMES.search(name)
        if not name or bad is not None:
            where = 0 if bad is None else bad.start()
            raise HostRangeError("not a host name that a range expression can hold", name, where)


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
