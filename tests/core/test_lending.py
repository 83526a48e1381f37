"""Large bytes objects lent to the agent's pipe by vmsplice (chopsticks_nb._lending).

The pipe reads straight from the object's memory until the agent has read it, so the
connection must hold the object until then, and not a moment longer. The agent is stopped
(SIGSTOP) where a test needs the pipe to hold lent pages for sure.
"""

from __future__ import annotations

import contextlib
import errno
import os
import signal
import sys
import zlib
from collections.abc import Iterator
from pathlib import Path

import pytest

from chopsticks_nb import _lending
from chopsticks_nb.tunnel import Local

pytestmark = [
    pytest.mark.skipif(not _lending.AVAILABLE, reason="vmsplice is Linux-only"),
    pytest.mark.speedup("lend"),
]

SIZE = 4 * 1024 * 1024  # four times the pipe: part lent, part still queued


@contextlib.contextmanager
def stopped(tunnel: Local) -> Iterator[int]:
    """The agent frozen (nothing reads its pipe) until the block ends."""
    conn = tunnel._conn
    assert conn is not None and conn.proc is not None
    pid = conn.proc.pid
    os.kill(pid, signal.SIGSTOP)
    try:
        yield pid
    finally:
        os.kill(pid, signal.SIGCONT)


def test_an_argument_its_caller_let_go_of_arrives_intact() -> None:
    # Freed, the object's memory would be reused by the next objects of its size while the
    # pipe still reads from it: the agent would get their bytes instead.
    size = 512 * 1024  # lent whole: the pipe is the only thing that refers to it
    bytearray(2 * size)  # freeing a chunk this large makes malloc keep smaller ones in its heap
    with Local("lend-intact") as tunnel:
        tunnel.call(os.getpid)
        with stopped(tunnel):
            payload = os.urandom(size)
            expected = zlib.crc32(payload)
            future = tunnel.submit(zlib.crc32, payload)
            conn = tunnel._conn
            assert conn is not None and conn.writer.lender.lent and not conn.writer.out
            del payload
            others = [bytes([n]) * size for n in range(8)]  # reuse what was freed
        assert future.result(timeout=60) == expected
        del others


def test_a_lent_argument_is_let_go_once_the_agent_has_read_it() -> None:
    payload = bytes(range(256)) * 8192
    alone = sys.getrefcount(payload)
    with Local("lend-release") as tunnel:
        assert tunnel.call(zlib.crc32, payload) == zlib.crc32(payload)
        assert sys.getrefcount(payload) == alone
        with stopped(tunnel):
            future = tunnel.submit(zlib.crc32, payload)
            assert sys.getrefcount(payload) > alone  # held while the pipe reads from it
        assert future.result(timeout=60) == zlib.crc32(payload)
        assert sys.getrefcount(payload) == alone


def test_a_put_of_lent_chunks_arrives_whole(tmp_path: Path) -> None:
    source = tmp_path / "source"
    source.write_bytes(os.urandom(3 * SIZE + 12345))
    with Local("lend-put") as tunnel:
        result = tunnel.put(str(source), str(tmp_path / "copy"))
        assert (tmp_path / "copy").read_bytes() == source.read_bytes()
        conn = tunnel._conn
        assert conn is not None and conn.writer.lending and not conn.writer.lender.lent
    assert result["size"] == source.stat().st_size


def test_where_vmsplice_is_refused_arguments_are_copied(monkeypatch: pytest.MonkeyPatch) -> None:
    # A fake stands in for a sandbox (seccomp) that refuses the system call: this machine
    # cannot put the test process in one.
    def refused(fd: int, data: bytes, start: int) -> int:
        raise PermissionError(errno.EPERM, "vmsplice refused")

    monkeypatch.setattr(_lending, "vmsplice", refused)
    payload = os.urandom(SIZE)
    with Local("lend-refused") as tunnel:
        assert tunnel.call(zlib.crc32, payload) == zlib.crc32(payload)
        assert tunnel.call(zlib.crc32, payload[1:]) == zlib.crc32(payload[1:])
        conn = tunnel._conn
        assert conn is not None and not conn.writer.lending and not conn.writer.lender.lent


def test_vmsplice_reports_a_full_pipe_and_a_file() -> None:
    read_end, write_end = os.pipe()
    os.set_blocking(write_end, False)
    payload = b"y" * (4 * 1024 * 1024)
    try:
        taken = _lending.vmsplice(write_end, payload, 0)
        assert 0 < taken < len(payload) and _lending.unread(write_end) == taken
        with pytest.raises(BlockingIOError):
            _lending.vmsplice(write_end, payload, taken)
        assert os.read(read_end, 10) == b"y" * 10
        assert _lending.unread(read_end) == taken - 10
    finally:
        os.close(read_end)
        os.close(write_end)
    with open(os.devnull, "wb") as sink, pytest.raises(OSError) as refused:
        _lending.vmsplice(sink.fileno(), payload, 0)
    assert not isinstance(refused.value, BlockingIOError)
