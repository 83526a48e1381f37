"""A hostile agent: it speaks the chopsticks_nb protocol, badly on purpose.

Run by :class:`security.hostile.HostileTunnel` as ``python hostile_agent.py SCENARIO ARGS -c
STAGE1``, in place of a real remote ``python3 -c STAGE1``. Like the real stage 1 it reads the
compressed agent (its length is in the stage-1 program text) and the CONFIG frame, then, instead
of running the agent, it plays SCENARIO: it writes MAGIC and frames it crafts with the controller's
own HEADER and codec, and reads what the controller sends back. ARGS is a JSON object.

Nothing here is a mock of the controller: the controller under test is the real one, talking to
this process through real pipes.
"""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import random
import re
import select
import signal
import sys
import time
from typing import Any, Callable

from chopsticks_nb._agent import (
    CHILD_WINDOW,
    DATETIME_PARTS,
    HEADER,
    MAGIC,
    MAX_DEPTH,
    PROTOCOL_VERSION,
    U32,
    Msg,
    Op,
    Tag,
    decode,
    encode,
)

Args = dict[str, Any]


class Wire:
    """The agent's side of the pipes: fd 0 from the controller, fd 1 to it."""

    def __init__(self) -> None:
        self.pending = b""

    def read_exact(self, n: int) -> bytes:
        while len(self.pending) < n:
            chunk = os.read(0, max(65536, n - len(self.pending)))
            if not chunk:
                raise EOFError("the controller closed the pipe")
            self.pending += chunk
        data, self.pending = self.pending[:n], self.pending[n:]
        return data

    def read_frame(self) -> tuple[int, int, bytes]:
        kind, req_id, length = HEADER.unpack(self.read_exact(HEADER.size))
        return kind, req_id, self.read_exact(length)

    def expect(self, *kinds: int) -> tuple[int, int, bytes]:
        """The next frame of one of ``kinds``, skipping keepalive pings and anything else."""
        while True:
            message = self.read_frame()
            if message[0] in kinds:
                return message

    def write(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            view = view[os.write(1, view) :]

    def send(self, kind: int, req_id: int, payload: bytes = b"") -> None:
        self.write(HEADER.pack(kind, req_id, len(payload)) + payload)

    def hello(self, **overrides: Any) -> None:
        info = {
            "protocol": PROTOCOL_VERSION,
            "version": list(sys.version_info[:3]),
            "implementation": sys.implementation.name,
            "pid": os.getpid(),
            "executable": sys.executable,
            "platform": sys.platform,
            "hostname": "hostile",
            "depth": 1,
            "cloudpickle": None,
        }
        info.update(overrides)
        self.write(MAGIC)
        self.send(Msg.HELLO, 0, encode(info))

    def next_call(self) -> int:
        """Wait for the controller's next call (in any of its frame kinds); its request id."""
        return self.expect(*CALLS)[1]

    def ask(self, kind: int, req_id: int, payload: bytes) -> object:
        """Send an IMPORT / GET_DATA request and return the decoded REPLY."""
        self.send(kind, req_id, payload)
        while True:
            got_kind, got_id, reply = self.read_frame()
            if got_kind == Msg.REPLY and got_id == req_id:
                return decode(reply)


#: The frame kinds a call comes in (a connection's first plain call: CALL_CODEC).
CALLS = (Msg.CALL, Msg.CALL_CODEC, Msg.CALL_BLOBS)


class Bomb:
    """Unpickling this creates the marker file: proof that a pickle was loaded."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, ...]:
        return (open, (self.marker, "w"))


def linger(seconds: float = 30.0) -> None:
    """Stay alive, reading (and dropping) whatever the controller sends, until EOF."""
    deadline = time.monotonic() + seconds
    try:
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return
            if select.select([0], [], [], left)[0] and not os.read(0, 65536):
                return
    except OSError:
        return


# -- scenarios --------------------------------------------------------------------------------


def payload_of(spec: Any) -> bytes:
    """Bytes from hex, or for big payloads (a command line cannot carry megabytes) a dict:
    ``{"prefix": hex, "repeat": hex, "times": n}``, ``{"random": seed, "size": n}`` (the
    bytes of ``random.Random(seed).randbytes(n)``) or ``{"crafted": name, "size": n}`` (see
    CRAFTED), then optionally cut to ``"cut"`` bytes and followed by ``"suffix"`` (hex)."""
    if isinstance(spec, str):
        return bytes.fromhex(spec)
    if "crafted" in spec:
        data = b"\x01" + CRAFTED[spec["crafted"]](spec["size"])
    elif "random" in spec:
        data = random.Random(spec["random"]).randbytes(spec["size"])
    else:
        data = bytes.fromhex(spec.get("prefix", "")) + bytes.fromhex(spec["repeat"]) * spec["times"]
    return data[: spec.get("cut", len(data))] + bytes.fromhex(spec.get("suffix", ""))


# -- crafted values: valid encodings whose building would cost the controller dearly ------------

#: Ints that differ by multiples of this share a hash: hash(n) is n mod 2**61-1.
MERSENNE = 2**61 - 1


def _value(op: int, count: int, items: list[bytes]) -> bytes:
    return bytes([op]) + U32.pack(count) + b"".join(items)


def _container(op: int, items: list[bytes]) -> bytes:
    return _value(op, len(items), items)


def _ext(tag: int, state: bytes) -> bytes:
    return bytes([Op.EXT, tag]) + state


def _colliding_ints(size: int) -> list[bytes]:
    """Encoded ints of one hash (big ints: 14 bytes each), about ``size`` bytes of them."""
    return [encode(5 + k * MERSENNE)[1:] for k in range(1, size // 14)]


def _colliding_pairs(size: int) -> list[bytes]:
    """Encoded 2-tuples of small ints that share one hash under CPython 3.8+'s tuple hash (an
    xxHash round per item: invertible, so a second item can be solved for any first one)."""
    p1, p2, p5, mask = 11400714785074694791, 14029467366897019727, 2870177450012600261, 2**64 - 1

    def rotl(x: int, r: int) -> int:
        return ((x << r) | (x >> (64 - r))) & mask

    target = hash((1, 2)) & mask
    after_lane = ((target - (2 ^ (p5 ^ 3527539))) * pow(p1, -1, 2**64)) & mask
    before_rotation = rotl(after_lane, 64 - 31)
    pairs = []
    a = 0
    while len(pairs) * 23 < size:
        acc = (rotl((p5 + hash(a) * p2) & mask, 31) * p1) & mask
        lane = ((before_rotation - acc) * pow(p2, -1, 2**64)) & mask
        b = lane - 2**64 if lane >= 2**63 else lane
        if -MERSENNE < b < MERSENNE and b != -1:
            assert hash((a, b)) == hash((1, 2))
            pairs.append(_value(Op.TUPLE, 2, [encode(a)[1:], encode(b)[1:]]))
        a += 1
    return pairs


def _khash_colliding_int64(count: int) -> list[int]:
    """int64 values that share one hash in pandas' hash tables (klib's int64 hash,
    (k >> 33) ^ k ^ (k << 11) cut to 32 bits, is linear over the bits: its kernel is large),
    shuffled so that they are not sorted."""

    def khash(k: int) -> int:
        return ((k >> 33) ^ k ^ (k << 11)) & 0xFFFFFFFF

    pivots: dict[int, tuple[int, int]] = {}
    kernel = []
    for bit in range(63):
        value, combination = khash(1 << bit), 1 << bit
        while value:
            top = value.bit_length() - 1
            if top not in pivots:
                pivots[top] = (value, combination)
                break
            value ^= pivots[top][0]
            combination ^= pivots[top][1]
        else:
            kernel.append(combination)
    values = []
    for number in range(count):
        value = 0
        for index, vector in enumerate(kernel):
            if number >> index & 1:
                value ^= vector
        values.append(value)
    random.Random(0).shuffle(values)
    return values


def _array(dtype: str, shape: tuple[int, ...], data: bytes, nbytes: int | None = None) -> bytes:
    state = encode((dtype, shape, "C", len(data) if nbytes is None else nbytes))[1:]
    return _ext(Tag.ARRAY, state) + b"\x00" + data


def _index_of(values: bytes) -> bytes:
    return _ext(Tag.PD_INDEX, _value(Op.TUPLE, 4, [encode("values")[1:], values, b"\x00",
                                                   b"\x00"]))  # fmt: skip


def _categorical(size: int) -> bytes:
    count = size // 8
    categories = b"".join(n.to_bytes(8, "little") for n in _khash_colliding_int64(count))
    codes = _array("<i4", (count,), b"".join(n.to_bytes(4, "little") for n in range(count)))
    state = _value(Op.TUPLE, 3, [codes, _index_of(_array("<i8", (count,), categories)),
                                 b"\x02"])  # fmt: skip
    return _ext(Tag.PD_CATEGORICAL, state)


def _namedtuple_types(size: int) -> bytes:
    items = []
    for number in range(size // 40):
        state = encode((f"T{number}", ("a",), (1,)))[1:]
        items.append(_ext(Tag.NAMEDTUPLE, state))
    return _value(Op.LIST, len(items), items)


def _tiny_frames(size: int) -> bytes:
    empty = _index_of(_array("<i8", (0,), b""))
    state = _value(Op.TUPLE, 3, [empty, empty, _value(Op.LIST, 0, [])])
    frame = _ext(Tag.PD_FRAME, state)
    return _value(Op.LIST, size // len(frame), [frame] * (size // len(frame)))


def _deep_tags(size: int) -> bytes:
    inner = _ext(Tag.DATETIME, encode((DATETIME_PARTS.pack(2020, 1, 1, 0, 0, 0, 0, 0), None))[1:])
    for _ in range(MAX_DEPTH):
        inner = _ext(Tag.ORDERED_DICT, _value(Op.DICT, 1, [b"\x00", inner]))
    return inner


#: Valid or nearly valid encodings (after the codec version byte) of about ``size`` bytes,
#: by name: see bad_reply.
CRAFTED: dict[str, Callable[[int], bytes]] = {
    "colliding-ints-set": lambda size: _container(Op.SET, _colliding_ints(size)),
    "colliding-ints-dict": lambda size: _container(
        Op.DICT, [item + b"\x00" for item in _colliding_ints(size)]
    ),
    "colliding-pairs-set": lambda size: _container(Op.SET, _colliding_pairs(size)),
    "colliding-frozensets": lambda size: _container(
        Op.SET, [_value(Op.FROZENSET, 1, [item]) for item in _colliding_ints(size)]
    ),
    "khash-categories": _categorical,
    "namedtuple-types": _namedtuple_types,
    "tiny-frames": _tiny_frames,
    "deep-tags": _deep_tags,
}


def bad_reply(wire: Wire, args: Args) -> None:
    """Answer the first CALL with a frame of kind ``args["kind"]`` (RESULT by default) and
    payload ``args["payload"]`` (see payload_of); then exit, or stay alive if ``args["linger"]``."""
    payload = payload_of(args["payload"])  # made before: the answer is prompt
    req_id = wire.next_call()
    wire.send(args.get("kind", Msg.RESULT), req_id, payload)
    if args.get("linger"):
        linger()


def pickle_everywhere(wire: Wire, args: Args) -> None:
    """A pickle that would create ``args["marker"]``, in every payload the controller reads."""
    bomb = pickle.dumps(Bomb(args["marker"]), protocol=2)
    where = args["where"]
    if where == "hello":
        wire.write(MAGIC)
        wire.send(Msg.HELLO, 0, bomb)
        linger()
        return
    wire.hello()
    req_id = wire.next_call()
    if where == "output":  # raw bytes: shown as text, never loaded
        wire.send(Msg.STDOUT, req_id, bomb)
        wire.send(Msg.RESULT, req_id, encode(bomb))  # a pickle as a bytes value, returned as is
        linger()
        return
    kinds = {"result": Msg.RESULT, "error": Msg.ERROR, "import": Msg.IMPORT}
    prefix = b"\x01" if where == "result-after-version" else b""
    wire.send(kinds.get(where, Msg.RESULT), req_id, prefix + bomb)
    linger()


def frame_header(wire: Wire, args: Args) -> None:
    """A RESULT header claiming ``args["length"]`` bytes, followed by ``args["send"]`` bytes;
    then stay alive ``args["hold"]`` seconds and exit (the frame is never completed)."""
    req_id = wire.next_call()
    wire.write(HEADER.pack(Msg.RESULT, req_id, args["length"]) + b"\x01" * args.get("send", 0))
    linger(args.get("hold", 0.0))


def raw_after_hello(wire: Wire, args: Args) -> None:
    """After the handshake and the first CALL, write ``args["data"]`` (see payload_of) and
    exit, or stay alive if ``args["linger"]``."""
    wire.next_call()
    wire.write(payload_of(args["data"]))
    if args.get("linger"):
        linger()


def wrong_hello(wire: Wire, args: Args) -> None:
    """A handshake with a HELLO payload given as a codec value in ``args["hello"]``, or as
    its encoding in hex (``{"hex": ...}``) or built (``{"encoded": spec}``, see encoded):
    values JSON cannot carry; then answer every call with None."""
    hello = args["hello"]
    payload = bytes.fromhex(hello["hex"]) if "hex" in hello else encoded(hello)
    wire.write(MAGIC)
    wire.send(Msg.HELLO, 0, payload)
    while True:
        wire.send(Msg.RESULT, wire.next_call(), encode(None))


def probe_requests(wire: Wire, args: Args) -> None:
    """On the first CALL, send each request of ``args["requests"]`` (``[kind, value]`` with
    value a JSON string, or ``{"hex": ...}`` for a raw payload) and return the decoded replies
    as the call's RESULT."""
    req_id = wire.next_call()
    replies = []
    for number, (kind, value) in enumerate(args["requests"], start=1):
        kind = {"import": Msg.IMPORT, "data": Msg.GET_DATA}[kind]
        payload = bytes.fromhex(value["hex"]) if isinstance(value, dict) else encode(value)
        replies.append(wire.ask(kind, 1000 + number, payload))
    wire.send(Msg.RESULT, req_id, encode(replies))
    linger()


def fetch_reply(wire: Wire, args: Args) -> None:
    """Answer each FETCH with ``args["data"]`` (see payload_of) in chunks, then a RESULT whose
    size and sha1 may lie (``args["size"]``, ``args["sha1"]``; the true ones when absent), or
    the codec value ``args["result"]`` instead of a transfer result (``{"encoded": spec}``:
    the encoding given as payload_of takes it, for values JSON cannot carry)."""
    data = payload_of(args["data"])
    while True:
        _, req_id, _ = wire.expect(Msg.FETCH)
        for start in range(0, len(data), 65536):
            wire.send(Msg.FETCH_DATA, req_id, data[start : start + 65536])
        result = {
            "remote_path": "/hostile",
            "size": args.get("size", len(data)),
            "sha1sum": args.get("sha1", hashlib.sha1(data).hexdigest()),
        }
        wire.send(Msg.RESULT, req_id, encoded(args.get("result", result)))


def encoded(value: Any) -> bytes:
    """The codec encoding of a JSON value, or of ``{"encoded": spec}``: payload_of(spec)."""
    if isinstance(value, dict) and set(value) == {"encoded"}:
        return payload_of(value["encoded"])
    return encode(value)


def error_reply(wire: Wire, args: Args) -> None:
    """Answer every CALL with the ERROR record ``args["record"]`` (see encoded)."""
    payload = encoded(args["record"])
    while True:
        wire.send(Msg.ERROR, wire.next_call(), payload)


def deaf(wire: Wire, args: Args) -> None:
    """Answer calls with None, and when the controller closes stdin, do not exit: note the
    time in ``args["log"]`` (a line ``eof T``), and on SIGTERM note it too (``term T``) and
    exit: a remote that ignores EOF, as a hung host or a wrapper that keeps the session does."""
    log = args["log"]

    def note(event: str) -> None:
        with open(log, "a") as f:
            f.write(f"{event} {time.time()!r}\n")

    def on_term(signum: int, frame: object) -> None:
        note("term")
        os._exit(0)

    signal.signal(signal.SIGTERM, on_term)
    try:
        while True:
            wire.send(Msg.RESULT, wire.next_call(), encode(None))
    except EOFError:
        note("eof")
    while True:
        time.sleep(60)


def banner(wire: Wire, args: Args) -> None:
    """Never start the agent: print ``args["stdout"]`` and ``args["stderr"]`` (hex), then exit
    with status ``args["exit"]``, or stay if it is absent (a login banner, a wrapper's message)."""
    wire.write(bytes.fromhex(args.get("stdout", "")))
    os.write(2, bytes.fromhex(args.get("stderr", "")))
    if "exit" in args:
        sys.exit(args["exit"])
    linger()


def import_flood(wire: Wire, args: Args) -> None:
    """On the first CALL, ask for module ``args["module"]`` ``args["count"]`` times without
    ever reading an answer: the controller must not queue every reply in memory."""
    wire.next_call()
    payload = encode(args["module"])
    batch = (HEADER.pack(Msg.IMPORT, 7, len(payload)) + payload) * 256
    for _ in range(args["count"] // 256):
        wire.write(batch)
    linger()


def request_flood(wire: Wire, args: Args) -> None:
    """On the first CALL, ask for modules that do not exist (``args["names"]`` different
    names, over and over) as fast as the controller answers, reading the answers so as never
    to leave more than ``args["window"]`` unanswered, until the controller closes the pipe.
    The call is never answered."""
    wire.next_call()
    payloads = [encode(f"no_such_module_{i}") for i in range(args["names"])]
    window = args.get("window", 8192)
    sent = answered = 0
    while True:
        batch = []
        while sent - answered < window:
            payload = payloads[sent % len(payloads)]
            batch.append(HEADER.pack(Msg.IMPORT, 1 + sent % 65536, len(payload)) + payload)
            sent += 1
        wire.write(b"".join(batch))
        while sent - answered > window // 2:
            if wire.read_frame()[0] == Msg.REPLY:
                answered += 1


def replay(wire: Wire, args: Args) -> None:
    """Write the file ``args["path"]`` after MAGIC, in the chunks ``args["cuts"]`` marks, with
    a short pause between chunks so the controller reads them apart; then exit."""
    with open(args["path"], "rb") as f:
        data = f.read()
    if args.get("magic", True):
        wire.write(MAGIC)
    start = 0
    for cut in [*args["cuts"], len(data)]:
        if cut > start:
            wire.write(data[start:cut])
            time.sleep(0.002)
            start = cut
    if args.get("linger"):
        linger(args["linger"])


def well_behaved(wire: Wire, args: Args) -> None:
    """Answer every CALL with RESULT ``args["value"]`` (a positive control), or with the
    encoded value ``{"hex": ...}`` or ``{"encoded": spec}`` (values JSON cannot carry)."""
    value = args.get("value")
    if isinstance(value, dict) and "hex" in value:
        payload = bytes.fromhex(value["hex"])
    else:
        payload = encoded(value)
    while True:
        req_id = wire.next_call()
        wire.send(Msg.RESULT, req_id, payload)


def well_behaved_crafted(wire: Wire, args: Args) -> None:
    """Answer every CALL with the crafted value ``args["crafted"]`` of ``args["size"]`` bytes."""
    payload = payload_of({"crafted": args["crafted"], "size": args["size"]})
    well_behaved(wire, {"value": {"hex": payload.hex()}})


def unread(wire: Wire, args: Args) -> None:
    """Answer the handshake, then read nothing more, for ``args["seconds"]`` or until the
    controller closes the pipe (a hang-up, seen without reading)."""
    poller = select.poll()
    poller.register(0, select.POLLHUP)
    deadline = time.monotonic() + args.get("seconds", 30)
    while time.monotonic() < deadline:
        if poller.poll(100):
            return


def hostile_relay(wire: Wire, args: Args) -> None:
    """Play a relay that misbehaves once asked to start its first child (``args["misdeed"]``):
    output for a child never started (``unstarted``), more output than the window allows
    (``overflow``), an output frame over the size limit (``oversized``), an acknowledgement of
    input never sent (``overack``), an exit record of the wrong shape (``bad_exit``), or the
    child's agent forged: a handshake, then a pickle that would create ``args["marker"]`` as
    the answer to its first call (``forged``)."""
    _, child, start = wire.expect(Msg.CHILD_START)
    misdeed = args["misdeed"]
    if misdeed == "unstarted":
        wire.send(Msg.CHILD_STDOUT, child + 5, b"x")
    elif misdeed == "overflow":  # no acknowledgement can come between: nothing was taken
        wire.send(Msg.CHILD_STDOUT, child, b"\0" * (CHILD_WINDOW // 4 - 1))
        wire.send(Msg.CHILD_STDOUT, child, b"\0" * (CHILD_WINDOW * 3 // 4 + 2))
    elif misdeed == "oversized":
        wire.send(Msg.CHILD_STDOUT, child, b"\0" * (CHILD_WINDOW + 1))
    elif misdeed == "overack":
        wire.send(Msg.CHILD_WRITTEN, child, encode(10**9))
    elif misdeed == "bad_exit":
        wire.send(Msg.CHILD_EXIT, child, encode({"status": "killed", "error": None}))
    elif misdeed == "forged":
        forge_child(wire, child, decode(start), args["marker"])
    linger()


def forge_child(wire: Wire, child: int, start: Any, marker: str) -> None:
    """Answer for the child's agent: its handshake, then a pickle as its first call's answer."""
    info = {**HONEST_HELLO, "pid": os.getpid(), "depth": 2}
    wire.send(Msg.CHILD_STDOUT, child, MAGIC + frame(Msg.HELLO, 0, encode(info)))
    stage1 = start["argv"][-1]
    skip = int(re.search(r"\bn=(\d+);", stage1).group(1))  # type: ignore[union-attr]
    stream = b""
    while True:  # the child's stdin: the agent, CONFIG, then frames; answer its first call
        kind, _, payload = wire.read_frame()
        if kind != Msg.CHILD_STDIN:
            continue
        stream += payload
        while len(stream) - skip >= HEADER.size:
            code, req_id, length = HEADER.unpack_from(stream, skip)
            if len(stream) - skip < HEADER.size + length:
                break
            skip += HEADER.size + length
            if code in CALLS:
                bomb = pickle.dumps(Bomb(marker), protocol=2)
                wire.send(Msg.CHILD_STDOUT, child, frame(Msg.RESULT, req_id, bomb))
                return


def frame(kind: int, req_id: int, payload: bytes) -> bytes:
    return HEADER.pack(kind, req_id, len(payload)) + payload


HONEST_HELLO = {
    "protocol": PROTOCOL_VERSION,
    "version": list(sys.version_info[:3]),
    "implementation": sys.implementation.name,
    "pid": 1,
    "executable": sys.executable,
    "platform": sys.platform,
    "hostname": "hostile",
    "depth": 1,
    "cloudpickle": None,
}


SCENARIOS: dict[str, Callable[[Wire, Args], None]] = {
    f.__name__: f
    for f in (
        bad_reply,
        pickle_everywhere,
        frame_header,
        raw_after_hello,
        wrong_hello,
        probe_requests,
        fetch_reply,
        import_flood,
        request_flood,
        replay,
        well_behaved,
        error_reply,
        deaf,
        banner,
        well_behaved_crafted,
        unread,
        hostile_relay,
    )
}
#: Scenarios that write their own handshake (or none).
OWN_HANDSHAKE = {"pickle_everywhere", "wrong_hello", "replay", "banner"}


def main() -> None:
    scenario, args = sys.argv[1], json.loads(sys.argv[2])
    stage1 = sys.argv[-1]
    length = int(re.search(r"\bn=(\d+);", stage1).group(1))  # type: ignore[union-attr]
    wire = Wire()
    try:
        wire.read_exact(length)  # the compressed agent, as the real stage 1 reads it
        wire.read_frame()  # CONFIG
        if scenario not in OWN_HANDSHAKE:
            wire.hello()
        SCENARIOS[scenario](wire, args)
    except (EOFError, BrokenPipeError):
        pass


if __name__ == "__main__":
    main()
