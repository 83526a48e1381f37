"""Text for values and messages of any size, bounded before it is built.

A remote may send a 100 MB bytes value, an int of a million digits (whose ``repr()`` fails
above 4300 digits, and costs quadratic time below that limit when it is lifted), or a message
of megabytes. Error messages and reprs show a short part of such values: :func:`short_repr`
builds at most about ``limit`` characters whatever the value, :func:`short_text` cuts a text
before it is put in a message, and :func:`exception_text` describes an exception without
failing. Nothing here raises for a value it is given.
"""

from __future__ import annotations

import math
from typing import Callable

__all__ = ["escape_controls", "exception_text", "short_repr", "short_text", "whole_repr"]

_ELLIPSIS = "..."
#: Containers nested deeper than this show as ``[...]``: a budget bounds the text, this bounds
#: the recursion (a local value may nest deeper than any remote one).
_MAX_DEPTH = 20
#: Digits in a decimal int per bit.
_DIGITS_PER_BIT = math.log10(2)
#: C0 and C1 control characters and DEL, as \\xNN (a terminal acts on them).
_CONTROLS = {c: f"\\x{c:02x}" for c in [*range(0x20), *range(0x7F, 0xA0)]}
_CONTROLS[ord("\t")] = "\\t"
_CONTROLS[ord("\n")] = "\\n"
_CONTROLS[ord("\r")] = "\\r"


def short_repr(value: object, limit: int = 200) -> str:
    """``repr(value)`` if it is at most ``limit`` characters; else its first characters ending
    in ``...``, built without building the whole repr (so it is cheap for huge values).

    Built-in containers are walked with a budget, str and bytes sliced before their repr is
    made, an int too long to show said as ``<int of about N digits>``; another object's own
    repr is cut (and said to be unrepresentable if it raises).
    """
    limit = max(limit, len(_ELLIPSIS) + 1)
    text, _ = _write(value, limit)
    if len(text) <= limit:
        return text
    return text[: limit - len(_ELLIPSIS)] + _ELLIPSIS


def whole_repr(value: object, limit: int) -> str | None:
    """``repr(value)`` if it has at most ``limit`` characters (and can be built), else None;
    found at the cost of :func:`short_repr`."""
    text, exact = _write(value, limit)
    return text if exact and len(text) <= limit else None


def _write(value: object, limit: int) -> tuple[str, bool]:
    """Up to ``limit + 1`` characters of the repr (one more tells whether there was more), and
    whether the text is the repr itself, as far as it goes (no part of it stands in for one)."""
    parts: list[str] = []
    writer = _Writer(parts, limit + 1)
    writer.write(value, 0)
    return "".join(parts), writer.exact


def short_text(text: str, limit: int = 2000) -> str:
    """``text``, or its first ``limit`` characters and a count of the rest."""
    if len(text) <= limit:
        return text
    return f"{text[:limit]}... ({len(text) - limit} more characters)"


def escape_controls(text: str) -> str:
    """``text`` with control characters (escape sequences, carriage returns, bells) written
    as ``\\xNN``, so that text a remote sent can be shown on a terminal as it is."""
    return text.translate(_CONTROLS)


def exception_text(exc: BaseException, limit: int = 2000, *, with_type: bool = True) -> str:
    """``"TypeName: message"`` (or the message alone) for ``exc``, bounded, even if its
    ``str()`` fails."""
    name = type(exc).__name__
    try:
        message = str(exc)
    except Exception:
        return f"{name} (its message cannot be shown)" if with_type else "(no message)"
    if not with_type:
        return short_text(message, limit)
    return short_text(f"{name}: {message}" if message else name, limit)


class _Writer:
    """Appends the repr of a value to ``parts`` until ``budget`` characters are written."""

    def __init__(self, parts: list[str], budget: int) -> None:
        self.parts = parts
        self.budget = budget
        self._seen: set[int] = set()
        self.exact = True

    def emit(self, text: str) -> bool:
        """Add ``text`` (cut to what is left); False once the budget is spent."""
        if self.budget <= 0:
            return False
        self.parts.append(text[: self.budget])
        self.budget -= len(text)
        return self.budget > 0

    def write(self, value: object, depth: int) -> bool:
        kind = type(value)
        if kind is str or kind is bytes:
            # A slice first: at most 10 characters of repr per character ('\U0001f600').
            return self.emit(repr(value[: self.budget]))  # type: ignore[index]
        if kind is int:
            return self.emit(self._int(value))  # type: ignore[arg-type]
        if kind in (bool, float, type(None), complex):
            return self.emit(repr(value))
        writer = _CONTAINERS.get(kind)
        if writer is None:
            return self.emit(self._other(value))
        if id(value) in self._seen or depth >= _MAX_DEPTH:
            self.exact = False
            return self.emit(_NESTED[kind])
        self._seen.add(id(value))
        try:
            return writer(self, value, depth + 1)
        finally:
            self._seen.discard(id(value))

    def _int(self, value: int) -> str:
        bits = value.bit_length()
        if bits * _DIGITS_PER_BIT < min(self.budget, 4000):
            try:
                return repr(value)
            except ValueError:  # sys.set_int_max_str_digits() set lower
                pass
        self.exact = False
        return f"<int of about {int(bits * _DIGITS_PER_BIT) + 1} digits>"

    def _other(self, value: object) -> str:
        try:
            text = repr(value)
        except Exception as exc:  # a broken __repr__, a subclass of int too long
            self.exact = False
            return f"<unrepresentable {type(value).__name__}: {exception_text(exc, 100)}>"
        return text

    def items(self, opening: str, closing: str, values: object, depth: int, pairs: bool) -> bool:
        if not self.emit(opening):
            return False
        first = True
        for item in values:  # type: ignore[attr-defined]
            if not first and not self.emit(", "):
                return False
            first = False
            if pairs:
                key, item_value = item
                if not (self.write(key, depth) and self.emit(": ")):
                    return False
                item = item_value
            if not self.write(item, depth):
                return False
        return self.emit(closing)


def _write_list(writer: _Writer, value: object, depth: int) -> bool:
    return writer.items("[", "]", value, depth, False)


def _write_tuple(writer: _Writer, value: object, depth: int) -> bool:
    if len(value) == 1:  # type: ignore[arg-type]
        return writer.emit("(") and writer.write(value[0], depth) and writer.emit(",)")  # type: ignore[index]
    return writer.items("(", ")", value, depth, False)


def _write_dict(writer: _Writer, value: object, depth: int) -> bool:
    return writer.items("{", "}", value.items(), depth, True)  # type: ignore[attr-defined]


def _write_set(writer: _Writer, value: object, depth: int) -> bool:
    if not value:
        return writer.emit(_EMPTY[type(value)])
    if type(value) is frozenset:
        return writer.items("frozenset({", "})", value, depth, False)
    return writer.items("{", "}", value, depth, False)


_CONTAINERS: dict[type, Callable[[_Writer, object, int], bool]] = {
    list: _write_list,
    tuple: _write_tuple,
    dict: _write_dict,
    set: _write_set,
    frozenset: _write_set,
}
_EMPTY: dict[type, str] = {set: "set()", frozenset: "frozenset()"}
_NESTED: dict[type, str] = {list: "[...]", tuple: "(...)", dict: "{...}", set: "{...}"}
_NESTED[frozenset] = "frozenset({...})"
