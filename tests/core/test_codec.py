"""The closed codec: what the controller accepts from an agent, and nothing more."""

from __future__ import annotations

import collections
import contextlib
import enum
import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chopsticks_nb._agent import MAX_DEPTH, DecodeError, EncodeError, decode, encode

leaves = (
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text() | st.binary()
)
values = st.recursive(
    leaves,
    lambda children: (
        st.lists(children)
        | st.lists(children).map(tuple)
        | st.dictionaries(st.text() | st.integers(), children)
        | st.frozensets(st.integers() | st.text())
        | st.sets(st.binary())
    ),
    max_leaves=30,
)


@given(values)
def test_every_codec_value_round_trips(value: object) -> None:
    assert decode(encode(value)) == value


@given(st.none() | st.booleans() | st.integers())
def test_scalars_encode_alike_alone_and_nested(value: object) -> None:
    # A lone int or None is encoded (and decoded) on a short path: it must match the general one.
    alone, nested = encode(value), encode([value])
    assert alone[1:] == nested[6:]  # after the version; after the version and the list header
    assert type(decode(alone)) is type(value)


@given(st.binary(max_size=200))
@settings(max_examples=500)
def test_decoder_raises_only_decode_error_on_garbage(data: bytes) -> None:
    with contextlib.suppress(DecodeError):
        decode(data)


@given(values, st.data())
def test_truncated_or_flipped_encodings_raise_decode_error(
    value: object, data: st.DataObject
) -> None:
    encoded = bytearray(encode(value))
    cut = data.draw(st.integers(0, len(encoded) - 1))
    with pytest.raises(DecodeError):
        decode(bytes(encoded[:cut]))
    encoded[data.draw(st.integers(0, len(encoded) - 1))] ^= data.draw(st.integers(1, 255))
    with contextlib.suppress(DecodeError):
        decode(bytes(encoded))


def test_types_round_trip_exactly() -> None:
    value = (1, [2], {3: frozenset({4})}, {5}, 2**100, -(2**100), b"", "", 1e300, -0.0)
    out = decode(encode(value))
    assert out == value and [type(v) for v in out] == [type(v) for v in value]
    assert math.isnan(decode(encode(float("nan"))))
    assert decode(encode("\udcff")) == "\udcff"  # lone surrogates (os.fsdecode names) survive


def test_subclasses_travel_as_their_base_type() -> None:
    Point = collections.namedtuple("Point", "x y")

    class Colour(enum.IntEnum):
        RED = 1

    assert decode(encode([Point(1, 2), collections.OrderedDict(a=1), Colour.RED])) == [
        (1, 2),
        {"a": 1},
        1,
    ]


def test_unknown_types_are_named_in_the_error() -> None:
    class Custom:
        pass

    with pytest.raises(EncodeError, match=r"test_codec\..*Custom"):
        encode({"k": Custom()})


def test_limits_on_depth() -> None:
    deep: list[object] = []
    for _ in range(MAX_DEPTH + 5):
        deep = [deep]
    with pytest.raises(EncodeError, match="nested deeper"):
        encode(deep)
    data = b"\x01" + b"\x08\x00\x00\x00\x01" * (MAX_DEPTH + 5) + b"\x00"
    with pytest.raises(DecodeError, match="nested deeper"):
        decode(data)


def test_counts_beyond_the_data_are_rejected_without_allocating() -> None:
    with pytest.raises(DecodeError, match="exceeds the data"):
        decode(b"\x01\x08\xff\xff\xff\xff")
    with pytest.raises(DecodeError, match="truncated"):
        decode(b"\x01\x07\xff\xff\xff\xff")


def test_errors_say_what_was_found() -> None:
    with pytest.raises(DecodeError, match=r"unknown opcode 0x7f at offset 1"):
        decode(b"\x01\x7f")
    with pytest.raises(DecodeError, match="unsupported codec version"):
        decode(b"\x02\x00")
    with pytest.raises(DecodeError, match="unexpected bytes"):
        decode(b"\x01\x00\x00")
    with pytest.raises(DecodeError, match="unhashable"):
        decode(b"\x01\x0b\x00\x00\x00\x01\x08\x00\x00\x00\x00")
