"""The operations sent to one agent and not answered yet, and how each one completes.

An :class:`Operation` is in its connection's :class:`RequestTable` from the moment its request
is sent until its answer comes, it is abandoned (cancel, timeout, Ctrl-C) or the connection
ends. Whoever takes it out of the table completes it, and an operation completes once: later
attempts do nothing. A waiter blocks on the operation itself; a :class:`RemoteFuture`, made
only for operations started with ``submit``, mirrors its outcome for ``concurrent.futures``.
"""

from __future__ import annotations

import concurrent.futures
import itertools
import threading
from typing import Any, Callable

from . import _agent
from .errors import (
    CallCancelled,
    ChopsticksError,
    ProtocolError,
    RemoteException,
    SerializationError,
)
from .output import OutputHandler

__all__ = ["Operation", "RemoteFuture", "RequestTable", "error_from_record"]

_UNAVAILABLE = _agent.Unavailable


def error_from_record(record: dict[str, Any], host: str) -> ChopsticksError:
    """The error an agent's ERROR record stands for (its shape checked already)."""
    kind = record["kind"]
    if kind == "cancelled":
        return CallCancelled("cancelled", host)
    if kind == "encode":
        message = record["msg"]
        if "cannot be sent back" not in message:  # it names where, and what to do, itself
            message = f"the result cannot be sent back: {message}"
        return SerializationError(message, host)
    return RemoteException(record["msg"], host, record["type"], record["tb"])


class Operation:
    """One request to the agent, awaiting its answer: a call, unless a subclass says more.

    ``output`` receives the remote output the agent tags with this request (None: the
    tunnel's handler). ``done`` may be read without a lock.
    """

    def __init__(self, host: str, output: OutputHandler | None = None) -> None:
        self.host = host
        self.output = output
        self.req_id = 0
        self.done = False
        self.value: Any = None
        self.error: ChopsticksError | None = None
        self.future: RemoteFuture | None = None
        self._unfinished = [True]  # popped by the one completion (list.pop is atomic)
        # Released when done. A lock, not a Future: a Future's condition and callbacks cost
        # more than all the rest of a small call (bench/README.md).
        self._finished = threading.Lock()
        self._finished.acquire()

    # -- the agent's answers (on the thread reading the connection) ----------------------------

    def on_result(self, value: object) -> None:
        if type(value) is _UNAVAILABLE:  # valid, but this side cannot build it
            reason = value.reason
            self.complete(error=SerializationError(f"the result cannot be received: {reason}",
                                                   self.host))  # fmt: skip
            return
        self.complete(value=value)

    def on_sent(self, conn: Any) -> None:
        """The request went out on ``conn`` (an upload starts streaming its file then)."""

    def on_error(self, record: dict[str, Any]) -> None:
        self.complete(error=error_from_record(record, self.host))

    def on_data(self, payload: memoryview) -> None:
        raise ProtocolError(f"unexpected data frame for request {self.req_id}", self.host)

    # -- completion ------------------------------------------------------------------------------

    def complete(self, *, value: Any = None, error: ChopsticksError | None = None) -> bool:
        """Complete with ``value`` or ``error``, unless completed already; True if this did."""
        try:
            self._unfinished.pop()
        except IndexError:
            return False
        self.value, self.error = value, error
        self.done = True
        self._finished.release()
        if self.future is not None:
            self.future.mirror(self)
        return True

    def fail(self, error: ChopsticksError) -> bool:
        return self.complete(error=error)

    def discard(self) -> None:
        """Release what the operation holds here (a fetch's partial file): it was abandoned."""

    def wait(self, timeout: float | None) -> bool:
        """Whether it is done, waiting up to ``timeout`` seconds (None: no limit)."""
        if self.done:
            return True
        if not self._finished.acquire(True, -1 if timeout is None else timeout):
            return False
        self._finished.release()  # for any other thread waiting too
        return True

    def outcome(self) -> Any:
        """The value, or raise the error (once done)."""
        if self.error is not None:
            raise self.error
        return self.value


class RemoteFuture(concurrent.futures.Future[Any]):
    """The pending answer of one remote operation, as ``submit`` returns it.

    ``cancel()`` also stops the remote work; ``result(timeout)`` waits as a synchronous call
    does (reading the answer on this thread when it can), cancels the work when the time is up
    (raising :class:`~chopsticks_nb.errors.CallTimeout`) and when the waiting thread is
    interrupted.
    """

    def __init__(
        self,
        host: str,
        wait: Callable[[float | None], Any] | None = None,
        cancel: Callable[[], bool] | None = None,
    ) -> None:
        super().__init__()
        self.host = host
        self._wait = wait
        self._cancel = cancel

    def mirror(self, operation: Operation) -> None:
        """Complete as ``operation`` did."""
        try:
            if operation.error is not None:
                self.set_exception(operation.error)
            else:
                self.set_result(operation.value)
        except concurrent.futures.InvalidStateError:  # cancelled meanwhile
            pass

    def cancel(self) -> bool:
        if self._cancel is None:
            return super().cancel()
        return self._cancel()

    def result(self, timeout: float | None = None) -> Any:
        if self._wait is not None and not self.done():
            return self._wait(timeout)
        return super().result(timeout)


class RequestTable:
    """The operations of one connection awaiting answers, by request id."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        #: by request id (read without the lock only to test emptiness)
        self.operations: dict[int, Operation] = {}
        self._ids = itertools.count(1)
        self._ended: Callable[[], ChopsticksError] | None = None

    def add(self, operation: Operation) -> None:
        """Give ``operation`` a request id and hold it until answered; fail it at once if the
        connection has ended."""
        operation.req_id = next(self._ids)
        with self._lock:
            ended = self._ended
            if ended is None:
                self.operations[operation.req_id] = operation
                return
        operation.fail(ended())

    def take(self, req_id: int) -> Operation | None:
        """Take the operation out (its answer came, or it is abandoned); None if gone."""
        with self._lock:
            return self.operations.pop(req_id, None)

    def get(self, req_id: int) -> Operation | None:
        return self.operations.get(req_id)

    def end(self, error: Callable[[], ChopsticksError]) -> list[Operation]:
        """The connection ended: take every operation out; later ones fail at once."""
        with self._lock:
            self._ended = error
            operations = list(self.operations.values())
            self.operations.clear()
        return operations

    def output_handler(self, req_id: int | None) -> OutputHandler | None:
        """The handler for output tagged ``req_id``: that operation's (None: the tunnel's). Output
        from outside the agent's relay (``req_id`` None: a child process writing to stderr) goes
        to the oldest call with a handler of its own; output between calls (0), to the tunnel."""
        with self._lock:
            if req_id is None:
                return next((o.output for o in self.operations.values() if o.output), None)
            operation = self.operations.get(req_id) if req_id else None
            return None if operation is None else operation.output
