"""Every error chopsticks_nb raises, in one tree; each ChopsticksError knows its host (``.host``)::

ChopsticksError
├── ConnectError ............ the agent could not be started or reached
│   ├── ConnectTimeout ...... no handshake within the connect timeout
│   ├── DepthLimitExceeded .. tunnels opened from remote code nest too deep
│   └── SlurmError .......... Slurm refused or failed (chopsticks_nb.slurm)
├── ConnectionLost .......... the agent or its link died; calls in flight fail with this
│   ├── TunnelClosed ........ the tunnel was closed while the call waited
│   └── ProtocolError ....... the remote sent something outside the protocol
├── RemoteException ......... the remote code raised; carries the remote traceback
├── SerializationError ...... a call or its result cannot travel
├── CallTimeout ............. a call did not finish in time (it is cancelled remotely)
├── CallCancelled ........... a call was cancelled before it finished
├── TransferError ........... a put or fetch failed or its checksum did not match
├── NotCompleted ............ a queued result was read before it was ready
├── GroupError .............. hosts of a group operation failed; ``.failures`` says how
│
│   Lists of hosts that cannot be read (also ValueErrors: they are bad arguments):
├── HostRangeError .......... a host range such as ``web[01-20]``; points at the position
├── SSHConfigError .......... an ssh config that ssh would refuse too; names file and line
└── InventoryError .......... an Ansible inventory that cannot be used; names file and line

KeyboardInterrupt (Python's own, not a ChopsticksError: Ctrl-C must still stop a program)
├── CallInterrupted ......... Ctrl-C during ``tunnel.call``; the remote call was cancelled
└── GroupInterrupted ........ Ctrl-C during a group operation; ``.result`` holds what finished
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from ._bounded import short_text

if TYPE_CHECKING:  # never at run time: the result model imports this module
    from .result import ErrorResult, GroupResult

__all__ = [
    "CallCancelled",
    "CallInterrupted",
    "CallTimeout",
    "ChopsticksError",
    "ConnectError",
    "ConnectTimeout",
    "ConnectionLost",
    "DepthLimitExceeded",
    "GroupError",
    "GroupInterrupted",
    "HostRangeError",
    "InventoryError",
    "NotCompleted",
    "ProtocolError",
    "RemoteException",
    "SSHConfigError",
    "SerializationError",
    "TransferError",
    "TunnelClosed",
    "failure_summary",
    "showable",
]

#: Remote tracebacks a GroupError's message shows unless told otherwise.
MAX_TRACEBACKS = 3
#: Characters of each host's error message a GroupError's message shows.
MAX_MESSAGE_CHARS = 2000


def showable(text: str) -> str:
    """``text`` with each lone surrogate written as an escape (``\\udc80``): remote text may
    hold them, and no display (nor Jupyter's JSON) accepts them."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return text.encode("utf-8", "backslashreplace").decode("utf-8")
    return text


class ChopsticksError(Exception):
    """Base of every chopsticks_nb error; ``host`` names the tunnel it concerns, if any."""

    def __init__(self, message: str, host: str | None = None) -> None:
        message = showable(message)
        super().__init__(message)
        self.message = message
        self.host = host

    def __str__(self) -> str:
        return self.message if self.host is None else f"{self.host}: {self.message}"

    def __reduce__(self) -> tuple[object, ...]:
        return (type(self), (self.message, self.host))


class ConnectError(ChopsticksError):
    """The agent could not start: missing binary, unreachable host, refused login, no python."""


class ConnectTimeout(ConnectError):
    """The agent did not answer the handshake within the connect timeout."""


class DepthLimitExceeded(ConnectError):
    """Opening this tunnel from remote code would exceed ``chopsticks_nb.DEPTH_LIMIT``."""


class ConnectionLost(ChopsticksError):
    """The agent exited or its link broke while calls were in flight."""


class TunnelClosed(ConnectionLost):
    """The tunnel was closed while the operation was waiting."""


class ProtocolError(ConnectionLost):
    """The remote sent bytes outside the protocol; that one tunnel was closed."""


class SerializationError(ChopsticksError):
    """A callable, an argument or a result cannot be carried across the tunnel."""


class CallTimeout(ChopsticksError):
    """The call did not finish within its timeout; the remote work was cancelled."""


class CallCancelled(ChopsticksError):
    """The call was cancelled before it finished."""


class TransferError(ChopsticksError):
    """A put or fetch failed, or the data received did not match its checksum."""


class NotCompleted(ChopsticksError):
    """The queued operation has not run yet."""


class RemoteException(ChopsticksError):
    """The remote code raised an exception.

    ``remote_type`` is the remote exception's qualified type name, ``remote_message`` its
    message and ``remote_traceback`` the formatted remote traceback (or None).
    """

    def __init__(
        self,
        message: str,
        host: str | None = None,
        remote_type: str = "Exception",
        remote_traceback: str | None = None,
    ) -> None:
        super().__init__(message, host)
        self.remote_type = showable(remote_type)
        self.remote_message = self.message
        self.remote_traceback = None if remote_traceback is None else showable(remote_traceback)

    def __str__(self) -> str:
        where = "" if self.host is None else f" on {self.host}"
        return f"{self.remote_type}{where}: {self.message}"

    def __reduce__(self) -> tuple[object, ...]:
        return (type(self), (self.message, self.host, self.remote_type, self.remote_traceback))

    def _render_traceback_(self) -> list[str]:
        """IPython shows this instead of the local stack: the remote traceback is what helps."""
        header = f"RemoteException on {self.host}:" if self.host else "RemoteException:"
        body = self.remote_traceback or f"{self.remote_type}: {self.message}\n"
        return [header, *body.rstrip("\n").splitlines()]


def failure_summary(
    failures: Mapping[str, ErrorResult],
    total: int,
    *,
    max_hosts: int | None = None,
    max_tracebacks: int = MAX_TRACEBACKS,
    hint: str = "see .failures",
) -> str:
    """The report of a group operation's failed hosts, as a :class:`GroupError` says it.

    A first line naming the failed hosts (``2 of 5 hosts failed: a, b``), one line per host
    with its error, then up to ``max_tracebacks`` remote tracebacks. ``max_hosts`` bounds the
    hosts named (the rest are counted: ``and 40 more``); when tracebacks are left out, a last
    line counts them and says where to find them (``hint``).
    """
    hosts = list(failures)
    named = hosts if max_hosts is None else hosts[: max(0, max_hosts)]
    more = f" and {len(hosts) - len(named)} more" if len(named) < len(hosts) else ""
    noun = "host" if total == 1 else "hosts"
    lines = [f"{len(hosts)} of {total} {noun} failed: {', '.join(named)}{more}"]
    lines += [f"  {host}: {short_text(failures[host].msg, MAX_MESSAGE_CHARS)}" for host in named]
    with_tb = [(host, error.tb) for host, error in failures.items() if error.tb]
    shown = with_tb[: max(0, max_tracebacks)]
    for host, tb in shown:
        lines.append(f"--- remote traceback from {host} ---")
        lines.append(str(tb).rstrip("\n"))
    left_out = len(with_tb) - len(shown)
    if left_out:
        noun = "traceback" if left_out == 1 else "tracebacks"
        also = "more " if shown else ""
        lines.append(f"({left_out} {also}remote {noun} not shown: {hint})")
    return "\n".join(lines)


class GroupError(ChopsticksError):
    """Hosts of a group operation failed (raised by ``GroupResult.raise_failures()``).

    ``failures`` maps each failed host to its ``ErrorResult``; ``result`` is the whole
    ``GroupResult`` (successes included) when known. Not a :class:`RemoteException`: the hosts
    may have failed in any way, unreachable or timed out as well as raising.
    """

    def __init__(
        self,
        message: str,
        host: str | None = None,
        *,
        failures: Mapping[str, ErrorResult] | None = None,
        result: GroupResult | None = None,
    ) -> None:
        super().__init__(message, host)
        self.failures: dict[str, ErrorResult] = dict(failures or {})
        self.result = result

    @classmethod
    def from_failures(
        cls,
        failures: Mapping[str, ErrorResult],
        total: int,
        *,
        max_hosts: int | None = None,
        max_tracebacks: int = MAX_TRACEBACKS,
        hint: str = "see .failures",
        result: GroupResult | None = None,
    ) -> GroupError:
        """The error for ``failures`` among ``total`` hosts; its message is
        :func:`failure_summary`'s (the options are its own)."""
        message = failure_summary(
            failures, total, max_hosts=max_hosts, max_tracebacks=max_tracebacks, hint=hint
        )
        return cls(message, failures=failures, result=result)

    def __str__(self) -> str:
        return self.message

    def __reduce__(self) -> tuple[Any, ...]:
        state = {"failures": self.failures, "result": self.result}
        return (type(self), (self.message, self.host), state)

    def _render_traceback_(self) -> list[str]:
        """IPython shows the summary (tracebacks included) instead of the local stack."""
        first, *rest = self.message.split("\n")
        return [f"GroupError: {first}", *rest]


class CallInterrupted(KeyboardInterrupt):
    """KeyboardInterrupt while ``tunnel.call`` waited, after the remote call was cancelled.

    IPython shows it as one line: the frames that waited for the answer are the library's.
    """

    def __init__(self, host: str) -> None:
        super().__init__(f"the call on {host} was interrupted and cancelled there")
        self.host = host

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.host,))

    def _render_traceback_(self) -> list[str]:
        return [f"KeyboardInterrupt: {self}"]


class HostRangeError(ChopsticksError, ValueError):
    """A host range expression that cannot be read. The message shows where::

        the range 3-1 goes down
          web[3-1]
              ^

    ``reason``, ``expression`` and ``position`` (0-based, in ``expression``) are attributes.
    """

    def __init__(self, reason: str, expression: str, position: int) -> None:
        super().__init__(reason)
        self.reason = reason
        self.expression = expression
        self.position = position

    def __str__(self) -> str:
        return f"{self.reason}\n  {self.expression}\n  {' ' * self.position}^"

    def __reduce__(self) -> tuple[object, ...]:
        return (type(self), (self.reason, self.expression, self.position))


class SSHConfigError(ChopsticksError, ValueError):
    """An ssh config that ssh would refuse too; ``path`` and ``line`` say where."""

    def __init__(self, message: str, path: str, line: int) -> None:
        super().__init__(message)
        self.path = path
        self.line = line

    def __str__(self) -> str:
        return f"{self.path}, line {self.line}: {self.message}"

    def __reduce__(self) -> tuple[object, ...]:
        return (type(self), (self.message, self.path, self.line))


class InventoryError(ChopsticksError, ValueError):
    """An inventory that cannot be used as it is; ``path`` and ``line`` (or None) say where."""

    def __init__(self, message: str, path: str, line: int | None = None) -> None:
        super().__init__(message)
        self.path = path
        self.line = line

    def __str__(self) -> str:
        where = self.path if self.line is None else f"{self.path}, line {self.line}"
        return f"{where}: {self.message}"

    def __reduce__(self) -> tuple[object, ...]:
        return (type(self), (self.message, self.path, self.line))


class GroupInterrupted(KeyboardInterrupt):
    """KeyboardInterrupt during a group operation, after every unfinished remote call was cancelled.

    ``result`` is the partial ``GroupResult``: the hosts that finished hold their values, the
    others an ``ErrorResult`` with status ``"interrupted"``. A KeyboardInterrupt, not a
    ChopsticksError, so that ``except Exception`` does not swallow Ctrl-C.
    """

    def __init__(self, result: GroupResult) -> None:
        pending = sum(1 for _, e in result.failures() if e.status == "interrupted")
        super().__init__(f"interrupted with {pending} of {len(result)} hosts unfinished")
        self.result = result

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.result,))

    def _render_traceback_(self) -> list[str]:
        """IPython shows this short text instead of a local stack that would not help."""
        hosts = [host for host, error in self.result.failures() if error.status == "interrupted"]
        shown = ", ".join(hosts[:10]) + (f" and {len(hosts) - 10} more" if len(hosts) > 10 else "")
        lines = [f"GroupInterrupted: {self}"]
        if hosts:
            lines.append(f"  interrupted: {shown}")
        return lines
