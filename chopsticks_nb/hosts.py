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
from collections.abc import Iterable
from dataclasses import dataclass

from ._hostfold import fold_names, unfoldable
from .errors import HostRangeError

__all__ = ["MAX_HOSTS", "HostRangeError", "expand", "fold", "is_expression"]

#: The most names one expression may stand for: a typo such as ``web[1-99999999]`` fails at
#: once instead of filling the memory. ``expand(..., limit=N)`` sets another bound.
MAX_HOSTS = 100_000

# Longer numbers are surely a typo, and int() refuses very long ones anyway.
_MAX_DIGITS = 18


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
    bad = unfoldable(unique)
    if bad is not None:
        name, where = bad
        if not isinstance(name, str):
            raise TypeError(f"host names are strings, not {type(name).__name__}: {name!r}")
        raise HostRangeError("not a host name that a range expression can hold", name, where)
    return fold_names(unique)


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
