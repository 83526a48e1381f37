"""Groups: one operation on many hosts at once, and the per-host results it gives.

A :class:`Group` sends the operation to every tunnel before waiting for any (every pipe is
served by the one broker thread, so there is no thread per host), then collects the answers
into a :class:`GroupResult`: a dict of host name -> value, where a host that failed in any way
(unreachable, raised, timed out, interrupted) holds an :class:`ErrorResult` instead of stopping
the others::

    group = Group(["web1", "web2", Local("worker")])
    for host, value in group.call(time.time).successful():
        print(host, value)
    group.call(install).raise_failures()
"""

from __future__ import annotations

import concurrent.futures
import functools
import os
import string
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Callable, Literal

from .errors import (
    CallCancelled,
    CallTimeout,
    ChopsticksError,
    ConnectError,
    ConnectionLost,
    RemoteException,
)
from .tunnel import BaseTunnel, SSHTunnel

__all__ = [
    "ErrorResult",
    "Group",
    "GroupError",
    "GroupInterrupted",
    "GroupResult",
    "HostDone",
    "HostOutput",
    "OnInterrupt",
    "ProgressCallback",
]

#: Receives ``(host, stream, text)`` for the remote stdout/stderr of one group operation;
#: ``stream`` is ``"stdout"`` or ``"stderr"``. Called on the broker thread: keep it quick.
HostOutput = Callable[[str, str, str], None]

#: Called with a :class:`HostDone` each time a host finishes (see :meth:`Group.run`).
ProgressCallback = Callable[["HostDone"], None]

#: What a group operation does on KeyboardInterrupt: raise :class:`GroupInterrupted` (a
#: KeyboardInterrupt), or return the partial result with the unfinished hosts interrupted.
OnInterrupt = Literal["raise", "return"]

#: Starts one host's part of an operation: tunnel -> future of its value.
_Starter = Callable[[BaseTunnel], "concurrent.futures.Future[Any]"]

#: Remote tracebacks shown by :meth:`GroupResult.raise_failures` unless told otherwise.
_MAX_TRACEBACKS = 3
#: Longest text shown for one value in a ``GroupResult`` repr.
_MAX_VALUE_REPR = 200


class ErrorResult:
    """The failure of one host in a group operation, standing in for its value.

    ``msg`` is a one-line message, ``tb`` the remote traceback text (None unless the remote code
    raised), ``exception`` the :class:`~chopsticks_nb.errors.ChopsticksError` behind it, ``host``
    the host, ``remote_type`` the remote exception's type name (None when the failure was not a
    remote exception) and ``status`` one of ``"error"`` (the remote code raised),
    ``"unreachable"`` (no connection), ``"lost"`` (the connection died), ``"timeout"``,
    ``"interrupted"``, ``"cancelled"`` or ``"failed"`` (anything else, such as a transfer or
    serialisation error).
    """

    __slots__ = ("exception", "host", "msg", "status", "tb")

    def __init__(
        self,
        msg: str,
        tb: str | None = None,
        *,
        exception: ChopsticksError | None = None,
        host: str | None = None,
        status: str | None = None,
    ) -> None:
        self.msg = msg
        self.tb = tb
        self.exception = exception
        self.host = host if host is not None else getattr(exception, "host", None)
        self.status = status or _status_of(exception)

    @classmethod
    def from_exception(
        cls, exc: ChopsticksError, host: str | None = None, status: str | None = None
    ) -> ErrorResult:
        """The ErrorResult for ``exc`` (``host`` fills in when the error names none)."""
        if isinstance(exc, RemoteException):
            return cls(
                f"{exc.remote_type}: {exc.message}",
                exc.remote_traceback,
                exception=exc,
                host=exc.host or host,
                status=status,
            )
        return cls(exc.message, None, exception=exc, host=exc.host or host, status=status)

    @property
    def remote_type(self) -> str | None:
        """The remote exception's type name; None if the failure did not come from remote code."""
        if isinstance(self.exception, RemoteException):
            return self.exception.remote_type
        return None

    def __repr__(self) -> str:
        return f"ErrorResult({self.msg!r})"

    def _repr_html_(self) -> str:
        """HTML for notebooks: status, message, remote traceback collapsed (all escaped)."""
        from .notebook.display import error_result_html

        return error_result_html(self)


def _status_of(exc: ChopsticksError | None) -> str:
    if isinstance(exc, RemoteException):
        return "error"
    if isinstance(exc, ConnectError):
        return "unreachable"
    if isinstance(exc, ConnectionLost):
        return "lost"
    if isinstance(exc, CallTimeout):
        return "timeout"
    if isinstance(exc, CallCancelled):
        return "cancelled"
    return "failed"


@dataclass(frozen=True)
class HostDone:
    """What a ``progress`` callback receives each time one host of an operation finishes.

    ``value`` is the host's value or its :class:`ErrorResult`; ``elapsed`` the seconds since the
    operation started on that host; ``done`` how many hosts have finished so far, of ``total``.
    """

    host: str
    value: Any
    elapsed: float
    done: int
    total: int

    @property
    def ok(self) -> bool:
        return not isinstance(self.value, ErrorResult)


class GroupResult(dict[str, Any]):
    """The results of a group operation: a dict of host name -> value or :class:`ErrorResult`.

    Hosts appear in the group's order. ``timings`` maps each host to the seconds its part took
    (connecting included); ``elapsed`` is the wall time of the whole operation.
    """

    def __init__(
        self,
        results: Mapping[str, Any] | Iterable[tuple[str, Any]] = (),
        *,
        timings: Mapping[str, float] | None = None,
        elapsed: float = 0.0,
    ) -> None:
        super().__init__(results)
        self.timings: dict[str, float] = dict(timings or {})
        self.elapsed = elapsed

    def successful(self) -> Iterator[tuple[str, Any]]:
        """Iterate over the ``(host, value)`` pairs of the hosts that succeeded."""
        return ((host, value) for host, value in self.items() if not isinstance(value, ErrorResult))

    def failures(self) -> Iterator[tuple[str, ErrorResult]]:
        """Iterate over the ``(host, ErrorResult)`` pairs of the hosts that failed."""
        return ((host, value) for host, value in self.items() if isinstance(value, ErrorResult))

    @property
    def ok(self) -> bool:
        """True if no host failed."""
        return not any(isinstance(value, ErrorResult) for value in self.values())

    def raise_failures(self, max_tracebacks: int = _MAX_TRACEBACKS) -> GroupResult:
        """Raise :class:`GroupError` if any host failed; otherwise return this result.

        The error's message names every failed host with its error, followed by up to
        ``max_tracebacks`` remote tracebacks.
        """
        failures = dict(self.failures())
        if failures:
            raise GroupError.from_failures(failures, len(self), max_tracebacks, result=self)
        return self

    def __repr__(self) -> str:
        items = [f"{host!r}: {_short_repr(value)}" for host, value in self.items()]
        one_line = "GroupResult({" + ", ".join(items) + "})"
        if len(one_line) <= 100:
            return one_line
        return "GroupResult({\n" + "".join(f"    {item},\n" for item in items) + "})"

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (dict(self),), {"timings": self.timings, "elapsed": self.elapsed})

    def _repr_html_(self) -> str:
        """HTML for notebooks: a table of host, status, value or error, time (all escaped)."""
        from .notebook.display import group_result_html

        return group_result_html(self)


def _short_repr(value: object) -> str:
    try:
        text = repr(value)
    except ValueError:
        # An int with more digits than sys.get_int_max_str_digits() (4300) cannot be printed,
        # and a remote may return one (the codec carries ints of any size): the repr of the
        # whole result must not fail for it.
        size = f"{value.bit_length()}-bit " if isinstance(value, int) else ""
        text = f"<{size}{type(value).__name__} too large to print>"
    return text if len(text) <= _MAX_VALUE_REPR else text[: _MAX_VALUE_REPR - 3] + "..."


class GroupError(RemoteException):
    """Some hosts of a group operation failed (raised by :meth:`GroupResult.raise_failures`).

    ``failures`` maps each failed host to its :class:`ErrorResult`; ``result`` is the whole
    :class:`GroupResult` (successes included) when known.
    """

    def __init__(
        self,
        message: str,
        host: str | None = None,
        remote_type: str = "GroupError",
        remote_traceback: str | None = None,
        *,
        failures: Mapping[str, ErrorResult] | None = None,
        result: GroupResult | None = None,
    ) -> None:
        super().__init__(message, host, remote_type, remote_traceback)
        self.failures: dict[str, ErrorResult] = dict(failures or {})
        self.result = result

    @classmethod
    def from_failures(
        cls,
        failures: Mapping[str, ErrorResult],
        total: int,
        max_tracebacks: int = _MAX_TRACEBACKS,
        *,
        result: GroupResult | None = None,
    ) -> GroupError:
        hosts = list(failures)
        noun = "host" if total == 1 else "hosts"
        lines = [f"{len(hosts)} of {total} {noun} failed: {', '.join(hosts)}"]
        lines += [f"  {host}: {error.msg}" for host, error in failures.items()]
        with_tb = [(host, error.tb) for host, error in failures.items() if error.tb]
        shown = with_tb[: max(0, max_tracebacks)]
        tracebacks = []
        for host, tb in shown:
            tracebacks.append(f"--- remote traceback from {host} ---")
            tracebacks.append(str(tb).rstrip("\n"))
        if len(with_tb) > len(shown):
            more = len(with_tb) - len(shown)
            tracebacks.append(
                f"({more} more remote traceback{'s' if more > 1 else ''} not shown: see .failures)"
            )
        message = "\n".join(lines + tracebacks)
        remote_tb = "\n".join(tracebacks) + "\n" if tracebacks else None
        return cls(message, None, "GroupError", remote_tb, failures=failures, result=result)

    def __str__(self) -> str:
        return self.message

    def __reduce__(self) -> tuple[Any, ...]:
        state = {"failures": self.failures, "result": self.result}
        args = (self.message, self.host, self.remote_type, self.remote_traceback)
        return (type(self), args, state)

    def _render_traceback_(self) -> list[str]:
        return ["GroupError: " + self.message.split("\n", 1)[0], *self.message.split("\n")[1:]]


class GroupInterrupted(KeyboardInterrupt):
    """KeyboardInterrupt during a group operation, after every unfinished remote call was cancelled.

    ``result`` is the partial :class:`GroupResult`: the hosts that finished hold their values,
    the others an :class:`ErrorResult` with status ``"interrupted"``.
    """

    def __init__(self, result: GroupResult) -> None:
        pending = sum(1 for _, e in result.failures() if e.status == "interrupted")
        super().__init__(f"interrupted with {pending} of {len(result)} hosts unfinished")
        self.result = result

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.result,))

    def _render_traceback_(self) -> list[str]:
        """IPython shows this short text instead of a local stack that would not help."""
        hosts = [host for host, error in self.result.failures() if error.status == "interrupted"]
        shown = ", ".join(hosts[:10]) + (f" and {len(hosts) - 10} more" if len(hosts) > 10 else "")
        lines = [f"GroupInterrupted: {self}"]
        if hosts:
            lines.append(f"  interrupted: {shown}")
        return lines


class Group:
    """A set of tunnels, for running one operation on all of them in parallel.

    ``hosts`` may hold tunnels and host names; a name becomes an :class:`SSHTunnel` with default
    settings. Tunnels are told apart by their ``host`` name (results are keyed by it), so two
    tunnels with the same name are refused. Groups connect lazily, reconnect after
    :meth:`close`, work as context managers (connect on entry, close on exit) and combine like
    sets of names with ``+``/``|`` (union), ``&``, ``-`` and ``^``; a tunnel acts as a group of one.
    """

    def __init__(self, hosts: Iterable[BaseTunnel | str]) -> None:
        if isinstance(hosts, (str, BaseTunnel)):
            raise TypeError("Group() takes a list of tunnels or host names, not a single one")
        tunnels: list[BaseTunnel] = []
        names: set[str] = set()
        for host in hosts:
            tunnel = SSHTunnel(host) if isinstance(host, str) else host
            if not isinstance(tunnel, BaseTunnel):
                raise TypeError(f"a Group holds tunnels or host names, not {type(host).__name__}")
            if tunnel.host in names:
                raise ValueError(
                    f"duplicate host name {tunnel.host!r} in a Group: results are "
                    "keyed by host name, so each tunnel needs its own"
                )
            names.add(tunnel.host)
            tunnels.append(tunnel)
        self._tunnels = tunnels

    # -- the set of tunnels -------------------------------------------------------------------

    @property
    def tunnels(self) -> list[BaseTunnel]:
        """The tunnels, in order."""
        return list(self._tunnels)

    @property
    def hosts(self) -> list[str]:
        """The host names, in order."""
        return [tunnel.host for tunnel in self._tunnels]

    def __len__(self) -> int:
        return len(self._tunnels)

    def __iter__(self) -> Iterator[BaseTunnel]:
        return iter(list(self._tunnels))

    def __contains__(self, item: object) -> bool:
        name = item.host if isinstance(item, BaseTunnel) else item
        return any(tunnel.host == name for tunnel in self._tunnels)

    def __getitem__(self, host: str) -> BaseTunnel:
        """The tunnel named ``host``."""
        for tunnel in self._tunnels:
            if tunnel.host == host:
                return tunnel
        raise KeyError(host)

    def __repr__(self) -> str:
        return f"Group([{', '.join(repr(tunnel) for tunnel in self._tunnels)}])"

    @staticmethod
    def _operand(other: object) -> list[BaseTunnel] | None:
        if isinstance(other, Group):
            return other._tunnels
        if isinstance(other, BaseTunnel):
            return [other]
        return None

    def __or__(self, other: Group | BaseTunnel) -> Group:
        """Union by name; where both sides name a host, the left side's tunnel is kept."""
        right = self._operand(other)
        if right is None:
            return NotImplemented
        names = set(self.hosts)
        return Group(self._tunnels + [t for t in right if t.host not in names])

    __add__ = __or__

    def __and__(self, other: Group | BaseTunnel) -> Group:
        right = self._operand(other)
        if right is None:
            return NotImplemented
        names = {t.host for t in right}
        return Group([t for t in self._tunnels if t.host in names])

    def __sub__(self, other: Group | BaseTunnel) -> Group:
        right = self._operand(other)
        if right is None:
            return NotImplemented
        names = {t.host for t in right}
        return Group([t for t in self._tunnels if t.host not in names])

    def __xor__(self, other: Group | BaseTunnel) -> Group:
        right = self._operand(other)
        if right is None:
            return NotImplemented
        left_names, right_names = set(self.hosts), {t.host for t in right}
        return Group(
            [t for t in self._tunnels if t.host not in right_names]
            + [t for t in right if t.host not in left_names]
        )

    # -- connections --------------------------------------------------------------------------

    def connect(
        self,
        *,
        timeout: float | None = None,
        progress: ProgressCallback | None = None,
        on_interrupt: OnInterrupt = "raise",
    ) -> GroupResult:
        """Connect every tunnel in parallel; a GroupResult of what each agent said of itself.

        A host that cannot connect holds an ErrorResult; nothing is raised for it. Each tunnel
        applies its own ``connect_timeout``; ``timeout`` bounds the whole operation.
        """
        result = _gather(
            self._tunnels,
            lambda tunnel: tunnel.submit_connect(),
            timeout=timeout,
            progress=progress,
            on_interrupt=on_interrupt,
            cancellable=False,
        )
        for host, info in list(result.successful()):
            result[host] = dict(info)
        return result

    def close(self) -> None:
        """Close every tunnel (each can connect again later)."""
        for tunnel in self._tunnels:
            tunnel.close()

    def __enter__(self) -> Group:
        """Connect every host (those that cannot connect fail their calls later) and return self."""
        self.connect()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- operations ---------------------------------------------------------------------------

    def call(self, callable: Callable[..., Any], /, *args: Any, **kwargs: Any) -> GroupResult:
        """Run ``callable(*args, **kwargs)`` on every host in parallel; a :class:`GroupResult`.

        Never raises for a host's failure: that host's entry is an :class:`ErrorResult`. Use
        :meth:`run` for a timeout, progress reports or output routing.
        """
        return self.run(callable, args, kwargs)

    def run(
        self,
        callable: Callable[..., Any],
        args: Sequence[Any] = (),
        kwargs: Mapping[str, Any] | None = None,
        *,
        timeout: float | None = None,
        progress: ProgressCallback | None = None,
        output: HostOutput | None = None,
        on_interrupt: OnInterrupt = "raise",
    ) -> GroupResult:
        """The full form of :meth:`call`.

        ``timeout``: seconds for the whole operation (connecting included); hosts that have not
        answered by then are cancelled remotely and hold an ErrorResult with status
        ``"timeout"``. ``progress``: called as ``progress(HostDone(...))`` in this thread each
        time a host finishes (a progress bar, a live table). ``output``: called as
        ``output(host, stream, text)`` on the broker thread with each host's remote stdout and
        stderr for this call (instead of the tunnel's own handler).

        On KeyboardInterrupt every unfinished remote call is cancelled (the agent interrupts it),
        then :class:`GroupInterrupted` (a KeyboardInterrupt carrying the partial result) is
        raised; with ``on_interrupt="return"`` the partial result is returned instead.
        """
        call_args = tuple(args)
        call_kwargs = dict(kwargs or {})

        def start(tunnel: BaseTunnel) -> concurrent.futures.Future[Any]:
            handler = None if output is None else functools.partial(output, tunnel.host)
            return tunnel.submit_call(callable, call_args, call_kwargs, output=handler)

        return _gather(
            self._tunnels, start, timeout=timeout, progress=progress, on_interrupt=on_interrupt
        )

    def exec(
        self,
        code: str,
        names: Mapping[str, Any] | None = None,
        *,
        filename: str = "<remote-cell>",
        timeout: float | None = None,
        progress: ProgressCallback | None = None,
        output: HostOutput | None = None,
        on_interrupt: OnInterrupt = "raise",
    ) -> GroupResult:
        """Run Python source on every host in parallel, each in its tunnel's persistent namespace.

        As :meth:`BaseTunnel.exec <chopsticks_nb.tunnel.BaseTunnel.exec>` on every host: ``names``
        are bound in the namespace first (functions and classes travel as source), and each
        host's value is that of the code's last line if it is an expression (else None). Names
        the code defines stay there for later calls on the same connection. ``filename`` names
        the code in remote tracebacks; the other options are those of :meth:`run`. This is what
        the notebook's ``%%remote`` magic runs.
        """
        bound = dict(names or {})

        def start(tunnel: BaseTunnel) -> concurrent.futures.Future[Any]:
            handler = None if output is None else functools.partial(output, tunnel.host)
            return tunnel.submit_exec(code, bound, filename=filename, output=handler)

        return _gather(
            self._tunnels, start, timeout=timeout, progress=progress, on_interrupt=on_interrupt
        )

    def put(
        self,
        local_path: str | os.PathLike[str],
        remote_path: str | None = None,
        mode: int = 0o644,
        *,
        timeout: float | None = None,
        progress: ProgressCallback | None = None,
        on_interrupt: OnInterrupt = "raise",
    ) -> GroupResult:
        """Copy a local file to every host in parallel (streamed; any size).

        Without ``remote_path`` each host makes a temporary file. Each value is a dict with
        ``local_path``, ``remote_path``, ``size`` and ``sha1sum``. Raises OSError at once if the
        local file cannot be read. Options as in :meth:`run`.
        """
        local = os.fspath(local_path)
        with open(local, "rb"):  # fail once, here, rather than once per host
            pass
        return _gather(
            self._tunnels,
            lambda tunnel: tunnel.submit_put(local, remote_path, mode),
            timeout=timeout,
            progress=progress,
            on_interrupt=on_interrupt,
        )

    def fetch(
        self,
        remote_path: str,
        local_path: str | os.PathLike[str] | None = None,
        *,
        timeout: float | None = None,
        progress: ProgressCallback | None = None,
        on_interrupt: OnInterrupt = "raise",
    ) -> GroupResult:
        """Copy a remote file from every host in parallel (streamed; any size).

        ``local_path`` is a template into which each host name is put with ``str.format``:
        ``"passwd-{host}"``, or ``"out/{host}/passwd"`` (directories below the template's own
        are created). Every path must be distinct and stay inside the template's directory:
        host names with ``/`` or that are ``..`` are refused (ValueError, before anything
        starts). Without ``local_path`` each host's file goes to a new temporary file. Each
        value is a dict with ``local_path``, ``remote_path``, ``size`` and ``sha1sum``.
        Options as in :meth:`run`.
        """
        paths = _local_paths(local_path, self.hosts)
        _make_parent_dirs(local_path, paths)
        return _gather(
            self._tunnels,
            lambda tunnel: tunnel.submit_fetch(remote_path, paths[tunnel.host]),
            timeout=timeout,
            progress=progress,
            on_interrupt=on_interrupt,
        )

    def filter(
        self, predicate: Callable[[], Any], exclude: bool = False, *, timeout: float | None = None
    ) -> Group:
        """The group of the tunnels on which ``predicate()`` is true (false if ``exclude``).

        ``predicate`` runs remotely, on every host in parallel. Raises :class:`GroupError` if
        any host cannot be reached or fails to evaluate it.
        """
        result = self.run(predicate, timeout=timeout).raise_failures()
        return Group([t for t in self._tunnels if bool(result[t.host]) != exclude])


# -- fetch paths -----------------------------------------------------------------------------


def _template_dir(template: str) -> str:
    """The directory part of ``template`` that no format field can change."""
    literal = ""
    for text, field, _spec, _conv in string.Formatter().parse(template):
        literal += text
        if field is not None:
            return os.path.dirname(literal)
    return os.path.dirname(template)


def _local_paths(
    template: str | os.PathLike[str] | None, hosts: Sequence[str]
) -> dict[str, str | None]:
    """Each host's local fetch path from ``template`` (None everywhere without a template).

    Raises ValueError for a host name that could climb out of the template's directory, a
    template naming a field other than ``{host}``, or two hosts given the same path.
    """
    if template is None:
        return dict.fromkeys(hosts)
    text = os.fspath(template)
    base = os.path.abspath(_template_dir(text) or os.curdir)
    real_base = os.path.realpath(base)
    paths: dict[str, str | None] = {}
    for host in hosts:
        if not host or "/" in host or os.sep in host or "\0" in host or host in (".", ".."):
            raise ValueError(f"host name {host!r} cannot be used in a local path")
        try:
            formatted = text.format(host=host)
        except (KeyError, IndexError, AttributeError, ValueError) as exc:
            raise ValueError(
                f"local_path template {text!r} must use only {{host}}: {exc!r}"
            ) from None
        path = os.path.abspath(formatted)
        parent = os.path.realpath(os.path.dirname(path))
        if (
            os.path.commonpath([base, path]) != base
            or path == base
            or os.path.commonpath([real_base, parent]) != real_base
        ):
            raise ValueError(f"local_path {formatted!r} for host {host!r} leaves {base!r}")
        paths[host] = path
    if len(set(paths.values())) < len(paths):
        raise ValueError(
            f"local_path template {text!r} gives several hosts the same path: put {{host}} in it"
        )
    return paths


def _make_parent_dirs(
    template: str | os.PathLike[str] | None, paths: Mapping[str, str | None]
) -> None:
    """Create the per-host directories a template like ``out/{host}/file`` needs."""
    if template is None:
        return
    base = os.path.abspath(_template_dir(os.fspath(template)) or os.curdir)
    for path in paths.values():
        if path is not None and os.path.dirname(path) != base:
            os.makedirs(os.path.dirname(path), exist_ok=True)


# -- the engine: start everything, then wait -------------------------------------------------


def _start_safely(start: _Starter, tunnel: BaseTunnel) -> concurrent.futures.Future[Any]:
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


def _outcome_of(future: concurrent.futures.Future[Any], host: str) -> Any:
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


def _stop_future(
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
    return _outcome_of(future, host)


def _stamp(ended: dict[str, float], host: str, _future: object) -> None:
    ended.setdefault(host, time.perf_counter())


def _gather(
    tunnels: Sequence[BaseTunnel],
    start: _Starter,
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
                outcomes[host] = _stop_future(future, host, make_error(host), status, cancellable)

    try:
        for tunnel in tunnels:
            began[tunnel.host] = time.perf_counter()
            future = _start_safely(start, tunnel)
            futures[future] = tunnel.host
            future.add_done_callback(functools.partial(_stamp, ended, tunnel.host))
        pending = set(futures)
        while pending:
            remaining = None if deadline is None else deadline - time.monotonic()
            if remaining is not None and remaining <= 0:
                break
            done, pending = concurrent.futures.wait(
                pending, remaining, concurrent.futures.FIRST_COMPLETED
            )
            for future in sorted(done, key=lambda f: ended.get(futures[f], 0.0)):
                finish(futures[future], _outcome_of(future, futures[future]))
        for future in list(futures):
            host = futures[future]
            if host not in outcomes:  # the deadline passed
                cancelled = "; cancelled" if cancellable else ""
                error = CallTimeout(f"no answer within {timeout:g} s{cancelled}", host)
                finish(host, _stop_future(future, host, error, "timeout", cancellable))
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
