"""The notebook layer: the ``%remote``/``%%remote`` magics, the live view and the host picker.

``%load_ext chopsticks_nb`` loads it. It is a client of the public API only; its modules import
IPython and ipywidgets, which the core never imports, and this package imports each module
only on first use (PEP 562). Results render themselves (:mod:`chopsticks_nb.render`).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__all__ = [
    "HostPicker",
    "LiveView",
    "RemoteMagics",
    "cell_names",
    "load_ipython_extension",
    "unload_ipython_extension",
]

_EXPORTS = {
    "HostPicker": "picker",
    "LiveView": "live",
    "RemoteMagics": "magics",
    "cell_names": "magics",
}

if TYPE_CHECKING:
    from .live import LiveView
    from .magics import RemoteMagics, cell_names
    from .picker import HostPicker


def load_ipython_extension(ipython: Any) -> None:
    """Register the magics with ``ipython`` (what ``%load_ext chopsticks_nb`` calls)."""
    from .magics import RemoteMagics

    if "RemoteMagics" not in ipython.magics_manager.registry:
        ipython.register_magics(RemoteMagics(ipython))


def unload_ipython_extension(ipython: Any) -> None:
    """Remove the magics and close the tunnels they made for host names (``%unload_ext``)."""
    manager = ipython.magics_manager
    magics = manager.registry.pop("RemoteMagics", None)
    for kind in ("line", "cell"):
        if manager.magics[kind].get("remote") is not None:
            del manager.magics[kind]["remote"]
    if magics is not None:
        magics.close()


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'chopsticks_nb.notebook' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))
