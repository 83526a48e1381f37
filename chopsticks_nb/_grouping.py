"""Hosts grouped by identical outcome: canonical keys that tell ``1``, ``True`` and ``1.0`` apart.

Two hosts' values are *identical* when they are equal and of the same type, all the way down
(``[1]`` and ``[True]`` are not identical, though Python finds them equal). Unhashable values
(lists, dicts, sets) are compared by a canonical key: a hashable stand-in built so that two
values get equal keys exactly when they are identical, whatever the order of a dict's keys.
Flat containers of plain values (the usual answers: a dict of strings and numbers, a list of
lines) get their key in C, without a Python step per item; nesting costs a Python step per
container, up to :data:`MAX_STEPS` per value, past which a value stands alone (it is never
merged with another by mistake). NaN is one answer wherever it sits (``[1.0, nan]`` on two hosts
is one group), as is any value unequal to itself (``numpy.float64('nan')``, ``NaT``). numpy
arrays are keyed by dtype, shape and bytes; pandas frames, series and indexes by a hash of their
values, two frames with equal hashes then compared in full (types, dtypes, index, columns,
names, values, NaN equal to NaN). Failures are grouped by status, remote type and message, a
host's own name in its message counting as the same text as another's.
"""

from __future__ import annotations

import collections
import sys
from collections.abc import Hashable, Iterable, Mapping
from operator import eq
from typing import Any, Callable, cast

__all__ = [
    "MAX_STEPS",
    "ValueGroup",
    "any_repeats",
    "failure_message",
    "group_hosts",
    "value_key",
]

#: The most containers (and items of mixed containers) looked at in Python for one value's key;
#: a larger nested value gets a key of its own and is grouped with nothing else.
MAX_STEPS = 20_000

#: Types whose instances are keyed as themselves beside their type: hashable, and equal to an
#: instance of another of these types only through the numbers (1 == True == 1.0).
_LEAVES = frozenset({str, bytes, int, bool, float, complex, type(None)})
#: Leaf types without a NaN: containers of only these are not searched for one.
_NAN_FREE = frozenset({str, bytes, int, bool, type(None)})
#: What a host's own name becomes in a failure message, so that the hosts' messages group.
HOST_PLACEHOLDER = "{host}"


class _TooLarge(Exception):
    """The value takes more than MAX_STEPS steps to key: it stands alone."""


class ValueGroup:
    """Hosts whose outcomes are identical: ``value`` is the first host's value (or its
    :class:`~chopsticks_nb.result.ErrorResult` when ``failed``); ``hosts`` in result order;
    ``message`` a failure's message with each host's own name written ``{host}``; ``first``
    the position of the first host in the result."""

    __slots__ = ("failed", "first", "hosts", "message", "value")

    def __init__(self, value: Any, hosts: list[str], failed: bool, message: str, first: int):
        self.value = value
        self.hosts = hosts
        self.failed = failed
        self.message = message
        self.first = first

    def __repr__(self) -> str:
        return f"ValueGroup({self.value!r}, {self.hosts!r})"


def value_key(value: Any, steps: list[int] | None = None) -> Hashable:
    """A hashable key equal for two values exactly when they are identical (equal, same types)."""
    kind = type(value)
    if kind in _LEAVES:
        if value != value:  # NaN is not equal to itself, yet two NaNs are the same answer
            return (kind, "nan", repr(value))
        return (kind, value)
    budget = [MAX_STEPS] if steps is None else steps
    try:
        return _container_key(value, kind, budget)
    except (_TooLarge, RecursionError):
        return ("alone", id(value))


def _container_key(value: Any, kind: type, steps: list[int]) -> Hashable:
    steps[0] -= 1
    if steps[0] < 0:
        raise _TooLarge
    if kind is dict or (issubclass(kind, dict) and kind is not collections.OrderedDict):
        values = value.values()
        if _plain_no_nan(values) and _plain_no_nan(value):
            return (kind, frozenset(zip(map(type, value), value, map(type, values), values)))
        steps[0] -= len(value)
        return (kind, frozenset((_key(k, steps), _key(v, steps)) for k, v in value.items()))
    if kind is list or issubclass(kind, tuple):  # namedtuples too: their type is in the key
        types = set(map(type, value))
        if _plain(types) and (_NAN_FREE.issuperset(types) or _no_nan(value)):
            if len(types) == 1:  # one type: the items compare as themselves
                return (kind, types.pop(), tuple(value))
            return (kind, tuple(map(type, value)), tuple(value))
        steps[0] -= len(value)
        return (kind, tuple([_key(item, steps) for item in value]))
    if kind is collections.OrderedDict:  # its order is part of what it is
        steps[0] -= len(value)
        return (kind, tuple((_key(k, steps), _key(v, steps)) for k, v in value.items()))
    if kind is set or kind is frozenset:
        if _plain_no_nan(value):
            return (kind, frozenset(zip(map(type, value), value)))
        steps[0] -= len(value)
        return (kind, frozenset([_key(item, steps) for item in value]))
    return (kind, _other_key(value))


def _key(value: Any, steps: list[int]) -> Hashable:
    kind = type(value)
    if kind in _LEAVES:
        if value != value:
            return (kind, "nan", repr(value))
        return (kind, value)
    return _container_key(value, kind, steps)


def _plain(types: Iterable[type]) -> bool:
    """Items of these types can be keyed as themselves, beside their types (which tell 1, True
    and 1.0 apart), unless one is a NaN (see :func:`_no_nan`)."""
    return _LEAVES.issuperset(types)


def _no_nan(items: Iterable[Any]) -> bool:
    """Whether every item is equal to itself. A NaN is not: keyed as itself it would keep two
    otherwise identical values apart (tuples compare items by identity, then ``==``), so such
    a value is keyed item by item instead. ``operator.eq`` skips the identity shortcut, in C."""
    return all(map(eq, items, items))


def _plain_no_nan(items: Iterable[Any]) -> bool:
    """Whether the items are :func:`_plain` and none is a NaN (looked for among floats only)."""
    types = set(map(type, items))
    return _LEAVES.issuperset(types) and (_NAN_FREE.issuperset(types) or _no_nan(items))


def _other_key(value: Any) -> Hashable:
    """Anything else: itself when hashable (by its repr if unequal to itself, as NaN-like
    scalars are); an array by its type, shape and bytes; a pandas object by :class:`_PandasKey`;
    else alone."""
    try:
        hash(value)
    except TypeError:
        pass
    else:
        try:
            if value != value:
                return ("unequal to itself", repr(value))
        except Exception:  # a comparison that fails: the value is keyed as itself
            pass
        return cast(Hashable, value)
    if type(value).__module__.partition(".")[0] == "pandas":
        pandas_key = _PandasKey.of(value)
        if pandas_key is not None:
            return pandas_key
    tobytes = getattr(value, "tobytes", None)
    if callable(tobytes) and hasattr(value, "dtype") and hasattr(value, "shape"):
        try:
            return ("array", str(value.dtype), tuple(value.shape), tobytes())
        except Exception:  # an array-like that will not give its bytes: it stands alone
            pass
    return ("alone", id(value))


class _PandasKey:
    """Stands for a DataFrame, Series or Index in a dict of keys: hashed by a hash of its values
    (cheap, vectorised), equal to another exactly when the two are identical."""

    __slots__ = ("_hash", "value")

    def __init__(self, value: Any, digest: int) -> None:
        self.value = value
        self._hash = digest

    @classmethod
    def of(cls, value: Any) -> _PandasKey | None:
        # pandas is loaded: such a value arrived. Never imported otherwise.
        pandas = sys.modules.get("pandas")
        if pandas is None or not isinstance(value, _pandas_types(pandas)):
            return None
        try:
            hashable = value
            if isinstance(value, pandas.api.extensions.ExtensionArray):  # a Categorical...
                hashable = pandas.Series(value, copy=False)
            rows = pandas.util.hash_pandas_object(hashable, index=True).to_numpy()
            values = hash(rows.tobytes())
        except Exception:  # values pandas cannot hash: compared in full, grouped still
            values = 0
        return cls(value, hash((type(value), value.shape, values)))

    def __hash__(self) -> int:
        return self._hash

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, _PandasKey):
            return NotImplemented
        return other._hash == self._hash and _same_pandas(self.value, other.value)


def _pandas_types(pandas: Any) -> tuple[type, ...]:
    extension_array = pandas.api.extensions.ExtensionArray
    return (pandas.DataFrame, pandas.Series, pandas.Index, extension_array)


def _same_pandas(a: Any, b: Any) -> bool:
    """Whether two pandas objects are identical: same type, dtypes, index, columns, names and
    values, NaN (and NaT, None) in the same places counting as equal."""
    pandas = sys.modules["pandas"]
    if type(a) is not type(b) or a.shape != b.shape:
        return False
    try:
        if isinstance(a, pandas.DataFrame):
            return bool(a.columns.identical(b.columns) and a.index.identical(b.index)) and bool(
                (a.dtypes == b.dtypes).all() and a.equals(b)
            )
        if isinstance(a, pandas.Series):
            return bool(
                _same_name(a.name, b.name)
                and a.dtype == b.dtype
                and a.index.identical(b.index)
                and a.equals(b)
            )
        if isinstance(a, pandas.Index):
            return bool(a.identical(b))  # names, dtype and values
        return bool(a.dtype == b.dtype and a.equals(b))  # an array: a Categorical...
    except Exception:  # a comparison pandas refuses: not the same answer
        return False


def _same_name(a: Any, b: Any) -> bool:
    return type(a) is type(b) and value_key(a) == value_key(b)


def failure_message(host: str, message: str) -> str:
    """``message`` with ``host``'s name, where it stands as a word, written ``{host}``."""
    if len(host) < 2 or host not in message:
        return message
    out: list[str] = []
    start = 0
    at = message.find(host)
    while at >= 0:
        end = at + len(host)
        before = message[at - 1] if at else " "
        after = message[end] if end < len(message) else " "
        if not (before.isalnum() or before in "._-") and not (after.isalnum() or after in "_-"):
            out += (message[start:at], HOST_PLACEHOLDER)
            start = end
        at = message.find(host, end)
    return "".join(out) + message[start:]


def _outcome_key(host: str, value: Any, failed: bool) -> tuple[Hashable, str]:
    """The key a host's outcome is grouped by, and a failure's message (``{host}`` for the
    host's own name; ``""`` for a value)."""
    if failed:
        message = failure_message(host, value.msg)
        return ("failed", value.status, value.remote_type, message), message
    return value_key(value), ""


def group_hosts(outcomes: Mapping[str, Any], is_failure: Callable[[Any], bool]) -> list[ValueGroup]:
    """The hosts of ``outcomes`` grouped by identical value (failures by status, remote type
    and message), the smallest groups first and groups of one size in the order of their
    first host."""
    groups: dict[Hashable, ValueGroup] = {}
    get = groups.get
    for index, (host, value) in enumerate(outcomes.items()):
        failed = is_failure(value)
        key, message = _outcome_key(host, value, failed)
        group = get(key)
        if group is None:
            groups[key] = ValueGroup(value, [host], failed, message, index)
        else:
            group.hosts.append(host)
    return sorted(groups.values(), key=lambda group: (len(group.hosts), group.first))


def any_repeats(outcomes: Mapping[str, Any], is_failure: Callable[[Any], bool]) -> bool:
    """Whether two hosts' outcomes are identical (stops at the first such pair)."""
    seen: set[Hashable] = set()
    for host, value in outcomes.items():
        key = _outcome_key(host, value, is_failure(value))[0]
        if key in seen:
            return True
        seen.add(key)
    return False
