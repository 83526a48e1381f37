"""Queue and AsyncResult over real Local tunnels: order, keeping hosts busy, errors, interrupts."""

from __future__ import annotations

import asyncio
import contextlib
import os
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import test_group_helpers as helpers

from chopsticks_nb.errors import ConnectError, NotCompleted, TunnelClosed
from chopsticks_nb.group import Group
from chopsticks_nb.queue import AsyncResult, Queue
from chopsticks_nb.result import ErrorResult, GroupResult
from chopsticks_nb.tunnel import Local
from fixtures.interrupts import sigint_after


@pytest.fixture
def pair() -> Iterator[Group]:
    group = Group([Local("a"), Local("b")])
    try:
        yield group
    finally:
        group.close()


def test_value_is_not_ready_before_run(pair: Group) -> None:
    queue = Queue()
    result = queue.call(pair["a"], os.getpid)
    assert isinstance(result, AsyncResult) and not result.done()
    with pytest.raises(NotCompleted) as caught:
        _ = result.value
    assert caught.value.host == "a"
    assert len(queue) == 1
    assert "pending" in repr(result)
    queue.run()
    assert result.done() and result.value == pair["a"].remote_info["pid"]
    assert len(queue) == 0


def test_each_host_runs_its_tasks_in_order(pair: Group) -> None:
    queue = Queue()
    results = [queue.call(pair, helpers.stamp, i, 0.05 * (i % 3)) for i in range(6)]
    queue.run()
    for host in ("a", "b"):
        stamps = [r.value[host] for r in results]
        assert [s[0] for s in stamps] == list(range(6))
        for earlier, later in zip(stamps, stamps[1:]):
            assert earlier[3] <= later[2]  # each task starts after the previous one ended


def test_hosts_are_kept_busy(pair: Group) -> None:
    """A fast host runs ahead: it does not wait for the slow host's task to end."""
    a, b = pair["a"], pair["b"]
    queue = Queue()
    a_slow = queue.call(a, helpers.stamp, "a-slow", 1.0)
    b_tasks = [queue.call(b, helpers.stamp, f"b{i}", 0.1) for i in range(4)]
    a_fast = queue.call(a, helpers.stamp, "a-fast", 0.1)
    start = time.monotonic()
    queue.run()
    elapsed = time.monotonic() - start
    b_last_end = b_tasks[-1].value[3]
    assert b_last_end < a_slow.value[3]  # b finished all four while a was still on its first
    assert a_fast.value[2] >= a_slow.value[3]
    assert elapsed < 2.0  # ~1.1 s: never the 1.0 + 3 x 0.1 + ... of lock-step rounds


def test_group_target_gives_a_group_result_and_callbacks_run_in_the_run_thread(
    pair: Group,
) -> None:
    queue = Queue()
    seen: list[tuple[Any, threading.Thread]] = []
    result = queue.call(pair, os.getpid).with_callback(
        lambda value: seen.append((value, threading.current_thread()))
    )
    single = queue.call(pair["b"], helpers.echo, "x")
    queue.run()
    assert isinstance(result.value, GroupResult)
    assert result.value == {t.host: t.remote_info["pid"] for t in pair}
    assert set(result.value.timings) == {"a", "b"}
    assert seen == [(result.value, threading.current_thread())]
    assert single.value == [["x"], {}]
    late: list[Any] = []
    result.with_callback(late.append)  # already complete: called at once
    assert late == [result.value]


def test_an_error_does_not_stop_the_hosts_later_tasks(pair: Group) -> None:
    queue = Queue()
    first = queue.call(pair, helpers.fail, "first task broke")
    second = queue.call(pair, os.getpid)
    queue.run()
    assert all(
        isinstance(v, ErrorResult) and v.msg == "RuntimeError: first task broke"
        for v in first.value.values()
    )
    assert second.value.ok


def test_an_unreachable_host_fails_its_remaining_tasks_at_once() -> None:
    down = Local("down", python3="/nonexistent/python3")
    up = Local("up")
    queue = Queue()
    with contextlib.closing(up), contextlib.closing(down):
        down_results = [queue.call(down, os.getpid) for _ in range(50)]
        up_result = queue.call(up, os.getpid)
        queue.run()
        errors = [r.value for r in down_results]
        assert all(isinstance(e, ErrorResult) and e.status == "unreachable" for e in errors)
        assert all(isinstance(e.exception, ConnectError) for e in errors)
        assert len({id(e.exception) for e in errors}) == 1  # one attempt, not fifty
        assert isinstance(up_result.value, int)


def test_closing_a_tunnel_mid_run_fails_its_remaining_tasks(pair: Group) -> None:
    queue = Queue()
    sleeping = queue.call(pair["a"], time.sleep, 60)
    after = [queue.call(pair["a"], os.getpid) for _ in range(3)]
    other = queue.call(pair["b"], helpers.stamp, "b", 1.0)
    closer = threading.Timer(0.5, pair["a"].close)
    closer.start()
    try:
        queue.run(timeout=30)
    finally:
        closer.join()
    assert isinstance(sleeping.value.exception, TunnelClosed)
    assert all(r.value.exception is sleeping.value.exception for r in after)
    assert not pair["a"].connected  # no reconnection for the remaining tasks
    assert other.value[0] == "b"


def test_put_fetch_connect_through_a_queue(pair: Group, tmp_path: Path) -> None:
    names = ["a.txt", "b.txt", "c.txt"]
    for name in names:
        (tmp_path / name).write_text(name * 100)
    queue = Queue()
    hello = queue.connect(pair)
    puts = [queue.put(pair, tmp_path / name) for name in names]
    fetched = queue.fetch(pair["b"], str(tmp_path / "a.txt"), str(tmp_path / "back.txt"))
    per_host = queue.fetch(pair, str(tmp_path / "c.txt"), str(tmp_path / "{host}-c.txt"))
    queue.run()
    assert all(isinstance(info, dict) and "pid" in info for info in hello.value.values())
    try:
        for name, put in zip(names, puts):
            assert put.value.ok
            for info in put.value.values():
                assert Path(info["remote_path"]).read_text() == name * 100
    finally:
        for put in puts:
            for info in put.value.values():
                os.unlink(info["remote_path"])
    assert (tmp_path / "back.txt").read_text() == "a.txt" * 100
    assert fetched.value["local_path"] == str(tmp_path / "back.txt")
    assert (tmp_path / "a-c.txt").read_text() == (tmp_path / "b-c.txt").read_text()
    assert per_host.value.ok
    with pytest.raises(ValueError):
        queue.fetch(pair, "/etc/hostname", str(tmp_path / "same"))


def test_tasks_added_by_callbacks_join_the_run(pair: Group) -> None:
    queue = Queue()
    followups: list[AsyncResult] = []

    def chain(value: Any) -> None:
        if len(followups) < 3:
            task = queue.call(pair["a"], helpers.echo, len(followups))
            followups.append(task.with_callback(chain))

    queue.call(pair["a"], os.getpid).with_callback(chain)
    queue.run()
    assert [r.value for r in followups] == [[[0], {}], [[1], {}], [[2], {}]]
    # and the queue can run again
    again = queue.call(pair, os.getpid)
    queue.run()
    assert again.value.ok
    queue.run()  # nothing queued: returns at once


def test_run_async_and_awaitable_results(pair: Group) -> None:
    queue = Queue()
    slow = queue.call(pair["a"], helpers.stamp, "slow", 0.3)
    quick = queue.call(pair["b"], helpers.echo, "quick")
    order: list[str] = []
    slow.with_callback(lambda value: order.append("slow"))
    quick.with_callback(lambda value: order.append("quick"))

    async def main() -> tuple[Any, Any]:
        runner = asyncio.ensure_future(queue.run_async())
        quick_value = await quick
        assert not slow.done()
        slow_value = await slow
        await runner
        return quick_value, slow_value

    quick_value, slow_value = asyncio.run(main())
    assert quick_value == [["quick"], {}] and slow_value[0] == "slow"
    assert order == ["quick", "slow"]


def test_cancelling_run_async_cancels_remote_work(pair: Group) -> None:
    pid = pair["a"].call(os.getpid)
    queue = Queue()
    sleeping = queue.call(pair["a"], time.sleep, 60)
    waiting = queue.call(pair["a"], os.getpid)

    async def main() -> None:
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(queue.run_async(), 0.5)

    asyncio.run(main())
    assert sleeping.value.status == "interrupted" and waiting.value.status == "interrupted"
    start = time.monotonic()
    assert pair["a"].call(os.getpid) == pid
    assert time.monotonic() - start < 1.5


def _run_sync(queue: Queue, **kwargs: Any) -> None:
    queue.run(**kwargs)


def _run_async(queue: Queue, **kwargs: Any) -> None:
    asyncio.run(queue.run_async(**kwargs))


BOTH_RUNS = pytest.mark.parametrize("drive", [_run_sync, _run_async], ids=["run", "run_async"])


def _b_stuck(pair: Group) -> tuple[Queue, AsyncResult, AsyncResult, AsyncResult]:
    """A queue of a quick task on "a", and on "b" a 60 s sleep with a task waiting behind it."""
    queue = Queue()
    quick = queue.call(pair["a"], os.getpid)
    sleeping = queue.call(pair["b"], time.sleep, 60)
    waiting = queue.call(pair["b"], os.getpid)
    return queue, quick, sleeping, waiting


@BOTH_RUNS
def test_run_timeout(pair: Group, drive: Callable[..., None]) -> None:
    queue, done, sleeping, never = _b_stuck(pair)
    called: list[Any] = []
    never.with_callback(called.append)
    drive(queue, timeout=1.0)
    assert isinstance(done.value, int)
    assert sleeping.value.status == "timeout" and never.value.status == "timeout"
    assert called == [never.value]  # a timed-out run still completes its results
    assert len(queue) == 0
    assert pair["b"].call(os.getpid) == pair["b"].remote_info["pid"]


@BOTH_RUNS
def test_an_exception_in_a_callback_cancels_the_run(
    pair: Group, drive: Callable[..., None]
) -> None:
    queue, first, sleeping, waiting = _b_stuck(pair)

    def broken(value: Any) -> None:
        raise ValueError("a broken callback")

    first.with_callback(broken)
    with pytest.raises(ValueError, match="a broken callback"):
        drive(queue)
    assert isinstance(first.value, int)
    assert sleeping.value.status == "cancelled" and waiting.value.status == "cancelled"
    again = queue.call(pair["b"], os.getpid)
    drive(queue)  # the run has ended: the queue runs again
    assert again.value == pair["b"].remote_info["pid"]


@BOTH_RUNS
def test_callbacks_of_work_that_a_callback_queued_and_that_ended_at_once_run(
    drive: Callable[..., None],
) -> None:
    # The follow-up fails at once (its host is known unreachable) inside the callback, before
    # the loop reads the idle mark the first task left: that mark must not end the run.
    down = Local("down", python3="/nonexistent/python3")
    queue = Queue()
    called: list[Any] = []

    def follow_up(value: Any) -> None:
        queue.call(down, os.getpid).with_callback(called.append)

    with contextlib.closing(down):
        queue.call(down, os.getpid).with_callback(follow_up)
        drive(queue)
    assert len(called) == 1 and isinstance(called[0].exception, ConnectError)


def test_keyboard_interrupt_cancels_the_queue(pair: Group) -> None:
    pids = {t.host: t.call(os.getpid) for t in pair}
    queue = Queue()
    sleepers = [queue.call(pair, time.sleep, 60) for _ in range(3)]
    start = time.monotonic()
    with sigint_after(0.5), pytest.raises(KeyboardInterrupt):
        queue.run()
    assert time.monotonic() - start < 1.6
    statuses = {e.status for r in sleepers for e in r.value.values()}
    assert statuses == {"interrupted"}
    start = time.monotonic()
    assert {t.host: t.call(os.getpid) for t in pair} == pids
    assert time.monotonic() - start < 1.5


def test_queue_refuses_other_targets_and_reentry(pair: Group) -> None:
    queue = Queue()
    with pytest.raises(TypeError, match="tunnel or a Group"):
        queue.call("a", os.getpid)  # type: ignore[arg-type]
    errors: list[BaseException] = []

    def reenter(value: Any) -> None:
        try:
            queue.run()
        except RuntimeError as exc:
            errors.append(exc)

    queue.call(pair["a"], os.getpid).with_callback(reenter)
    queue.run()
    assert len(errors) == 1 and "already running" in str(errors[0])
    empty = queue.call(Group([]), os.getpid)
    assert empty.done() and empty.value == {}
