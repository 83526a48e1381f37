"""Builds the pandas objects a remote sends (DataFrame, Series, Index, and the arrays and
scalars inside them) from checked pieces: numpy arrays, lists of codec values, names.

A DataFrame is its column labels (an Index), its index and one array per column; an array is
a numpy array, a list (object dtype), or one of pandas' own: categorical (codes and
categories), tz-aware datetimes (UTC datetime64 and a time zone), strings, nullable numbers
(data and mask). Each is built with pandas' public constructors, which check that the pieces
fit (codes within the categories, lengths alike); the decoder charges each pandas object it
builds against the message's size (``_agent.WORK_PER_KIB``). pandas is imported when the
first pandas value comes, not before.
"""

from __future__ import annotations

import contextlib
import datetime
import re
from typing import Any

from . import _agent
from ._agent import DecodeError, Tag
from ._arrays import numpy
from ._values import INT, expect, one, optional_module, zoneinfo_type

__all__ = [
    "build_pd_categorical",
    "build_pd_datetime_tz",
    "build_pd_frame",
    "build_pd_index",
    "build_pd_masked",
    "build_pd_na",
    "build_pd_nat",
    "build_pd_series",
    "build_pd_string",
    "build_pd_timedelta",
    "build_pd_timestamp",
]

#: A pandas frequency as ``freqstr`` spells it ("D", "15min", "W-SUN", "2BQE-DEC").
_FREQ = re.compile(r"-?[0-9]{0,9}[A-Za-z]{1,8}(?:-[A-Za-z]{1,8})?")
#: The nullable dtypes (name: the numpy dtype of their data).
_MASKED = {
    **{f"Int{bits}": f"int{bits}" for bits in (8, 16, 32, 64)},
    **{f"UInt{bits}": f"uint{bits}" for bits in (8, 16, 32, 64)},
    "Float32": "float32",
    "Float64": "float64",
    "boolean": "bool",
}


def pandas() -> Any:
    """pandas, imported now if it was not; MissingModule if it is not installed here."""
    return optional_module("pandas", "a pandas object")


def _charge(decoder: Any, objects: int = 1) -> Any:
    decoder.charge_work(_agent._WORK_PANDAS * objects, "pandas objects")
    return pandas()


def _values(pd: Any, part: object, what: str) -> tuple[Any, Any]:
    """The values of a Series, Index or column as pandas takes them, and the dtype to ask for
    (object for a list, so that pandas infers nothing): a 1-d numpy array, a list, or a pandas
    array this side built from a tagged value."""
    np = numpy()
    if type(part) is list:
        array = np.empty(len(part), dtype=object)
        for number, item in enumerate(part):  # not array[:] = part: a tuple would be spread
            array[number] = item
        return array, object
    if type(part) is np.ndarray and part.ndim == 1:  # type: ignore[attr-defined]
        return part, None
    if isinstance(part, pd.api.extensions.ExtensionArray):
        return part, None
    raise DecodeError(f"malformed {what}: its values are {_agent._a(part)}")


def _index(pd: Any, part: object, what: str) -> Any:
    if not isinstance(part, pd.Index):
        raise DecodeError(f"malformed {what}: {_agent._a(part)}, not an Index")
    return part


def _check_unique(decoder: Any, index: Any, what: str) -> None:
    """DecodeError unless the values of ``index`` are unique, found without the hash tables
    pandas would build (its hash of int64 is easy to collide: 40,000 crafted values took 1.6 s
    to check): numbers and dates by sorting, other values through the decoder's check of
    shared hashes."""
    np = numpy()
    values = index.to_numpy()
    if values.dtype.kind in "biufcmM":
        unique = len(np.unique(values)) == len(values)
    else:
        items = values.tolist()
        if len(items) > _agent.MAX_SHARED_HASH:
            decoder.check_hashes(items, decoder.pos, what)
        unique = len(set(items)) == len(items)
    if not unique:
        raise DecodeError(f"malformed {what}: values that repeat")


def _tz(part: object) -> Any:
    """A decoded time zone part: None, or a timezone or ZoneInfo this side built."""
    if part is None or type(part) is datetime.timezone or type(part) is zoneinfo_type():
        return part
    raise DecodeError(f"malformed time zone: {_agent._a(part)}")


def build_pd_index(decoder: Any, state: Any) -> Any:
    pd = _charge(decoder)
    kind = state[0] if state else None
    if kind == "range":
        _, start, stop, step, name = expect(state, (str, INT, INT, INT, object), "RangeIndex")
        return pd.RangeIndex(start, stop, step, name=name)
    if kind == "multi":
        _, levels, codes, names = expect(state, (str, list, list, list), "MultiIndex")
        if not levels or not len(levels) == len(codes) == len(names):
            raise DecodeError("malformed MultiIndex: its levels, codes and names differ")
        np = numpy()
        for level, level_codes in zip(levels, codes):
            _check_unique(decoder, _index(pd, level, "MultiIndex level"), "MultiIndex level")
            if not (
                type(level_codes) is np.ndarray
                and level_codes.ndim == 1
                and level_codes.dtype.kind in "iu"
                and len(level_codes) == len(codes[0])
                and (
                    not len(level_codes)
                    or -1 <= level_codes.min() <= level_codes.max() < len(level)
                )
            ):
                raise DecodeError("malformed MultiIndex: its codes")
        # Checked here: pandas' own check would hash the levels (see _check_unique).
        return pd.MultiIndex(levels=levels, codes=codes, names=names, verify_integrity=False)
    _, part, name, freq = expect(state, (str, object, object, (str, None)), "Index")
    if kind != "values":
        raise DecodeError(f"malformed Index: kind {_agent._show(kind)}")
    values, dtype = _values(pd, part, "Index")
    index = pd.Index(values, dtype=dtype, name=name, copy=False)
    if freq is not None and _FREQ.fullmatch(freq) and hasattr(index, "freq"):
        # Its values are checked against it; another pandas may spell it otherwise.
        with contextlib.suppress(ValueError, TypeError):
            index = type(index)(index, freq=freq)
    return index


def build_pd_series(decoder: Any, state: Any) -> Any:
    pd = _charge(decoder)
    part, index, name = expect(state, (object, object, object), "Series")
    values, dtype = _values(pd, part, "Series")
    index = _index(pd, index, "Series index")
    if len(values) != len(index):
        raise DecodeError(f"malformed Series: {len(values)} values, {len(index)} labels")
    return pd.Series(values, index=index, dtype=dtype, name=name, copy=False)


def build_pd_frame(decoder: Any, state: Any) -> Any:
    columns, index, parts = expect(state, (object, object, list), "DataFrame")
    pd = _charge(decoder, 1 + len(parts))
    columns = _index(pd, columns, "DataFrame columns")
    index = _index(pd, index, "DataFrame index")
    if len(parts) != len(columns):
        raise DecodeError(f"malformed DataFrame: {len(parts)} columns, {len(columns)} labels")
    series = {}
    for number, part in enumerate(parts):
        values, dtype = _values(pd, part, "DataFrame column")
        if len(values) != len(index):
            raise DecodeError(f"malformed DataFrame: column {number} has {len(values)} rows")
        series[number] = pd.Series(values, dtype=dtype, copy=False)  # numbered: labels repeat
    frame = pd.DataFrame(series, index=pd.RangeIndex(len(index)), copy=False)
    frame.index = index
    frame.columns = columns
    return frame


def build_pd_categorical(decoder: Any, state: Any) -> Any:
    pd = _charge(decoder)
    codes, categories, ordered = expect(state, (object, object, bool), "Categorical")
    np = numpy()
    if type(codes) is not np.ndarray or codes.ndim != 1 or codes.dtype.kind != "i":
        raise DecodeError("malformed Categorical: codes that are not an int array")
    categories = _index(pd, categories, "Categorical categories")
    _check_unique(decoder, categories, "Categorical categories")
    # Checked already: pandas' own check would hash them (see _check_unique).
    fastpath = getattr(pd.CategoricalDtype, "_from_fastpath", pd.CategoricalDtype)
    return pd.Categorical.from_codes(codes, dtype=fastpath(categories, ordered))


def build_pd_datetime_tz(decoder: Any, state: Any) -> Any:
    pd = _charge(decoder)
    values, tz = expect(state, (object, object), "tz-aware datetimes")
    np = numpy()
    if type(values) is not np.ndarray or values.ndim != 1 or values.dtype.kind != "M":
        raise DecodeError("malformed tz-aware datetimes: not a datetime64 array")
    if _tz(tz) is None:
        raise DecodeError("malformed tz-aware datetimes: no time zone")
    return pd.DatetimeIndex(values, tz="UTC").tz_convert(tz).array


def build_pd_string(decoder: Any, state: Any) -> Any:
    pd = _charge(decoder)
    items, missing_is_nan = expect(state, (list, bool), "string array")
    if not all(item is None or type(item) is str for item in items):
        raise DecodeError("malformed string array: an item that is not a str or None")
    dtype = pd.StringDtype("python")
    if missing_is_nan:  # pandas 3's default "str" dtype; earlier pandas have only pd.NA
        with contextlib.suppress(TypeError):
            dtype = pd.StringDtype("python", na_value=numpy().nan)
    return pd.array(items, dtype=dtype)


def build_pd_masked(decoder: Any, state: Any) -> Any:
    pd = _charge(decoder)
    name, data, mask = expect(state, (str, object, object), "nullable array")
    np = numpy()
    if name not in _MASKED:
        raise DecodeError(f"malformed nullable array: dtype {_agent._show(name)}")
    if not (
        type(data) is np.ndarray
        and type(mask) is np.ndarray
        and data.ndim == mask.ndim == 1
        and data.dtype == np.dtype(_MASKED[name])
        and mask.dtype == np.dtype(bool)
        and len(data) == len(mask)
    ):
        raise DecodeError(f"malformed nullable array of dtype {name}: its data or mask")
    kind = {"I": "IntegerArray", "U": "IntegerArray", "F": "FloatingArray"}.get(
        name[0], "BooleanArray"
    )
    return getattr(pd.arrays, kind)(data, mask)


def build_pd_timestamp(decoder: Any, state: Any) -> Any:
    nanoseconds, tz = expect(state, (INT, object), "Timestamp")
    value = pandas().Timestamp(nanoseconds, tz=_tz(tz))
    decoder.settle(_agent.KEPT[Tag.PD_TIMESTAMP])
    return value


def build_pd_timedelta(decoder: Any, state: Any) -> Any:
    value = pandas().Timedelta(one(state, int, "Timedelta"))
    decoder.settle(_agent.KEPT[Tag.PD_TIMEDELTA])
    return value


def build_pd_nat(decoder: Any, state: Any) -> Any:
    if state is not None:
        raise DecodeError(f"malformed NaT: {_agent._a(state)}")
    decoder.settle(_agent.KEPT[Tag.PD_NAT])
    return pandas().NaT


def build_pd_na(decoder: Any, state: Any) -> Any:
    if state is not None:
        raise DecodeError(f"malformed NA: {_agent._a(state)}")
    decoder.settle(_agent.KEPT[Tag.PD_NA])
    return pandas().NA
