"""The fan-out engine: start one operation on every tunnel, then gather the answers as they come.

Every host's part is started before any is waited for (every pipe is served by the one broker
thread, so there is no thread per host); :func:`gather` then collects the outcomes into a
:class:`~chopsticks_nb.result.GroupResult`, with timeouts, progress reports and Ctrl-C handled
once for every group operation. ``Queue`` uses the same per-host helpers.
"""

from __future__ import annotations

import concurrent.futures
import functools
import time
from collections.abc import Sequence
from typing import Any, Callable

from .errors import CallCancelled, CallTimeout, ChopsticksError, GroupInterrupted
from .result import ErrorResult, GroupResult, HostDone, OnInterrupt, ProgressCallback
from .tunnel import BaseTunnel

__all__ = ["Starter", "gather", "outcome_of", "stamp", "start_safely", "stop_future"]

#: Starts one host's part of an operation: tunnel -> future of its value.
Starter = Callable[[BaseTunnel], "concurrent.futures.Future[Any]"]


def start_safely(start: Starter, tunnel: BaseTunnel) -> concurrent.futures.Future[Any]:
    """``start(tunnel)``, with an exception raised while starting turned into a failed future."""
    try:
        return start(tunnel)
    except ChopsticksError as exc:
        error: ChopsticksError = exc
    except Exception as exc:  # e.g. OSError making a fetch's temporary file: that host fails
        error = ChopsticksError(f"{type(exc).__name__}: {exc}", tunnel.host)
        error.__cause__ = exc
    future: concurrent.futures.Future[Any] = concurrent.futures.Future()
    future.set_exception(error)
    return future


def outcome_of(future: concurrent.futures.Future[Any], host: str) -> Any:
    """A finished future's value, or the ErrorResult for its failure."""
    if future.cancelled():
        return ErrorResult.from_exception(CallCancelled("cancelled", host))
    exc = future.exception()
    if exc is None:
        return future.result()
    if not isinstance(exc, ChopsticksError):
        wrapped = ChopsticksError(f"{type(exc).__name__}: {exc}", host)
        wrapped.__cause__ = exc
        exc = wrapped
    return ErrorResult.from_exception(exc, host)


def stop_future(
    future: concurrent.futures.Future[Any],
    host: str,
    error: ChopsticksError,
    status: str,
    cancellable: bool,
) -> Any:
    """Give up on ``future`` (cancelling its remote work if ``cancellable``); the host's outcome."""
    if cancellable:
        if future.cancel():
            return ErrorResult.from_exception(error, host, status)
    elif not future.done():
        # A connect future is shared with the tunnel: cancelling it would break the tunnel.
        return ErrorResult.from_exception(error, host, status)
    return outcome_of(future, host)


def stamp(ended: dict[str, float], host: str, _future: object) -> None:
    """A done-callback: note when ``host`` finished (the first time only)."""
    ended.setdefault(host, time.perf_counter())


def gather(
    tunnels: Sequence[BaseTunnel],
    start: Starter,
    *,
    timeout: float | None,
    progress: ProgressCallback | None,
    on_interrupt: OnInterrupt,
    cancellable: bool = True,
) -> GroupResult:
    """Start ``start(tunnel)`` for every tunnel, then collect the answers as they come."""
    if on_interrupt not in ("raise", "return"):
        raise ValueError(f"on_interrupt must be 'raise' or 'return', not {on_interrupt!r}")
    total = len(tunnels)
    began: dict[str, float] = {}
    ended: dict[str, float] = {}
    outcomes: dict[str, Any] = {}
    futures: dict[concurrent.futures.Future[Any], str] = {}
    t0 = time.perf_counter()
    deadline = None if timeout is None else time.monotonic() + timeout

    def finish(host: str, outcome: Any) -> None:
        ended.setdefault(host, time.perf_counter())
        outcomes[host] = outcome
        if progress is not None:
            progress(HostDone(host, outcome, ended[host] - began[host], len(outcomes), total))

    def result() -> GroupResult:
        now = time.perf_counter()
        hosts = [t.host for t in tunnels]
        return GroupResult(
            ((host, outcomes[host]) for host in hosts if host in outcomes),
            timings={h: ended.get(h, now) - began[h] for h in hosts if h in outcomes},
            elapsed=now - t0,
        )

    def stop_all(make_error: Callable[[str], ChopsticksError], status: str) -> None:
        for future, host in futures.items():
            if host not in outcomes:
                ended.setdefault(host, time.perf_counter())
                outcomes[host] = stop_future(future, host, make_error(host), status, cancellable)

    try:
        for tunnel in tunnels:
            began[tunnel.host] = time.perf_counter()
            future = start_safely(start, tunnel)
            futures[future] = tunnel.host
            future.add_done_callback(functools.partial(stamp, ended, tunnel.host))
        pending = set(futures)
        while pending:
            remaining = None if deadline is None else deadline - time.monotonic()
            if remaining is not None and remaining <= 0:
                break
            done, pending = concurrent.futures.wait(
                pending, remaining, concurrent.futures.FIRST_COMPLETED
            )
            for future in sorted(done, key=lambda f: ended.get(futures[f], 0.0)):
                finish(futures[future], outcome_of(future, futures[future]))
        for future in list(futures):
            host = futures[future]
            if host not in outcomes:  # the deadline passed
                cancelled = "; cancelled" if cancellable else ""
                error = CallTimeout(f"no answer within {timeout:g} s{cancelled}", host)
                finish(host, stop_future(future, host, error, "timeout", cancellable))
    except KeyboardInterrupt:
        stop_all(lambda host: CallCancelled("interrupted (KeyboardInterrupt)", host), "interrupted")
        partial = result()
        if on_interrupt == "return":
            return partial
        raise GroupInterrupted(partial) from None
    except BaseException:
        stop_all(lambda host: CallCancelled("abandoned after an error", host), "cancelled")
        raise
    return result()
