"""Every error chopsticks_nb raises; each one knows the host it concerns (``.host``)::

ChopsticksError
├── ConnectError ............ the agent could not be started or reached
│   ├── ConnectTimeout ...... no handshake within the connect timeout
│   └── DepthLimitExceeded .. tunnels opened from remote code nest too deep
├── ConnectionLost .......... the agent or its link died; calls in flight fail with this
│   ├── TunnelClosed ........ the tunnel was closed while the call waited
│   └── ProtocolError ....... the remote sent something outside the protocol
├── RemoteException ......... the remote code raised; carries the remote traceback
├── SerializationError ...... a call or its result cannot travel
├── CallTimeout ............. a call did not finish in time (it is cancelled remotely)
├── CallCancelled ........... a call was cancelled before it finished
├── TransferError ........... a put or fetch failed or its checksum did not match
└── NotCompleted ............ a queued result was read before it was ready
"""

from __future__ import annotations

__all__ = [
    "CallCancelled",
    "CallTimeout",
    "ChopsticksError",
    "ConnectError",
    "ConnectTimeout",
    "ConnectionLost",
    "DepthLimitExceeded",
    "NotCompleted",
    "ProtocolError",
    "RemoteException",
    "SerializationError",
    "TransferError",
    "TunnelClosed",
]


class ChopsticksError(Exception):
    """Base of every chopsticks_nb error; ``host`` names the tunnel it concerns, if any."""

    def __init__(self, message: str, host: str | None = None) -> None:
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
        self.remote_type = remote_type
        self.remote_message = message
        self.remote_traceback = remote_traceback

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
