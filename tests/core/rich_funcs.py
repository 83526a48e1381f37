"""Functions returning the rich values of the codec (dates, decimals, arrays, frames...), for
tests/core/test_rich_values.py. Stdlib only at import and valid on Python 3.6: every remote
Python imports this file from the controller; numpy and pandas are imported by the functions
that need them, on a remote that has them."""

import collections
import datetime
import decimal
import enum
import pathlib
import sys
import uuid

Point = collections.namedtuple("Point", "x y")


class Colour(enum.Enum):
    RED = "red"


class Size(enum.IntEnum):
    BIG = 3


def zone(key):
    """A ZoneInfo where the Python has zoneinfo (3.9+), else a fixed offset."""
    try:
        import zoneinfo
    except ImportError:
        return datetime.timezone(datetime.timedelta(hours=1), key)
    return zoneinfo.ZoneInfo(key)


def stdlib_values():
    """One of each stdlib kind, by name."""
    paris = zone("Europe/Paris")
    return {
        "naive datetime": datetime.datetime(2024, 2, 29, 23, 59, 58, 123456),
        "utc datetime": datetime.datetime(1970, 1, 1, tzinfo=datetime.timezone.utc),
        "fixed offset": datetime.datetime(
            2000, 1, 1, 12, tzinfo=datetime.timezone(-datetime.timedelta(hours=5, minutes=30))
        ),
        "named offset": datetime.timezone(datetime.timedelta(hours=2), "CEST"),
        "zoned datetime": datetime.datetime(2021, 10, 31, 2, 30, fold=1, tzinfo=paris),
        "zone": paris,
        "date": datetime.date(1, 1, 1),
        "time": datetime.time(23, 59, 59, 999999, tzinfo=datetime.timezone.utc),
        "timedelta": datetime.timedelta(days=-3, seconds=5, microseconds=7),
        "decimal": decimal.Decimal("-1234.5678900"),
        "decimal nan": decimal.Decimal("NaN"),
        "uuid": uuid.UUID("12345678-1234-5678-1234-567812345678"),
        "path": pathlib.Path("/tmp/some dir/file.txt"),
        "pure path": pathlib.PurePosixPath("relative/é"),
        "complex": complex(1.5, -2),
        "bytearray": bytearray(b"\x00\xffabc"),
        "namedtuple": Point(1, [2, "three"]),
        "ordered dict": collections.OrderedDict([("b", 1), ("a", 2)]),
        "counter": collections.Counter("mississippi"),
        "defaultdict": collections.defaultdict(list, {"k": [1]}),
        "enum": Colour.RED,
        "int enum": Size.BIG,
        "nested": {"when": [datetime.date(2020, 1, 1)], "amounts": (decimal.Decimal("0.1"),)},
    }


def stdlib_value(name):
    return stdlib_values()[name]


def unsendable():
    return {"stats": [1, 2, 3, object()]}


def python_version():
    return tuple(sys.version_info[:2])


# -- numpy and pandas (the remote must have them) -----------------------------------------------


def has_numpy():
    """Whether numpy imports here. (Where the remote has none, the import hook brings the
    controller's, whose compiled parts cannot load: an ImportError, or on Pythons older than
    numpy's a SyntaxError.)"""
    try:
        import numpy  # noqa: F401
    except (ImportError, SyntaxError):
        return False
    return True


def loaded_array_libraries():
    """Which of numpy and pandas this process has imported."""
    return sorted(name for name in ("numpy", "pandas") if name in sys.modules)


DTYPES = [
    "?", "i1", "i2", "<i4", ">i4", "i8", "u1", "u2", "u4", ">u8", "f2", "f4", ">f8", "f8",
    "c8", "c16", ">c16", "M8[ns]", "M8[D]", ">M8[us]", "m8[s]", "m8[10ms]", "U5", ">U3", "S4",
]  # fmt: skip


def array(dtype, shape, order="C"):
    """An array of ``dtype`` and ``shape`` with varied contents, in ``order`` ("C", "F", or
    "strided": every other item of a larger array)."""
    import numpy as np

    size = 1
    for n in shape:
        size *= n
    kind = np.dtype(dtype).kind
    numbers = np.arange(2 * size + 1) % 97
    if kind == "b":
        values = numbers % 2 == 1
    elif kind in "US":
        values = np.array([("é" if kind == "U" else "") + str(n) for n in numbers])
    elif kind in "mM":
        values = numbers.astype("i8")
        values[0] = np.iinfo("i8").min  # NaT
    else:
        values = numbers
    values = values.astype(dtype)
    if order == "strided":
        return values[1::2][:size].reshape(shape)
    return np.array(values[:size].reshape(shape), order=order)


def scalar(dtype):
    """The numpy scalar of ``dtype`` (item 1 of its array)."""
    return array(dtype, (3,))[1]


def object_array_in_dict():
    import numpy as np

    return {"stats": [1, 2, 3, np.array([{}, 1], dtype=object)]}


def percentile():
    import numpy as np

    return np.percentile(np.arange(100), 99)


def frame():
    """A DataFrame with every kind of column pandas users meet."""
    import numpy as np
    import pandas as pd

    rows = 4
    return pd.DataFrame(
        {
            "int": np.arange(rows),
            "float": [1.5, np.nan, -0.0, 1e30],
            "str": ["a", None, "ccc", ""],
            "object": [decimal.Decimal("1.5"), None, "x", (1, 2)],
            "category": pd.Categorical(["u", "v", "u", None], categories=["v", "u"]),
            "datetime": pd.to_datetime(
                ["2020-01-01 00:00", None, "2021-05-05 10:00", "1999-12-31 23:59"]
            ),
            "tz": pd.date_range("2020-03-29", periods=rows, freq="h", tz="Europe/Paris"),
            "timedelta": pd.to_timedelta([1, 2, None, 4], unit="s"),
            "nullable int": pd.array([1, None, 3, 4], dtype="Int64"),
            "nullable bool": pd.array([True, None, False, True], dtype="boolean"),
            "string": pd.array(["a", None, "c", "d"], dtype="string"),
            "bool": [True, False, True, True],
        },
        index=pd.Index([10, 20, 30, 40], name="id"),
    )


def pandas_values():
    import numpy as np
    import pandas as pd

    df = frame()
    multi = pd.MultiIndex.from_arrays([["a", "a", "b"], [1, 2, 1]], names=["letter", "n"])
    return {
        "frame": df,
        "describe": df.describe(),
        "series": df["float"],
        "str series": df["str"],
        "index": df.index,
        "range index": pd.RangeIndex(0, 10, 3, name="r"),
        "datetime index": pd.date_range("2020-01-01", periods=5, freq="D", name="day"),
        "tz index": pd.date_range("2020-01-01", periods=3, freq="h", tz="UTC"),
        "multi index": multi,
        "multi frame": pd.DataFrame(np.arange(6).reshape(3, 2), index=multi, columns=["x", "x"]),
        "categorical index": pd.CategoricalIndex(["a", "b", "a"], ordered=True),
        "categorical": pd.Categorical(["a", "b"], ordered=True),
        "timestamp": pd.Timestamp("2020-01-01 12:00:00.123456789", tz="UTC"),
        "timedelta": pd.Timedelta("1 day 2 ns"),
        "nat": pd.NaT,
        "na": pd.NA,
        "empty frame": pd.DataFrame(),
        "empty series": pd.Series([], dtype="float64", name="nothing"),
        "named tuple series": pd.Series([1.5, 2.0], name=("a", 1)),
        "groupby": df.groupby("bool")["int"].sum(),
    }


def pandas_value(name):
    return pandas_values()[name]


def period_frame():
    import pandas as pd

    return {"df": pd.DataFrame({"when": pd.period_range("2020", periods=2, freq="M")})}


def through_nested(name):
    """stdlib_value ``name`` as an agent started by this one returns it (this agent decodes
    it as a controller does, then sends it on)."""
    from chopsticks_nb.tunnel import Local

    with Local("nested") as tunnel:
        return tunnel.call(stdlib_value, name)


def array_through_nested():
    import sys

    from chopsticks_nb.tunnel import Local

    with Local("nested", python3=sys.executable) as tunnel:
        return tunnel.call(array, "f8", (300, 400), "F")
