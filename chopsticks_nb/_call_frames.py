"""How a call is framed for the agent: the general pickle, or one of three faster frames.

The general frame (Msg.CALL) pickles ``(callable, args, kwargs)`` with the source pickler of
_serialize. Three speed-ups (see _speedups; each measured in bench/README.md) frame the common
case of an importable callable with plain-data arguments more cheaply:

- ``by_name``: the callable goes as ``(module, qualname)``, which the agent looks up itself;
  pickling a reference (an import and lookups to check it) costs more than the rest of a small
  call.
- ``blobs``: large ``bytes`` arguments follow the pickle as they are (Msg.CALL_BLOBS), and the
  agent reads each from the pipe straight into its bytes object: one copy, not three.
- ``codec_first``: a connection's first such call goes in the codec (Msg.CALL_CODEC), so the
  agent starts without importing _pickle (a good part of a start).

A fourth, ``push_modules``, sends the user's own modules that a call names before the call
(Msg.MODULES), so that the agent need not ask for them: a round trip less on a slow link
(the connection does it, with what ``pickle_call`` says the call names).
"""

from __future__ import annotations

import contextlib
import pickle
from typing import Any, Callable, Optional, Union

from . import _agent, _lending, _speedups
from ._agent import PICKLE_PROTOCOL, U32, Msg
from ._serialize import RemoteInfo, dumps, importable_name

__all__ = ["PickledCall", "first_frame", "pickle_call"]

BY_NAME = _speedups.enabled("by_name")
BLOBS = _speedups.enabled("blobs")
CODEC_FIRST = _speedups.enabled("codec_first")
PUSH_MODULES = _speedups.enabled("push_modules")

#: A pickled call: the kind of its frame, the pieces of its payload, for a call by name with
#: plain arguments (module, qualname, args, kwargs), which a first call sends in the codec, and
#: the modules the agent imports to run it (see ModuleServer.push): the callable's module for a
#: call by name (the very string, so that the connection's check of it is one set lookup), else
#: those the pickle names.
PickledCall = tuple[
    int,
    list[bytes],
    Optional[tuple[str, str, tuple[Any, ...], dict[str, Any]]],
    Union[str, frozenset[str]],
]

_PLAIN = frozenset((type(None), bool, int, float, str, bytes))
#: A bytes argument as large as the pieces the writer lends the pipe goes after the pickle.
LARGE = _lending.LARGE
_PLAIN_SMALL, _PLAIN_LARGE, _MIXED = range(3)


def pickle_call(
    func: Callable[..., Any],
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    host: str,
    remote_info: RemoteInfo | None = None,
) -> PickledCall:
    """Pickle ``(func, args, kwargs)`` for the agent: the kind of frame and its payload's
    pieces. SerializationError names what failed."""
    name = importable_name(func) if BY_NAME else None
    shape = _MIXED if name is None else _args_shape(args)
    if name is not None and shape != _MIXED and (not kwargs or _plain(kwargs)):
        if shape == _PLAIN_LARGE and BLOBS:
            return _blob_call(name, args, kwargs)
        plain = (*name, args, kwargs)
        return Msg.CALL, [pickle.dumps(plain, PICKLE_PROTOCOL)], plain, name[0]
    chunks = dumps((func, args, kwargs), host, remote_info)
    return Msg.CALL, chunks, None, chunks.modules


def first_frame(call: PickledCall) -> tuple[int, list[bytes]]:
    """The frame for a connection's first call: in the codec if it can go there."""
    if CODEC_FIRST and call[2] is not None:
        with contextlib.suppress(_agent.CodecError):  # too large for the codec: pickled
            return Msg.CALL_CODEC, [_agent.encode(call[2])]
    return call[0], call[1]


def _blob_call(name: tuple[str, str], args: tuple[Any, ...], kwargs: dict[str, Any]) -> PickledCall:
    """A CALL_BLOBS frame (see Msg): the large bytes arguments after the pickle, as they are."""
    rest = list(args)
    blobs: list[bytes] = []
    places: list[tuple[int, int]] = []
    for index, arg in enumerate(args):
        if type(arg) is bytes and len(arg) >= LARGE:
            rest[index] = None
            blobs.append(arg)
            places.append((index, len(arg)))
    pickled = pickle.dumps((*name, tuple(rest), kwargs, tuple(places)), PICKLE_PROTOCOL)
    return Msg.CALL_BLOBS, [U32.pack(len(pickled)), pickled, *blobs], None, name[0]


def _args_shape(args: tuple[Any, ...]) -> int:
    """_PLAIN_SMALL or _PLAIN_LARGE (with a large bytes argument) if every argument is
    plain (see _plain), else _MIXED. One pass: this runs on every call."""
    if len(args) >= 64:
        return _MIXED
    shape = _PLAIN_SMALL
    for arg in args:
        kind = type(arg)
        if kind in _PLAIN:
            if kind is bytes and len(arg) >= LARGE:
                shape = _PLAIN_LARGE
        elif not _plain(arg, 1):
            return _MIXED
    return shape


def _plain(value: object, depth: int = 0) -> bool:
    """Only builtin data, shallow: no object inside can need shipping by value. Exact types:
    a subclass (an IntEnum defined in ``__main__``) must go by value."""
    kind = type(value)
    if kind in _PLAIN:
        return True
    if depth > 2:
        return False
    if kind is tuple or kind is list:
        items: Any = value
        return len(items) < 64 and all(
            type(item) in _PLAIN or _plain(item, depth + 1) for item in items
        )
    if kind is dict:
        pairs: dict[Any, Any] = value  # type: ignore[assignment]
        return len(pairs) < 64 and all(
            type(k) in _PLAIN and _plain(v, depth + 1) for k, v in pairs.items()
        )
    return False
