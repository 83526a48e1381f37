"""Controller -> agent pickling of calls. Pickle only ever flows this way.

Importable callables travel by reference; the remote imports them (through the import hook if
it has not got them).
"""

from __future__ import annotations

import pickle
from typing import Any, Callable

from ._agent import PICKLE_PROTOCOL
from .errors import SerializationError


def dumps_call(
    func: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any], host: str
) -> bytes:
    """Pickle ``(func, args, kwargs)`` for the agent; SerializationError names what failed."""
    try:
        return pickle.dumps((func, args, kwargs), protocol=PICKLE_PROTOCOL)
    except (pickle.PicklingError, TypeError, AttributeError) as exc:
        name = getattr(func, "__qualname__", repr(func))
        raise SerializationError(f"cannot send the call to {name}: {exc}", host) from None
