"""chopsticks_nb: run Python on many machines at once, from a notebook or a script.

Nothing needs installing on the far side but a Python interpreter (3.6 or newer): the agent is
sent over the tunnel's pipe when it connects. ``%load_ext chopsticks_nb`` adds the notebook magics.

This file must stay valid, and cheap, on every remote Python: a remote that imports
``chopsticks_nb.facts`` from the controller runs it first. So the public names are imported on
first use (PEP 562) rather than here.
"""

import importlib
import sys
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"
__versioninfo__ = (0, 1, 0)  # __version__ as a tuple of ints, as chopsticks 1.0 had it

#: How deep tunnels may nest when remote code opens tunnels of its own. Set it on the controller:
#: its agents pass it on (in a remote, this package starts from the controller's value).
DEPTH_LIMIT = getattr(sys.modules.get(__name__ + "._agent"), "INHERITED_DEPTH_LIMIT", None) or 2

#: Every public name of the package, and the module it lives in: the one table that
#: ``__all__``, ``__getattr__`` and ``__dir__`` are made from.
_EXPORTS = {
    "Allocation": "slurm",
    "AsyncResult": "queue",
    "BaseTunnel": "tunnel",
    "CallCancelled": "errors",
    "CallInterrupted": "errors",
    "CallTimeout": "errors",
    "ChopsticksError": "errors",
    "ConnectError": "errors",
    "ConnectTimeout": "errors",
    "ConnectionLost": "errors",
    "DepthLimitExceeded": "errors",
    "Docker": "tunnel",
    "ErrorResult": "result",
    "Group": "group",
    "GroupError": "errors",
    "GroupInterrupted": "errors",
    "GroupResult": "result",
    "HostDone": "result",
    "HostPicker": "notebook.picker",
    "HostRangeError": "errors",
    "InventoryError": "errors",
    "JobState": "slurm",
    "Local": "tunnel",
    "NotCompleted": "errors",
    "OutputBatcher": "output",
    "Podman": "tunnel",
    "ProtocolError": "errors",
    "Queue": "queue",
    "RemoteException": "errors",
    "SSHConfigError": "errors",
    "SSHTunnel": "tunnel",
    "SerializationError": "errors",
    "SlurmError": "slurm",
    "Srun": "slurm",
    "SubprocessTunnel": "tunnel",
    "Sudo": "tunnel",
    "TransferError": "errors",
    "Tunnel": "tunnel",
    "TunnelClosed": "errors",
}

__all__ = ["DEPTH_LIMIT", *sorted(_EXPORTS), "__version__"]

if TYPE_CHECKING:
    # The same names for type checkers, which cannot read the table (tests/core/test_package.py
    # checks that the two agree). "X as X" marks each one as re-exported.
    from .errors import CallCancelled as CallCancelled
    from .errors import CallInterrupted as CallInterrupted
    from .errors import CallTimeout as CallTimeout
    from .errors import ChopsticksError as ChopsticksError
    from .errors import ConnectError as ConnectError
    from .errors import ConnectionLost as ConnectionLost
    from .errors import ConnectTimeout as ConnectTimeout
    from .errors import DepthLimitExceeded as DepthLimitExceeded
    from .errors import GroupError as GroupError
    from .errors import GroupInterrupted as GroupInterrupted
    from .errors import HostRangeError as HostRangeError
    from .errors import InventoryError as InventoryError
    from .errors import NotCompleted as NotCompleted
    from .errors import ProtocolError as ProtocolError
    from .errors import RemoteException as RemoteException
    from .errors import SerializationError as SerializationError
    from .errors import SSHConfigError as SSHConfigError
    from .errors import TransferError as TransferError
    from .errors import TunnelClosed as TunnelClosed
    from .group import Group as Group
    from .notebook.picker import HostPicker as HostPicker
    from .output import OutputBatcher as OutputBatcher
    from .queue import AsyncResult as AsyncResult
    from .queue import Queue as Queue
    from .result import ErrorResult as ErrorResult
    from .result import GroupResult as GroupResult
    from .result import HostDone as HostDone
    from .slurm import Allocation as Allocation
    from .slurm import JobState as JobState
    from .slurm import SlurmError as SlurmError
    from .slurm import Srun as Srun
    from .tunnel import BaseTunnel as BaseTunnel
    from .tunnel import Docker as Docker
    from .tunnel import Local as Local
    from .tunnel import Podman as Podman
    from .tunnel import SSHTunnel as SSHTunnel
    from .tunnel import SubprocessTunnel as SubprocessTunnel
    from .tunnel import Sudo as Sudo
    from .tunnel import Tunnel as Tunnel


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
