"""chopsticks_nb: run Python on many machines at once, from a notebook or a script.

Nothing needs installing on the far side but a Python interpreter (3.6 or newer): the agent is
sent over the tunnel's pipe when it connects. ``%load_ext chopsticks_nb`` adds the notebook magics.

This file must stay valid, and cheap, on every remote Python: a remote that imports
``chopsticks_nb.facts`` from the controller runs it first. So the public names are imported on
first use (PEP 562) rather than here.
"""

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"
__versioninfo__ = (0, 1, 0)  # __version__ as a tuple of ints, as chopsticks 1.0 had it

#: How deep tunnels may nest when remote code opens tunnels of its own. Set it; never ``+=`` it
#: from remote code, which would undo the limit.
DEPTH_LIMIT = 2

_EXPORTS = {
    "AsyncResult": "queue",
    "BaseTunnel": "tunnel",
    "CallCancelled": "errors",
    "CallTimeout": "errors",
    "ChopsticksError": "errors",
    "ConnectError": "errors",
    "ConnectTimeout": "errors",
    "ConnectionLost": "errors",
    "DepthLimitExceeded": "errors",
    "Docker": "tunnel",
    "ErrorResult": "group",
    "Group": "group",
    "GroupError": "group",
    "GroupInterrupted": "group",
    "GroupResult": "group",
    "HostPicker": "notebook.picker",
    "Local": "tunnel",
    "NotCompleted": "errors",
    "Podman": "tunnel",
    "ProtocolError": "errors",
    "Queue": "queue",
    "RemoteException": "errors",
    "SSHTunnel": "tunnel",
    "SerializationError": "errors",
    "SubprocessTunnel": "tunnel",
    "Sudo": "tunnel",
    "TransferError": "errors",
    "Tunnel": "tunnel",
    "TunnelClosed": "errors",
}

__all__ = [
    "DEPTH_LIMIT",
    "AsyncResult",
    "BaseTunnel",
    "CallCancelled",
    "CallTimeout",
    "ChopsticksError",
    "ConnectError",
    "ConnectTimeout",
    "ConnectionLost",
    "DepthLimitExceeded",
    "Docker",
    "ErrorResult",
    "Group",
    "GroupError",
    "GroupInterrupted",
    "GroupResult",
    "HostPicker",
    "Local",
    "NotCompleted",
    "Podman",
    "ProtocolError",
    "Queue",
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

if TYPE_CHECKING:
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
    from .group import ErrorResult, Group, GroupError, GroupInterrupted, GroupResult
    from .notebook.picker import HostPicker
    from .queue import AsyncResult, Queue
    from .tunnel import BaseTunnel, Docker, Local, Podman, SSHTunnel, SubprocessTunnel, Sudo, Tunnel


def load_ipython_extension(ipython: Any) -> None:
    """``%load_ext chopsticks_nb``: register the ``%remote``/``%%remote`` magics."""
    from .notebook import load_ipython_extension as load

    load(ipython)


def unload_ipython_extension(ipython: Any) -> None:
    """``%unload_ext chopsticks_nb``: remove the magics."""
    from .notebook import unload_ipython_extension as unload

    unload(ipython)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError("module 'chopsticks_nb' has no attribute " + repr(name))
    value = getattr(importlib.import_module("." + module, __name__), name)
    globals()[name] = value
    return value


def __dir__() -> "list[str]":
    return sorted(set(globals()) | set(_EXPORTS))
