"""A hostile agent cannot run code on the controller, exhaust its memory, or disturb other tunnels.

Each test starts hostile_agent.py through a real tunnel (the same Connection, broker thread and
bootstrap bytes as a ``Local`` tunnel), has it send something outside the protocol, and checks
that exactly that tunnel ends with a ``ProtocolError`` naming its host, while real ``Local``
tunnels in the same group return their results. Memory is the RSS of this test process,
sampled every 5 ms while the hostile tunnel runs.
"""

from __future__ import annotations

import os
import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from reliability.probes import watch_rss

from chopsticks_nb import errors
from chopsticks_nb._agent import (
    HEADER,
    MAX_COST_PER_BYTE,
    MAX_DATA_FRAME,
    MAX_ITEMS,
    MAX_MESSAGE,
    PROTOCOL_VERSION,
    Msg,
    Op,
    Tag,
    encode,
)
from chopsticks_nb._writer import MAX_UNREAD_REPLIES
from chopsticks_nb.group import Group
from chopsticks_nb.result import ErrorResult
from chopsticks_nb.tunnel import Local
from security.hostile import HONEST_HELLO, HostileTunnel

#: Memory this process may gain while one hostile tunnel runs, on top of what the hostile
#: tunnel legitimately made us hold: the bytes it actually sent, decoded at up to
#: MAX_COST_PER_BYTE bytes of objects per byte (docs/reliability.md states this bound).
BASE_GROWTH_MIB = 48


@pytest.fixture(scope="module")
def honest() -> Iterator[Group]:
    """Two real local agents that share every group with a hostile one."""
    group = Group([Local("honest1"), Local("honest2")])
    group.connect()
    try:
        yield group
    finally:
        group.close()


def run_beside_honest(honest: Group, hostile: HostileTunnel) -> tuple[Any, float]:
    """Call os.getpid on the hostile tunnel and the honest ones at once; the hostile tunnel's
    outcome and the peak RSS growth (MiB) meanwhile. The honest tunnels must answer."""
    group = Group([hostile, *honest])
    try:
        with watch_rss() as peak:
            result = group.run(os.getpid, timeout=60)
    finally:
        hostile.close()
    for tunnel in honest:
        assert isinstance(result[tunnel.host], int), result  # the others keep working
    return result[hostile.host], peak.growth


def assert_protocol_error(outcome: object, host: str, match: str = "") -> errors.ProtocolError:
    assert isinstance(outcome, ErrorResult), outcome
    exc = outcome.exception
    assert isinstance(exc, errors.ProtocolError), repr(exc)
    assert exc.host == host and str(exc).startswith(f"{host}: ")
    assert match in str(exc), str(exc)
    return exc


def frame_hex(kind: int, payload: bytes, claimed: int | None = None) -> str:
    return (HEADER.pack(kind, 1, len(payload) if claimed is None else claimed) + payload).hex()


# -- no code runs ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "where", ["hello", "result", "result-after-version", "error", "import", "output"]
)
def test_a_pickle_from_the_agent_is_never_loaded(honest: Group, tmp_path: Path, where: str) -> None:
    """Injects: a pickle whose loading would create a marker file, as the HELLO, a RESULT, a
    RESULT after a valid codec version byte, an ERROR, an IMPORT request, or as output.
    Asserts: the marker never appears; every codec payload ends the tunnel with ProtocolError
    naming the host; output and a bytes value carry the pickle as inert data."""
    marker = tmp_path / "unpickled"
    hostile = HostileTunnel("evil", "pickle_everywhere", marker=str(marker), where=where)
    outcome, _ = run_beside_honest(honest, hostile)
    assert not marker.exists()
    if where == "output":
        assert isinstance(outcome, bytes) and outcome.startswith(b"\x80\x02")
    else:
        assert_protocol_error(outcome, "evil")


# -- malformed messages ------------------------------------------------------------------------


SETS = {"prefix": "01" + "08" + (1_000_000).to_bytes(4, "big").hex(), "repeat": "0b00000000",
        "times": 1_000_000}  # fmt: skip


def crafted(name: str, size: int) -> dict[str, Any]:
    """bad_reply's payload: the crafted value ``name`` of about ``size`` bytes (hostile_agent)."""
    return {"payload": {"crafted": name, "size": size}}


def tagged(tag: int, state: object, tail: bytes = b"") -> str:
    """The hex of a codec value: a tagged value of ``tag`` whose state is ``state``."""
    return (bytes([1, Op.EXT, tag]) + encode(state)[1:] + tail).hex()


def array(dtype: str, shape: tuple[int, ...], data: bytes, nbytes: int | None = None) -> str:
    state = (dtype, shape, "C", len(data) if nbytes is None else nbytes)
    return tagged(Tag.ARRAY, state, b"\x00" + data)


CASES: dict[str, tuple[str, dict[str, Any], int, str]] = {
    # name: (scenario, args, bytes the hostile side really sends, expected text)
    "length-over-limit": (
        "frame_header", {"length": MAX_MESSAGE + 1}, 0, "exceeds the"),
    "length-4GiB": (
        "frame_header", {"length": 2**32 - 1}, 0, "exceeds the"),
    "claims-500MiB-sends-64KiB": (
        "frame_header", {"length": 500 * 2**20, "send": 65536, "hold": 1.0}, 65536,
        "ended inside a message"),
    "bytes-claims-500MiB-sends-64KiB": (
        "raw_after_hello", {"data": {
            "prefix": (HEADER.pack(Msg.RESULT, 1, 500 * 2**20 + 6) + b"\x01\x07"
                       + (500 * 2**20).to_bytes(4, "big")).hex(),
            "repeat": "78", "times": 65536}}, 65536, "ended inside a message"),
    "output-frame-over-limit": (
        "raw_after_hello", {"data": HEADER.pack(Msg.STDOUT, 1, MAX_DATA_FRAME + 1).hex(),
                            "linger": True}, 0, "exceeds the"),
    "nested-1000-deep": (
        "bad_reply", {"payload": {"prefix": "01", "repeat": "0800000001", "times": 1000}},
        5000, "nested deeper"),
    "container-claims-4G-items": (
        "bad_reply", {"payload": "0108ffffffff"}, 6, "exceeds the data"),
    "container-over-item-limit": (
        "bad_reply", {"payload": {"prefix": "0108" + (MAX_ITEMS + 1).to_bytes(4, "big").hex(),
                                  "repeat": "00", "times": MAX_ITEMS + 1}},
        MAX_ITEMS + 7, "exceeds the data or the limit"),
    "1M-empty-sets": (
        "bad_reply", {"payload": SETS}, 5_000_006, "too many small containers"),
    "unknown-opcode": (
        "bad_reply", {"payload": "017f"}, 2, "unknown opcode 0x7f"),
    "wrong-codec-version": (
        "bad_reply", {"payload": "0700"}, 2, "unsupported codec version"),
    "invalid-utf8": (
        "bad_reply", {"payload": "010600000001ff"}, 7, "invalid UTF-8"),
    "unhashable-member": (
        "bad_reply", {"payload": "010b00000001" + "0800000000"}, 11, "unhashable"),
    "bytes-after-value": (
        "bad_reply", {"payload": "010000"}, 3, "unexpected bytes"),
    "unknown-message-kind": (
        "bad_reply", {"kind": 99, "payload": encode(1).hex()}, 10, "unexpected message kind 99"),
    "error-record-not-a-dict": (
        "bad_reply", {"kind": Msg.ERROR, "payload": encode([1, 2]).hex()}, 20,
        "malformed ERROR: a list, not a dict"),
    "error-record-bad-field": (
        "bad_reply", {"kind": Msg.ERROR, "payload": encode(
            {"type": "E", "msg": 5, "tb": None, "kind": "exception"}).hex()}, 80,
        "malformed ERROR field 'msg': an int, not str"),
    "error-record-missing-field": (
        "bad_reply", {"kind": Msg.ERROR, "payload": encode({"msg": "m"}).hex()}, 20,
        "malformed ERROR: no field 'type'"),
    "hello-again": (
        "bad_reply", {"kind": Msg.HELLO, "payload": encode(HONEST_HELLO).hex()}, 200,
        "a second handshake"),
    "hello-bad-field": (
        "wrong_hello", {"hello": dict(HONEST_HELLO, pid="1")}, 200,
        "malformed HELLO field 'pid': a str, not int"),
    "truncated-frame": (
        "raw_after_hello", {"data": frame_hex(Msg.RESULT, encode(b"x" * 100))[:-100]}, 60,
        "ended inside a message"),
    "truncated-header": (
        "raw_after_hello", {"data": frame_hex(Msg.RESULT, b"")[:10]}, 5,
        "ended inside a message"),
    "wrong-protocol-version": (
        "wrong_hello", {"hello": {"protocol": 999, "pid": 1}}, 20,
        f"unsupported HELLO field 'protocol' 999 (this side speaks {PROTOCOL_VERSION})"),
    "hello-not-a-dict": (
        "wrong_hello", {"hello": [1, 2, 3]}, 20, "malformed HELLO: a list, not a dict"),
    "hello-pid-too-long-to-print": (
        "wrong_hello", {"hello": {"hex": encode(dict(HONEST_HELLO, pid=10**5000)).hex()}}, 2300,
        "malformed HELLO field 'pid': <an int of 16610 bits>"),
    # -- CPU: keys sharing a hash, refused before they are inserted
    "1MB-set-of-colliding-ints": (
        "bad_reply", crafted("colliding-ints-set", 1_000_000), 1_070_000,
        "71427 set members share one hash in the container at offset 1 (the limit is 8)"),
    "1MB-dict-of-colliding-int-keys": (
        "bad_reply", crafted("colliding-ints-dict", 1_000_000), 1_140_000,
        "71427 dict keys share one hash"),
    "1MB-set-of-colliding-tuples-of-small-ints": (
        "bad_reply", crafted("colliding-pairs-set", 1_000_000), 1_000_000,
        "43479 set members share one hash"),
    "set-of-colliding-frozensets": (
        "bad_reply", crafted("colliding-frozensets", 100_000), 130_000,
        "set members share one hash"),
    # -- CPU: tagged values that cost more to build than their bytes
    "namedtuple-type-per-value": (
        "bad_reply", crafted("namedtuple-types", 1_000_000), 1_060_000,
        "too many namedtuple types for its size"),
    "tiny-dataframes": (
        "bad_reply", crafted("tiny-frames", 1_000_000), 1_000_000,
        "too many pandas objects for its size"),
    "tags-nested-too-deep": (
        "bad_reply", crafted("deep-tags", 0), 830, "nested deeper than 100"),
    # -- tagged values outside their closed shapes
    "unknown-tag": (
        "bad_reply", {"payload": tagged(200, None)}, 4, "unknown value tag 200"),
    "dtype-object": (
        "bad_reply", {"payload": array("|O8", (1,), bytes(8))}, 40, "unsupported dtype '|O8'"),
    "dtype-structured": (
        "bad_reply", {"payload": array("|V8", (1,), bytes(8))}, 40, "unsupported dtype '|V8'"),
    "array-shape-claims-8-GB": (
        "bad_reply", {"payload": array("<f8", (10**9,), bytes(8))}, 40,
        "its shape and dtype take 8000000000 bytes, not 8"),
    "array-claims-more-bytes-than-sent": (
        "bad_reply", {"payload": array("<f8", (10**6,), bytes(8), nbytes=8 * 10**6)}, 40,
        "truncated value: need 8000000 bytes"),
    "array-of-zero-width-items": (
        "bad_reply", {"payload": array("<U0", (10**9,), b"")}, 40, "1000000000 items in 0 bytes"),
    "bool-array-holding-2": (
        "bad_reply", {"payload": array("|b1", (2,), b"\x01\x02")}, 40,
        "a bool array holding values other than 0 and 1"),
    "str-array-beyond-unicode": (
        "bad_reply", {"payload": array("<U1", (1,), (0x110000).to_bytes(4, "little"))}, 40,
        "a str array holding values beyond U+10FFFF"),
    "namedtuple-named-like-a-dunder": (
        "bad_reply", {"payload": tagged(Tag.NAMEDTUPLE, ("__class__", ("a",), (1,)))}, 40,
        "malformed namedtuple '__class__'"),
    "namedtuple-field-with-code": (
        "bad_reply", {"payload": tagged(Tag.NAMEDTUPLE, ("P", ("a=os.system('x')",), (1,)))},
        50, "malformed namedtuple 'P'"),
    "zone-key-leaving-the-database": (
        "bad_reply", {"payload": tagged(Tag.ZONEINFO, "../../../etc/passwd")}, 30,
        "malformed time zone key '../../../etc/passwd'"),
    "decimal-that-is-code": (
        "bad_reply", {"payload": tagged(Tag.DECIMAL, "__import__('os')")}, 30,
        "malformed Decimal"),
    "datetime-out-of-range": (
        "bad_reply", {"payload": tagged(Tag.DATETIME, (bytes(12), None))}, 30,
        "invalid value of tag 1 at offset 1: ValueError"),
    "categories-that-repeat": (
        "bad_reply", {"payload": tagged(Tag.PD_CATEGORICAL, (None, None, False))}, 30,
        "malformed Categorical: codes that are not an int array"),
}  # fmt: skip


@pytest.mark.parametrize("case", list(CASES))
def test_malformed_message_ends_only_that_tunnel(honest: Group, case: str) -> None:
    """Injects: the malformed message named by ``case`` (huge or lying lengths, deep nesting,
    enormous containers, unknown opcodes and kinds, truncation, a wrong protocol version...).
    Asserts: ProtocolError naming the host, saying what was wrong; the honest tunnels of the
    same group answer; RSS grows by less than BASE_GROWTH_MIB + MAX_COST_PER_BYTE x the bytes
    really sent."""
    scenario, args, sent, match = CASES[case]
    outcome, growth = run_beside_honest(honest, HostileTunnel("evil", scenario, **args))
    assert_protocol_error(outcome, "evil", match)
    bound = BASE_GROWTH_MIB + MAX_COST_PER_BYTE * sent / 2**20
    print(f"{case}: RSS growth {growth:.1f} MiB (bound {bound:.0f} MiB)")
    assert growth < bound, f"RSS grew {growth:.0f} MiB (bound {bound:.0f} MiB)"


def test_garbage_after_the_handshake(honest: Group) -> None:
    """Injects: 16 KiB of random bytes (fixed seeds) right after the handshake, then exit.
    Asserts: ProtocolError naming the host each time; the honest tunnels answer."""
    for seed in range(3):
        garbage = random.Random(seed).randbytes(16384)
        outcome, growth = run_beside_honest(
            honest, HostileTunnel("evil", "raw_after_hello", data=garbage.hex())
        )
        assert_protocol_error(outcome, "evil")
        assert growth < BASE_GROWTH_MIB


def test_noise_without_a_handshake(honest: Group, tmp_path: Path) -> None:
    """Injects: 100 KiB of output and never the MAGIC that starts the protocol.
    Asserts: ProtocolError after 64 KiB of noise, naming the host."""
    noise = tmp_path / "noise"
    noise.write_bytes(b"login banner\n" * 8000)
    hostile = HostileTunnel("evil", "replay", path=str(noise), cuts=[], magic=False, linger=30)
    outcome, _ = run_beside_honest(honest, hostile)
    assert_protocol_error(outcome, "evil", "no chopsticks_nb handshake")


def test_an_agent_flooding_requests_without_reading_is_cut_off(honest: Group) -> None:
    """Injects: 100 000 IMPORT requests for a 40 KB module, sent without ever reading the
    answers (4 GB of replies if all were queued). Asserts: once MAX_UNREAD_REPLIES (64 MiB) of
    answers wait unread the tunnel ends with ProtocolError; RSS grows < 64 MiB + BASE bound;
    the honest tunnels answer."""
    hostile = HostileTunnel("evil", "import_flood", module="chopsticks_nb._agent", count=100_000)
    outcome, growth = run_beside_honest(honest, hostile)
    assert_protocol_error(outcome, "evil", "does not read its input")
    print(f"import flood: RSS growth {growth:.1f} MiB")
    assert growth < BASE_GROWTH_MIB + MAX_UNREAD_REPLIES / 2**20


def test_a_well_behaved_fake_agent_is_accepted(honest: Group) -> None:
    """Control: the same hostile harness answering correctly gives the value it sent."""
    outcome, _ = run_beside_honest(honest, HostileTunnel("fake", "well_behaved", value=[1, "a"]))
    assert outcome == [1, "a"]


def test_a_result_too_large_to_print_does_not_break_the_result_repr() -> None:
    """Injects: a remote returning an int of 5000 digits (more than Python will convert to
    text) alone and inside a list. Asserts: the GroupResult's repr still works and says what
    the values are; the values themselves are intact."""
    big = 10**5000
    group = Group(
        [
            HostileTunnel("bigint", "well_behaved", value={"hex": encode(big).hex()}),
            HostileTunnel("biglist", "well_behaved", value={"hex": encode([big]).hex()}),
        ]
    )
    try:
        result = group.call(os.getpid)
    finally:
        group.close()
    assert result["bigint"] == big and result["biglist"] == [big]
    text = repr(result)
    assert "'bigint': <int of about 5001 digits>" in text
    assert "'biglist': [<int of about 5001 digits>]" in text


def test_categories_crafted_to_collide_in_pandas_hash_tables_are_checked_by_sorting(
    honest: Group,
) -> None:
    """Injects: a Categorical of 400 000 int64 categories that all share one hash in pandas'
    hash tables (its check that categories are unique would take hours), shuffled. Asserts:
    the value arrives (uniqueness is checked by sorting, and pandas does not check again); the
    honest tunnels answer."""
    hostile = HostileTunnel(
        "evil", "well_behaved_crafted", crafted="khash-categories", size=3_200_000
    )
    outcome, _ = run_beside_honest(honest, hostile)
    assert type(outcome).__name__ == "Categorical", outcome
    assert len(outcome.categories) == 400_000


@pytest.mark.parametrize("exits", [False, True], ids=["waits", "exits"])
def test_what_a_remote_printed_instead_of_starting_is_shown(exits: bool) -> None:
    """Injects: a remote that prints a banner holding terminal escape sequences on stdout and a
    line on stderr, and never starts the agent: it waits (past the connect timeout) or exits
    with status 1 (a login banner, a wrapper's message). Asserts: ConnectTimeout, or
    ConnectError, whose message shows what it printed on both, escaped (no raw escape
    character reaches the message)."""
    args: dict[str, Any] = {
        "stdout": b"Welcome to \x1b[2Jevil\r\n".hex(),
        "stderr": b"motd: \x1b]0;pwned\x07 hi\n".hex(),
    }
    if exits:
        args["exit"] = 1
    tunnel = HostileTunnel("noisy", "banner", connect_timeout=2, **args)
    try:
        with pytest.raises(errors.ConnectError) as caught:
            tunnel.connect()
    finally:
        tunnel.close()
    text = str(caught.value)
    assert isinstance(caught.value, errors.ConnectTimeout) is not exits, text
    assert "it printed 'Welcome to \\x1b[2Jevil\\r\\n'" in text
    assert "motd: \\x1b]0;pwned\\x07 hi" in text
    assert "\x1b" not in text and "\x07" not in text
