"""Output floods: a remote writing a gigabyte cannot exhaust the controller or stall its calls."""

from __future__ import annotations

import os
import threading
import time

import pytest

from chopsticks_nb import errors
from chopsticks_nb._agent import MAX_DATA_FRAME, MAX_MESSAGE
from chopsticks_nb.tunnel import Local
from fixtures.system import wait_until
from reliability import remote_ops
from reliability.probes import watch_rss

FLOOD = 512 * 2**20  # per stream: 1 GiB in all
#: What this process may gain while relaying the flood (docs/reliability.md states it).
FLOOD_GROWTH_MIB = 64


class Counter:
    """An output handler that only counts, as a display with a cap would."""

    def __init__(self) -> None:
        self.chars = {"stdout": 0, "stderr": 0}
        self.replaced = 0
        self.lock = threading.Lock()

    def __call__(self, stream: str, text: str) -> None:
        with self.lock:
            self.chars[stream] += len(text)
            self.replaced += text.count("\ufffd")


def test_a_gigabyte_of_output_keeps_memory_bounded_and_calls_flowing() -> None:
    """Injects: a remote writing 512 MiB to its relayed sys.stdout and 512 MiB straight to fd 2
    (the stderr pipe), mostly bytes that are not UTF-8, from threads. Asserts: a call made
    during the flood answers within 2 s; every byte is relayed (as text, invalid bytes replaced
    one for one with U+FFFD); this process's RSS grows by less than 64 MiB; the tunnel still
    works afterwards."""
    counter = Counter()
    with watch_rss() as peak, Local("flood", output=counter) as tunnel:
        sent = tunnel.call(remote_ops.flood, FLOOD)
        started = time.monotonic()
        pid = tunnel.call(os.getpid)  # while the flood runs
        during = time.monotonic() - started
        assert tunnel.call(remote_ops.flood_done, 0) is False  # it really was running
        assert tunnel.call(remote_ops.flood_done, 60) is True
        wait_until(lambda: min(counter.chars.values()) >= sent, timeout=30)
        assert tunnel.call(os.getpid) == pid
    print(f"call during the flood: {during:.3f} s; RSS growth {peak.growth:.1f} MiB; "
          f"{counter.chars} characters relayed")  # fmt: skip
    assert during < 2.0
    assert counter.chars == {"stdout": sent, "stderr": sent}
    assert counter.replaced > sent // 4
    assert peak.growth < FLOOD_GROWTH_MIB


def test_one_huge_print_is_relayed_whole() -> None:
    """Injects: a single ``print`` of 10 MB (over the 8 MiB limit of one output frame).
    Asserts: it is relayed whole, in several frames (it used to be sent as one frame, which the
    controller refused as a protocol error, ending the tunnel); the tunnel keeps working."""
    counter = Counter()
    with Local("printer", output=counter) as tunnel:
        size = MAX_DATA_FRAME + 2 * 2**20
        assert tunnel.exec(f"print('x' * {size})") is None
        assert counter.chars["stdout"] == size + 1
        assert tunnel.exec("1 + 1") == 2


def test_a_result_over_the_message_limit_is_refused_by_the_agent() -> None:
    """Injects: a call whose result encodes to more than one message may carry (512 MiB).
    Asserts: SerializationError naming the host, raised by the agent before sending (the
    controller would have refused the frame as a protocol error and ended the tunnel); the
    same agent answers the next call."""
    with Local("huge") as tunnel:
        pid = tunnel.call(os.getpid)
        with pytest.raises(errors.SerializationError, match=r"^huge: .*one message may take"):
            tunnel.exec(f"b'x' * {MAX_MESSAGE + 1}")
        assert tunnel.call(os.getpid) == pid
