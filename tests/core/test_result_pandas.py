"""GroupResult.to_pandas(): one row per host; a clear error when pandas is not installed."""

from __future__ import annotations

import math
import subprocess
import sys

import pandas

from chopsticks_nb.errors import ConnectError, RemoteException
from chopsticks_nb.result import ErrorResult, GroupResult


def test_one_row_per_host_with_status_value_error_and_time() -> None:
    remote = RemoteException("bad key", "c", "KeyError", "tb")
    result = GroupResult(
        {
            "a": 1,
            "b": "two",
            "c": ErrorResult.from_exception(remote),
            "d": ErrorResult.from_exception(ConnectError("refused", "d")),
        },
        timings={"a": 0.5, "b": 0.25, "c": 1.0},
    )
    frame = result.to_pandas()
    assert isinstance(frame, pandas.DataFrame)
    assert list(frame.columns) == ["host", "status", "value", "remote_type", "message", "elapsed"]
    assert list(frame["host"]) == ["a", "b", "c", "d"]
    assert list(frame["status"]) == ["ok", "ok", "error", "unreachable"]
    assert list(frame["value"])[:2] == [1, "two"]
    assert (
        frame.loc[2, "remote_type"] == "KeyError" and frame.loc[2, "message"] == "KeyError: bad key"
    )
    assert frame.loc[3, "message"] == "refused" and pandas.isna(frame.loc[3, "remote_type"])
    assert list(frame["elapsed"])[:3] == [0.5, 0.25, 1.0] and math.isnan(frame.loc[3, "elapsed"])


def test_dict_values_are_spread_over_columns() -> None:
    result = GroupResult(
        {
            "a": {"kernel": "6.1", "cpus": 4},
            "b": {"kernel": "5.10", "cpus": 8, "status": "odd"},
            "c": ErrorResult("no", status="failed"),
        }
    )
    frame = result.to_pandas()
    assert list(frame.columns) == [
        "host",
        "status",
        "kernel",
        "cpus",
        "value.status",
        "remote_type",
        "message",
        "elapsed",
    ]
    assert list(frame["kernel"])[:2] == ["6.1", "5.10"] and frame.loc[1, "value.status"] == "odd"
    assert list(frame["status"]) == ["ok", "ok", "failed"]
    # Mixed values keep a value column beside the spread keys.
    mixed = GroupResult({"a": {"k": 1}, "b": 7}).to_pandas()
    assert list(mixed.columns)[:4] == ["host", "status", "value", "k"]
    assert mixed.loc[1, "value"] == 7 and mixed.loc[0, "k"] == 1


def test_without_pandas_the_error_says_what_to_install() -> None:
    code = (
        "import sys\n"
        "sys.modules['pandas'] = None\n"
        "from chopsticks_nb.result import GroupResult\n"
        "try:\n"
        "    GroupResult({'a': 1}).to_pandas()\n"
        "except ImportError as exc:\n"
        "    print(type(exc).__name__, exc.name, '|', exc)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert out.stdout.strip() == (
        "ImportError pandas | GroupResult.to_pandas() needs pandas, which is not installed "
        "here: pip install pandas"
    )
