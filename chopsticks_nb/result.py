"""The results of a group operation: a value or an :class:`ErrorResult` per host.

A :class:`GroupResult` is a dict of host name -> value, where a host that failed in any way
(unreachable, raised, timed out, interrupted) holds an :class:`ErrorResult` instead of stopping
the others; :class:`HostDone` reports each host as it finishes. A result also groups the hosts
by identical value, diffs the odd ones out against the majority, becomes a pandas DataFrame,
keeps each host's remote output (bounded) and makes a Group of the hosts that failed, to run
again there. Its text and HTML views are drawn by :mod:`chopsticks_nb.render`::

    result = group.call(time.time)
    for host, value in result.successful():
        print(host, value)
    result.groups()              # [(value, hosts)], the outliers first
    result.failed.call(fn)       # again, where it failed
    result.raise_failures()      # GroupError if any host failed
"""

from __future__ import annotations

import weakref
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Literal

from . import render
from ._bounded import short_repr
from ._capture import Transcript
from ._diff import ResultDiff
from ._grouping import ValueGroup, any_repeats, group_hosts
from .errors import (
    MAX_TRACEBACKS,
    CallCancelled,
    CallTimeout,
    ChopsticksError,
    ConnectError,
    ConnectionLost,
    GroupError,
    RemoteException,
)

if TYPE_CHECKING:  # a result makes Groups through the package's public name, at run time
    import chopsticks_nb

    from .tunnel import BaseTunnel

__all__ = [
    "ErrorResult",
    "GroupResult",
    "HostDone",
    "OnInterrupt",
    "ProgressCallback",
    "ResultDiff",
    "ResultView",
]

#: The columns of :meth:`GroupResult.to_pandas` besides those of a dict value's keys.
FRAME_COLUMNS = ("host", "status", "value", "remote_type", "message", "elapsed")

#: Called with a :class:`HostDone` each time a host finishes (see ``Group.run``).
ProgressCallback = Callable[["HostDone"], None]

#: What a group operation does on KeyboardInterrupt: raise ``GroupInterrupted`` (a
#: KeyboardInterrupt), or return the partial result with the unfinished hosts interrupted.
OnInterrupt = Literal["raise", "return"]


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
        return f"ErrorResult({short_repr(self.msg, render.MAX_VALUE_CHARS)})"

    def _repr_html_(self) -> str:
        """HTML for notebooks: status, message, remote traceback collapsed (all escaped)."""
        return render.error_result_html(self)


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
    (connecting and retries included); ``elapsed`` is the wall time of the whole operation;
    ``attempts`` maps each host to how many times its part was started (more than 1 when a
    group operation retried it; empty for a result built by hand).

    Shown grouped when values repeat (the outliers first); :meth:`view`, :meth:`to_text`,
    :meth:`to_html` and :meth:`to_markdown` take ``grouped=False`` to list every host.
    """

    def __init__(
        self,
        results: Mapping[str, Any] | Iterable[tuple[str, Any]] = (),
        *,
        timings: Mapping[str, float] | None = None,
        elapsed: float = 0.0,
        attempts: Mapping[str, int] | None = None,
        outputs: Mapping[str, Transcript] | None = None,
        tunnels: Mapping[str, BaseTunnel] | None = None,
    ) -> None:
        super().__init__(results)
        self.timings: dict[str, float] = dict(timings or {})
        self.elapsed = elapsed
        self.attempts: dict[str, int] = dict(attempts or {})
        self._outputs: dict[str, Transcript] = dict(outputs or {})
        # Weak references: a result (kept as Out[n] for a whole session) must not keep the
        # connections of a Group its user deleted open.
        self._tunnels: dict[str, weakref.ref[BaseTunnel]] | None = (
            None if tunnels is None else {host: weakref.ref(t) for host, t in tunnels.items()}
        )

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

    def raise_failures(self, max_tracebacks: int = MAX_TRACEBACKS) -> GroupResult:
        """Raise :class:`~chopsticks_nb.errors.GroupError` if any host failed; else return self.

        The error's message names every failed host with its error, followed by up to
        ``max_tracebacks`` remote tracebacks.
        """
        failures = dict(self.failures())
        if failures:
            raise GroupError.from_failures(
                failures, len(self), max_tracebacks=max_tracebacks, result=self
            )
        return self

    # -- understanding the answers -----------------------------------------------------------

    def groups(self) -> list[tuple[Any, list[str]]]:
        """The hosts grouped by identical value: ``[(value, hosts), ...]``, smallest groups
        (the outliers) first, groups of one size in the order of their first host.

        Identical means equal and of the same type, all the way down: ``1``, ``True`` and
        ``1.0`` are three values; lists and dicts group too (a dict's key order does not
        matter). Failed hosts are grouped by status, remote exception type and message, with
        the first host's :class:`ErrorResult` as the group's value.
        """
        return [(group.value, list(group.hosts)) for group in self._value_groups()]

    def _value_groups(self) -> list[ValueGroup]:
        return group_hosts(self, _is_failure)

    def _values_repeat(self) -> bool:
        """Whether two hosts' outcomes are identical (cheaper than grouping them all)."""
        return any_repeats(self, _is_failure)

    def diff(self) -> ResultDiff:
        """How the odd hosts' values differ from the majority's (the largest group's).

        ``str`` and ``bytes`` values give a unified diff per minority group, dicts the keys
        whose values differ, other values both values. The result shows itself as text and
        as coloured HTML; ``str(diff)`` is the text.
        """
        return ResultDiff(self._value_groups())

    def to_pandas(self) -> Any:
        """A pandas DataFrame, one row per host: ``host``, ``status``, ``value`` (a dict value
        spread over columns named by its keys), ``remote_type``, ``message``, ``elapsed``
        (seconds). Needs pandas (``pip install pandas``)."""
        try:
            import pandas
        except ImportError as exc:
            raise ImportError(
                "GroupResult.to_pandas() needs pandas, which is not installed here: "
                "pip install pandas",
                name="pandas",
            ) from exc
        rows, columns = self._rows()
        return pandas.DataFrame(rows, columns=columns)

    def _rows(self) -> tuple[list[dict[Any, Any]], list[Any]]:
        """One dict per host, and the column names in order (dict values spread out)."""
        rows: list[dict[Any, Any]] = []
        spread: dict[Any, None] = {}
        plain_values = False
        for host, value in self.items():
            row: dict[Any, Any] = {"host": host, "elapsed": self.timings.get(host)}
            if isinstance(value, ErrorResult):
                row.update(status=value.status, remote_type=value.remote_type, message=value.msg)
            elif isinstance(value, dict):
                row["status"] = "ok"
                for key, item in value.items():
                    column = f"value.{key}" if key in FRAME_COLUMNS else key
                    spread.setdefault(column)
                    row[column] = item
            else:
                row.update(status="ok", value=value)
                plain_values = True
            rows.append(row)
        columns: list[Any] = ["host", "status"]
        if plain_values or not spread:
            columns.append("value")
        return rows, [*columns, *spread, "remote_type", "message", "elapsed"]

    # -- output --------------------------------------------------------------------------------

    def output(self, host: str, stream: str | None = None) -> str:
        """What ``host`` printed during the operation, stdout and stderr as they came (only
        ``stream``'s if given): the first 100 lines and the last 20, with a line saying how
        much was not kept between them. ``""`` if it printed nothing."""
        if host not in self:
            raise KeyError(host)
        if stream not in (None, "stdout", "stderr"):
            raise ValueError(f"stream is 'stdout', 'stderr' or None, not {stream!r}")
        transcript = self._outputs.get(host)
        return "" if transcript is None else transcript.text(stream)

    def output_groups(self) -> list[tuple[str, list[str]]]:
        """The hosts that printed anything, grouped by identical output: ``[(text, hosts)]``,
        the smallest groups first."""
        return [(transcript.text(), hosts) for transcript, hosts in self._output_groups()]

    def _output_groups(self) -> list[tuple[Transcript, list[str]]]:
        groups: dict[object, tuple[Transcript, list[str]]] = {}
        for host in self:
            transcript = self._outputs.get(host)
            if transcript is not None:
                groups.setdefault(transcript.key(), (transcript, []))[1].append(host)
        return sorted(groups.values(), key=lambda group: len(group[1]))

    # -- acting on it ----------------------------------------------------------------------------

    @property
    def failed(self) -> chopsticks_nb.Group:
        """A Group of the hosts that failed (the same tunnels, connected as they are), to run
        something again there: ``result.failed.call(fn)``.

        The result does not keep the tunnels alive: once its Group and every other reference to
        them is gone (their connections closed), this raises ValueError saying so.
        """
        return self._group_of([host for host, _ in self.failures()], "failed")

    @property
    def succeeded(self) -> chopsticks_nb.Group:
        """A Group of the hosts that succeeded (the same tunnels), as :attr:`failed`."""
        return self._group_of([host for host, _ in self.successful()], "succeeded")

    def _group_of(self, hosts: list[str], which: str) -> chopsticks_nb.Group:
        if self._tunnels is None:
            raise ValueError(
                f"this GroupResult knows no tunnels (only the results of Group operations do), "
                f"so it cannot make a Group of the hosts that {which}"
            )
        unknown = [host for host in hosts if host not in self._tunnels]
        if unknown:
            raise ValueError(f"no tunnel known for {', '.join(map(repr, unknown))}")
        tunnels = [self._tunnels[host]() for host in hosts]
        gone = [host for host, tunnel in zip(hosts, tunnels) if tunnel is None]
        if gone:
            raise ValueError(
                f"the tunnels of {render.fold_hosts(gone, 300)} are gone (their Group was "
                "deleted, which closed them): keep the Group to run again where it "
                f"{which}"
            )
        # group.py imports this module: the Group class is found through the package at run
        # time, as tunnel.py does for ``tunnel + tunnel``.
        import chopsticks_nb

        return chopsticks_nb.Group([tunnel for tunnel in tunnels if tunnel is not None])

    # -- views ---------------------------------------------------------------------------------

    def view(self, *, grouped: bool | None = None) -> ResultView:
        """This result shown one way: ``result.view(grouped=False)`` lists every host (text
        and HTML); None groups the hosts when values repeat."""
        return ResultView(self, grouped)

    def to_text(self, *, grouped: bool | None = None) -> str:
        """The text view (as ``repr``); ``grouped=False`` lists every host."""
        return render.group_result_text(self, grouped)

    def to_html(self, *, grouped: bool | None = None) -> str:
        """The HTML view (a plain table, readable without styles), for a report."""
        return render.group_result_html(self, grouped)

    def to_markdown(self, *, grouped: bool | None = None) -> str:
        """A Markdown table, for a ticket or a chat; ``grouped=False`` lists every host."""
        return render.group_result_markdown(self, grouped)

    def __repr__(self) -> str:
        return render.group_result_text(self)

    def __reduce__(self) -> tuple[Any, ...]:
        state = {
            "timings": self.timings,
            "elapsed": self.elapsed,
            "attempts": self.attempts,
            "_outputs": self._outputs,
            "_tunnels": None,  # tunnels hold live connections: they do not travel
        }
        return (type(self), (dict(self),), state)

    def _repr_html_(self) -> str:
        """HTML for notebooks: host groups (or hosts), status, value or error, time (escaped)."""
        return render.group_result_html(self)


def _is_failure(value: object) -> bool:
    return isinstance(value, ErrorResult)


class ResultView:
    """A :class:`GroupResult` shown one way (see :meth:`GroupResult.view`)."""

    def __init__(self, result: GroupResult, grouped: bool | None) -> None:
        self.result = result
        self.grouped = grouped

    def __repr__(self) -> str:
        return self.result.to_text(grouped=self.grouped)

    def _repr_html_(self) -> str:
        return self.result.to_html(grouped=self.grouped)
