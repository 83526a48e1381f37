"""Queues: many different operations over many hosts, each host kept busy until its tasks are done.

A :class:`Queue` is a separate queue of tasks per tunnel. :meth:`Queue.run` starts the first
task of every tunnel at once; as soon as a task finishes, that tunnel's next task starts (from
the finished future's done-callback, not from a thread per host), so a fast host never waits
for a slow one::

    queue = Queue()
    for name in ["a.txt", "b.txt", "c.txt"]:
        queue.put(group, name, name)
    totals = queue.call(group, count_lines, "a.txt")
    queue.run()
    print(totals.value)          # a GroupResult

Each operation returns an :class:`AsyncResult`. Its value is the host's value (or an
:class:`~chopsticks_nb.result.ErrorResult`) for a tunnel target, and a
:class:`~chopsticks_nb.result.GroupResult` for a group target.

Errors: a task that fails does not stop the later tasks of its host: they run as queued (the
tasks of a host often do not depend on each other, and a failure is there to be read in the
results). The exception is a host that cannot be reached: once a task fails with
:class:`~chopsticks_nb.errors.ConnectError` (or :class:`~chopsticks_nb.errors.TunnelClosed`, the
tunnel was closed meanwhile), that host's remaining tasks in this run fail at once with the same
error instead of each connecting again. A later run tries again.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import functools
import os
import queue as queue_module
import threading
import time
from collections import deque
from collections.abc import Generator, Iterator, Sequence
from typing import Any, Callable, Union

from ._bounded import short_repr
from ._fanout import Starter, outcome_of, start_safely, stop_future
from ._paths import local_paths, make_parent_dirs
from ._transfer import check_max_size
from .errors import (
    CallCancelled,
    CallTimeout,
    ChopsticksError,
    ConnectError,
    NotCompleted,
    TunnelClosed,
)
from .group import Group
from .progress import Operation, Watching
from .result import ErrorResult, GroupResult, HostDone
from .tunnel import BaseTunnel

__all__ = ["AsyncResult", "Queue", "ResultCallback", "Target"]

#: Where a queued operation runs: one tunnel, or every tunnel of a group.
Target = Union[BaseTunnel, Group]

#: A callback given to :meth:`AsyncResult.with_callback`: it receives the value.
ResultCallback = Callable[[Any], None]

#: The run loop's events: a queue.SimpleQueue (run) or an asyncio.Queue (run_async).
_Events = Union["queue_module.SimpleQueue[object]", "asyncio.Queue[object]"]


class AsyncResult:
    """The deferred result of a queued operation.

    ``value`` raises :class:`~chopsticks_nb.errors.NotCompleted` until the operation has run.
    ``await result`` waits for it (while :meth:`Queue.run_async` runs). Callbacks added with
    :meth:`with_callback` run in the thread (or event loop) running the queue.
    """

    def __init__(self, hosts: Sequence[str] | None, host: str | None = None) -> None:
        self._hosts = None if hosts is None else list(hosts)
        self._host = host
        self._lock = threading.Lock()
        self._parts: dict[str, Any] = {}
        self._timings: dict[str, float] = {}
        self._first_start: float | None = None
        self._future: concurrent.futures.Future[Any] = concurrent.futures.Future()
        self._callbacks: list[ResultCallback] = []
        self._fired = False

    @property
    def value(self) -> Any:
        """A host's value or ErrorResult (for a tunnel target); a GroupResult (a group target)."""
        if not self._future.done():
            raise NotCompleted(
                "the queued operation has not completed: run the queue first", self._host
            )
        return self._future.result()

    def done(self) -> bool:
        """True once the value is available."""
        return self._future.done()

    def with_callback(self, callback: ResultCallback) -> AsyncResult:
        """Call ``callback(value)`` when the value is set (now, if it already was); return self."""
        with self._lock:
            if not self._fired:
                self._callbacks.append(callback)
                return self
        callback(self._future.result())
        return self

    def __await__(self) -> Generator[Any, None, Any]:
        return asyncio.wrap_future(self._future).__await__()

    def __repr__(self) -> str:
        target = self._host if self._hosts is None else f"{len(self._hosts)} hosts"
        if not self._future.done():
            return f"<AsyncResult {target}: pending>"
        return f"<AsyncResult {target}: {short_repr(self._future.result())}>"

    # -- used by Queue ------------------------------------------------------------------------

    def _begin(self, at: float) -> None:
        with self._lock:
            if self._first_start is None:
                self._first_start = at

    def _set_part(self, host: str, outcome: Any, elapsed: float) -> bool:
        """Record one host's outcome; True if that completed the result."""
        with self._lock:
            if host in self._parts or self._future.done():
                return False
            self._parts[host] = outcome
            self._timings[host] = elapsed
            if self._hosts is not None and len(self._parts) < len(self._hosts):
                return False
            if self._hosts is None:
                value = outcome
            else:
                start = self._first_start if self._first_start is not None else time.perf_counter()
                value = GroupResult(
                    ((h, self._parts[h]) for h in self._hosts),
                    timings=self._timings,
                    elapsed=time.perf_counter() - start,
                )
        self._future.set_result(value)
        return True

    def _fire(self) -> None:
        """Run the callbacks (once), in the thread running the queue."""
        with self._lock:
            if self._fired:
                return
            self._fired = True
            callbacks, self._callbacks = self._callbacks, []
        value = self._future.result()
        for callback in callbacks:
            callback(value)


class _Task:
    """One tunnel's part of a queued operation."""

    __slots__ = ("begun", "cancellable", "convert", "future", "host", "result", "settled", "start")

    def __init__(
        self,
        result: AsyncResult,
        host: str,
        start: Starter,
        cancellable: bool,
        convert: Callable[[Any], Any] | None,
    ) -> None:
        self.result = result
        self.host = host
        self.start = start
        self.cancellable = cancellable
        self.convert = convert
        self.future: concurrent.futures.Future[Any] | None = None
        self.begun = 0.0
        self.settled = False


class _Lane:
    """The tasks of one tunnel, run one after another."""

    __slots__ = ("current", "tasks", "tunnel", "unreachable")

    def __init__(self, tunnel: BaseTunnel) -> None:
        self.tunnel = tunnel
        self.tasks: deque[_Task] = deque()
        self.current: _Task | None = None
        self.unreachable: ChopsticksError | None = None


class _Run:
    """One :meth:`Queue.run`: how to wake its loop, and how many of its tasks are unfinished.

    The loop's events are completed results (:class:`AsyncResult`) and idle marks: ``int``, the
    number of times ``active`` has come down to 0, so the loop can tell the latest one.
    """

    def __init__(self, notify: Callable[[object], None], active: int) -> None:
        self._notify = notify
        self.active = active
        self.total = active  # tasks of the run, those queued while it runs included
        self.settled = 0
        self.watching: Watching | None = None
        self.idles = 0
        self.stopping = False
        self.ended = False

    def halted(self) -> bool:
        return self.stopping or self.ended

    def notify(self, event: object) -> None:
        if not self.ended:
            # RuntimeError: the event loop of run_async() has closed meanwhile
            with contextlib.suppress(RuntimeError):
                self._notify(event)


class Queue:
    """A queue of tasks per tunnel; :meth:`run` runs them all, each tunnel's in order.

    ``call``, ``connect``, ``put`` and ``fetch`` take a ``target`` (a tunnel or a
    :class:`~chopsticks_nb.group.Group`) and return an :class:`AsyncResult`. Tasks may be added
    while the queue runs (from a callback, say): they join their tunnel's queue. A queue can run
    again after :meth:`run` returns.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._lanes: dict[int, _Lane] = {}
        self._run: _Run | None = None

    def __len__(self) -> int:
        """The number of tasks waiting to start."""
        with self._lock:
            return sum(len(lane.tasks) for lane in self._lanes.values())

    # -- queueing -----------------------------------------------------------------------------

    def call(
        self, target: Target, callable: Callable[..., Any], /, *args: Any, **kwargs: Any
    ) -> AsyncResult:
        """Queue ``callable(*args, **kwargs)`` on every tunnel of ``target``."""
        return self._add(target, lambda tunnel: tunnel.submit_call(callable, args, kwargs))

    def connect(self, target: Target) -> AsyncResult:
        """Queue a connection; the value is what the agent said of itself (a dict)."""
        return self._add(
            target, lambda tunnel: tunnel.submit_connect(), cancellable=False, convert=dict
        )

    def put(
        self,
        target: Target,
        local_path: str | os.PathLike[str],
        remote_path: str | None = None,
        mode: int = 0o644,
    ) -> AsyncResult:
        """Queue a file copy to every tunnel of ``target`` (see :meth:`Group.put`)."""
        local = os.fspath(local_path)
        return self._add(target, lambda tunnel: tunnel.submit_put(local, remote_path, mode))

    def fetch(
        self,
        target: Target,
        remote_path: str,
        local_path: str | os.PathLike[str] | None = None,
        *,
        max_size: int | None = None,
    ) -> AsyncResult:
        """Queue a file copy from every tunnel of ``target``.

        ``local_path`` is a ``{host}`` template as in :meth:`Group.fetch`, checked now, and so
        is ``max_size``.
        """
        check_max_size(max_size)
        tunnels, _hosts = _resolve(target)
        paths = local_paths(local_path, [tunnel.host for tunnel in tunnels])
        make_parent_dirs(local_path, paths)
        return self._add(
            target,
            lambda tunnel: tunnel.submit_fetch(remote_path, paths[tunnel.host], max_size=max_size),
        )

    def _add(
        self,
        target: Target,
        start: Starter,
        *,
        cancellable: bool = True,
        convert: Callable[[Any], Any] | None = None,
    ) -> AsyncResult:
        tunnels, hosts = _resolve(target)
        result = AsyncResult(hosts, tunnels[0].host if hosts is None else None)
        lanes = []
        with self._lock:
            for tunnel in tunnels:
                lane = self._lanes.get(id(tunnel))
                if lane is None:
                    lane = self._lanes[id(tunnel)] = _Lane(tunnel)
                lane.tasks.append(_Task(result, tunnel.host, start, cancellable, convert))
                lanes.append(lane)
            run = self._run
            if run is not None and not run.stopping:
                run.active += len(tunnels)
                run.total += len(tunnels)
        if run is not None:
            for lane in lanes:
                self._advance(run, lane)
        if not tunnels:  # an empty group: nothing to wait for
            result._future.set_result(GroupResult())
            result._fire()
        return result

    # -- running ------------------------------------------------------------------------------

    def run(self, *, timeout: float | None = None, quiet: bool = False) -> None:
        """Run every queued task; return when all have finished.

        Callbacks run in this thread as results complete. ``timeout`` bounds the whole run: the
        tasks unfinished by then are cancelled (remotely too) and their hosts get an
        ErrorResult with status ``"timeout"``. On KeyboardInterrupt every running task is
        cancelled and every unfinished one gets an ErrorResult with status ``"interrupted"``
        (their callbacks are not called), then the KeyboardInterrupt propagates.

        Progress is shown as for a group operation (see :meth:`Group.run
        <chopsticks_nb.group.Group.run>`) once the run has lasted about a second; ``quiet=True``
        shows nothing.
        """
        events: queue_module.SimpleQueue[object] = queue_module.SimpleQueue()
        run = self._begin(events.put, quiet)
        if run is None:
            return
        with self._running(run, KeyboardInterrupt):
            for remaining in self._waits(run, timeout, time.monotonic):
                try:
                    event = events.get(timeout=remaining)
                except queue_module.Empty:
                    continue
                if self._handle(run, event):
                    return
            self._drain(run, events)

    async def run_async(self, *, timeout: float | None = None, quiet: bool = False) -> None:
        """``await queue.run_async()``: :meth:`run` for asyncio; callbacks run in the event loop.

        Cancelling the awaiting task cancels the unfinished tasks (status ``"interrupted"``).
        """
        loop = asyncio.get_running_loop()
        events: asyncio.Queue[object] = asyncio.Queue()

        def notify(event: object) -> None:
            loop.call_soon_threadsafe(events.put_nowait, event)

        run = self._begin(notify, quiet)
        if run is None:
            return
        with self._running(run, (asyncio.CancelledError, KeyboardInterrupt)):
            for remaining in self._waits(run, timeout, loop.time):
                try:
                    event = await asyncio.wait_for(events.get(), remaining)
                except asyncio.TimeoutError:
                    continue
                if self._handle(run, event):
                    return
            await asyncio.sleep(0)  # let the threadsafe callbacks land
            self._drain(run, events)

    # -- the run loop of run and run_async, but for how they wait -----------------------------

    def _begin(self, notify: Callable[[object], None], quiet: bool) -> _Run | None:
        with self._lock:
            if self._run is not None:
                raise RuntimeError("this Queue is already running")
            active = sum(len(lane.tasks) for lane in self._lanes.values())
            if not active:
                return None
            run = self._run = _Run(notify, active)
            for lane in self._lanes.values():
                lane.unreachable = None
            tunnels = [lane.tunnel for lane in self._lanes.values() if lane.tasks]
        # Remote output goes to the tunnels' own handlers: tasks were made before the run.
        run.watching = Watching(Operation("queue", tunnels, active, output=False), quiet=quiet)
        return run

    @contextlib.contextmanager
    def _running(
        self, run: _Run, interrupts: type[BaseException] | tuple[type[BaseException], ...]
    ) -> Iterator[None]:
        """End the run on the way out, stopping it first if an exception leaves: the tasks say
        "interrupted" after one of ``interrupts`` (the user's), "cancelled" after any other."""
        try:
            yield
        except interrupts:
            self._stop(run, _interrupted, "interrupted")
            raise
        except BaseException:
            self._stop(run, _abandoned, "cancelled")
            raise
        finally:
            self._end(run)
            if run.watching is not None:
                run.watching.finish()

    def _waits(
        self, run: _Run, timeout: float | None, clock: Callable[[], float]
    ) -> Iterator[float | None]:
        """Start the lanes, then give before each wait for an event the seconds it may take
        (None: no limit). At the deadline, ``timeout`` seconds on ``clock`` from now, stop the
        run and end: what the stop completed is still to be handled (:meth:`_drain`)."""
        deadline = None if timeout is None else clock() + timeout
        self._start_lanes(run)
        while True:
            remaining = None if deadline is None else deadline - clock()
            if remaining is not None and remaining <= 0:
                self._stop_for_timeout(run, timeout)
                return
            yield remaining

    def _start_lanes(self, run: _Run) -> None:
        with self._lock:
            lanes = list(self._lanes.values())
        for lane in lanes:
            self._advance(run, lane)

    def _drain(self, run: _Run, events: _Events) -> None:
        """Handle the events already queued (after a stop: the results it completed)."""
        while not events.empty():
            self._handle(run, events.get_nowait())

    def _handle(self, run: _Run, event: object) -> bool:
        """Deal with one run-loop event; True when the run is over."""
        if isinstance(event, AsyncResult):
            event._fire()
            return False
        # An idle mark is stale if a callback has queued more work since: that work's results,
        # and a newer mark, are then still to come (or already queued behind this one).
        with self._lock:
            return run.active == 0 and event == run.idles

    def _end(self, run: _Run) -> None:
        with self._lock:
            run.ended = True
            if self._run is run:
                self._run = None
            self._lanes = {key: lane for key, lane in self._lanes.items() if lane.tasks}

    def _advance(self, run: _Run, lane: _Lane) -> None:
        """Start the lane's next task if it is idle; go on through tasks that fail at once."""
        while True:
            with self._lock:
                if run.stopping or run.ended or lane.current is not None or not lane.tasks:
                    return
                task = lane.current = lane.tasks.popleft()
                unreachable = lane.unreachable
            task.begun = time.perf_counter()
            task.result._begin(task.begun)
            if unreachable is not None:
                future: concurrent.futures.Future[Any] = concurrent.futures.Future()
                future.set_exception(unreachable)
            else:
                future = start_safely(task.start, lane.tunnel)
            task.future = future
            if run.halted() and task.cancellable:
                future.cancel()  # the run was stopped while this task was starting
            if not future.done():
                future.add_done_callback(functools.partial(self._on_done, run, lane, task))
                return
            self._complete(run, lane, task, future)

    def _on_done(
        self, run: _Run, lane: _Lane, task: _Task, future: concurrent.futures.Future[Any]
    ) -> None:
        # On the broker thread, usually: start the lane's next task right here.
        self._complete(run, lane, task, future)
        self._advance(run, lane)

    def _complete(
        self, run: _Run, lane: _Lane, task: _Task, future: concurrent.futures.Future[Any]
    ) -> None:
        if run.stopping:
            return  # _stop settles every task of a stopping run itself
        outcome = outcome_of(future, task.host)
        if isinstance(outcome, ErrorResult):
            if isinstance(outcome.exception, (ConnectError, TunnelClosed)):
                lane.unreachable = outcome.exception
        elif task.convert is not None:
            outcome = task.convert(outcome)
        with self._lock:
            if lane.current is task:
                lane.current = None
        self._settle(run, task, outcome, lane)

    def _settle(self, run: _Run, task: _Task, outcome: Any, lane: _Lane | None = None) -> None:
        with self._lock:
            if task.settled:
                return
            task.settled = True
            run.settled += 1
            settled, total = run.settled, run.total
            host_finished = lane is None or not lane.tasks
        elapsed = time.perf_counter() - task.begun
        if run.watching is not None:
            done = HostDone(task.host, outcome, elapsed, settled, total)
            run.watching.report(done, host_finished=host_finished)
        if task.result._set_part(task.host, outcome, elapsed):
            run.notify(task.result)
        with self._lock:  # after the notify: the loop must see the result before it sees idle
            run.active -= 1
            idle = run.active == 0
            if idle:
                run.idles += 1
                mark = run.idles
        if idle:
            run.notify(mark)

    def _stop_for_timeout(self, run: _Run, timeout: float | None) -> None:
        self._stop(
            run,
            lambda host: CallTimeout(
                f"the queue did not finish within {timeout:g} s; cancelled", host
            ),
            "timeout",
        )

    def _stop(self, run: _Run, make_error: Callable[[str], ChopsticksError], status: str) -> None:
        """End the run early: cancel the running tasks, fail the waiting ones."""
        with self._lock:
            run.stopping = True
            running = [lane.current for lane in self._lanes.values() if lane.current is not None]
            waiting = [task for lane in self._lanes.values() for task in lane.tasks]
            for lane in self._lanes.values():
                lane.current = None
                lane.tasks.clear()
        for task in running:
            error = make_error(task.host)
            if task.future is None:
                outcome: Any = ErrorResult.from_exception(error, task.host, status)
            else:
                outcome = stop_future(task.future, task.host, error, status, task.cancellable)
            self._settle(run, task, outcome)
        for task in waiting:
            error = make_error(task.host)
            self._settle(run, task, ErrorResult.from_exception(error, task.host, status))


def _interrupted(host: str) -> ChopsticksError:
    return CallCancelled("interrupted", host)


def _abandoned(host: str) -> ChopsticksError:
    return CallCancelled("abandoned after an error", host)


def _resolve(target: Target) -> tuple[list[BaseTunnel], list[str] | None]:
    """The tunnels of ``target``, and its host names if it is a group (None for a tunnel)."""
    if isinstance(target, Group):
        return target.tunnels, target.hosts
    if isinstance(target, BaseTunnel):
        return [target], None
    raise TypeError(f"a queue target is a tunnel or a Group, not {type(target).__name__}")
