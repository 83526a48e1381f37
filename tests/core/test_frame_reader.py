"""The frame reader's input buffer: a large frame costs a linear amount of copying.

A real pipe carries one large RESULT frame, written in 64 KiB pieces as an agent's pipe
delivers it; the reader reads it as the broker would. Growing the buffer from the bytes
received (not from its capacity) reallocated it on nearly every read: receiving 256 MiB took
12 s. Its capacity must instead double, a logarithmic number of times.
"""

from __future__ import annotations

import os
import threading
from typing import Any

from chopsticks_nb._agent import HEADER, MAGIC, Msg, encode
from chopsticks_nb._reader import FrameReader


def test_a_large_frame_grows_the_buffer_a_logarithmic_number_of_times() -> None:
    value = b"v" * (48 * 2**20)
    payload = encode(value)
    stream = MAGIC + HEADER.pack(Msg.RESULT, 7, len(payload)) + payload
    received: list[tuple[int, Any]] = []
    reader = FrameReader(
        "big", {Msg.RESULT: (Msg.RESULT, lambda i, v: received.append((i, v)))}, lambda _: None
    )
    read_fd, write_fd = os.pipe()

    def write() -> None:
        with memoryview(stream) as view:
            for start in range(0, len(view), 65536):
                os.write(write_fd, view[start : start + 65536])
        os.close(write_fd)

    writer = threading.Thread(target=write)
    writer.start()
    capacities = [len(reader.buffer.data)]
    try:
        while reader.read_from(read_fd):
            reader.handle_frames()
            if len(reader.buffer.data) != capacities[-1]:
                capacities.append(len(reader.buffer.data))
    finally:
        writer.join()
        os.close(read_fd)
    assert received == [(7, value)]
    assert len(capacities) <= 9, str(capacities)
    assert max(capacities) <= len(stream) + 2**20  # never more than the frame needs
