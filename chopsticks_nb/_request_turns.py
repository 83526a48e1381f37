"""Flood control: the agent's requests for work here, answered a fair share per broker turn.

The agent asks for modules and resource files (IMPORT, GET_DATA). The broker thread answers
REQUESTS_PER_TURN of them per turn for one connection: the rest wait in its buffer, unread
frames behind them in the pipe, while the broker serves the other connections. An answer costs
one request more per REQUEST_BYTES it holds. An honest agent has one request out per thread
importing.
"""

from __future__ import annotations

import math
import threading
from typing import Callable

from ._agent import Msg
from ._broker import BROKER
from ._reader import FrameReader

__all__ = ["REQUESTS", "REQUESTS_PER_TURN", "REQUEST_BYTES", "RequestTurns"]

REQUESTS_PER_TURN = 8
REQUEST_BYTES = 1024 * 1024
#: The frames that are such requests.
REQUESTS = (Msg.IMPORT, Msg.GET_DATA)


class RequestTurns:
    """One connection's turns at its agent's requests: its budget per turn, and the frames a
    flood left (``backlog``) handled at its next turn, before anything more is read."""

    def __init__(
        self, reader: FrameReader, read_lock: threading.Lock, next_turn: Callable[[], None]
    ) -> None:
        self.reader = reader
        self.read_lock = read_lock
        self.next_turn = next_turn  # handles the frames left, as the broker thread
        #: Complete frames wait in the reader for a later turn.
        self.backlog = False
        self.stopped = False
        self._armed = False

    def begin(self, on_broker: bool) -> None:
        """A turn begins: the broker thread's has a budget, a caller's none."""
        self.reader.budget = REQUESTS_PER_TURN if on_broker else math.inf

    def end(self, backlog: bool, on_broker: bool) -> None:
        """A turn ended with frames left (``backlog``) or not: the broker's next is lined up."""
        self.backlog = backlog
        if backlog and on_broker and not self._armed:
            self._armed = True
            BROKER.call_soon(self._take_turn)

    def charge(self, answer: bytes) -> None:
        """An answer of this size was sent: it costs its share of the budget."""
        self.reader.budget -= len(answer) // REQUEST_BYTES

    def waiting(self) -> bool:
        """Frames are left for the broker's next turn, lined up already."""
        return self.backlog and self._armed

    def stop(self) -> None:
        """The connection ended: nothing is left to handle."""
        self.stopped = True
        self.backlog = False

    def _take_turn(self) -> None:
        """Broker thread: this connection's next turn at the frames a flood of requests left."""
        self._armed = False
        if not self.backlog or self.stopped:
            return
        if not self.read_lock.acquire(blocking=False):
            # A caller reads the pipe: it handles them (read_until). Look again shortly, in
            # case it stops before it has.
            self._armed = True
            BROKER.call_later(0.001, self._take_turn)
            return
        try:
            self.next_turn()
        finally:
            self.read_lock.release()
