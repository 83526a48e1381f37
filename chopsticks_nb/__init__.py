"""chopsticks_nb: run Python on many machines at once, from a notebook or a script.

Nothing needs installing on the far side but a Python interpreter (3.6 or newer): the agent is
sent over the tunnel's pipe when it connects. ``%load_ext chopsticks_nb`` adds the notebook magics.
"""

from __future__ import annotations

from typing import Any

from .errors import (
    CallCancelled,
    CallTimeout,
    ChopsticksError,
    ConnectError,
    ConnectionLost,
    ConnectTimeout,
    DepthLimitExceeded,
    NotCompleted,
    ProtocolError,
    RemoteException,
    SerializationError,
    TransferError,
    TunnelClosed,
)
from .tunnel import BaseTunnel, Docker, Local, Podman, SSHTunnel, SubprocessTunnel, Sudo, Tunnel

__version__ = "0.1.0"

#: How deep tunnels may nest when remote code opens tunnels of its own. Set it; never ``+=`` it
#: from remote code, which would undo the limit.
DEPTH_LIMIT = 2

__all__ = [
    "DEPTH_LIMIT",
    "BaseTunnel",
    "CallCancelled",
    "CallTimeout",
    "ChopsticksError",
    "ConnectError",
    "ConnectTimeout",
    "ConnectionLost",
    "DepthLimitExceeded",
    "Docker",
    "Local",
    "NotCompleted",
    "Podman",
    "ProtocolError",
    "RemoteException",
    "SSHTunnel",
    "SerializationError",
    "SubprocessTunnel",
    "Sudo",
    "TransferError",
    "Tunnel",
    "TunnelClosed",
    "__version__",
]


def __getattr__(name: str) -> Any:
    raise AttributeError(f"module 'chopsticks_nb' has no attribute {name!r}")
