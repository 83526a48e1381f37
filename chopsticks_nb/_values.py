"""Builds the rich values a remote sends (dates, decimals, paths, namedtuples...) from their
checked state: the loaders of the codec's tagged values (``_agent.Tag``).

Each loader takes the state that followed its tag, checks it against a closed shape (exact
types, ints of at most 64 bits, names from closed lists or patterns) and only then builds the
value with the standard library's constructors. Nothing is looked up by a name the remote chose:
a namedtuple type is made afresh from checked plain names, a time zone is found by a checked key
in this machine's time zone files. numpy arrays and pandas objects are built in ``_arrays`` and
``_frames``, imported when such a value first comes. Importing this module registers every
loader with the codec (``_agent.EXT_LOADERS``).
"""

from __future__ import annotations

import collections
import datetime
import importlib
import os
import re
import sys
from typing import TYPE_CHECKING, Any, Callable

if TYPE_CHECKING:  # imported by their builders, when such a value first comes
    import decimal
    import pathlib
    import uuid

from . import _agent

_agent.load_later()  # in an agent that has tunnels of its own, the codec's later section
from ._agent import DecodeError, MissingModule, Tag  # noqa: E402 - defined by load_later there

__all__ = ["INT", "LOADERS", "expect", "one", "zone", "zoneinfo_type"]

#: ``build(decoder, state) -> value`` for each tag: the decoder (for its limits and the bytes
#: after the state) and the state, not checked yet: a tuple of its parts, or its one part.
Build = Callable[[Any, Any], object]

#: A shape part standing for any int of at most 64 bits (every int part must fit: see expect).
INT = int
_INT_LIMIT = 1 << 63


def one(state: object, kind: type, what: str) -> Any:
    """``state`` if it is of exactly type ``kind`` (an int: within 64 bits); else DecodeError
    naming ``what``. A state of one part is that part, with no tuple around it."""
    if type(state) is not kind:
        raise DecodeError(f"malformed {what}: {_agent._a(state)}, not {kind.__name__}")
    if kind is int and not -_INT_LIMIT <= state < _INT_LIMIT:  # type: ignore[operator]
        raise DecodeError(f"malformed {what}: {_agent._show(state)}")
    return state


def expect(state: object, shape: tuple[Any, ...], what: str) -> tuple[Any, ...]:
    """``state`` if it has ``shape``: as many parts, each of the exact type its shape part names
    (a type, a tuple of types where None stands for None, or ``object``), ints within 64 bits;
    else DecodeError naming ``what``."""
    if type(state) is not tuple:
        raise DecodeError(f"malformed {what}: {_agent._a(state)}, not a tuple")
    if len(state) != len(shape):
        raise DecodeError(f"malformed {what}: {len(state)} parts, not {len(shape)}")
    for number, (part, kinds) in enumerate(zip(state, shape)):
        if kinds is object:
            continue
        kinds = kinds if isinstance(kinds, tuple) else (kinds,)
        if not (type(part) in kinds or (part is None and None in kinds)):
            raise DecodeError(f"malformed {what}: part {number} is {_agent._a(part)}")
        if type(part) is int and not -_INT_LIMIT <= part < _INT_LIMIT:
            raise DecodeError(f"malformed {what}: part {number} is {_agent._show(part)}")
    return state


# -- dates and times -------------------------------------------------------------------------


def _tzinfo(part: object, what: str) -> datetime.tzinfo | None:
    """A decoded tzinfo part: None, or a timezone or ZoneInfo this side built."""
    if part is None or type(part) is datetime.timezone or type(part) is zoneinfo_type():
        return part  # type: ignore[return-value]
    raise DecodeError(f"malformed {what}: its tzinfo is {_agent._a(part)}")


def _parts(packed: object, parts: Any, what: str) -> tuple[int, ...]:
    if type(packed) is not bytes or len(packed) != parts.size:
        raise DecodeError(f"malformed {what}: its packed parts")
    return parts.unpack(packed)  # type: ignore[no-any-return]


def _datetime(decoder: Any, state: Any) -> datetime.datetime:
    packed, tz = expect(state, (bytes, object), "datetime")
    year, month, day, hour, minute, second, microsecond, fold = _parts(
        packed, _agent.DATETIME_PARTS, "datetime"
    )
    tzinfo = _tzinfo(tz, "datetime")
    value = datetime.datetime(
        year, month, day, hour, minute, second, microsecond, tzinfo, fold=fold
    )
    decoder.settle(_agent.KEPT[Tag.DATETIME])
    return value


def _date(decoder: Any, state: Any) -> datetime.date:
    value = datetime.date(*_parts(state, _agent.DATE_PARTS, "date"))
    decoder.settle(_agent.KEPT[Tag.DATE])
    return value


def _time(decoder: Any, state: Any) -> datetime.time:
    packed, tz = expect(state, (bytes, object), "time")
    hour, minute, second, microsecond, fold = _parts(packed, _agent.TIME_PARTS, "time")
    value = datetime.time(hour, minute, second, microsecond, _tzinfo(tz, "time"), fold=fold)
    decoder.settle(_agent.KEPT[Tag.TIME])
    return value


def _timedelta(decoder: Any, state: Any) -> datetime.timedelta:
    value = datetime.timedelta(*_parts(state, _agent.TIMEDELTA_PARTS, "timedelta"))
    decoder.settle(_agent.KEPT[Tag.TIMEDELTA])
    return value


def _timezone(decoder: Any, state: Any) -> datetime.timezone:
    offset, name = expect(state, (datetime.timedelta, (str, None)), "timezone")
    value = datetime.timezone(offset) if name is None else datetime.timezone(offset, name)
    decoder.settle(_agent.KEPT[Tag.TIMEZONE])
    return value


#: A time zone key as the tz database spells them ("Europe/Paris", "Etc/GMT+5", "UTC").
_ZONE_KEY = re.compile(r"[A-Za-z0-9_+\-]{1,64}(?:/[A-Za-z0-9_+\-]{1,64}){0,3}")
_zones: dict[str, Any] = {}


def zoneinfo_type() -> type | None:
    try:
        import zoneinfo
    except ImportError:  # pragma: no cover - Python 3.9+ has it
        return None
    return zoneinfo.ZoneInfo


def zone(decoder: Any, key: object) -> Any:
    """The ZoneInfo of ``key`` if this machine's time zone database has it: the key must look
    like one and name a file there before ZoneInfo is asked (which would otherwise import the
    ``tzdata`` package by parts of the key)."""
    if type(key) is not str or not _ZONE_KEY.fullmatch(key):
        raise DecodeError(f"malformed time zone key {_agent._show(key)}")
    found = _zones.get(key)
    if found is not None:
        return found
    decoder.charge_once(("zone", key), _agent._WORK_ZONE, "time zones")
    import zoneinfo

    if not any(os.path.isfile(os.path.join(root, key)) for root in zoneinfo.TZPATH):
        raise MissingModule(
            f"the time zone {key!r} is not in this machine's time zone database "
            "(install the system's tzdata package)"
        )
    found = _zones[key] = zoneinfo.ZoneInfo(key)  # at most one per file there
    return found


def optional_module(name: str, holding: str) -> Any:
    """The module ``name`` (numpy, pandas), imported now if it was not; MissingModule, saying
    what to install, if it is not installed here. ``holding``: what the value holds."""
    module = sys.modules.get(name)
    if module is not None:
        return module
    try:
        return importlib.import_module(name)
    except ImportError as exc:
        raise MissingModule(
            f"it holds {holding}, and {name} cannot be imported here ({exc}): "
            f"install {name} on this machine (pip install {name}) to receive it"
        ) from None


def _zone(decoder: Any, state: Any) -> Any:
    value = zone(decoder, one(state, str, "time zone"))
    decoder.settle(_agent.KEPT[Tag.ZONEINFO])
    return value


# -- numbers, identifiers, paths -------------------------------------------------------------

#: Decimal's own text form (str(Decimal)): digits, a point, an exponent; infinities and NaNs.
_DECIMAL = re.compile(
    r"[-+]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][-+]?[0-9]+)?|[-+]?(?:Infinity|s?NaN[0-9]*)"
)


def _decimal(decoder: Any, state: Any) -> decimal.Decimal:
    text = one(state, str, "Decimal")
    if not _DECIMAL.fullmatch(text):
        raise DecodeError(f"malformed Decimal {_agent._show(text)}")
    import decimal

    value = decimal.Decimal(text)
    decoder.settle(_agent.KEPT[Tag.DECIMAL] + len(text))
    return value


def _uuid(decoder: Any, state: Any) -> uuid.UUID:
    raw = one(state, bytes, "UUID")
    if len(raw) != 16:
        raise DecodeError(f"malformed UUID: {len(raw)} bytes")
    import uuid

    value = uuid.UUID(bytes=raw)
    decoder.settle(_agent.KEPT[Tag.UUID])
    return value


def _path(decoder: Any, state: Any) -> pathlib.PurePosixPath:
    text = one(state, str, "path")
    import pathlib

    value = pathlib.PurePosixPath(text)
    decoder.settle(_agent.KEPT[Tag.PATH] + 2 * len(text))
    return value


# -- namedtuples and mappings -----------------------------------------------------------------

#: The namedtuple types made so far, by (type name, fields); at most MAX_TYPES, the oldest
#: dropped first (values made of it keep it).
_types: collections.OrderedDict[tuple[str, tuple[str, ...]], type] = collections.OrderedDict()
MAX_TYPES = 1024


def _namedtuple(decoder: Any, state: Any) -> tuple[Any, ...]:
    name, fields, values = expect(state, (str, tuple, tuple), "namedtuple")
    if not (
        _agent.plain_name(name)
        and len(fields) <= _agent.MAX_FIELDS
        and all(_agent.plain_name(field) for field in fields)
        and len(set(fields)) == len(fields)
        and len(values) == len(fields)
    ):
        raise DecodeError(f"malformed namedtuple {_agent._show(name)}: its names or its length")
    key = (name, fields)
    made = _types.get(key)
    if made is None:
        decoder.charge_once(key, _agent._WORK_NEW_TYPE, "namedtuple types")
        # Plain ASCII names only (checked above): namedtuple writes them into code it compiles.
        made = _types[key] = collections.namedtuple(name, fields)
        if len(_types) > MAX_TYPES:
            _types.popitem(last=False)
    return made._make(values)  # type: ignore[attr-defined,no-any-return]


def _ordered_dict(decoder: Any, state: Any) -> collections.OrderedDict[Any, Any]:
    return collections.OrderedDict(one(state, dict, "OrderedDict"))


def _counter(decoder: Any, state: Any) -> collections.Counter[Any]:
    return collections.Counter(one(state, dict, "Counter"))


def _elsewhere(module: str, name: str) -> Build:
    """The loader ``name`` of module ``module`` of this package, imported on first use (when
    it takes this one's place in the codec's table)."""

    def build(decoder: Any, state: Any) -> object:
        loader: Build = getattr(importlib.import_module(f"{__package__}.{module}"), name)
        for tag, each in list(_agent.EXT_LOADERS.items()):
            if each is build:
                _agent.EXT_LOADERS[tag] = loader
        return loader(decoder, state)

    return build


LOADERS: dict[int, Build] = {
    Tag.DATETIME: _datetime,
    Tag.DATE: _date,
    Tag.TIME: _time,
    Tag.TIMEDELTA: _timedelta,
    Tag.TIMEZONE: _timezone,
    Tag.ZONEINFO: _zone,
    Tag.DECIMAL: _decimal,
    Tag.UUID: _uuid,
    Tag.PATH: _path,
    Tag.NAMEDTUPLE: _namedtuple,
    Tag.ORDERED_DICT: _ordered_dict,
    Tag.COUNTER: _counter,
    Tag.ARRAY: _elsewhere("_arrays", "build_array"),
    Tag.NP_SCALAR: _elsewhere("_arrays", "build_scalar"),
    Tag.PD_INDEX: _elsewhere("_frames", "build_pd_index"),
    Tag.PD_SERIES: _elsewhere("_frames", "build_pd_series"),
    Tag.PD_FRAME: _elsewhere("_frames", "build_pd_frame"),
    Tag.PD_CATEGORICAL: _elsewhere("_frames", "build_pd_categorical"),
    Tag.PD_DATETIME_TZ: _elsewhere("_frames", "build_pd_datetime_tz"),
    Tag.PD_STRING: _elsewhere("_frames", "build_pd_string"),
    Tag.PD_MASKED: _elsewhere("_frames", "build_pd_masked"),
    Tag.PD_TIMESTAMP: _elsewhere("_frames", "build_pd_timestamp"),
    Tag.PD_TIMEDELTA: _elsewhere("_frames", "build_pd_timedelta"),
    Tag.PD_NAT: _elsewhere("_frames", "build_pd_nat"),
    Tag.PD_NA: _elsewhere("_frames", "build_pd_na"),
}
_agent.EXT_LOADERS.update(LOADERS)
