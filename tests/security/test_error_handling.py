"""Error handling that cannot fail: huge or hostile values in error paths and reprs, handlers
that raise, and every operation completed exactly once.

A hostile agent (hostile_agent.py, through a real tunnel) returns values whose text is huge or
cannot be made (a 100 MB bytes value, an int of a million digits, a 64 MiB path in a transfer
result, a 1 MiB error message full of control characters). Their reprs and the error messages
about them must be bounded before they are built (measured with tracemalloc: what Python
allocates while the text is made) and must not raise. Faults are also injected into the
handler of an answer (an exception whose text cannot be made, a handler that completes
nothing): its operation must still complete, once, and the tunnel end with ProtocolError.
"""

from __future__ import annotations

import os
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from chopsticks_nb import errors
from chopsticks_nb._agent import MAX_ERROR, U32, encode
from chopsticks_nb._call_frames import pickle_call
from chopsticks_nb._requests import Operation
from chopsticks_nb.group import Group
from chopsticks_nb.queue import Queue
from chopsticks_nb.result import ErrorResult
from chopsticks_nb.tunnel import Local
from security.hostile import HostileTunnel

#: What making a text of a huge value may allocate: a bounded text, not the value's size.
TEXT_BUDGET = 2 * 2**20

BYTES_SIZE = 100 * 10**6
INT_BYTES = 415_241  # a positive int of about a million digits
HUGE_BYTES = {"prefix": "0107" + U32.pack(BYTES_SIZE).hex(), "repeat": "78", "times": BYTES_SIZE}
HUGE_INT = {"prefix": "0104" + U32.pack(INT_BYTES).hex() + "7f", "repeat": "ff",
            "times": INT_BYTES - 1}  # fmt: skip


def allocated_while(make_text: Callable[[], str]) -> tuple[str, int]:
    """The text ``make_text()`` returns and the peak of what Python allocated meanwhile."""
    tracemalloc.start()
    try:
        text = make_text()
        return text, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def encoded_with_last_str(value: dict[str, Any], size: int, unit: str = "A") -> dict[str, Any]:
    """A payload_of spec for ``value`` (a dict whose last item is ``""``) with that last str
    made of ``unit`` repeated up to ``size`` bytes: too long for a command line, so the hostile
    side builds it."""
    head = encode(value)[:-4]  # the last str's length, 0, follows its opcode
    piece = unit.encode("utf-8", "surrogatepass")
    times = size // len(piece)
    return {
        "prefix": (head + U32.pack(times * len(piece))).hex(),
        "repeat": piece.hex(),
        "times": times,
    }


def test_reprs_of_huge_values_are_bounded_and_never_fail() -> None:
    """Injects: a 100 MB bytes value and an int of a million digits (more than repr() will
    convert) as results. Asserts: the GroupResult's text and HTML views and a queued
    AsyncResult's repr work, say what the values are, and allocate a bounded amount while
    being made (repr of the whole value would take 400 MB, or raise); the values are intact."""
    group = Group(
        [
            HostileTunnel("bytes", "well_behaved", value={"encoded": HUGE_BYTES}),
            HostileTunnel("int", "well_behaved", value={"encoded": HUGE_INT}),
        ]
    )
    try:
        result = group.call(os.getpid)
        queue = Queue()
        queued = [queue.call(tunnel, os.getpid) for tunnel in group]
        queue.run()
    finally:
        group.close()
    assert len(result["bytes"]) == BYTES_SIZE and result["int"].bit_length() > 3_000_000
    views: dict[str, Callable[[], str]] = {
        "repr": lambda: repr(result),
        "html": result._repr_html_,
        "queued bytes": lambda: repr(queued[0]),
        "queued int": lambda: repr(queued[1]),
    }
    for name, view in views.items():
        text, allocated = allocated_while(view)
        assert allocated < TEXT_BUDGET, f"{name}: {allocated} bytes allocated"
        assert len(text) < 10_000, name
    assert "b'xxxxxxxx" in repr(result) and "<int of about 1000" in repr(result)
    assert "<int of about 1000" in repr(queued[1])


def test_a_huge_path_in_a_transfer_result_makes_a_short_error(tmp_path: Path) -> None:
    """Injects: a fetch's RESULT whose remote_path is 64 MiB long and whose checksum lies.
    Asserts: TransferError whose message shows the start of the path, bounded; the group's
    views of it are bounded too; the tunnel stays usable."""
    spec = encoded_with_last_str({"size": 1, "sha1sum": "0" * 40, "remote_path": ""}, 64 * 2**20)
    tunnel = HostileTunnel("liar", "fetch_reply", data="00", result={"encoded": spec})
    group = Group([tunnel])
    try:
        with pytest.raises(errors.TransferError, match=r"^liar: AAAA.*does not match") as caught:
            tunnel.fetch("/remote", str(tmp_path / "dest"))
        assert len(str(caught.value)) < 2000
        result = group.fetch("/remote", str(tmp_path / "{host}"))
    finally:
        group.close()
    error = result["liar"]
    assert isinstance(error, ErrorResult) and len(error.msg) < 2000
    assert list(tmp_path.iterdir()) == []
    for view in (lambda: repr(result), result._repr_html_):
        text, allocated = allocated_while(view)
        assert allocated < TEXT_BUDGET and "AAAA" in text


def test_an_error_record_with_a_huge_hostile_message_is_shown_bounded() -> None:
    """Injects: ERROR records whose message fills the 1 MiB limit with control characters,
    a lone surrogate and a long type name. Asserts: RemoteException keeps the message whole
    (it is the remote's); a group's failure summary and the result's views are bounded."""
    unit = "\x1b]0;title\x07\x1b[2J\ud800"
    record = {"type": "E" * 1000, "tb": None, "kind": "exception", "msg": ""}
    spec = encoded_with_last_str(record, MAX_ERROR - 2000, unit)
    message = unit * spec["times"]
    group = Group(
        [HostileTunnel(f"evil{n}", "error_reply", record={"encoded": spec}) for n in range(3)]
    )
    try:
        with pytest.raises(errors.RemoteException) as caught:
            group["evil0"].call(os.getpid)
        # kept whole (its lone surrogates written as escapes, for Jupyter: see errors.py)
        assert caught.value.remote_message.replace("\\ud800", "\ud800") == message
        result = group.call(os.getpid)
    finally:
        group.close()
    assert len(dict(result.failures())) == 3
    for view in (lambda: repr(result), result._repr_html_, lambda: str(_group_error(result))):
        text, allocated = allocated_while(view)
        assert allocated < TEXT_BUDGET and len(text) < 20_000


def _group_error(result: Any) -> errors.GroupError:
    with pytest.raises(errors.GroupError) as caught:
        result.raise_failures()
    return caught.value


# -- handlers that fail ----------------------------------------------------------------------------


class Unprintable(Exception):
    """An exception whose text cannot be made (as a KeyError of a huge int's)."""

    def __str__(self) -> str:
        raise ValueError("Exceeds the limit (4300 digits) for integer string conversion")


class FaultyCall(Operation):
    """A call whose answer handler fails as ``fault`` says: raise an exception whose text
    cannot be made, or return without completing the operation."""

    def __init__(self, host: str, fault: str) -> None:
        super().__init__(host)
        self.fault = fault

    def on_result(self, value: object) -> None:
        if self.fault == "raise":
            raise Unprintable()


@pytest.mark.parametrize("fault", ["raise", "complete-nothing"])
def test_an_answer_whose_handler_fails_still_completes_once(fault: str) -> None:
    """Injects: into a real Local connection, a call whose answer handler raises an
    exception whose str() fails, or completes nothing; a second call waits on the same
    connection (queued behind it: the agent runs one call at a time). Asserts: the faulty
    call completes (at once, with ProtocolError), so does the other (with the same error:
    the tunnel ended, as any unexpected fault in reading ends it), nothing is completed
    twice, and the tunnel's next call reconnects."""
    tunnel = Local("faulty")
    try:
        pid = tunnel.call(os.getpid)
        conn = tunnel._connection()
        faulty = FaultyCall("faulty", fault)
        conn.submit(faulty, *pickle_call(_pid_after, (0.5,), {}, "faulty")[:2])
        other = conn.submit_call(pickle_call(_pid_after, (60,), {}, "faulty"))
        assert faulty.wait(30), "the faulty call never completed"
        assert isinstance(faulty.error, errors.ProtocolError), repr(faulty.error)
        assert "faulty: " in str(faulty.error)
        with pytest.raises(errors.ProtocolError):
            other.result(30)
        assert not faulty.complete(value="again")  # completed once
        assert tunnel.call(os.getpid) != pid
    finally:
        tunnel.close()


def _pid_after(seconds: float) -> int:
    import time

    time.sleep(seconds)
    return os.getpid()


class BrokenExplanation(Local):
    """A tunnel whose explanation of a failed start raises."""

    python3 = "/bin/false"

    def explain_exit(self, returncode: int | None, stderr_tail: str) -> str:
        raise Unprintable()


def test_a_tunnel_whose_exit_explanation_raises_still_fails_to_connect() -> None:
    """Injects: a tunnel class whose explain_exit raises, for a command that exits at once.
    Asserts: connect raises ConnectError at once (not a timeout), naming the status."""
    tunnel = BrokenExplanation("broken", connect_timeout=60)
    with pytest.raises(errors.ConnectError, match=r"status 1") as caught:
        tunnel.connect()
    assert not isinstance(caught.value, errors.ConnectTimeout)
    tunnel.close()


def test_a_fetch_to_a_path_that_cannot_be_written_completes(tmp_path: Path) -> None:
    """Injects: a fetch whose destination becomes a directory while the data is on its way
    (the remote reads a FIFO, written only once the directory exists), so the rename into
    place fails. Asserts: TransferError naming the path; no temporary file is left; the
    tunnel stays connected (same agent)."""
    dest = tmp_path / "dest"
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    with Local("late") as tunnel:
        pid = tunnel.call(os.getpid)
        future = tunnel.submit_fetch(str(fifo), str(dest))
        dest.mkdir()
        fifo.write_bytes(os.urandom(3 * 2**20))
        with pytest.raises(errors.TransferError, match=f"cannot write {dest}"):
            future.result(30)
        assert tunnel.call(os.getpid) == pid
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dest", "fifo"]
