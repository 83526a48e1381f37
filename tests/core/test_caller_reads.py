"""A thread waiting in ``call()`` reads its own answer from the agent's pipe (no broker hop),
then gives the pipe back to the broker: every frame still arrives exactly once, whoever reads."""

from __future__ import annotations

import concurrent.futures
import os
import signal
import threading
import time
from typing import Callable

import pytest
import remote_funcs

from chopsticks_nb._agent import PollPolicy
from chopsticks_nb._broker import BROKER, TimerHandle
from chopsticks_nb._caller_reads import KEEP_FOR_CALLERS
from chopsticks_nb.errors import CallTimeout, ConnectionLost, TunnelClosed
from chopsticks_nb.tunnel import Local
from fixtures.interrupts import sigint_after
from fixtures.system import wait_until


class ThreadNames:
    """An output handler that notes which thread delivered each piece of output."""

    def __init__(self) -> None:
        self.threads: list[str] = []
        self.text = ""

    def __call__(self, stream: str, text: str) -> None:
        self.threads.append(threading.current_thread().name)
        self.text += text


@pytest.mark.speedup("callers_read")
def test_a_sync_call_handles_its_frames_on_the_calling_thread() -> None:
    names = ThreadNames()
    with Local("reader", output=names) as tunnel:
        assert tunnel.call(remote_funcs.noisy, 3) == 3
        assert set(names.threads) == {threading.current_thread().name}

        names.threads.clear()
        future = tunnel.submit(remote_funcs.noisy, 3)
        concurrent.futures.wait([future], timeout=10)  # nobody waits in result(): the broker reads
        assert future.result() == 3
        assert set(names.threads) == {"chopsticks-broker"}


def test_the_broker_reads_again_between_calls() -> None:
    names = ThreadNames()
    with Local("between", output=names) as tunnel:
        assert tunnel.call(remote_funcs.print_later, 0.3, "late hello") is True
        deadline = time.monotonic() + 10
        while "late hello" not in names.text and time.monotonic() < deadline:
            time.sleep(0.01)
        assert "late hello" in names.text
        assert names.threads[-1] == "chopsticks-broker"


def test_threads_calling_one_tunnel_at_once_each_get_their_own_answer() -> None:
    with Local("shared") as tunnel:

        def caller(worker: int) -> list[object]:
            return [tunnel.call(remote_funcs.echo, worker, i) for i in range(150)]

        def submitter() -> list[object]:
            # Futures nobody waits on in result(): the broker reads these answers, in turns
            # with the callers above.
            futures = [tunnel.submit(remote_funcs.echo, "async", i) for i in range(150)]
            concurrent.futures.wait(futures, timeout=60)
            return [f.result(timeout=0) for f in futures]

        with concurrent.futures.ThreadPoolExecutor(7) as pool:
            submitted = pool.submit(submitter)
            results = list(pool.map(caller, range(6)))
        for worker, answers in enumerate(results):
            assert answers == [[[worker, i], {}] for i in range(150)]
        assert submitted.result() == [[["async", i], {}] for i in range(150)]


def test_a_timeout_gives_the_pipe_back_to_the_broker() -> None:
    with Local("timeout", call_timeout=0.3) as tunnel:
        with pytest.raises(CallTimeout):
            tunnel.call(remote_funcs.sleep, 30)
        future = tunnel.submit(remote_funcs.echo, "after")
        done, _ = concurrent.futures.wait([future], timeout=10)
        assert done and future.result() == [["after"], {}]
        assert tunnel.call(len, "abc") == 3


@pytest.mark.parametrize("delay", [0.15, 0.3, 0.45])
def test_ctrl_c_while_frames_stream_in_loses_none(delay: float) -> None:
    # Output floods the pipe the main thread reads, so the interrupt lands while it handles
    # frames; another thread's call on the same tunnel must still get its answer, and the
    # connection must stay in step.
    with Local("interrupted") as tunnel:
        other = tunnel.submit(remote_funcs.sleep_then_report, 1.0)
        with sigint_after(delay), pytest.raises(KeyboardInterrupt):
            tunnel.call(remote_funcs.print_for, 5)
        assert other.result(timeout=10) == "slept"
        assert tunnel.call(len, "abcd") == 4


def test_what_a_timed_out_caller_left_unwritten_is_sent_by_the_broker() -> None:
    # A frame larger than the pipe is written by the waiting caller as the agent drains it.
    # Stop the agent so that the frame is still half-written when the call times out: the
    # broker must write the rest, though nothing is sent afterwards (no keepalive pings), or
    # the agent never gets it and the stream stays out of step.
    size = 3 << 20
    with Local("half-written", call_timeout=0.5, keepalive=None) as tunnel:
        pid = tunnel.call(os.getpid)
        received = _bytes_read_by(pid)
        os.kill(pid, signal.SIGSTOP)
        try:
            with pytest.raises(CallTimeout, match="half-written"):
                tunnel.call(len, b"x" * size)
        finally:
            os.kill(pid, signal.SIGCONT)
        wait_until(lambda: _bytes_read_by(pid) - received > size, 10, "the agent to read it all")
        assert tunnel.call(remote_funcs.echo, "in step") == [["in step"], {}]


def _bytes_read_by(pid: int) -> int:
    with open(f"/proc/{pid}/io") as io:
        return next(int(line.split()[1]) for line in io if line.startswith("rchar:"))


def test_closing_from_another_thread_ends_a_call_read_here() -> None:
    tunnel = Local("closed-under")
    tunnel.connect()
    closer = threading.Timer(0.3, tunnel.close)
    closer.start()
    started = time.monotonic()
    with pytest.raises(TunnelClosed, match="closed-under"):
        tunnel.call(remote_funcs.sleep, 30)
    assert time.monotonic() - started < 10
    closer.join()


def test_ctrl_c_while_frames_stream_in_interrupts_at_once() -> None:
    # A Ctrl-C that lands while a frame is handled waits for the frame, not for the call.
    with Local("streaming") as tunnel:
        started = time.monotonic()
        with sigint_after(0.3), pytest.raises(KeyboardInterrupt):
            tunnel.call(remote_funcs.print_for, 60)
        assert time.monotonic() - started < 20
        assert tunnel.call(len, "abcde") == 5


@pytest.mark.speedup("poll")
def test_a_caller_polls_before_sleeping_only_while_answers_come_quickly() -> None:
    # Each wait that the answer outlasts doubles the number of waits before the next poll:
    # 20 slow calls poll at the 1st, 3rd, 7th and 15th only (never with a single CPU).
    with Local("patient") as tunnel:
        for _ in range(20):
            tunnel.call(remote_funcs.sleep, 0.005)
        conn = tunnel._conn
        assert conn is not None
        assert conn.turns.polls.misses == (4 if PollPolicy().enabled else 0)
        for _ in range(3):
            tunnel.call(len, "quick")  # a success would reset the count: none happened yet
        assert conn.turns.polls.misses == (4 if PollPolicy().enabled else 0)


def test_a_connection_made_on_one_cpu_never_polls() -> None:
    # Each connection, and its agent, decides when it is made: a process pinned to one CPU
    # after importing chopsticks_nb must not poll there, where the other end cannot run.
    before = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {min(before)})  # this thread; the agent inherits it
    try:
        with Local("one-cpu") as tunnel:
            for _ in range(20):
                tunnel.call(remote_funcs.sleep, 0.005)
            conn = tunnel._conn
            assert conn is not None and not conn.turns.polls.enabled
            assert conn.turns.polls.misses == 0 and tunnel.call(remote_funcs.agent_spin_misses) == 0
    finally:
        os.sched_setaffinity(0, before)


def test_an_agent_that_dies_between_calls_is_noticed_without_a_call() -> None:
    # Between calls the pipe is parked (neither a caller nor the broker reads it) for a grace
    # period, then the broker watches it again: the death must still be seen on its own.
    with Local("dies-idle") as tunnel:
        pid = tunnel.call(os.getpid)
        os.kill(pid, signal.SIGKILL)
        wait_until(lambda: not tunnel.connected, 10, "the tunnel to notice")
        assert tunnel.call(len, "back") == 4  # a new agent


@pytest.mark.speedup("callers_read")
def test_calls_in_a_row_wake_the_broker_once(monkeypatch: pytest.MonkeyPatch) -> None:
    # Arming, from a caller, the timer that hands the parked pipe back to the broker wakes the
    # broker thread: while calls keep coming (here for ~10 grace periods) the broker re-arms
    # it itself, and once they stop it takes the pipe back.
    with Local("timer-once") as tunnel:
        tunnel.call(len, "warm")
        conn = tunnel._conn
        assert conn is not None
        wait_until(lambda: not conn.turns._recheck_armed, 5, "the pipe given back")
        armed_by_callers: list[float] = []
        real = BROKER.call_later

        def call_later(delay: float, callback: Callable[[], None]) -> TimerHandle:
            if not BROKER.in_broker_thread():
                armed_by_callers.append(delay)
            return real(delay, callback)

        monkeypatch.setattr(BROKER, "call_later", call_later)
        end = time.monotonic() + 10 * KEEP_FOR_CALLERS
        calls = 0
        while time.monotonic() < end or calls < 100:
            tunnel.call(len, "x")
            calls += 1
        # Once; a few times if the machine is busy enough that calls pause for longer than
        # KEEP_FOR_CALLERS (the broker then takes the pipe back), never once per call.
        assert armed_by_callers[:1] == [KEEP_FOR_CALLERS]
        assert len(armed_by_callers) <= 5 < calls, (len(armed_by_callers), calls)
        wait_until(lambda: conn.turns.kept_since is None, 5, "the pipe given back")


@pytest.mark.speedup("poll")
def test_an_agent_polls_for_the_next_call_only_while_calls_come_quickly() -> None:
    # The agent's side of the same policy: 20 calls 5 ms apart, so each of its looks for the
    # next call fails; it looks after the 1st, 3rd, 7th and 15th only.
    with Local("agent-polls") as tunnel:
        for _ in range(20):
            tunnel.call(len, "x")
            time.sleep(0.005)
        assert tunnel.call(remote_funcs.agent_spin_misses) == (4 if PollPolicy().enabled else 0)


def test_an_agent_killed_while_the_caller_writes_its_frame_fails_only_that_call() -> None:
    # Stopped, the agent leaves most of a 3 MB frame to write; killed, it ends the write with
    # a readable error, and the tunnel starts a new agent for the next call.
    with Local("killed-mid-write") as tunnel:
        pid = tunnel.call(os.getpid)
        os.kill(pid, signal.SIGSTOP)
        killer = threading.Timer(0.3, os.kill, (pid, signal.SIGKILL))
        killer.start()
        with pytest.raises(ConnectionLost, match="killed-mid-write"):
            tunnel.call(len, b"x" * (3 << 20))
        killer.join()
        assert tunnel.call(len, "again") == 5


def test_a_caller_leaves_the_pipe_to_the_broker_when_futures_await_answers() -> None:
    # Parking the pipe after a call would leave a pending future's answer unread for the grace
    # period: with requests still in flight the broker takes the pipe back at once.
    with Local("shared-pipe") as tunnel, concurrent.futures.ThreadPoolExecutor(1) as pool:

        def submit_soon() -> concurrent.futures.Future[object]:
            time.sleep(0.1)  # while the call below runs: the agent runs this one after it
            return tunnel.submit(remote_funcs.sleep, 0.3)

        submitting = pool.submit(submit_soon)
        assert tunnel.call(remote_funcs.sleep, 0.3) == 0.3
        later = submitting.result(timeout=10)
        conn = tunnel._conn
        assert conn is not None and conn.turns.kept_since is None  # not parked: watched
        done, _ = concurrent.futures.wait([later], timeout=10)  # read by the broker alone
        assert done and later.result() == 0.3
        assert tunnel.call(len, "abc") == 3
