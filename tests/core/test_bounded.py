"""The bounded text of values (chopsticks_nb._bounded), fuzzed: never raises, never longer than
asked, and the very repr whenever that fits.

Values are what a remote can send (every codec type, nested, ints of any size: Python refuses
``repr()`` of ints over 4300 digits) plus what a local result may hold: objects whose
``__repr__`` raises or returns huge text, containers that hold themselves, and deep nesting.
"""

from __future__ import annotations

import sys

from hypothesis import given, settings
from hypothesis import strategies as st

from chopsticks_nb._bounded import escape_controls, exception_text, short_repr, whole_repr


class BrokenRepr:
    def __repr__(self) -> str:
        raise KeyError(10**5000)  # whose own text cannot be made either


class HugeRepr:
    def __repr__(self) -> str:
        return "h" * 100_000


leaves = (
    st.none() | st.booleans() | st.floats() | st.text(max_size=50) | st.binary(max_size=50)
    | st.integers() | st.integers(4000, 9000).map(lambda digits: 7 * 10**digits)
    | st.integers(30_000, 100_000).map(lambda bits: -(2**bits))
    | st.builds(BrokenRepr) | st.builds(HugeRepr)
)  # fmt: skip
values = st.recursive(
    leaves,
    lambda children: (
        st.lists(children, max_size=8)
        | st.lists(children, max_size=8).map(tuple)
        | st.dictionaries(st.text(max_size=5) | st.integers(), children, max_size=8)
        | st.frozensets(st.integers() | st.text(max_size=5), max_size=8)
        | st.sets(st.binary(max_size=5), max_size=8)
    ),
    max_leaves=60,
)


def plain_repr(value: object) -> str | None:
    try:
        return repr(value)
    except Exception:
        return None


@given(values, st.integers(min_value=1, max_value=400))
@settings(max_examples=400, deadline=None)
def test_short_repr_never_raises_and_keeps_to_its_limit(value: object, limit: int) -> None:
    text = short_repr(value, limit)
    limit = max(limit, 4)  # room for "x..." at least
    assert len(text) <= limit
    whole = whole_repr(value, limit)
    full = plain_repr(value)
    if whole is not None:  # whole means the repr itself
        assert whole == full
    elif full is not None and len(full) <= limit and "h" * 50 not in full:
        # A repr that fits is given whole, unless it holds an int too long to convert fast.
        assert any(type(v) is int for v in _leaves(value)), (full, text)
    if full is not None and len(full) > limit:
        assert text.endswith("...") or "<int of about" in text


def _leaves(value: object) -> list[object]:
    if isinstance(value, (list, tuple, set, frozenset)):
        return [leaf for item in value for leaf in _leaves(item)]
    if isinstance(value, dict):
        return [leaf for pair in value.items() for leaf in _leaves(list(pair))]
    return [value]


def test_huge_values_cost_their_limit_not_their_size() -> None:
    assert short_repr(b"x" * 10**8, 20) == "b'xxxxxxxxxxxxxxx..."
    assert short_repr(10**1_000_000, 50) == "<int of about 1000001 digits>"
    assert short_repr([10**5000] * 10**6, 70).startswith("[<int of about 5001 digits>, <int")
    nested: list[object] = []
    nested.append(nested)
    assert short_repr(nested, 50) == "[[...]]"
    deep: object = 1
    for _ in range(sys.getrecursionlimit() * 2):  # deeper than repr() itself can go
        deep = [deep]
    assert short_repr(deep, 100).startswith("[[[[")
    assert short_repr(BrokenRepr(), 200) == (
        "<unrepresentable BrokenRepr: KeyError (its message cannot be shown)>"
    )


def test_exception_text_and_escapes() -> None:
    assert exception_text(KeyError(10**5000)) == "KeyError (its message cannot be shown)"
    assert exception_text(ValueError("x" * 5000), 10) == "ValueError... (5002 more characters)"
    assert exception_text(ValueError("bad"), with_type=False) == "bad"
    assert escape_controls("a\x1b[2J\x07\tb\x9b") == "a\\x1b[2J\\x07\\tb\\x9b"
