"""Group, GroupResult and ErrorResult over real Local tunnels (failing hosts included)."""

from __future__ import annotations

import contextlib
import functools
import hashlib
import operator
import os
import pickle
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import test_group_helpers as helpers

from chopsticks_nb.errors import (
    CallCancelled,
    CallTimeout,
    ChopsticksError,
    ConnectError,
    ConnectTimeout,
    GroupError,
    GroupInterrupted,
    RemoteException,
    SerializationError,
    TransferError,
)
from chopsticks_nb.group import Group
from chopsticks_nb.result import ErrorResult, GroupResult, HostDone
from chopsticks_nb.tunnel import BaseTunnel, Local, SSHTunnel
from fixtures.interrupts import sigint_after


@pytest.fixture
def trio() -> Iterator[Group]:
    group = Group([Local("a"), Local("b"), Local("c")])
    try:
        yield group
    finally:
        group.close()


def agent_pids(group: Group) -> dict[str, int]:
    """host -> agent pid, connecting the group first."""
    group.connect().raise_failures()
    return {tunnel.host: tunnel.remote_info["pid"] for tunnel in group}


@pytest.fixture
def sleepy_python(tmp_path: Path) -> str:
    """An "interpreter" that never answers: connecting to it can only time out."""
    script = tmp_path / "sleepy-python"
    script.write_text("#!/bin/sh\nexec sleep 60\n")
    script.chmod(0o755)
    return str(script)


# -- building groups ---------------------------------------------------------------------------


def test_group_from_tunnels_and_names_is_lazy() -> None:
    local = Local("worker")
    group = Group(["web1.example.com", local])
    assert len(group) == 2
    assert group.hosts == ["web1.example.com", "worker"]
    tunnels = list(group)
    assert isinstance(tunnels[0], SSHTunnel) and tunnels[1] is local
    assert group["worker"] is local and "worker" in group and local in group
    assert "nope" not in group
    with pytest.raises(KeyError):
        group["nope"]
    assert not any(tunnel.connected for tunnel in group)  # nothing starts until used
    assert repr(Group([Local("a"), Local("b")])) == "Group([Local('a'), Local('b')])"


def test_a_large_groups_repr_is_its_count_and_folded_names() -> None:
    assert repr(Group([f"web{i:02}" for i in range(1, 9)])) == "<Group of 8: web[01-08]>"
    odd = Group([Local("web 1"), Local("web 2"), Local("n1"), Local("n2"), Local("n3")])
    assert repr(odd) == "<Group of 5: n[1-3], web 1, web 2>"
    many = repr(Group([Local(f"{word}{i}") for i, word in enumerate(["a", "b"] * 500)]))
    assert many.startswith("<Group of 1000: a[0,2,4,") and many.endswith("...>")
    assert len(many) < 240


def test_duplicate_names_and_bad_members_are_refused() -> None:
    with pytest.raises(ValueError, match="duplicate host name 'a'"):
        Group([Local("a"), Local("a")])
    with pytest.raises(ValueError, match="duplicate host name 'web1'"):
        Group(["web1", "web1"])
    with pytest.raises(TypeError, match="list of tunnels or host names, not a single tunnel"):
        Group(Local("a"))  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="not int"):
        Group([Local("a"), 3])  # type: ignore[list-item]
    with pytest.raises(ValueError, match="must not start with '-'"):
        Group(["-oProxyCommand=touch /tmp/pwned"])


def test_set_operations_compare_by_name() -> None:
    a, b, c, d = Local("a"), Local("b"), Local("c"), Local("d")
    other_b = Local("b")
    left, right = Group([a, b, c]), Group([other_b, d])
    assert (left + right).hosts == ["a", "b", "c", "d"]
    assert (left | right).tunnels == [a, b, c, d]  # the left side's "b" is kept
    assert (left & right).tunnels == [b]
    assert (left - right).hosts == ["a", "c"]
    assert (left ^ right).hosts == ["a", "c", "d"]
    # a tunnel acts as a group of one, on either side
    assert repr(a + b) == "Group([Local('a'), Local('b')])"
    assert (left - other_b).hosts == ["a", "c"]
    assert (left + d).hosts == ["a", "b", "c", "d"]
    assert (d | left).hosts == ["d", "a", "b", "c"]
    assert (b & left).tunnels == [b]
    assert (a ^ left).hosts == ["b", "c"]
    with pytest.raises(TypeError):
        left + "e"  # type: ignore[operator]


def test_two_tunnels_combine_into_a_group_with_every_operator() -> None:
    a, b, other_a = Local("a"), Local("b"), Local("a")
    assert (a + b).tunnels == [a, b] and (a | other_a).tunnels == [a]
    assert (a & other_a).tunnels == [a] and (a & b).hosts == []
    assert (a - other_a).hosts == [] and (a - b).tunnels == [a]
    assert (a ^ b).hosts == ["a", "b"] and (a ^ other_a).hosts == []
    assert isinstance(a + b, Group)
    for bad in ("b", 3, None):
        with pytest.raises(TypeError):
            a + bad  # type: ignore[operator]
        with pytest.raises(TypeError):
            bad | a  # type: ignore[operator]


def test_tunnels_combine_in_a_program_that_never_imported_group() -> None:
    """tunnel.py never imports group.py: two tunnels still make a Group on their own."""
    code = (
        "import sys\n"
        "from chopsticks_nb.tunnel import Local\n"
        "assert 'chopsticks_nb.group' not in sys.modules\n"
        "both = Local('a') + Local('b')\n"
        "print(type(both).__module__, type(both).__name__, both.hosts)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert out.stdout.strip() == "chopsticks_nb.group Group ['a', 'b']"


# -- calls -------------------------------------------------------------------------------------


def test_call_runs_everywhere_and_times_each_host(trio: Group) -> None:
    result = trio.call(os.getpid)
    assert isinstance(result, GroupResult) and isinstance(result, dict)
    assert list(result) == ["a", "b", "c"]
    assert result == agent_pids(trio)
    assert len(set(result.values())) == 3
    assert result.ok and list(result.failures()) == []
    assert dict(result.successful()) == result
    assert set(result.timings) == {"a", "b", "c"}
    assert all(0 < t < 30 for t in result.timings.values())
    assert result.elapsed >= max(result.timings.values()) * 0.9


def test_call_passes_arguments_even_named_callable(trio: Group) -> None:
    result = trio.call(helpers.echo, 1, "two", callable=3, timeout=4)
    assert result == {host: [[1, "two"], {"callable": 3, "timeout": 4}] for host in "abc"}


def test_calls_run_in_parallel_without_a_thread_per_host() -> None:
    group = Group([Local(f"h{i}") for i in range(6)])
    with group:
        threads_before = threading.active_count()
        seen: list[int] = []
        start = time.monotonic()
        result = group.run(
            helpers.stamp, ("x", 1.0), progress=lambda done: seen.append(threading.active_count())
        )
        elapsed = time.monotonic() - start
    assert result.ok, result
    assert elapsed < 3.0  # six 1 s sleeps at once, not one after another
    assert max(seen) <= threads_before  # the broker thread serves every host


def test_mixed_failures_in_one_call(tmp_path: Path, sleepy_python: str) -> None:
    good, raiser, sleeper = Local("good"), Local("raiser"), Local("sleeper")
    group = Group(
        [
            good,
            raiser,
            sleeper,
            Local("missing", python3="/nonexistent/python3"),
            Local("refused", python3="/bin/false"),
            Local("silent", python3=sleepy_python, connect_timeout=1.0),
        ]
    )
    with contextlib.closing(group):
        pids = agent_pids(Group([good, raiser, sleeper]))
        actions = {
            pids["good"]: ("return", "fine"),
            pids["raiser"]: ("raise", "boom"),
            pids["sleeper"]: ("sleep", 60),
        }
        done: list[HostDone] = []
        start = time.monotonic()
        result = group.run(helpers.act, (actions,), timeout=2.5, progress=done.append)
        elapsed = time.monotonic() - start

        assert 2.4 < elapsed < 6
        assert list(result) == group.hosts  # every host answered, in the group's order
        assert result["good"] == "fine"
        assert dict(result.successful()) == {"good": "fine"}
        assert [host for host, _ in result.failures()] == group.hosts[1:]

        raised = result["raiser"]
        assert isinstance(raised, ErrorResult) and raised.status == "error"
        assert raised.msg == "ValueError: boom" and raised.remote_type == "ValueError"
        assert raised.tb is not None and "test_group_helpers.py" in raised.tb
        assert isinstance(raised.exception, RemoteException) and raised.host == "raiser"

        timed_out = result["sleeper"]
        assert timed_out.status == "timeout" and isinstance(timed_out.exception, CallTimeout)
        assert "2.5 s" in timed_out.msg and timed_out.tb is None

        missing = result["missing"]
        assert missing.status == "unreachable" and isinstance(missing.exception, ConnectError)
        assert "/nonexistent/python3" in missing.msg
        assert result["refused"].status == "unreachable"
        assert "status 1" in result["refused"].msg
        silent = result["silent"]
        assert isinstance(silent.exception, ConnectTimeout) and silent.status == "unreachable"
        assert result["silent"].remote_type is None

        assert sorted(d.host for d in done) == sorted(group.hosts)
        assert [d.done for d in done] == [1, 2, 3, 4, 5, 6]
        assert all(d.total == 6 for d in done)
        assert [d.ok for d in done if d.host == "good"] == [True]

        # the timed-out call was cancelled remotely: the same agent answers at once
        start = time.monotonic()
        assert sleeper.call(os.getpid) == pids["sleeper"]
        assert time.monotonic() - start < 1.5


def test_no_host_connects_gives_errors_not_none(sleepy_python: str) -> None:
    group = Group(
        [
            Local("x", python3="/nonexistent/python3"),
            Local("y", python3="/bin/false"),
            Local("z", python3=sleepy_python, connect_timeout=0.5),
        ]
    )
    with contextlib.closing(group):
        result = group.call(os.getpid)
        assert isinstance(result, GroupResult) and list(result) == ["x", "y", "z"]
        assert all(
            isinstance(v, ErrorResult) and v.status == "unreachable" for v in result.values()
        )
        connected = group.connect()
        assert not connected.ok and len(connected) == 3


def test_missing_ssh_binary_is_one_error_result() -> None:
    class NoSSH(SSHTunnel):
        ssh = "/nonexistent/ssh"

    group = Group([NoSSH("web1"), Local("ok")])
    with contextlib.closing(group):
        result = group.call(operator.add, 2, 3)
        assert result["ok"] == 5
        assert result["web1"].status == "unreachable"
        assert "/nonexistent/ssh" in result["web1"].msg


def test_empty_group() -> None:
    group = Group([])
    assert len(group) == 0 and not group
    assert group.call(os.getpid) == {} and group.connect() == {}
    group.close()


def test_exec_names_the_argument_that_cannot_be_sent_on_every_host(trio: Group) -> None:
    result = trio.exec("lock", {"n": 1, "lock": threading.Lock()})
    why = "cannot pickle '_thread.lock' object"
    expected = f"cannot send 'lock' (_thread.lock) from the notebook: {why}"
    assert {host: error.msg for host, error in result.failures()} == dict.fromkeys(
        trio.hosts, expected
    )
    for host, error in result.failures():
        assert isinstance(error.exception, SerializationError) and error.exception.host == host
        assert error.status == "failed"
    assert trio.exec("n + 1", {"n": 1}) == dict.fromkeys(trio.hosts, 2)  # nothing else broke


# -- results and errors ------------------------------------------------------------------------


def test_raise_failures_names_every_host_and_bounds_tracebacks() -> None:
    group = Group([Local(f"h{i}") for i in range(5)] + [Local("gone", python3="/nonexistent/x")])
    with contextlib.closing(group):
        ok = Group(list(group)[:1]).call(os.getpid)
        assert ok.raise_failures() is ok  # nothing failed: returns itself

        result = group.call(helpers.fail, "it broke")
        with pytest.raises(GroupError) as caught:
            result.raise_failures()
    error = caught.value
    assert isinstance(error, ChopsticksError) and not isinstance(error, RemoteException)
    message = str(error)
    first = message.splitlines()[0]
    assert first == "6 of 6 hosts failed: gone,h[0-4]"
    assert "  gone: cannot run '/nonexistent/x'" in message
    assert message.count("RuntimeError: it broke") == 5 + 3  # one line each, 3 tracebacks
    assert message.count("--- remote traceback from") == 3
    assert "(2 more remote tracebacks not shown" in message
    assert set(error.failures) == set(group.hosts) and error.result is result
    assert "test_group_helpers.py" in message  # the remote tracebacks are in the message
    rendered = error._render_traceback_()
    assert rendered[0].startswith("GroupError: 6 of 6 hosts failed")

    with pytest.raises(GroupError) as fewer:
        result.raise_failures(max_tracebacks=0)
    assert "--- remote traceback" not in str(fewer.value)
    copy = pickle.loads(pickle.dumps(error))
    assert str(copy) == message and set(copy.failures) == set(error.failures)


def test_error_result_and_group_result_reprs() -> None:
    plain = ErrorResult("something failed", "Traceback...\n")
    assert (plain.msg, plain.tb, plain.exception, plain.host) == (
        "something failed",
        "Traceback...\n",
        None,
        None,
    )
    assert repr(plain) == "ErrorResult('something failed')"
    assert plain.status == "failed" and plain.remote_type is None

    remote = ErrorResult.from_exception(RemoteException("bad", "h", "KeyError", "tb text"))
    assert (remote.msg, remote.tb, remote.host, remote.remote_type, remote.status) == (
        "KeyError: bad",
        "tb text",
        "h",
        "KeyError",
        "error",
    )
    cancelled = ErrorResult.from_exception(CallCancelled("cancelled", "h"))
    assert cancelled.status == "cancelled"

    short = GroupResult({"a": 1, "b": remote}, timings={"a": 0.5, "b": 0.25})
    assert repr(short) == "GroupResult({'a': 1, 'b': ErrorResult('KeyError: bad')})"
    long = GroupResult({f"host{i}": str(i) * 30 for i in range(4)})
    assert repr(long).startswith("GroupResult({\n    'host0': '000")
    huge = repr(GroupResult({"a": "y" * 10000}))
    assert len(huge) < 400 and huge.endswith("...,\n})")
    copy = pickle.loads(pickle.dumps(short))
    assert copy.timings == {"a": 0.5, "b": 0.25} and copy["a"] == 1


def test_progress_runs_in_the_calling_thread(trio: Group) -> None:
    threads: set[threading.Thread] = set()
    events: list[HostDone] = []

    def progress(event: HostDone) -> None:
        threads.add(threading.current_thread())
        events.append(event)

    result = trio.run(os.getpid, progress=progress)
    assert threads == {threading.current_thread()}
    assert sorted(e.host for e in events) == ["a", "b", "c"]
    assert all(
        e.value == result[e.host] and e.elapsed == pytest.approx(result.timings[e.host])
        for e in events
    )


def test_output_is_routed_per_host(trio: Group, capsys: pytest.CaptureFixture[str]) -> None:
    seen: list[tuple[str, str, str]] = []
    lock = threading.Lock()

    def output(host: str, stream: str, text: str) -> None:
        with lock:
            seen.append((host, stream, text))

    result = trio.run(helpers.shout, ("hello",), output=output)
    assert result == dict.fromkeys("abc", "hello")
    deadline = time.monotonic() + 5
    while len(seen) < 6 and time.monotonic() < deadline:
        time.sleep(0.02)  # stderr can trail the result by a moment
    joined = {(host, stream): "" for host in "abc" for stream in ("stdout", "stderr")}
    for host, stream, text in seen:
        joined[host, stream] += text
    for host in "abc":
        assert joined[host, "stdout"] == "out:hello\n"
        assert joined[host, "stderr"] == "err:hello\n"
    assert "hello" not in capsys.readouterr().out  # not printed by the default handler


def test_a_progress_callback_error_cancels_the_rest(trio: Group) -> None:
    pids = agent_pids(trio)
    actions = {pids["a"]: ("return", 1), pids["b"]: ("sleep", 60), pids["c"]: ("sleep", 60)}

    def progress(event: HostDone) -> None:
        raise LookupError("progress bar broke")

    with pytest.raises(LookupError):
        trio.run(helpers.act, (actions,), progress=progress)
    start = time.monotonic()
    assert trio.call(os.getpid) == pids  # the sleepers were cancelled
    assert time.monotonic() - start < 30  # not the 60 s they asked for


# -- KeyboardInterrupt -------------------------------------------------------------------------


def test_keyboard_interrupt_cancels_every_host_and_tunnels_stay_usable(trio: Group) -> None:
    pids = agent_pids(trio)
    start = time.monotonic()
    with sigint_after(0.5), pytest.raises(KeyboardInterrupt) as caught:
        trio.run(time.sleep, (60,))
    assert time.monotonic() - start < 1.6  # control is back within about a second
    assert isinstance(caught.value, GroupInterrupted)
    partial = caught.value.result
    assert list(partial) == ["a", "b", "c"]
    assert all(v.status == "interrupted" for v in partial.values())

    start = time.monotonic()
    assert trio.call(os.getpid) == pids  # same agents, no longer busy sleeping
    assert time.monotonic() - start < 1.5


def test_keyboard_interrupt_can_return_the_partial_result(trio: Group) -> None:
    pids = agent_pids(trio)
    actions = {pids["a"]: ("return", "quick"), pids["b"]: ("sleep", 60), pids["c"]: ("sleep", 60)}
    with sigint_after(0.5):
        result = trio.run(helpers.act, (actions,), on_interrupt="return")
    assert result["a"] == "quick"
    assert result["b"].status == result["c"].status == "interrupted"
    assert isinstance(result["b"].exception, CallCancelled)
    assert trio.call(os.getpid) == pids
    with pytest.raises(ValueError, match="on_interrupt"):
        trio.run(os.getpid, on_interrupt="ignore")  # type: ignore[arg-type]


# -- connect, close, context manager, filter ---------------------------------------------------


def test_connect_close_reconnect_and_context_manager() -> None:
    group = Group([Local("a"), Local("b"), Local("down", python3="/nonexistent/python3")])
    with group as entered:
        assert entered is group
        assert [t.connected for t in group] == [True, True, False]
        first = group.call(os.getpid)
    assert not any(t.connected for t in group)  # closed on exit
    again = group.call(os.getpid)  # reconnects by itself
    try:
        assert again["a"] != first["a"] and isinstance(again["down"], ErrorResult)
        info = group.connect()
        assert info["a"]["pid"] == again["a"]
        assert isinstance(info["down"], ErrorResult) and info["down"].status == "unreachable"
    finally:
        group.close()
    assert not any(t.connected for t in group)


def test_connect_timeout_leaves_the_tunnel_usable(sleepy_python: str) -> None:
    group = Group([Local("a"), Local("slow", python3=sleepy_python, connect_timeout=3)])
    with contextlib.closing(group):
        result = group.connect(timeout=1.0)
        assert isinstance(result["a"], dict)
        assert result["slow"].status == "timeout"
        assert group["a"].call(operator.mul, 6, 7) == 42


def test_filter_runs_the_predicate_remotely(trio: Group) -> None:
    pids = agent_pids(trio)
    predicate = functools.partial(helpers.pid_in, {pids["a"], pids["c"]})
    chosen = trio.filter(predicate)
    assert isinstance(chosen, Group) and chosen.hosts == ["a", "c"]
    assert chosen["a"] is trio["a"]
    assert trio.filter(predicate, exclude=True).hosts == ["b"]


def test_filter_raises_if_a_host_fails() -> None:
    group = Group([Local("a"), Local("down", python3="/nonexistent/python3")])
    with contextlib.closing(group), pytest.raises(GroupError, match="1 of 2 hosts failed: down"):
        group.filter(functools.partial(helpers.pid_in, set()))


# -- put and fetch -----------------------------------------------------------------------------


def test_put_to_every_host(trio: Group, tmp_path: Path) -> None:
    data = os.urandom(300_000)
    source = tmp_path / "payload.bin"
    source.write_bytes(data)
    result = trio.put(source, mode=0o600)
    assert result.ok, result
    paths = {info["remote_path"] for info in result.values()}
    assert len(paths) == 3  # a temporary file per host
    try:
        for info in result.values():
            assert info["size"] == len(data)
            assert info["sha1sum"] == hashlib.sha1(data).hexdigest()
            assert info["local_path"] == str(source)
            assert os.stat(info["remote_path"]).st_mode & 0o777 == 0o600
        assert trio.call(helpers.read_bytes, result["b"]["remote_path"])["c"] == data
    finally:
        for path in paths:
            os.unlink(path)
    with pytest.raises(FileNotFoundError):
        trio.put(tmp_path / "missing")


def test_fetch_with_a_host_template(trio: Group, tmp_path: Path) -> None:
    source = tmp_path / "remote.txt"
    source.write_text("the same file, fetched three times\n")
    result = trio.fetch(str(source), str(tmp_path / "copy-{host}.txt"))
    assert result.ok, result
    for host in "abc":
        local = tmp_path / f"copy-{host}.txt"
        assert result[host]["local_path"] == str(local)
        assert local.read_text() == source.read_text()

    nested = trio.fetch(str(source), tmp_path / "per-host" / "{host}" / "remote.txt")
    assert nested.ok and (tmp_path / "per-host" / "b" / "remote.txt").exists()

    missing = trio.fetch(str(tmp_path / "missing"), str(tmp_path / "m-{host}"))
    assert all(isinstance(v.exception, TransferError) for v in missing.values())
    assert not list(tmp_path.glob("m-*"))
    # The core removes the partial download just after failing the future: allow it a moment.
    deadline = time.monotonic() + 2
    while list(tmp_path.glob(".m-*")) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert not list(tmp_path.glob(".m-*"))


def test_fetch_defaults_to_a_temporary_file_per_host(trio: Group, tmp_path: Path) -> None:
    source = tmp_path / "remote.txt"
    source.write_text("x")
    result = trio.fetch(str(source))
    paths = [info["local_path"] for info in result.values()]
    try:
        assert len(set(paths)) == 3 and all(Path(p).read_text() == "x" for p in paths)
    finally:
        for path in paths:
            os.unlink(path)


@pytest.mark.parametrize(
    ("name", "template", "match"),
    [
        ("..", "{host}", "cannot be used in a local path"),
        (".", "out-{host}/file", "cannot be used in a local path"),
        ("a/b", "{host}.txt", "cannot be used in a local path"),
        ("a", "same.txt", "same path"),
        ("a", "{host}-{user}", "must use only"),
        ("a", "{0}", "must use only"),
        ("a", "{host}/../../x", "leaves"),
    ],
)
def test_fetch_templates_cannot_escape(
    tmp_path: Path, name: str, template: str, match: str
) -> None:
    group = Group([Local(name), Local("zz")])
    base = tmp_path / "base"
    base.mkdir()
    template = f"{base}/{template}"
    with pytest.raises(ValueError, match=match):
        group.fetch("/etc/hostname", template)
    assert not any(t.connected for t in group)  # refused before anything started


def test_fetch_template_does_not_follow_links_out(tmp_path: Path) -> None:
    base = tmp_path / "base"
    base.mkdir()
    (base / "evil").symlink_to(tmp_path / "elsewhere")
    group = Group([Local("evil")])
    with pytest.raises(ValueError, match="leaves"):
        group.fetch("/etc/hostname", str(base / "{host}" / "file"))


def test_group_accepts_any_tunnel_subclass() -> None:
    class Named(Local):
        pass

    group = Group([Named("n1")]) + Local("n2")
    with contextlib.closing(group):
        assert all(isinstance(t, BaseTunnel) for t in group)
        assert group.call(operator.neg, 1) == {"n1": -1, "n2": -1}
