"""The error tree: where GroupError and GroupInterrupted sit in it, and the one failure summary."""

from __future__ import annotations

import contextlib
import os
import pickle

import pytest

from chopsticks_nb.errors import (
    ChopsticksError,
    GroupError,
    GroupInterrupted,
    RemoteException,
    failure_summary,
)
from chopsticks_nb.group import Group
from chopsticks_nb.result import ErrorResult, GroupResult
from chopsticks_nb.tunnel import Local


def test_except_remote_exception_no_longer_catches_an_unreachable_host() -> None:
    group = Group([Local("up"), Local("down", python3="/nonexistent/python3")])
    with contextlib.closing(group):
        result = group.call(os.getpid)
    assert result["down"].status == "unreachable"
    with pytest.raises(GroupError) as caught:
        try:
            result.raise_failures()
        except RemoteException:  # what once caught it
            pytest.fail("except RemoteException caught a host that could not be reached")
    error = caught.value
    assert isinstance(error, ChopsticksError) and not isinstance(error, RemoteException)
    assert error.failures == {"down": result["down"]} and error.result is result
    copy = pickle.loads(pickle.dumps(error))
    assert type(copy) is GroupError and str(copy) == str(error)
    assert list(copy.failures) == ["down"] and copy.failures["down"].status == "unreachable"
    assert copy.result is not None and copy.result["up"] == result["up"]


def test_group_interrupted_is_a_keyboard_interrupt_not_an_exception() -> None:
    partial = GroupResult({"a": 1, "b": ErrorResult("interrupted", status="interrupted")})
    interrupted = GroupInterrupted(partial)
    assert isinstance(interrupted, KeyboardInterrupt) and not isinstance(interrupted, Exception)
    assert str(interrupted) == "interrupted with 1 of 2 hosts unfinished"
    assert interrupted._render_traceback_() == [
        "GroupInterrupted: interrupted with 1 of 2 hosts unfinished",
        "  interrupted: b",
    ]
    copy = pickle.loads(pickle.dumps(interrupted))
    assert copy.result["a"] == 1 and copy.result["b"].status == "interrupted"


def _failures() -> dict[str, ErrorResult]:
    failures = {
        f"h{i}": ErrorResult(f"ValueError: {i}", f"Traceback\nValueError: {i}\n") for i in range(4)
    }
    failures["down"] = ErrorResult("cannot connect", status="unreachable")
    return failures


def test_the_summary_names_hosts_and_shows_tracebacks_as_asked() -> None:
    full = failure_summary(_failures(), 6).splitlines()
    assert full[0] == "5 of 6 hosts failed: down,h[0-3]"
    assert full[1:6] == [
        "  h0: ValueError: 0",
        "  h1: ValueError: 1",
        "  h2: ValueError: 2",
        "  h3: ValueError: 3",
        "  down: cannot connect",
    ]
    assert full[6:9] == ["--- remote traceback from h0 ---", "Traceback", "ValueError: 0"]
    assert sum(line.startswith("--- remote traceback") for line in full) == 3
    assert full[-1] == "(1 more remote traceback not shown: see .failures)"

    short = failure_summary(_failures(), 6, max_hosts=2, max_tracebacks=0, hint="in the table")
    assert short.splitlines() == [
        "5 of 6 hosts failed: down,h[0-3]",
        "  h0: ValueError: 0",
        "  h1: ValueError: 1",
        "(4 remote tracebacks not shown: in the table)",
    ]
    assert failure_summary({"a": ErrorResult("broke")}, 1) == "1 of 1 host failed: a\n  a: broke"


def test_the_summary_folds_the_failed_hosts_and_lists_names_no_range_holds() -> None:
    eight = {f"web{i:02}": ErrorResult("broke") for i in range(1, 9)}
    assert (
        failure_summary(eight, 8, max_hosts=3).splitlines()[0] == "8 of 8 hosts failed: web[01-08]"
    )
    odd = {"web 1": ErrorResult("broke"), "root@[::1]": ErrorResult("broke")}
    assert failure_summary(odd, 2).splitlines()[0] == "2 of 2 hosts failed: web 1, root@[::1]"
    odd["web2"] = odd["web3"] = ErrorResult("broke")
    assert (
        failure_summary(odd, 4).splitlines()[0]
        == "4 of 4 hosts failed: web[2-3], web 1, root@[::1]"
    )
    # Too many names to fold into a short line: the hosts shown one by one, and a count.
    many = {f"{word}{i}.example": ErrorResult("broke") for i, word in enumerate(["a", "b"] * 40)}
    first = failure_summary(many, 80, max_hosts=2).splitlines()[0]
    assert first == "80 of 80 hosts failed: a0.example,b1.example and 78 more"


def test_an_interrupted_group_folds_its_unfinished_hosts() -> None:
    outcomes: dict[str, object] = {
        f"n{i:03}": ErrorResult("x", status="interrupted") for i in range(500)
    }
    outcomes["web 1"] = ErrorResult("x", status="interrupted")
    outcomes["done"] = 1
    lines = GroupInterrupted(GroupResult(outcomes))._render_traceback_()
    assert lines[1] == "  interrupted: n[000-499], web 1"


def test_group_error_and_the_cell_error_share_the_summary() -> None:
    options = {"max_hosts": 2, "max_tracebacks": 1, "hint": "see above"}
    error = GroupError.from_failures(_failures(), 6, **options)  # type: ignore[arg-type]
    assert str(error) == failure_summary(_failures(), 6, **options)  # type: ignore[arg-type]
    assert error._render_traceback_() == [
        f"GroupError: {line}" if n == 0 else line for n, line in enumerate(str(error).splitlines())
    ]
    result = GroupResult(_failures())
    with pytest.raises(GroupError) as raised:
        result.raise_failures(max_tracebacks=2)
    assert str(raised.value) == failure_summary(_failures(), 5, max_tracebacks=2)
