"""Rich results through real tunnels: dates, decimals, UUIDs, paths, namedtuples, mappings on
every remote Python (3.6-3.13); numpy arrays and pandas objects from a remote that has them
(the controller's own interpreter as a Local remote: the venv has numpy and pandas; the pyenv
Pythons do not). What cannot come back says where it sits and what to do."""

from __future__ import annotations

import collections
import decimal
import enum
import pathlib
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import rich_funcs

from chopsticks_nb import errors
from chopsticks_nb.tunnel import Local
from fixtures.pythons import RemotePython

HERE = Path(__file__).parent


def assert_same(got: Any, sent: Any) -> None:
    """``got`` is what the codec promises for ``sent``: equal, of the type the README's table
    gives (a Path as a PurePosixPath, a defaultdict as a dict, an Enum member as its value, a
    namedtuple as a namedtuple of the same name and fields)."""
    if isinstance(sent, enum.Enum):
        assert got == sent.value and type(got) is type(sent.value)
    elif isinstance(sent, tuple) and hasattr(sent, "_fields"):
        assert type(got).__name__ == type(sent).__name__ and got._fields == sent._fields
        assert tuple(got) == tuple(sent)
    elif isinstance(sent, pathlib.PurePath):
        assert type(got) is pathlib.PurePosixPath and got == sent
    elif isinstance(sent, collections.defaultdict):
        assert type(got) is dict and got == dict(sent)
    elif isinstance(sent, decimal.Decimal) and sent.is_nan():
        assert type(got) is decimal.Decimal and str(got) == str(sent)
    elif isinstance(sent, dict):
        assert type(got) is type(sent) and list(got) == list(sent)
        for key in sent:
            assert_same(got[key], sent[key])
    else:
        assert type(got) is type(sent) and got == sent
        if hasattr(sent, "tzinfo") and sent.tzinfo is not None:
            assert repr(got.tzinfo) == repr(sent.tzinfo)


def test_stdlib_values_come_back_equal(remote_python: RemotePython) -> None:
    """Every stdlib kind of the codec's table, made by the remote's own Python."""
    with Local(f"py{remote_python.version}", python3=str(remote_python.path)) as tunnel:
        got = tunnel.call(rich_funcs.stdlib_values)
        remote_version = tunnel.call(rich_funcs.python_version)
    expected = rich_funcs.stdlib_values()
    if remote_version < (3, 9):  # no zoneinfo there: a fixed offset named by the key
        for name in ("zone", "zoned datetime"):
            expected[name] = got[name]
        assert (
            repr(got["zone"])
            == "datetime.timezone(datetime.timedelta(seconds=3600), 'Europe/Paris')"
        )
    assert list(got) == list(expected)
    for name in expected:
        assert_same(got[name], expected[name])


def test_an_unsendable_value_names_where_it_sits(remote_python: RemotePython) -> None:
    with Local(f"py{remote_python.version}", python3=str(remote_python.path)) as tunnel:
        with pytest.raises(errors.SerializationError) as info:
            tunnel.call(rich_funcs.unsendable)
        assert tunnel.call(rich_funcs.python_version)  # the tunnel survives
    assert str(info.value) == (
        f"py{remote_python.version}: result['stats'][3]: builtins.object cannot be sent back; "
        "convert it (list(), str(), a dict)"
    )


# -- numpy and pandas ---------------------------------------------------------------------------


def test_arrays_from_every_remote_python_that_has_numpy(remote_python: RemotePython) -> None:
    """A remote Python with numpy (pyenv's 3.11 has it here; the others not) sends arrays and
    scalars of every dtype; one without it is asked for none (the agent imports numpy only
    for a value that already is an array): its plain results still come back."""
    with Local(f"py{remote_python.version}", python3=str(remote_python.path)) as tunnel:
        has_numpy = tunnel.call(rich_funcs.has_numpy)
        if has_numpy:
            for dtype in rich_funcs.DTYPES:
                got = tunnel.call(rich_funcs.array, dtype, (3, 4), "F")
                sent = rich_funcs.array(dtype, (3, 4), "F")
                assert got.dtype == sent.dtype and got.tobytes("A") == sent.tobytes("A")
            assert tunnel.call(rich_funcs.percentile) == rich_funcs.percentile()
        assert tunnel.call(rich_funcs.loaded_array_libraries) == (["numpy"] if has_numpy else [])


@pytest.fixture(scope="module")
def numpy_remote() -> Iterator[Local]:
    """A remote with numpy and pandas: this very interpreter (the venv's)."""
    with Local("np", python3=sys.executable) as tunnel:
        yield tunnel


SHAPES = [(), (0,), (7,), (3, 4), (2, 3, 4), (0, 3)]


@pytest.mark.parametrize("dtype", rich_funcs.DTYPES)
def test_arrays_of_every_dtype_come_back_equal(numpy_remote: Local, dtype: str) -> None:
    """Every dtype of the closed list, in every shape, C, Fortran and strided (sent as C),
    and its scalar: the same dtype (byte order included), shape, order and items."""
    for shape in SHAPES:
        for order in ("C", "F", "strided"):
            got = numpy_remote.call(rich_funcs.array, dtype, shape, order)
            sent = rich_funcs.array(dtype, shape, order)
            assert type(got) is np.ndarray and got.dtype == sent.dtype and got.shape == sent.shape
            assert got.tobytes(order="A") == sent.tobytes(order="A")
            if order == "F" and len(shape) > 1 and sent.size > 1:
                assert got.flags.f_contiguous and not got.flags.c_contiguous
            assert got.flags.writeable
    got = numpy_remote.call(rich_funcs.scalar, dtype)
    sent = rich_funcs.scalar(dtype)
    assert type(got) is type(sent) and got.dtype == sent.dtype
    assert got.tobytes() == sent.tobytes()


def test_a_large_array_is_used_where_it_arrived(numpy_remote: Local) -> None:
    """A large array comes in a message read into memory of its own: it is writable, aligned
    for its dtype, and equal."""
    got = numpy_remote.call(rich_funcs.array, "f8", (1000, 300), "F")
    assert np.array_equal(got, rich_funcs.array("f8", (1000, 300), "F"))
    assert got.flags.writeable and got.flags.aligned and got.flags.f_contiguous
    assert got.ctypes.data % 64 == 0
    got[0, 0] = -1.0  # its own memory


def test_numpy_scalars_and_percentile(numpy_remote: Local) -> None:
    got = numpy_remote.call(rich_funcs.percentile)
    assert type(got) is np.float64 and got == rich_funcs.percentile()


@pytest.mark.parametrize("name", list(rich_funcs.pandas_values()))
def test_pandas_values_come_back_equal(numpy_remote: Local, name: str) -> None:
    """DataFrames, Series and Indexes with names, a DatetimeIndex (and its freq), a
    MultiIndex, categorical, string, nullable, tz-aware and object columns, None/NaN/NaT."""
    got = numpy_remote.call(rich_funcs.pandas_value, name)
    sent = rich_funcs.pandas_value(name)
    if isinstance(sent, pd.DataFrame):
        pd.testing.assert_frame_equal(got, sent, check_exact=True)
    elif isinstance(sent, pd.Series):
        pd.testing.assert_series_equal(got, sent, check_exact=True)
    elif isinstance(sent, pd.Index):
        pd.testing.assert_index_equal(got, sent, exact=True, check_exact=True)
        assert getattr(got, "freq", None) == getattr(sent, "freq", None)
    elif isinstance(sent, pd.Categorical):
        assert got.dtype == sent.dtype and list(got) == list(sent)
    elif sent is pd.NaT or sent is pd.NA:
        assert got is sent
    else:
        assert type(got) is type(sent) and got == sent


def test_what_numpy_and_pandas_cannot_send_names_its_place(numpy_remote: Local) -> None:
    with pytest.raises(errors.SerializationError) as info:
        numpy_remote.call(rich_funcs.object_array_in_dict)
    assert str(info.value) == (
        "np: result['stats'][3]: numpy.ndarray of dtype object cannot be sent back; "
        "convert it (.tolist(), str(), a dict)"
    )
    with pytest.raises(errors.SerializationError) as info:
        numpy_remote.call(rich_funcs.period_frame)
    assert str(info.value).startswith("np: result['df']['when']: a pandas array of dtype period")
    assert "convert it (.astype(object))" in str(info.value)
    assert numpy_remote.call(rich_funcs.percentile) == rich_funcs.percentile()


def test_a_controller_without_numpy_says_what_to_install(tmp_path: Path) -> None:
    """A controller where numpy and pandas cannot be imported, receiving an array and a
    DataFrame: a SerializationError naming what to install; the tunnel carries on."""
    script = tmp_path / "no_numpy.py"
    script.write_text(
        textwrap.dedent(
            f"""
            import sys
            sys.modules["numpy"] = sys.modules["pandas"] = None  # import fails here
            sys.path.insert(0, {str(HERE)!r})
            import rich_funcs
            from chopsticks_nb import errors
            from chopsticks_nb.tunnel import Local
            with Local("bare", python3=sys.executable) as tunnel:
                for name in ("percentile", "frame"):
                    try:
                        tunnel.call(getattr(rich_funcs, name))
                    except errors.SerializationError as exc:
                        print(exc)
                print(tunnel.call(rich_funcs.python_version))
            """
        )
    )
    out = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=60, check=False
    )
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0].startswith("bare: the result cannot be received: it holds a numpy array")
    assert lines[0].endswith("install numpy on this machine (pip install numpy) to receive it")
    assert "pip install pandas" in lines[1]
    assert lines[2] == str(tuple(sys.version_info[:2]))


def test_rich_values_through_a_nested_tunnel(numpy_remote: Local) -> None:
    """An agent with tunnels of its own decodes rich values as a controller does (its copy of
    the codec compiles the encoders it was sent as a string: _agent.LATER) and sends them on."""
    for name in ("zoned datetime", "namedtuple", "decimal", "ordered dict"):
        assert_same(numpy_remote.call(rich_funcs.through_nested, name),
                    rich_funcs.stdlib_value(name))  # fmt: skip
    got = numpy_remote.call(rich_funcs.array_through_nested)
    assert np.array_equal(got, rich_funcs.array("f8", (300, 400), "F")) and got.flags.f_contiguous
