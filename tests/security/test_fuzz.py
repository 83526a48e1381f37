"""Property-based fuzzing of the codec decoder and of the controller's frame reading path.

tests/core/test_codec.py feeds short random byte strings and bit flips to ``decode``; here the
inputs are shaped like the codec and the frame stream (valid opcodes and kinds with lying
counts and lengths, spliced encodings), and the frame reader is driven for real: a hostile agent
replays a hypothesis-made byte stream, cut at hypothesis-chosen points, into a real tunnel.
"""

from __future__ import annotations

import collections
import contextlib
import datetime
import decimal
import logging
import os
import pathlib
import struct
import uuid
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from hypothesis.extra import pandas as hpd

from chopsticks_nb import errors
from chopsticks_nb._agent import (
    HEADER,
    MAX_COST_PER_BYTE,
    MAX_DEPTH,
    MAX_SHARED_HASH,
    PROTOCOL_VERSION,
    DecodeError,
    EncodeError,
    Msg,
    Op,
    Tag,
    decode,
    encode,
)
from security.hostile import HostileTunnel

# -- the codec -----------------------------------------------------------------------------------

Pair = collections.namedtuple("Pair", "left right")
#: Ints that differ by multiples of this share a hash (hash(n) is n mod 2**61-1).
MERSENNE = 2**61 - 1
#: Ints of any size, up to ones too long to print (repr raises beyond 4300 digits).
huge_ints = st.integers(0, 20_000).map(lambda bits: 2**bits - 1) | st.integers(4300, 6000).map(
    lambda digits: -(10**digits)
)
#: A few ints sharing one hash (the codec refuses more than MAX_SHARED_HASH in one container).
colliding_ints = st.lists(st.integers(-12, 12), max_size=12).map(
    lambda ks: [7 + k * MERSENNE for k in ks]
)
stdlib_leaves = (
    st.datetimes(timezones=st.none() | st.just(datetime.timezone.utc) | st.timezones())
    | st.dates()
    | st.times()
    | st.timedeltas()
    | st.decimals()
    | st.uuids()
    | st.complex_numbers(allow_nan=False)
    | st.binary(max_size=8).map(bytearray)
    | st.text(max_size=8).map(pathlib.PurePosixPath)
)
leaves = (
    st.none() | st.booleans() | st.integers() | huge_ints | st.floats(allow_nan=False)
    | st.text(max_size=8) | st.binary(max_size=8) | stdlib_leaves
)  # fmt: skip
values = st.recursive(
    leaves,
    lambda children: (
        st.lists(children, max_size=6)
        | st.lists(children, max_size=6).map(tuple)
        | st.dictionaries(st.text(max_size=4) | st.integers(), children, max_size=6)
        | st.frozensets(st.integers() | st.text(max_size=4), max_size=6)
        | st.sets(st.binary(max_size=4), max_size=6)
        | st.builds(collections.OrderedDict, st.dictionaries(st.text(max_size=4), children))
        | st.builds(Pair, children, children)
    ),
    max_leaves=40,
)
OPCODES = [v for k, v in vars(Op).items() if k.isupper()]
TAGS = [v for k, v in vars(Tag).items() if k.isupper()]
u32 = st.one_of(st.integers(0, 8), st.integers(0, 2**32 - 1), st.sampled_from([2**31, 2**32 - 1]))


@st.composite
def codec_tokens(draw: st.DrawFn) -> bytes:
    """A stream of opcodes, each followed by plausible or lying counts, lengths and bytes."""
    out = bytearray([draw(st.sampled_from([1, 1, 1, 0, 2, 0x80]))])
    for _ in range(draw(st.integers(1, 30))):
        op = draw(st.sampled_from([*OPCODES, *OPCODES, 0x10, 0x7F, 0xFF]))
        out.append(op)
        if op in (Op.INT, Op.FLOAT, Op.COMPLEX):
            out += draw(st.binary(min_size=0, max_size=17))
        elif op in (Op.STR, Op.BYTES, Op.BIGINT, Op.LIST, Op.TUPLE, Op.DICT, Op.SET,
                    Op.FROZENSET, Op.BYTEARRAY):  # fmt: skip
            out += struct.pack(">I", draw(u32))
            if op in (Op.STR, Op.BYTES, Op.BIGINT, Op.BYTEARRAY):
                out += draw(st.binary(max_size=12))
        elif op == Op.EXT:  # a tag (known or not) and what follows: the state, a raw tail
            out.append(draw(st.sampled_from(TAGS) | st.integers(0, 255)))
    return bytes(out)


@given(codec_tokens())
@settings(max_examples=400)
def test_decoder_on_codec_shaped_garbage_raises_only_decode_error(data: bytes) -> None:
    """Injects: token streams of real and unknown opcodes with lying counts and lengths.
    Asserts: decode returns a value or raises DecodeError; nothing else."""
    with contextlib.suppress(DecodeError):
        decode(data)


@given(values, values, st.data())
@settings(max_examples=300)
def test_decoder_on_spliced_encodings_raises_only_decode_error(
    a: object, b: object, data: st.DataObject
) -> None:
    """Injects: two valid encodings spliced at random points, with bytes dropped, repeated or
    replaced. Asserts: a value or DecodeError, nothing else."""
    first, second = encode(a), encode(b)
    i = data.draw(st.integers(0, len(first)))
    j = data.draw(st.integers(0, len(second)))
    spliced = bytearray(first[:i] + second[j:])
    for _ in range(data.draw(st.integers(0, 3))):
        at = data.draw(st.integers(0, len(spliced)))
        action = data.draw(st.sampled_from(["drop", "repeat", "replace"]))
        if action == "drop":
            del spliced[at : at + data.draw(st.integers(1, 5))]
        elif action == "repeat":
            spliced[at:at] = spliced[at : at + data.draw(st.integers(1, 8))]
        else:
            spliced[at:at] = data.draw(st.binary(min_size=1, max_size=5))
    with contextlib.suppress(DecodeError):
        decode(bytes(spliced))


SMALL = [set(), {1}, {1, 2}, frozenset(), frozenset({None}), [], [None], {}, {0: None}, (),
         (None,), "", "ab", b"", 0, 2**40, 1.5, None, datetime.date(2020, 1, 1),
         decimal.Decimal("1"), uuid.UUID(int=5), 1j, bytearray(), Pair(1, 2),
         collections.OrderedDict(), np.int8(1), np.zeros(1), pd.NaT, pd.Timestamp(0)]  # fmt: skip


@given(st.lists(st.sampled_from(SMALL), min_size=1, max_size=3), st.integers(0, 250_000))
@example([set()], 250_000)  # refused by both sides
@example([{1, 2}, []], 250_000)  # accepted by both
@example([frozenset(), 0], 250_000)
@settings(max_examples=40, deadline=None)
def test_what_the_encoder_accepts_the_decoder_accepts(pattern: list[object], count: int) -> None:
    """Injects: values made of up to 250 000 small containers and scalars in repeating
    patterns, around the decoder's memory limit (MAX_COST_PER_BYTE). Asserts: the encoder
    refuses exactly what the decoder would: either encode raises EncodeError, or its output
    decodes to an equal value (a sending agent must learn that its result cannot travel; the
    receiver must never kill the tunnel over a value a real agent produced)."""
    value = [pattern[i % len(pattern)] for i in range(count)]
    try:
        data = encode(value)
    except EncodeError as exc:
        assert "small containers" in str(exc)
        return
    assert decode(data) == value


def test_the_memory_limit_refuses_only_pathological_values() -> None:
    """Control: ordinary large values are far below MAX_COST_PER_BYTE; only a flood of tiny
    containers reaches it, and then both sides refuse it."""
    ordinary: list[object] = [
        list(range(50_000)),
        [str(i) for i in range(50_000)],
        [(i, "x", 1.5) for i in range(30_000)],
        {str(i): [i] for i in range(30_000)},
        [set(range(i, i + 5)) for i in range(20_000)],
        [[] for _ in range(50_000)],
    ]
    for value in ordinary:
        assert decode(encode(value)) == value
    empty_sets: list[set[int]] = [set() for _ in range(50_000)]
    with pytest.raises(EncodeError, match="small containers"):
        encode(empty_sets)
    raw = b"\x01\x08" + struct.pack(">I", 50_000) + b"\x0b\x00\x00\x00\x00" * 50_000
    with pytest.raises(DecodeError, match="small containers"):
        decode(raw)
    assert MAX_COST_PER_BYTE == 16  # docs/reliability.md states this bound


@given(st.lists(colliding_ints, min_size=1, max_size=3), st.sampled_from(["set", "dict"]))
@settings(max_examples=60)
def test_keys_sharing_a_hash_are_refused_alike_by_both_sides(
    groups: list[list[int]], kind: str
) -> None:
    """Injects: sets and dicts of up to 12 ints sharing one hash, in a list, also as raw
    encodings (what a hostile agent would send, past the encoder). Asserts: the encoder
    refuses exactly the containers with more than MAX_SHARED_HASH keys of one hash, the
    decoder refuses their encodings with a DecodeError naming the offset, and accepts the
    others whole."""
    containers = [set(g) if kind == "set" else dict.fromkeys(g) for g in groups]
    too_many = any(
        max(collections.Counter(map(hash, c)).values(), default=0) > MAX_SHARED_HASH
        for c in containers
    )
    op = Op.SET if kind == "set" else Op.DICT
    raw = b"\x01" + bytes([Op.LIST]) + struct.pack(">I", len(containers))
    for container in containers:
        raw += bytes([op]) + struct.pack(">I", len(container))
        for key in container:
            raw += encode(key)[1:] + (b"\x00" if kind == "dict" else b"")
    if too_many:
        with pytest.raises(EncodeError, match="keys share one hash"):
            encode(containers)
        with pytest.raises(DecodeError, match=r"share one hash in the container at offset \d+"):
            decode(raw)
    else:
        assert decode(encode(containers)) == containers == decode(raw)


@given(st.integers(MAX_DEPTH - 5, MAX_DEPTH + 5), st.sampled_from(["list", "tagged", "dict"]))
def test_depth_is_refused_alike_by_both_sides(depth: int, kind: str) -> None:
    """Injects: a value nested ``depth`` levels, through lists, OrderedDicts (tagged values)
    or dicts, around MAX_DEPTH. Asserts: the encoder refuses it exactly when the decoder
    refuses its encoding as built without the encoder's check."""
    value: object = datetime.date(2020, 1, 1)
    for _ in range(depth):
        value = {"k": value} if kind == "dict" else [value]
        if kind == "tagged":
            value = collections.OrderedDict(k=value)
    try:
        data = encode(value)
    except EncodeError as exc:
        assert "nested deeper" in str(exc)
        return
    assert decode(data) == value


DTYPES = "? i1 <i2 >i4 <i8 u1 >u2 <u4 u8 <f2 >f4 <f8 <c8 >c16 <M8[ns] <M8[D] >m8[us] <U3 >U1 |S2"
dtypes = st.sampled_from(DTYPES.split()).map(np.dtype)
arrays = hnp.arrays(dtypes, hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=4))
frames = hpd.data_frames(
    [
        hpd.column("a", dtype=int),
        hpd.column("b", dtype=float),
        hpd.column("c", elements=st.none() | st.text(max_size=3)),
        hpd.column("d", dtype="datetime64[ns]"),
    ],
    index=hpd.range_indexes(max_size=5),
)


@given(arrays, st.booleans())
@settings(max_examples=150)
def test_arrays_round_trip(array: np.ndarray, fortran: bool) -> None:
    if fortran:
        array = np.asfortranarray(array)
    got = decode(encode(array))
    assert got.dtype == array.dtype and got.shape == array.shape
    assert got.tobytes(order="A") == array.tobytes(order="A")


@given(frames)
@settings(max_examples=40, deadline=None)
def test_frames_round_trip(frame: pd.DataFrame) -> None:
    pd.testing.assert_frame_equal(decode(encode(frame)), frame)


@given(st.one_of(values, arrays, frames), st.data())
@settings(max_examples=200, deadline=None)
def test_mutated_rich_encodings_raise_only_decode_error(value: object, data: st.DataObject) -> None:
    """Injects: the encoding of a rich value (tagged values, arrays, DataFrames) with bytes
    flipped, dropped or inserted. Asserts: a value, Unavailable, or DecodeError; nothing
    else (a constructor's own error is a DecodeError naming the tag and offset)."""
    encoded = bytearray(encode(value))
    for _ in range(data.draw(st.integers(1, 3))):
        at = data.draw(st.integers(0, len(encoded)))
        action = data.draw(st.sampled_from(["flip", "drop", "insert"]))
        if action == "flip" and at < len(encoded):
            encoded[at] ^= data.draw(st.integers(1, 255))
        elif action == "drop":
            del encoded[at : at + data.draw(st.integers(1, 4))]
        else:
            encoded[at:at] = data.draw(st.binary(min_size=1, max_size=4))
    with contextlib.suppress(DecodeError):
        decode(bytes(encoded))


@given(st.sampled_from(TAGS) | st.integers(0, 255), values, st.binary(max_size=16))
@settings(max_examples=300, deadline=None)
def test_tagged_values_of_any_state_raise_only_decode_error(
    tag: int, state: object, tail: bytes
) -> None:
    """Injects: every tag (and unknown ones) with any codec value as its state, and random
    bytes after it. Asserts: a value, Unavailable, or DecodeError; nothing else."""
    data = bytes([1, Op.EXT, tag]) + encode(state)[1:] + tail
    with contextlib.suppress(DecodeError):
        decode(data)


# -- the frame reader ----------------------------------------------------------------------------

KINDS = [v for k, v in vars(Msg).items() if k.isupper()]
READ_KINDS = [Msg.RESULT] * 3 + [Msg.ERROR] * 3 + [
    Msg.HELLO, Msg.STDOUT, Msg.STDERR, Msg.IMPORT, Msg.GET_DATA, Msg.FETCH_DATA]  # fmt: skip
HELLO = encode({"protocol": PROTOCOL_VERSION, "pid": 1, "version": [3, 11, 0]})
HELLO_FRAME = HEADER.pack(Msg.HELLO, 0, len(HELLO)) + HELLO


@st.composite
def frame_streams(draw: st.DrawFn) -> bytes:
    """What a hostile agent may write after MAGIC: frames with real and unknown kinds, the
    pending call's request id or others, codec values or junk as payloads, and lengths that
    may lie; sometimes a valid HELLO first, sometimes raw junk in between."""
    out = bytearray()
    if draw(st.booleans()) or draw(st.booleans()):
        out += HELLO_FRAME
    for _ in range(draw(st.integers(0, 6))):
        if draw(st.integers(0, 9)) == 0:
            out += draw(st.binary(min_size=1, max_size=40))
            continue
        # Mostly the kinds the controller reads, mostly for the pending call (request 1).
        kind = draw(st.sampled_from(READ_KINDS) | st.sampled_from(KINDS) | st.integers(0, 255))
        req_id = draw(st.sampled_from([1, 1, 1, 1, 0, 2]) | st.integers(0, 2**32 - 1))
        payload = draw(
            values.map(encode)
            | st.binary(max_size=64)
            | codec_tokens()
            | st.fixed_dictionaries(
                {"remote_path": st.text(max_size=5), "size": st.integers(), "sha1sum": st.text()}
            ).map(encode)
            | st.fixed_dictionaries(
                {
                    "kind": st.sampled_from(["exception", "cancelled", "encode"]),
                    "type": st.text(max_size=5),
                    "msg": st.text(max_size=5),
                }
            ).map(encode)
        )
        length = len(payload) + draw(st.sampled_from([0, 0, 0, 0, -1, 1]) | st.integers(-9, 99))
        out += HEADER.pack(kind, req_id, max(0, min(length, 2**32 - 1))) + payload
    return bytes(out)


class BrokerErrors(logging.Handler):
    """Collects what the broker thread logs: an exception there means a path the reader did
    not handle (a tunnel left hanging), which is what the fuzzing looks for."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@contextlib.contextmanager
def broker_errors() -> Iterator[BrokerErrors]:
    handler = BrokerErrors()
    logger = logging.getLogger("chopsticks_nb")
    logger.addHandler(handler)
    try:
        yield handler
    finally:
        logger.removeHandler(handler)


@given(stream=frame_streams(), cuts=st.lists(st.integers(0, 400), max_size=6), linger=st.booleans())
@example(stream=HELLO_FRAME + HEADER.pack(Msg.RESULT, 1, 2) + b"\x01\x7f", cuts=[], linger=False)
@example(stream=HELLO_FRAME + HEADER.pack(Msg.ERROR, 1, 3) + encode(1), cuts=[5], linger=True)
@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
def test_frame_reader_on_fuzzed_streams_fails_only_that_call_cleanly(
    tmp_path: Path, stream: bytes, cuts: list[int], linger: bool
) -> None:
    """Injects: a hypothesis-made byte stream after MAGIC, written by a hostile agent in
    hypothesis-chosen pieces (read apart by the controller), then EOF (or, with ``linger``,
    silence until the tunnel is closed). Asserts: the pending call ends with a value or a
    ChopsticksError (ProtocolError for what is outside the protocol) within 10 s - never
    another exception, never a hang, never an exception on the broker thread."""
    path = tmp_path / "stream"
    path.write_bytes(stream)
    tunnel = HostileTunnel(
        "fuzz", "replay", path=str(path), cuts=sorted(set(cuts)), linger=0.5 if linger else 0,
        connect_timeout=5,
    )  # fmt: skip
    with broker_errors() as logged:
        try:
            future = tunnel.submit(os.getpid)
            try:
                future.result(10)
            except errors.CallTimeout:
                if not linger:  # with EOF the outcome must be prompt
                    raise
            except errors.ChopsticksError:
                pass
        finally:
            tunnel.close()
    assert not logged.records, [r.getMessage() for r in logged.records]
