"""The frame reader's input: a large frame costs a linear amount of copying, and a large bytes
result is held once.

A real pipe carries large RESULT frames, written in 64 KiB pieces as an agent's pipe delivers
them; the reader reads them as the broker would. Growing the input buffer from the bytes
received (not from its capacity) reallocated it on nearly every read: receiving 256 MiB took
12 s. A large frame must cost a bounded number of resizes (none: it goes to memory of its own).
"""

from __future__ import annotations

import os
import threading
from typing import Any, Callable

import pytest

from chopsticks_nb._agent import (
    HEADER,
    LARGE_BYTES,
    MAGIC,
    Msg,
    encode,
    encode_result,
    payload_loader,
)
from chopsticks_nb._reader import FIRST_SIZE, LARGE_FRAME, READ_SIZE, FrameReader, InputBuffer
from chopsticks_nb.tunnel import Local


def frames(*values: tuple[int, Any]) -> bytes:
    """The agent's output: MAGIC, then a RESULT frame per (request id, value)."""
    stream = [MAGIC]
    for req_id, value in values:
        payload = encode(value)
        stream += [HEADER.pack(Msg.RESULT, req_id, len(payload)), payload]
    return b"".join(stream)


def read_through_a_pipe(
    stream: bytes, after_each_read: Callable[[FrameReader], None], buffer_size: int = READ_SIZE
) -> list[Any]:
    """Feed ``stream`` through a real pipe in 64 KiB writes to a FrameReader (whose input
    buffer starts at ``buffer_size``); the (request id, value) pairs it handled."""
    received: list[tuple[int, Any]] = []
    handler = (Msg.RESULT, lambda i, v: received.append((i, v)), payload_loader(Msg.RESULT))
    reader = FrameReader("big", {Msg.RESULT: handler}, lambda _: None, buffer_size=buffer_size)
    read_fd, write_fd = os.pipe()

    def write() -> None:
        with memoryview(stream) as view:
            for start in range(0, len(view), 65536):
                os.write(write_fd, view[start : start + 65536])
        os.close(write_fd)

    writer = threading.Thread(target=write)
    writer.start()
    try:
        while reader.read_from(read_fd):
            reader.handle_frames()
            after_each_read(reader)
    finally:
        writer.join()
        os.close(read_fd)
    return received


def test_frames_just_under_the_large_size_grow_the_buffer_a_bounded_number_of_times() -> None:
    """Eight frames each a little under LARGE_FRAME, arriving in 64 KiB pieces into a reader
    whose buffer starts at 64 KiB: they are read in the input buffer (never a LargeFrame),
    which grows a bounded number of times in all (doubling from what was received, not once
    per read, the quadratic copying of old) and never past about two such frames."""
    value = "v" * (LARGE_FRAME - 64)
    stream = frames(*[(n, value) for n in range(8)], (8, 5))
    capacities = [64 * 1024]
    larges = []

    def note(reader: FrameReader) -> None:
        larges.append(reader.buffer.large)
        if len(reader.buffer.data) != capacities[-1]:
            capacities.append(len(reader.buffer.data))

    received = read_through_a_pipe(stream, note, buffer_size=64 * 1024)
    assert received == [*[(n, value) for n in range(8)], (8, 5)]
    assert set(larges) == {None}
    assert len(capacities) <= 4, str(capacities)
    assert max(capacities) <= 2 * LARGE_FRAME, str(capacities)


def test_a_large_frame_is_read_into_memory_of_its_own_not_the_buffer() -> None:
    """A 48 MiB frame (a str: a bytes value has a faster path, below) then a small one: the
    large one is read into a LargeFrame, the input buffer never grows, and both arrive."""
    value = "v" * (48 * 2**20)
    stream = frames((7, value), (8, 5))
    capacities = set()
    readers = set()

    def note(reader: FrameReader) -> None:
        capacities.add(len(reader.buffer.data))
        if reader.buffer.large is not None:
            readers.add(type(reader.buffer.large).__name__)

    assert read_through_a_pipe(stream, note) == [(7, value), (8, 5)]
    assert readers == {"LargeFrame"}
    assert capacities == {READ_SIZE}


@pytest.mark.speedup("bytes_in_place")
def test_a_large_bytes_result_is_read_into_the_object_it_becomes() -> None:
    """A 32 MiB bytes result, followed by a small one in the same stream: both arrive, the large
    one read by a BytesInPlace (not into memory of its own, then copied out by the codec: held
    twice), and nothing past its end (the next frame is read as usual). The memory this saves
    is measured in a process of its own by bench_core.py (g), which tests/bench holds to 1.5
    bytes per byte of the result."""
    value = os.urandom(32 * 2**20)
    stream = frames((7, value), (8, b"small"))
    readers: set[str] = set()

    def note(reader: FrameReader) -> None:
        if reader.buffer.large is not None:
            readers.add(type(reader.buffer.large).__name__)

    assert read_through_a_pipe(stream, note) == [(7, value), (8, b"small")]
    assert readers == {"BytesInPlace"}


@pytest.mark.speedup("bytes_in_place")
def test_a_large_bytes_result_whose_header_arrives_alone_is_read_in_place() -> None:
    """An agent writes a large payload apart from its header, so on a busy machine the reader
    can find the header alone: it must wait for the value's head rather than read the frame
    into memory of its own (a bytes result then held twice: seen in CI under load)."""
    value = os.urandom(8 * 2**20)
    payload = encode(value)
    pieces = [MAGIC + HEADER.pack(Msg.RESULT, 7, len(payload))]
    pieces += [payload[start : start + 65536] for start in range(0, len(payload), 65536)]
    received: list[tuple[int, Any]] = []
    handler = (Msg.RESULT, lambda i, v: received.append((i, v)), payload_loader(Msg.RESULT))
    reader = FrameReader("big", {Msg.RESULT: handler}, lambda _: None)
    readers: set[str] = set()
    read_fd, write_fd = os.pipe()
    os.set_blocking(read_fd, False)
    try:
        for piece in pieces:
            os.write(write_fd, piece)
            try:
                while reader.read_from(read_fd):
                    reader.handle_frames()
            except BlockingIOError:
                pass
            if reader.buffer.large is not None:
                readers.add(type(reader.buffer.large).__name__)
    finally:
        os.close(read_fd)
        os.close(write_fd)
    assert received == [(7, value)]
    assert readers == {"BytesInPlace"}


@pytest.mark.speedup("bytes_in_place")
def test_an_agent_writes_a_large_bytes_result_after_its_head_uncopied() -> None:
    """Joining a 256 MiB value to its six-byte head copied it into fresh memory (0.25 s): the
    agent sends the head and the value object itself, the same bytes as the encoding. Smaller
    values, other types and the switch off are encoded as ever."""
    value = os.urandom(LARGE_BYTES)
    head, sent = encode_result(value, True)
    assert sent is value and head + sent == encode(value)
    for other in (value[:-1], bytearray(value), [value]):
        assert encode_result(other, True) == encode(other)
    assert encode_result(value, False) == encode(value)


def test_a_large_bytes_result_from_an_agent_arrives_whole_and_the_next_call_after_it() -> None:
    value = os.urandom(LARGE_BYTES + 12345)
    with Local("large-result") as tunnel:
        assert tunnel.call(bytes, value) == value
        assert tunnel.call(bytes, value[:-1]) == value[:-1]
        assert tunnel.call(len, b"next") == 4


def test_an_input_buffer_starts_small_and_takes_its_full_size_once_a_read_fills_it() -> None:
    """A buffer is zeroed when made: 1 MiB for every connection was 0.6 ms and 1 MiB of RSS
    each (128 hosts: 128 MiB) for calls that never need it. A stream still gets full reads."""
    buffer = InputBuffer()
    assert len(buffer.data) == FIRST_SIZE < READ_SIZE
    read_fd, write_fd = os.pipe()
    try:
        os.write(write_fd, b"a" * 100)
        assert buffer.read_from(read_fd) == 100 and len(buffer.data) == FIRST_SIZE
        os.write(write_fd, b"b" * (FIRST_SIZE - 100))
        assert buffer.read_from(read_fd) == FIRST_SIZE - 100
        assert len(buffer.data) == READ_SIZE
        assert bytes(buffer.data[buffer.start : buffer.end]) == b"a" * 100 + b"b" * (
            FIRST_SIZE - 100
        )
    finally:
        os.close(read_fd)
        os.close(write_fd)
