"""The results of a group operation: a value or an :class:`ErrorResult` per host.

A :class:`GroupResult` is a dict of host name -> value, where a host that failed in any way
(unreachable, raised, timed out, interrupted) holds an :class:`ErrorResult` instead of stopping
the others; :class:`HostDone` reports each host as it finishes. Their text and HTML views are
drawn by :mod:`chopsticks_nb.render`::

    result = group.call(time.time)
    for host, value in result.successful():
        print(host, value)
    result.raise_failures()      # GroupError if any host failed
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Callable, Literal

from . import render
from ._bounded import short_repr
from .errors import (
    MAX_TRACEBACKS,
    CallCancelled,
    CallTimeout,
    ChopsticksError,
    ConnectError,
    ConnectionLost,
    GroupError,
    RemoteException,
)

__all__ = ["ErrorResult", "GroupResult", "HostDone", "OnInterrupt", "ProgressCallback"]

#: Called with a :class:`HostDone` each time a host finishes (see ``Group.run``).
ProgressCallback = Callable[["HostDone"], None]

#: What a group operation does on KeyboardInterrupt: raise ``GroupInterrupted`` (a
#: KeyboardInterrupt), or return the partial result with the unfinished hosts interrupted.
OnInterrupt = Literal["raise", "return"]


class ErrorResult:
    """The failure of one host in a group operation, standing in for its value.

    ``msg`` is a one-line message, ``tb`` the remote traceback text (None unless the remote code
    raised), ``exception`` the :class:`~chopsticks_nb.errors.ChopsticksError` behind it, ``host``
    the host, ``remote_type`` the remote exception's type name (None when the failure was not a
    remote exception) and ``status`` one of ``"error"`` (the remote code raised),
    ``"unreachable"`` (no connection), ``"lost"`` (the connection died), ``"timeout"``,
    ``"interrupted"``, ``"cancelled"`` or ``"failed"`` (anything else, such as a transfer or
    serialisation error).
    """

    __slots__ = ("exception", "host", "msg", "status", "tb")

    def __init__(
        self,
        msg: str,
        tb: str | None = None,
        *,
        exception: ChopsticksError | None = None,
        host: str | None = None,
        status: str | None = None,
    ) -> None:
        self.msg = msg
        self.tb = tb
        self.exception = exception
        self.host = host if host is not None else getattr(exception, "host", None)
        self.status = status or _status_of(exception)

    @classmethod
    def from_exception(
        cls, exc: ChopsticksError, host: str | None = None, status: str | None = None
    ) -> ErrorResult:
        """The ErrorResult for ``exc`` (``host`` fills in when the error names none)."""
        if isinstance(exc, RemoteException):
            return cls(
                f"{exc.remote_type}: {exc.message}",
                exc.remote_traceback,
                exception=exc,
                host=exc.host or host,
                status=status,
            )
        return cls(exc.message, None, exception=exc, host=exc.host or host, status=status)

    @property
    def remote_type(self) -> str | None:
        """The remote exception's type name; None if the failure did not come from remote code."""
        if isinstance(self.exception, RemoteException):
            return self.exception.remote_type
        return None

    def __repr__(self) -> str:
        return f"ErrorResult({short_repr(self.msg, render.MAX_VALUE_CHARS)})"

    def _repr_html_(self) -> str:
        """HTML for notebooks: status, message, remote traceback collapsed (all escaped)."""
        return render.error_result_html(self)


def _status_of(exc: ChopsticksError | None) -> str:
    if isinstance(exc, RemoteException):
        return "error"
    if isinstance(exc, ConnectError):
        return "unreachable"
    if isinstance(exc, ConnectionLost):
        return "lost"
    if isinstance(exc, CallTimeout):
        return "timeout"
    if isinstance(exc, CallCancelled):
        return "cancelled"
    return "failed"


@dataclass(frozen=True)
class HostDone:
    """What a ``progress`` callback receives each time one host of an operation finishes.

    ``value`` is the host's value or its :class:`ErrorResult`; ``elapsed`` the seconds since the
    operation started on that host; ``done`` how many hosts have finished so far, of ``total``.
    """

    host: str
    value: Any
    elapsed: float
    done: int
    total: int

    @property
    def ok(self) -> bool:
        return not isinstance(self.value, ErrorResult)


class GroupResult(dict[str, Any]):
    """The results of a group operation: a dict of host name -> value or :class:`ErrorResult`.

    Hosts appear in the group's order. ``timings`` maps each host to the seconds its part took
    (connecting included); ``elapsed`` is the wall time of the whole operation.
    """

    def __init__(
        self,
        results: Mapping[str, Any] | Iterable[tuple[str, Any]] = (),
        *,
        timings: Mapping[str, float] | None = None,
        elapsed: float = 0.0,
    ) -> None:
        super().__init__(results)
        self.timings: dict[str, float] = dict(timings or {})
        self.elapsed = elapsed

    def successful(self) -> Iterator[tuple[str, Any]]:
        """Iterate over the ``(host, value)`` pairs of the hosts that succeeded."""
        return ((host, value) for host, value in self.items() if not isinstance(value, ErrorResult))

    def failures(self) -> Iterator[tuple[str, ErrorResult]]:
        """Iterate over the ``(host, ErrorResult)`` pairs of the hosts that failed."""
        return ((host, value) for host, value in self.items() if isinstance(value, ErrorResult))

    @property
    def ok(self) -> bool:
        """True if no host failed."""
        return not any(isinstance(value, ErrorResult) for value in self.values())

    def raise_failures(self, max_tracebacks: int = MAX_TRACEBACKS) -> GroupResult:
        """Raise :class:`~chopsticks_nb.errors.GroupError` if any host failed; else return self.

        The error's message names every failed host with its error, followed by up to
        ``max_tracebacks`` remote tracebacks.
        """
        failures = dict(self.failures())
        if failures:
            raise GroupError.from_failures(
                failures, len(self), max_tracebacks=max_tracebacks, result=self
            )
        return self

    def __repr__(self) -> str:
        return render.group_result_text(self)

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (dict(self),), {"timings": self.timings, "elapsed": self.elapsed})

    def _repr_html_(self) -> str:
        """HTML for notebooks: a table of host, status, value or error, time (all escaped)."""
        return render.group_result_html(self)
