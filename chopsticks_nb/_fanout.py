"""The fan-out engine: start one operation on every tunnel, then gather the answers as they come.

Every host's part is started before any is waited for (every pipe is served by the one broker
thread, so there is no thread per host); :func:`gather` then collects the outcomes into a
:class:`~chopsticks_nb.result.GroupResult`, with timeouts, retries of unreachable hosts,
progress reports and Ctrl-C handled once for every group operation. The result keeps the
tunnels (``result.failed`` is a Group of them) and what the hosts printed. ``Queue`` uses the
same per-host helpers.
"""

from __future__ import annotations

import concurrent.futures
import functools
import time
from collections.abc import Sequence
from typing import Any, Callable

from ._capture import OutputCapture
from .errors import (
    CallCancelled,
    CallTimeout,
    ChopsticksError,
    ConnectError,
    ConnectionLost,
    DepthLimitExceeded,
    GroupInterrupted,
    ProtocolError,
    TunnelClosed,
)
from .result import ErrorResult, GroupResult, HostDone, OnInterrupt, ProgressCallback
from .tunnel import BaseTunnel

__all__ = [
    "Starter",
    "check_retries",
    "gather",
    "outcome_of",
    "retryable",
    "start_safely",
    "stop_future",
]

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


def retryable(outcome: Any) -> bool:
    """Whether a host's failure is worth another attempt: it was unreachable or lost its
    connection. Never a remote exception, a timeout or a cancel (the work ran, or was meant to
    stop), a protocol error (the host is broken, not away), a closed tunnel (the user closed
    it) or too deep a nesting."""
    if not isinstance(outcome, ErrorResult):
        return False
    error = outcome.exception
    if isinstance(error, (ProtocolError, TunnelClosed, DepthLimitExceeded)):
        return False
    return isinstance(error, (ConnectError, ConnectionLost))


def check_retries(retries: int, retry_delay: float) -> None:
    """One clear error for bad retry options, before anything starts."""
    if isinstance(retries, bool) or not isinstance(retries, int) or retries < 0:
        raise ValueError(f"retries must be a whole number, 0 or more, not {retries!r}")
    if not retry_delay >= 0:
        raise ValueError(f"retry_delay must be 0 or more seconds, not {retry_delay!r}")


def gather(
    tunnels: Sequence[BaseTunnel],
    start: Starter,
    *,
    timeout: float | None,
    progress: ProgressCallback | None,
    on_interrupt: OnInterrupt,
    cancellable: bool = True,
    retries: int = 0,
    retry_delay: float = 1.0,
    capture: OutputCapture | None = None,
) -> GroupResult:
    """Start ``start(tunnel)`` for every tunnel, then collect the answers as they come.

    A host whose part failed because it was unreachable or lost its connection
    (:func:`retryable`) is started again ``retry_delay`` seconds later, up to ``retries``
    more times while the ``timeout`` lasts. ``capture`` holds what the hosts printed.
    """
    if on_interrupt not in ("raise", "return"):
        raise ValueError(f"on_interrupt must be 'raise' or 'return', not {on_interrupt!r}")
    check_retries(retries, retry_delay)
    total = len(tunnels)
    by_host = {tunnel.host: tunnel for tunnel in tunnels}
    began: dict[str, float] = {}
    ended: dict[str, float] = {}
    attempts: dict[str, int] = {}
    outcomes: dict[str, Any] = {}
    current: dict[str, concurrent.futures.Future[Any]] = {}  # each host's latest attempt
    pending: dict[concurrent.futures.Future[Any], str] = {}
    finished_at: dict[concurrent.futures.Future[Any], float] = {}
    retry_at: dict[str, float] = {}  # hosts waiting for another attempt -> when (monotonic)
    last_failure: dict[str, Any] = {}
    t0 = time.perf_counter()
    deadline = None if timeout is None else time.monotonic() + timeout

    def launch(tunnel: BaseTunnel) -> None:
        host = tunnel.host
        attempts[host] = attempts.get(host, 0) + 1
        future = start_safely(start, tunnel)
        current[host] = future
        pending[future] = host
        future.add_done_callback(functools.partial(_stamp, finished_at))

    def finish(host: str, outcome: Any, at: float | None = None) -> None:
        ended.setdefault(host, time.perf_counter() if at is None else at)
        outcomes[host] = outcome
        if progress is not None:
            progress(HostDone(host, outcome, ended[host] - began[host], len(outcomes), total))

    def result() -> GroupResult:
        now = time.perf_counter()
        hosts = [t.host for t in tunnels if t.host in outcomes]
        return GroupResult(
            ((host, outcomes[host]) for host in hosts),
            timings={h: ended.get(h, now) - began[h] for h in hosts},
            elapsed=now - t0,
            attempts={h: attempts[h] for h in hosts},
            outputs=capture.close() if capture is not None else None,
            tunnels=by_host,
        )

    def stop_all(make_error: Callable[[str], ChopsticksError], status: str) -> None:
        for host, future in current.items():
            if host in outcomes:
                continue
            ended.setdefault(host, time.perf_counter())
            if host in retry_at:  # between attempts: nothing runs; its last failure stands
                outcomes[host] = last_failure[host]
            else:
                outcomes[host] = stop_future(future, host, make_error(host), status, cancellable)

    try:
        for tunnel in tunnels:
            began[tunnel.host] = time.perf_counter()
            launch(tunnel)
        while pending or retry_at:
            now = time.monotonic()
            wait = None if deadline is None else deadline - now
            if wait is not None and wait <= 0:
                break
            if retry_at:
                until_retry = max(0.0, min(retry_at.values()) - now)
                wait = until_retry if wait is None else min(wait, until_retry)
            if pending:
                done, _ = concurrent.futures.wait(
                    set(pending), wait, concurrent.futures.FIRST_COMPLETED
                )
            else:
                time.sleep(wait or 0.0)
                done = set()
            for future in sorted(done, key=lambda f: finished_at.get(f, 0.0)):
                host = pending.pop(future)
                outcome = outcome_of(future, host)
                if attempts[host] <= retries and retryable(outcome):
                    last_failure[host] = outcome
                    retry_at[host] = time.monotonic() + retry_delay
                else:
                    finish(host, outcome, finished_at.get(future))
            now = time.monotonic()
            for host in [h for h, at in retry_at.items() if at <= now]:
                if deadline is not None and now >= deadline:
                    break
                del retry_at[host]
                launch(by_host[host])
        for future, host in list(pending.items()):  # the deadline passed
            cancelled = "; cancelled" if cancellable else ""
            error = CallTimeout(f"no answer within {timeout:g} s{cancelled}", host)
            finish(host, stop_future(future, host, error, "timeout", cancellable))
        for host in list(retry_at):  # the deadline passed before another attempt
            finish(host, last_failure[host])
    except KeyboardInterrupt:
        stop_all(lambda host: CallCancelled("interrupted (KeyboardInterrupt)", host), "interrupted")
        partial = result()
        if on_interrupt == "return":
            return partial
        raise GroupInterrupted(partial) from None
    except BaseException:
        stop_all(lambda host: CallCancelled("abandoned after an error", host), "cancelled")
        raise
    finally:
        if capture is not None:
            capture.close()
    return result()


def _stamp(
    finished_at: dict[concurrent.futures.Future[Any], float],
    future: concurrent.futures.Future[Any],
) -> None:
    """A done-callback: note when an attempt finished."""
    finished_at.setdefault(future, time.perf_counter())
