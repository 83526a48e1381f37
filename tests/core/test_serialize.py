"""Functions and classes the remote cannot import travel as source, to any remote Python."""

from __future__ import annotations

import enum
import operator
import pickle
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest
import remote_funcs as rf

from chopsticks_nb import errors
from chopsticks_nb._agent import HEADER, Msg
from chopsticks_nb._call_frames import PickledCall, pickle_call
from chopsticks_nb._lending import frame_pieces
from chopsticks_nb._serialize import dumps
from chopsticks_nb.tunnel import Local
from fixtures.pythons import RemotePython

ROOT = Path(__file__).parents[2]
PROGRAM = Path(__file__).parent / "programs" / "main_functions.py"
EXPECTED = "6 120 True 6 81 18 7 [1, 3, [1, 2]] 7 1 2"


def test_main_program_functions_run_on_every_remote_python(remote_python: RemotePython) -> None:
    """Closures, recursion, mutual recursion, lambdas, classes with super() and properties,
    defaults, annotations the remote cannot evaluate, and lru_cache, all from __main__."""
    out = subprocess.run(
        [sys.executable, str(PROGRAM), str(ROOT), str(remote_python.path)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == EXPECTED


def test_nested_functions_and_classes_travel_from_a_test_body() -> None:
    offset = 10

    class Box:
        def __init__(self, value: int) -> None:
            self.value = value

        def opened(self) -> int:
            return self.value + offset

    def unbox(box: Box) -> int:
        return box.opened()

    with Local("nested") as tunnel:
        assert tunnel.call(unbox, Box(5)) == 15
        assert tunnel.call(lambda: offset * 2) == 20


def test_source_function_errors_keep_remote_line_numbers() -> None:
    def fails() -> None:
        raise ValueError("from a nested function")

    with Local("lines") as tunnel, pytest.raises(errors.RemoteException) as info:
        tunnel.call(fails)
    line = fails.__code__.co_firstlineno + 1
    assert f"line {line}, in fails" in (info.value.remote_traceback or "")
    assert 'raise ValueError("from a nested function")' in (info.value.remote_traceback or "")


def test_no_source_and_another_python_is_refused_naming_the_object() -> None:
    namespace: dict[str, object] = {}
    exec("def generated():\n    return 1\n", namespace)  # no file, no linecache entry
    with pytest.raises(errors.SerializationError, match=r"'generated'.*no source.*3\.6.*3\.11"):
        dumps(namespace["generated"], "old", lambda: {"version": [3, 6, 15], "cloudpickle": None})


def test_no_source_goes_as_bytecode_to_the_same_python_and_cloudpickle() -> None:
    namespace: dict[str, object] = {}
    exec("def generated(x):\n    return x * 2\n", namespace)
    with Local("same") as tunnel:
        assert tunnel.remote_info["cloudpickle"] is not None
        assert tunnel.call(namespace["generated"], 21) == 42  # type: ignore[arg-type]


def test_unpicklable_argument_is_named() -> None:
    """The error names which argument of the call could not be pickled, and why."""
    with pytest.raises(errors.SerializationError, match=r"cannot send.*echo"):
        dumps((rf.echo, (iter([]).__class__,), {}), "h")
    with Local("gen") as tunnel:
        with pytest.raises(errors.SerializationError) as info:
            tunnel.call(rf.echo, 1, (i for i in range(3)))
        assert str(info.value) == (
            "gen: cannot send echo: its argument args[1], a generator, cannot be pickled: "
            "cannot pickle 'generator' object"
        )
        with pytest.raises(errors.SerializationError) as info:
            tunnel.call(rf.echo, 1, lock=threading.Lock())
        assert str(info.value) == (
            "gen: cannot send echo: its argument kwargs['lock'], a _thread.lock, cannot be "
            "pickled: cannot pickle '_thread.lock' object"
        )
        assert tunnel.call(rf.echo, 1) == [[1], {}]


def test_importable_functions_still_go_by_reference() -> None:
    pickled = b"".join(dumps((rf.echo, (), {}), "h"))
    assert b"remote_funcs" in pickled
    assert b"def echo" not in pickled


@pytest.mark.speedup("blobs")
@pytest.mark.parametrize(
    "func", [len, rf.echo, lambda data: len(data)], ids=["builtin", "module", "lambda"]
)
def test_a_large_bytes_argument_is_sent_without_a_copy(func: Any) -> None:
    big = bytes(range(256)) * 4096
    kind, pieces, *_ = pickle_call(func, (big,), {}, "h")
    assert any(piece is big for piece in pieces)
    # After the pickle, for the agent to read straight into its bytes, when the pickle is
    # plain data (the callable by name); inside it otherwise.
    assert kind == (Msg.CALL if func.__name__ == "<lambda>" else Msg.CALL_BLOBS)


@pytest.mark.speedup("align")
@pytest.mark.parametrize("func", [len, operator.length_hint, rf.echo, lambda data: len(data)])
def test_a_large_argument_lines_up_in_the_pipe_as_in_memory(func: Any) -> None:
    # Where it is copied into the pipe (not lent by vmsplice): the pickle before the argument
    # is as long as the function's names make it, so a PING frame of padding goes first, for
    # the argument to lie in the pipe's pages as in memory, modulo 64 (the kernel copies a
    # page up to 4x slower 1-15 bytes off).
    big = bytes(range(256)) * 4096
    frame = frame_pieces(*_kind_first(pickle_call(func, (big,), {}, "h"), 7), align=True)
    kind, req_id, gap = HEADER.unpack(frame[0][: HEADER.size])
    assert (kind, req_id, len(frame[0])) == (Msg.PING, 0, HEADER.size + gap) and gap < 64
    offset = sum(len(piece) for piece in frame[: frame.index(big)])
    assert offset % 64 == (id(big) + sys.getsizeof(b"") - 1) % 64
    assert len(frame_pieces(*_kind_first(pickle_call(func, (b"small",), {}, "h"), 7), True)) == 2
    lent = frame_pieces(*_kind_first(pickle_call(func, (big,), {}, "h"), 7), align=False)
    assert HEADER.unpack(lent[0][: HEADER.size])[0] != Msg.PING
    with Local("padded") as tunnel:
        tunnel.call(len, b"")
        assert tunnel._conn is not None
        tunnel._conn.writer.lender.active = False  # as where vmsplice is refused: copied
        answer = tunnel.call(func, big)  # the agent skips the padding
    assert answer == (len(big) if func is not rf.echo else [[big], {}])


def _kind_first(call: PickledCall, req_id: int) -> tuple[int, int, list[bytes]]:
    return call[0], req_id, call[1]


def test_large_arguments_arrive_whole(local: Local) -> None:
    data = bytes(range(256)) * 12289  # 3 MiB and a bit: several pipe-fulls, one frame
    assert local.call(rf.echo, data, key=data[:70000]) == [[data], {"key": data[:70000]}]


def test_a_subclass_of_a_builtin_type_goes_by_value(local: Local) -> None:
    class Level(enum.IntEnum):  # an int, but the remote cannot import its class
        LOW = 1
        HIGH = 2

    assert local.call(rf.echo, Level.HIGH, [Level.LOW]) == [[2, [1]], {}]


@pytest.mark.speedup("by_name")
def test_an_importable_callable_goes_by_name_and_runs_there(local: Local) -> None:
    call = pickle.loads(b"".join(pickle_call(rf.Tools.double, (21,), {}, "h")[1]))
    assert call == ("remote_funcs", "Tools.double", (21,), {})
    assert local.call(rf.Tools.double, 21) == 42
    assert local.call(len, "four") == 4


def test_a_callable_its_module_no_longer_names_goes_by_value(
    local: Local, monkeypatch: pytest.MonkeyPatch
) -> None:
    original = rf.echo
    monkeypatch.setattr(rf, "echo", rf.getpid)  # the module's name now finds another function
    call = pickle.loads(b"".join(pickle_call(original, (1,), {}, "h")[1]))
    assert len(call) == 3 and callable(call[0])  # the function itself, not its name
    assert local.call(original, 1) == [[1], {}]
