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
import sys
import time
from typing import Any, Callable

from chopsticks_nb._agent import HEADER, MAGIC, PROTOCOL_VERSION, Msg, decode, encode

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
    ``{"prefix": hex, "repeat": hex, "times": n}`` or ``{"random": seed, "size": n}`` (the
    bytes of ``random.Random(seed).randbytes(n)``), then optionally cut to ``"cut"`` bytes and
    followed by ``"suffix"`` (hex)."""
    if isinstance(spec, str):
        return bytes.fromhex(spec)
    if "random" in spec:
        data = random.Random(spec["random"]).randbytes(spec["size"])
    else:
        data = bytes.fromhex(spec.get("prefix", "")) + bytes.fromhex(spec["repeat"]) * spec["times"]
    return data[: spec.get("cut", len(data))] + bytes.fromhex(spec.get("suffix", ""))


def bad_reply(wire: Wire, args: Args) -> None:
    """Answer the first CALL with a frame of kind ``args["kind"]`` (RESULT by default) and
    payload ``args["payload"]`` (see payload_of); then exit, or stay alive if ``args["linger"]``."""
    req_id = wire.next_call()
    wire.send(args.get("kind", Msg.RESULT), req_id, payload_of(args["payload"]))
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
    """A handshake with a HELLO payload given as a codec value in ``args["hello"]``."""
    wire.write(MAGIC)
    wire.send(Msg.HELLO, 0, encode(args["hello"]))
    linger()


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
    the codec value ``args["result"]`` instead of a transfer result."""
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
        wire.send(Msg.RESULT, req_id, encode(args.get("result", result)))


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
    encoded value ``{"hex": ...}`` (values JSON cannot carry)."""
    value = args.get("value")
    payload = bytes.fromhex(value["hex"]) if isinstance(value, dict) else encode(value)
    while True:
        req_id = wire.next_call()
        wire.send(Msg.RESULT, req_id, payload)


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
    )
}
#: Scenarios that write their own handshake (or none).
OWN_HANDSHAKE = {"pickle_everywhere", "wrong_hello", "replay"}


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
