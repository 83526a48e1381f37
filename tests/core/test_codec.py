"""The closed codec: what the controller accepts from an agent, and nothing more."""

from __future__ import annotations

import collections
import contextlib
import datetime
import decimal
import enum
import math
import os
import pathlib
import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chopsticks_nb._agent import (
    MAX_DEPTH,
    MAX_SHARED_HASH,
    DecodeError,
    EncodeError,
    ShapeError,
    check_shape,
    decode,
    encode,
)

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


def test_subclasses_travel_as_what_the_readme_says() -> None:
    """A namedtuple as a namedtuple of the same name and fields (a type made here), an
    OrderedDict as itself, an IntEnum as its int, an Enum as its value, a dict subclass and a
    defaultdict as a dict, os.stat_result (not a namedtuple) as a tuple."""
    point_type = collections.namedtuple("Point", "x y")

    class Colour(enum.IntEnum):
        RED = 1

    class Letter(enum.Enum):
        A = "a"

    class Mine(dict):  # type: ignore[type-arg]
        pass

    stat = os.stat(".")
    sent = [point_type(1, 2), collections.OrderedDict(a=1), Colour.RED, Letter.A, Mine(k=1),
            collections.defaultdict(list, k=[1]), stat]  # fmt: skip
    point, ordered, red, letter, mine, default, stat_tuple = decode(encode(sent))
    assert type(point).__name__ == "Point" and point._fields == ("x", "y") and point == (1, 2)
    assert type(point) is not point_type and type(point)(3, 4).y == 4
    assert type(ordered) is collections.OrderedDict and ordered == {"a": 1}
    assert type(red) is int and red == 1
    assert letter == "a"
    assert type(mine) is dict and mine == {"k": 1}
    assert type(default) is dict and default == {"k": [1]}
    assert type(stat_tuple) is tuple and stat_tuple == tuple(stat)


def test_namedtuples_with_names_the_receiver_refuses_travel_as_tuples() -> None:
    """Names that are not plain ASCII identifiers (the controller builds the type from them)."""
    odd = collections.namedtuple("Odd", ["a", "b"], rename=True)
    accented = collections.namedtuple("Café", "x")
    assert type(decode(encode(odd(1, 2)))).__name__ == "Odd"
    assert type(decode(encode(accented(1)))) is tuple


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


# -- the CPU a value may cost (hash collisions) -------------------------------------------------

MERSENNE = 2**61 - 1  # hash(n) == hash(n + k * MERSENNE) for ints


def test_keys_sharing_a_hash_are_refused_by_both_sides() -> None:
    """A set or dict whose keys share one hash costs quadratic time to build: the encoder
    refuses it (the agent's call fails) and so does the decoder, before building it."""
    colliding = [5 + k * MERSENNE for k in range(MAX_SHARED_HASH + 1)]
    for value in (set(colliding), frozenset(colliding), dict.fromkeys(colliding)):
        with pytest.raises(EncodeError, match=f"{MAX_SHARED_HASH + 1} keys share one hash"):
            encode({"x": [value]}, "result")
    raw = (
        b"\x01\x0b" + struct.pack(">I", len(colliding)) + b"".join(encode(n)[1:] for n in colliding)
    )
    with pytest.raises(DecodeError, match=r"9 set members share one hash in the container at "
                       r"offset 1 \(the limit is 8\)"):  # fmt: skip
        decode(raw)


def test_a_few_shared_hashes_and_honest_keys_pass() -> None:
    allowed = {5 + k * MERSENNE for k in range(MAX_SHARED_HASH)} | {-1, -2}  # hash(-1) == -2
    assert decode(encode(allowed)) == allowed
    honest = {i: float(i) for i in range(100_000)}
    assert decode(encode(honest)) == honest
    assert decode(encode({i * 0.5 for i in range(10_000)})) == {i * 0.5 for i in range(10_000)}


def test_an_error_names_the_place_in_the_value() -> None:
    class Custom:
        pass

    cases = {
        "result['stats'][3]": {"stats": [1, 2, 3, Custom()]},
        "result[0][1]": [(1, Custom())],
        "result.<key <a tuple>>[1]": {(1, Custom()): 1},
        "result['a'].<member <a Custom>>": {"a": {Custom()}},
        "result[<an int of 100 bits>]": {2**99: Custom()},
        "result": Custom(),
    }
    for place, value in cases.items():
        with pytest.raises(EncodeError) as info:
            encode(value, "result")
        name = "test_codec.test_an_error_names_the_place_in_the_value.<locals>.Custom"
        assert str(info.value) == (
            f"{place}: {name} cannot be sent back; convert it (list(), str(), a dict)"
        )


def test_shapes_refuse_ints_beyond_64_bits() -> None:
    """A remote's pid or file size is printed somewhere: an int of a million digits would
    take minutes to print."""
    assert check_shape({"size": 2**63 - 1}, {"size": int}, "R") == {"size": 2**63 - 1}
    with pytest.raises(ShapeError, match="malformed R field 'size': <an int of 6644 bits>"):
        check_shape({"size": 10**2000}, {"size": int}, "R")


stdlib_values = (
    st.datetimes(timezones=st.none() | st.timezones() | st.just(datetime.timezone.utc))
    | st.dates()
    | st.times()
    | st.timedeltas()
    | st.decimals(allow_nan=False)
    | st.uuids()
    | st.complex_numbers(allow_nan=False)
    | st.binary().map(bytearray)
    | st.text().map(pathlib.PurePosixPath)
    | st.fractions().map(lambda f: decimal.Decimal(f.numerator) / 7)
)


@given(st.lists(stdlib_values, max_size=5))
def test_stdlib_values_round_trip(values: list[object]) -> None:
    got = decode(encode(values))
    assert got == values and [type(v) for v in got] == [type(v) for v in values]
