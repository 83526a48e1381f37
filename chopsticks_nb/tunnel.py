"""Tunnels: one agent on the far side of a pipe, and the calls, puts and fetches made through it.

``Local`` and ``Sudo`` start a subprocess here, ``SSHTunnel`` (alias ``Tunnel``) goes through
the OpenSSH client, ``Docker``/``Podman`` run a throwaway container. To reach a new kind of
host, subclass :class:`SubprocessTunnel` and return the command in :meth:`cmd_args`.

Every tunnel has a name (``tunnel.host``), the label its results are keyed by, apart from where
it connects: ``SSHTunnel("10.0.0.5", name="web1")`` reaches 10.0.0.5 and reports as ``web1``.
Names are data, shown and used as keys, never put on a command line.
"""

from __future__ import annotations

import asyncio
import atexit
import concurrent.futures
import copy
import inspect
import os
import re
import shlex
import subprocess
import sys
import threading
import weakref
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any, Callable, Literal

from . import _agent, _bootstrap, _relays, _ssh_control, _transfer
from ._broker import BROKER
from ._call_frames import pickle_call
from ._connection import Connection, close_connections
from ._modserver import ModuleServer
from ._requests import RemoteFuture
from .errors import (
    CallInterrupted,
    ChopsticksError,
    ConnectError,
    DepthLimitExceeded,
    RemoteException,
)
from .output import OutputHandler, default_output
from .result import ErrorResult  # where chopsticks 1.0 defined it, for code written for it

if TYPE_CHECKING:
    import chopsticks_nb

__all__ = [
    "BaseTunnel",
    "Docker",
    "ErrorResult",
    "Local",
    "Podman",
    "RemoteException",
    "SSHTunnel",
    "SubprocessTunnel",
    "Sudo",
    "Tunnel",
]

_NAME = re.compile(r"[A-Za-z0-9_\[][A-Za-z0-9_.:%@\[\]-]*\Z")
_USER = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*\Z")
_IMAGE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.:/@-]*\Z")


_CONTROL_CHARACTERS = re.compile(r"[\x00-\x1f\x7f]")


def _check(kind: str, value: str, pattern: re.Pattern[str] = _NAME) -> str:
    """Host names, users and images are data: never let one become a command-line option."""
    if not isinstance(value, str) or not pattern.match(value):
        raise ValueError(f"invalid {kind} {value!r}: it must not start with '-' or contain spaces")
    return value


def _check_name(name: str) -> str:
    """A tunnel's name is a label (shown, used as a key): any text on one line."""
    if not isinstance(name, str) or not name or _CONTROL_CHARACTERS.search(name):
        raise ValueError(
            f"invalid tunnel name {name!r}: a name is one line of text (no control characters)"
        )
    return name


def _spell_out_options(init: Callable[..., None], parent: type) -> None:
    """Give ``init``, a tunnel's ``__init__`` passing ``**options`` on to ``parent``'s, a
    signature naming those options: what ``help()``, IPython's ``?`` and tab completion show."""
    own = inspect.signature(init)
    params = [p for p in own.parameters.values() if p.kind is not p.VAR_KEYWORD]
    if len(params) == len(own.parameters):
        return
    inherited = [
        p
        for p in inspect.signature(parent).parameters.values()
        if p.kind is p.KEYWORD_ONLY and p.name not in own.parameters
    ]
    init.__signature__ = own.replace(parameters=params + inherited)  # type: ignore[attr-defined]


def _repr(tunnel: BaseTunnel, destination: str, extra: str = "") -> str:
    """``Kind('destination'[, extra][, name='label'])``: the name only where it differs."""
    name = "" if tunnel.host == destination else f", name={tunnel.host!r}"
    return f"{type(tunnel).__name__}({destination!r}{extra}{name})"


#: Makes a request (an operation and its first frame) for a live connection.
Requester = Callable[[Connection], _transfer.Request]


def _put_request(local_path: str, remote_path: str | None, mode: int) -> Requester:
    return lambda conn: _transfer.put_request(conn, os.fspath(local_path), remote_path, mode)


def _fetch_request(remote_path: str, local_path: str | None, max_size: int | None) -> Requester:
    local = None if local_path is None else os.fspath(local_path)
    _transfer.check_max_size(max_size)
    return lambda conn: _transfer.fetch_request(conn, remote_path, local, max_size)


def _failed(host: str, error: ChopsticksError) -> RemoteFuture:
    """A future failed with ``error`` (the operation could not even start)."""
    future = RemoteFuture(host)
    future.set_exception(error)
    return future


#: Connections of tunnels that may be dropped unclosed: closed when the interpreter exits.
_OPEN: weakref.WeakSet[Connection] = weakref.WeakSet()


@atexit.register
def _close_at_exit() -> None:
    # The deepest first: a relay ends after the tunnels through it.
    connections = sorted(_OPEN, key=lambda conn: conn.depth, reverse=True)
    if BROKER.in_broker_thread():
        for conn in connections:
            conn.close(wait=False)
    else:
        close_connections(connections)  # together: lingering agents cost 5 s in all


def _close_dropped(conn: Connection) -> None:
    """Close the connection of a tunnel that was garbage collected. Collection may run this on
    any thread at any point, even while it holds the broker's lock, so the close (which takes
    that lock) runs on a thread of its own."""
    threading.Thread(target=conn.close, name="chopsticks-close", daemon=True).start()


class BaseTunnel:
    """A connection to one agent. Connects lazily; reconnects after close or after a failure.

    ``host`` is the tunnel's name: the label its results, output and errors carry.

    Options (keyword-only): ``connect_timeout`` (seconds until the handshake, default 30),
    ``call_timeout`` (default for :meth:`call`, default None: wait as long as the call runs),
    ``keepalive`` (seconds between pings; the agent exits after six silent intervals, so a dead
    controller or a cut link leaves no remote process; None turns both off), ``output`` (a
    callable ``(stream, text)`` for remote stdout/stderr; default: ``[host] line``, capped per
    cell in a notebook, see :func:`~chopsticks_nb.output.default_output`), ``serve``/``deny``
    (top-level packages the import hook may / may not serve), ``via`` (a tunnel whose agent
    runs this tunnel's command and relays its traffic: the controller then holds one pipe per
    relay, however many tunnels go through it; see :meth:`behind`).
    """

    connect_timeout: float = 30.0
    call_timeout: float | None = None
    keepalive: float | None = 5.0

    def __init__(
        self,
        host: str,
        *,
        connect_timeout: float | None = None,
        call_timeout: float | None = None,
        keepalive: float | Literal["default"] | None = "default",
        output: OutputHandler | None = None,
        serve: Sequence[str] | None = None,
        deny: Sequence[str] = (),
        via: BaseTunnel | None = None,
    ) -> None:
        self.host = _check_name(host)
        if via is not None and not isinstance(via, BaseTunnel):
            raise TypeError(f"via= takes a tunnel (the relay), not {type(via).__name__}")
        #: The relay: the tunnel whose agent runs this one's command (None: it runs here).
        self.via = via
        if connect_timeout is not None:
            self.connect_timeout = connect_timeout
        if call_timeout is not None:
            self.call_timeout = call_timeout
        if keepalive != "default":
            self.keepalive = keepalive or None
        self.output: OutputHandler = output or default_output(host)
        self._serve = serve
        self._deny = deny
        self._lock = threading.Lock()
        self._conn: Connection | None = None
        self._finalizer: weakref.finalize[Any, Any] | None = None

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        init = cls.__dict__.get("__init__")
        if init is not None:
            _spell_out_options(init, cls.__mro__[1])

    def __repr__(self) -> str:
        return _repr(self, self.host)

    def behind(self, relay: BaseTunnel | None) -> BaseTunnel:
        """A copy of this tunnel (not connected) whose command runs on ``relay``'s agent
        instead (``via=relay``); None: here. The command is built here and runs there as it
        would here: paths in options (``ssh_config=``, keys in ``ssh_options``) are the relay's.
        """
        clone = copy.copy(self)
        BaseTunnel.__init__(
            clone,
            self.host,
            connect_timeout=self.connect_timeout,
            call_timeout=self.call_timeout,
            keepalive=self.keepalive,
            output=self.output,
            serve=self._serve,
            deny=self._deny,
            via=relay,
        )
        clone._check_via()
        return clone

    def _check_via(self) -> None:
        """Subclasses refuse options that cannot work through a relay."""

    def _opener_depth(self) -> int:
        """How deep the process that starts this tunnel's agent is: this one, or the relay's
        agent (one level deeper than its own relay)."""
        return _agent.DEPTH if self.via is None else self.via._opener_depth() + 1

    # -- connection -----------------------------------------------------------------------------

    def cmd_args(self) -> list[str]:
        """The command that starts the remote interpreter with the stage-1 bootstrap."""
        raise NotImplementedError

    def _compiled_agent(self) -> bytes | None:
        """The agent's code compiled here, for a far side known to run this very interpreter
        (it then skips compiling the agent: most of an agent's start); else None."""
        return None

    def explain_exit(self, returncode: int | None, stderr_tail: str) -> str:
        """A readable reason why the agent did not start (subclasses know their tools)."""
        detail = f": {stderr_tail}" if stderr_tail else ""
        if returncode == _bootstrap.EXIT_TOO_OLD:
            return f"the remote Python is too old{detail}"
        if returncode == 127:
            return f"the remote interpreter was not found (status 127){detail}"
        command = self.cmd_args()[0]
        return f"the agent did not start ({command} exited with status {returncode}){detail}"

    def explain_loss(self, returncode: int | None, stderr_tail: str) -> str:
        """A readable reason why a running agent's command ended (subclasses know their tools)."""
        return f"the agent exited (status {returncode})" + (
            f"; stderr: {stderr_tail}" if stderr_tail else ""
        )

    def _connection(self) -> Connection:
        """The live connection, started now (without waiting for it) if there is none."""
        with self._lock:
            conn = self._conn
            if conn is not None and conn.alive:
                return conn
            if conn is not None:
                self._detach()
            import chopsticks_nb

            depth, limit = self._opener_depth(), chopsticks_nb.DEPTH_LIMIT
            if depth >= limit:
                where = "here" if self.via is None else f"at its relay {self.via.host}"
                message = f"tunnels nest {depth} deep {where}; DEPTH_LIMIT is {limit}"
                raise DepthLimitExceeded(message, self.host)
            compiled = self._compiled_agent()
            options: dict[str, Any] = {
                "connect_timeout": self.connect_timeout,
                "keepalive": self.keepalive,
                "depth": depth,
                "depth_limit": limit,
                "output": self.output,
                # The far side runs this very interpreter: modules go compiled, as the agent does.
                "modserver": ModuleServer(self._serve, self._deny, compiled=compiled is not None),
                "compiled_agent": compiled,
                "explain_exit": self._weak_explainer(),
            }
            if self.via is None:
                conn = Connection(self.host, self.cmd_args(), env=self._env(), **options)
            else:
                relay = self._relay_connection(self.via)
                conn = _relays.RelayedConnection(self.host, self.cmd_args(), relay=relay, **options)
            conn.start()
            self._conn = conn
            self._finalizer = weakref.finalize(self, _close_dropped, conn)
            self._finalizer.atexit = False  # type: ignore[misc]  # _close_at_exit does, in order
            _OPEN.add(conn)
            return conn

    def _relay_connection(self, via: BaseTunnel) -> Connection:
        """The relay's live connection (started now if there is none): its errors are this
        tunnel's, naming the relay."""
        try:
            return via._connection()
        except ChopsticksError as exc:
            kind = type(exc) if isinstance(exc, ConnectError) else ConnectError
            raise kind(f"its relay {via.host}: {exc.message}", self.host) from None

    def _weak_explainer(self) -> Callable[[int | None, str, bool], str]:
        # The connection must not keep its tunnel alive: garbage collection closes it.
        ref = weakref.ref(self)

        def explain(returncode: int | None, stderr_tail: str, started: bool) -> str:
            tunnel = ref()
            if tunnel is None:
                return f"exit status {returncode}: {stderr_tail}"
            if started:
                return tunnel.explain_loss(returncode, stderr_tail)
            return tunnel.explain_exit(returncode, stderr_tail)

        return explain

    def _env(self) -> dict[str, str] | None:
        return None

    def _detach(self) -> None:
        if self._finalizer is not None:
            self._finalizer.detach()
            self._finalizer = None
        self._conn = None

    def connect(self) -> None:
        """Start the agent and wait for its handshake; raise ConnectError if it cannot start."""
        self.submit_connect().result()

    def submit_connect(self) -> concurrent.futures.Future[dict[str, Any]]:
        """Start connecting without waiting; the future gives :attr:`remote_info` (or an error).

        It is a future of its own: cancelling it does not touch the connection.
        """
        future: concurrent.futures.Future[dict[str, Any]] = concurrent.futures.Future()
        try:
            hello = self._connection().hello
        except ChopsticksError as exc:
            future.set_exception(exc)
            return future

        def relay(done: concurrent.futures.Future[dict[str, Any]]) -> None:
            if future.set_running_or_notify_cancel():
                exc = done.exception()
                if exc is None:
                    future.set_result(done.result())
                else:
                    future.set_exception(exc)

        hello.add_done_callback(relay)
        return future

    def close(self) -> None:
        """Stop the agent; calls in flight fail with TunnelClosed. The tunnel can connect again."""
        conn = self._take_connection()
        if conn is not None:
            close_connections([conn])

    def _take_connection(self) -> Connection | None:
        """The connection, which the tunnel no longer uses (for closing it)."""
        with self._lock:
            conn = self._conn
            self._detach()
        return conn

    def __enter__(self) -> BaseTunnel:
        self.connect()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    @property
    def connected(self) -> bool:
        conn = self._conn
        return conn is not None and conn.alive and conn.hello.done()

    @property
    def remote_info(self) -> dict[str, Any]:
        """What the agent said of itself: Python version, pid, executable, hostname, ..."""
        conn = self._connection()
        conn.hello.result()
        return dict(conn.remote)

    # -- calls ----------------------------------------------------------------------------------

    def call(self, callable: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """Run ``callable(*args, **kwargs)`` on the remote host and return its value.

        The value comes back through a closed codec (None, bool, int, float, str, bytes, list,
        tuple, dict, set, frozenset). A remote exception raises RemoteException.
        """
        payload = pickle_call(callable, args, kwargs, self.host, lambda: self.remote_info)
        conn = self._conn
        if conn is None or not conn.alive:  # the lock only when there is something to do
            conn = self._connection()
        try:
            return conn.call(payload, self.call_timeout)
        except KeyboardInterrupt:
            # The remote call was cancelled; the frames that waited for it are of no interest.
            raise CallInterrupted(self.host) from None

    def submit(self, callable: Callable[..., Any], *args: Any, **kwargs: Any) -> RemoteFuture:
        """Like :meth:`call`, but return at once a future (``.result(timeout)``, ``.cancel()``)."""
        return self.submit_call(callable, args, kwargs)

    def submit_call(
        self,
        callable: Callable[..., Any],
        args: tuple[Any, ...] = (),
        kwargs: dict[str, Any] | None = None,
        *,
        output: OutputHandler | None = None,
    ) -> RemoteFuture:
        """The explicit form of :meth:`submit`, with a per-call ``output`` handler."""
        # Pickled now, in this thread: a SerializationError is raised here.
        payload = pickle_call(callable, args, kwargs or {}, self.host, lambda: self.remote_info)
        try:
            return self._connection().submit_call(payload, output)
        except ChopsticksError as exc:
            return _failed(self.host, exc)

    def exec(self, code: str, names: dict[str, Any] | None = None) -> Any:
        """Run Python source on the remote host in the tunnel's persistent namespace.

        ``names`` are bound there first (functions and classes travel as source). Returns the
        value of the last line if it is an expression, like a notebook cell. The namespace
        lasts as long as the connection.
        """
        return self.call(_agent.run_cell, code, "<remote-cell>", names or {})

    def submit_exec(
        self,
        code: str,
        names: dict[str, Any] | None = None,
        *,
        filename: str = "<remote-cell>",
        output: OutputHandler | None = None,
    ) -> RemoteFuture:
        """Like :meth:`exec`, but return a future at once; ``filename`` names it in tracebacks."""
        return self.submit_call(_agent.run_cell, (code, filename, names or {}), output=output)

    async def call_async(self, callable: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """``await tunnel.call_async(f, ...)``: the asyncio face of :meth:`call`."""
        return await asyncio.wrap_future(self.submit(callable, *args, **kwargs))

    def _submit(self, requester: Requester) -> RemoteFuture:
        try:
            conn = self._connection()
            return conn.submit(*requester(conn))
        except ChopsticksError as exc:
            return _failed(self.host, exc)

    def _run(self, requester: Requester) -> Any:
        conn = self._connection()
        return conn.run(*requester(conn), timeout=self.call_timeout)

    # -- files ----------------------------------------------------------------------------------

    def put(
        self, local_path: str, remote_path: str | None = None, mode: int = 0o644
    ) -> dict[str, Any]:
        """Copy a local file to the remote host (streamed; any size).

        Without ``remote_path`` a temporary file is made there. Returns a dict with
        ``local_path``, ``remote_path``, ``size`` and ``sha1sum``. The remote file appears whole
        or not at all.
        """
        result: dict[str, Any] = self._run(_put_request(local_path, remote_path, mode))
        return result

    def submit_put(
        self, local_path: str, remote_path: str | None = None, mode: int = 0o644
    ) -> RemoteFuture:
        return self._submit(_put_request(local_path, remote_path, mode))

    def fetch(
        self, remote_path: str, local_path: str | None = None, *, max_size: int | None = None
    ) -> dict[str, Any]:
        """Copy a remote file here (streamed, any size); without ``local_path``, to a temp file.

        Returns a dict with ``local_path``, ``remote_path``, ``size`` and ``sha1sum``. The file
        appears whole or not at all. ``max_size`` (bytes; None, the default: no limit) stops a
        fetch whose file turns out larger, with TransferError, keeping nothing of it: a
        remote you do not trust could otherwise fill your disk. A ``local_path`` that is a
        directory raises TransferError at once.
        """
        result: dict[str, Any] = self._run(_fetch_request(remote_path, local_path, max_size))
        return result

    def submit_fetch(
        self, remote_path: str, local_path: str | None = None, *, max_size: int | None = None
    ) -> RemoteFuture:
        return self._submit(_fetch_request(remote_path, local_path, max_size))

    # -- set operations: a tunnel acts as a group of one ------------------------------------------
    # With a Group on the right, these give way (NotImplemented) to the Group's reflected
    # operators. Two tunnels make a Group through the package's public name: group.py imports
    # this module, never the reverse.

    def _as_group(self) -> chopsticks_nb.Group:
        import chopsticks_nb

        return chopsticks_nb.Group([self])

    def __add__(self, other: BaseTunnel) -> chopsticks_nb.Group:
        return self._as_group() + other if isinstance(other, BaseTunnel) else NotImplemented

    def __or__(self, other: BaseTunnel) -> chopsticks_nb.Group:
        return self._as_group() | other if isinstance(other, BaseTunnel) else NotImplemented

    def __and__(self, other: BaseTunnel) -> chopsticks_nb.Group:
        return self._as_group() & other if isinstance(other, BaseTunnel) else NotImplemented

    def __sub__(self, other: BaseTunnel) -> chopsticks_nb.Group:
        return self._as_group() - other if isinstance(other, BaseTunnel) else NotImplemented

    def __xor__(self, other: BaseTunnel) -> chopsticks_nb.Group:
        return self._as_group() ^ other if isinstance(other, BaseTunnel) else NotImplemented


def close_together(tunnels: Iterable[BaseTunnel]) -> None:
    """Close tunnels together: every agent is told to exit before any is waited for, so that
    agents that do not exit when told cost one close timeout (5 s), not one each. A tunnel
    class with a ``close`` of its own is closed by it."""
    connections = []
    for tunnel in tunnels:
        if type(tunnel).close is not BaseTunnel.close:
            tunnel.close()
            continue
        conn = tunnel._take_connection()
        if conn is not None:
            connections.append(conn)
    close_connections(connections)


class SubprocessTunnel(BaseTunnel):
    """Base for tunnels that run a command whose stdin/stdout reach a remote ``python3``.

    Subclass it and override :meth:`cmd_args` to return that command, built from
    :meth:`python_args`. The command may write to stderr (shown to the user) but must not write
    to stdout or read stdin itself, and both must be binary-safe pipes.
    """

    python3: str = "python3"

    def __init__(self, host: str, *, python3: str | None = None, **options: Any) -> None:
        super().__init__(host, **options)
        if python3 is not None:
            self.python3 = python3

    def python_args(self) -> list[str]:
        compiled = self._compiled_agent()
        length = [] if compiled is None else [str(len(compiled))]
        return [self.python3, "-c", _bootstrap.stage1(), *length]

    def cmd_args(self) -> list[str]:
        return self.python_args()


class Local(SubprocessTunnel):
    """An agent in a local subprocess, running this interpreter (``sys.executable``).

    ``name`` is only the tunnel's name: every Local runs here. Options: ``python3`` (another
    interpreter to run), and those of :class:`BaseTunnel` (``connect_timeout``,
    ``call_timeout``, ``keepalive``, ``output``, ``serve``, ``deny``, ``via``).
    """

    python3 = sys.executable or "python3"

    def __init__(self, name: str = "localhost", **options: Any) -> None:
        super().__init__(name, **options)

    def _compiled_agent(self) -> bytes | None:
        # This very interpreter: send the agent compiled (stage 1 checks the bytecode magic).
        # Not for Sudo: sudo runs what the sudoers policy says, maybe another Python; nor on a
        # relay, which runs the interpreter of that name there.
        return None if self.via is not None else _bootstrap.compiled_agent_for(self.python3)


class Sudo(SubprocessTunnel):
    """An agent in a local subprocess run as ``user`` through ``sudo -n`` (never prompts).

    sudo must allow the interpreter without a password, for example in /etc/sudoers.d/::

        youruser ALL=(root) NOPASSWD: /usr/bin/python3, /usr/bin/python3 *

    ``name`` (default: ``user``) is the tunnel's name. Options: ``python3`` (the interpreter
    sudo runs, default ``/usr/bin/python3``), and those of :class:`BaseTunnel`.
    """

    python3 = "/usr/bin/python3"
    sudo = "sudo"

    def __init__(self, user: str = "root", name: str | None = None, **options: Any) -> None:
        self.user = _check("user", user, _USER)
        super().__init__(user if name is None else name, **options)

    def __repr__(self) -> str:
        return _repr(self, self.user)

    def cmd_args(self) -> list[str]:
        return [self.sudo, "-n", "-u", self.user, "--", *self.python_args()]

    def explain_exit(self, returncode: int | None, stderr_tail: str) -> str:
        if "password is required" in stderr_tail or "not allowed" in stderr_tail:
            return f"sudo refused to run {self.python3} as {self.user}: {stderr_tail}"
        return super().explain_exit(returncode, stderr_tail)


class SSHTunnel(SubprocessTunnel):
    """An agent on ``host``, reached with the OpenSSH client (honours ``~/.ssh/config``).

    ``host`` is ssh's destination (a name in the ssh config, a DNS name, an address); ``name``
    (default: ``host``) is the tunnel's name, the label results are keyed by. ``user`` and
    ``port`` override the config; ``sudo=True`` runs the agent as root there (through ``sudo
    -n``), ``sudo_user="app"`` as that user; ``ssh_config`` names a config file (``-F``);
    ``ssh_options`` are extra arguments for ssh; ``python3`` the interpreter to run there (a
    name on its ``PATH`` or a path; default ``python3``). Keepalives are on by default
    (``ServerAliveInterval``), so a cut link is noticed in seconds. The options of
    :class:`BaseTunnel` apply too (``connect_timeout``, ``call_timeout``, ``keepalive``,
    ``output``, ``serve``, ``deny``, ``via``).

    ``control_master=True`` shares one SSH connection per destination (OpenSSH's ControlMaster,
    socket in a directory private to the user): after :meth:`close`, or from a new process
    such as a restarted kernel, connecting again costs one round trip instead of a new SSH
    handshake. The master connection stays up ``control_persist`` seconds (default 600) after
    its last session ends; :meth:`stop_master` ends it at once.
    """

    ssh = "ssh"
    server_alive_interval = 2
    #: seconds a shared master connection outlives its last session (``control_master=True``)
    control_persist = 600
    #: seconds ``ssh -O`` (:meth:`stop_master`, :meth:`master_pid`) may take
    control_timeout = 10.0

    def __init__(
        self,
        host: str,
        user: str | None = None,
        sudo: bool = False,
        *,
        name: str | None = None,
        port: int | None = None,
        sudo_user: str | None = None,
        ssh_config: str | os.PathLike[str] | None = None,
        ssh_options: Sequence[str] = (),
        control_master: bool = False,
        control_persist: int | None = None,
        **options: Any,
    ) -> None:
        self.destination = _check("host name", host)
        super().__init__(host if name is None else name, **options)
        self.user = None if user is None else _check("user", user, _USER)
        self.port = None if port is None else int(port)
        self.sudo_user = None if sudo_user is None else _check("sudo user", sudo_user, _USER)
        self.sudo = bool(sudo) or sudo_user is not None
        self.ssh_config = None if ssh_config is None else os.fspath(ssh_config)
        self.ssh_options = list(ssh_options)
        self.control_master = bool(control_master)
        if control_persist is not None:
            if isinstance(control_persist, bool) or not isinstance(control_persist, int):
                raise TypeError(f"control_persist is a number of seconds, not {control_persist!r}")
            if control_persist < 1:
                raise ValueError(f"control_persist must be 1 second or more, not {control_persist}")
            self.control_persist = control_persist
        self._check_via()

    def _check_via(self) -> None:
        if self.control_master and self.via is not None:
            raise ValueError(
                "control_master=True cannot go through a relay (via=): the socket's directory "
                "is chosen on this machine, and ssh runs on the relay"
            )

    def __repr__(self) -> str:
        return _repr(self, self.destination)

    def _ssh_args(self) -> list[str]:
        """ssh and the options saying how to reach the destination (not what to run there)."""
        args = [self.ssh]
        if self.ssh_config is not None:
            args += ["-F", self.ssh_config]
        if self.port is not None:
            args += ["-p", str(self.port)]
        if self.user is not None:
            args += ["-l", self.user]
        if self.control_master:
            directory = _ssh_control.socket_directory()
            if directory is None:
                places = ", ".join(_ssh_control.socket_directory_candidates())
                raise ConnectError(
                    "control_master=True needs a directory of your own for the connection's "
                    f"socket, and none of these could be made private to you: {places}",
                    self.host,
                )
            args += _ssh_control.options(directory, self.control_persist)
        return args

    def cmd_args(self) -> list[str]:
        ssh, *reach = self._ssh_args()
        args = [
            ssh,
            "-T",
            "-o", "BatchMode=yes",
            "-o", f"ServerAliveInterval={self.server_alive_interval}",
            "-o", "ServerAliveCountMax=3",
            "-o", f"ConnectTimeout={max(1, int(self.connect_timeout))}",
            *reach,
        ]  # fmt: skip
        sudo = ["sudo", "-n", *(["-u", self.sudo_user] if self.sudo_user else []), "--"]
        remote = (sudo if self.sudo else []) + self.python_args()
        return [*args, *self.ssh_options, "--", self.destination, shlex.join(remote)]

    def explain_exit(self, returncode: int | None, stderr_tail: str) -> str:
        if returncode == 255:
            return f"ssh could not connect: {stderr_tail or 'no message'}"
        if self.sudo and ("password is required" in stderr_tail or "not allowed" in stderr_tail):
            whom = self.sudo_user or "root"
            return f"sudo on {self.destination} refused to run {self.python3} as {whom}: " + (
                stderr_tail
            )
        return super().explain_exit(returncode, stderr_tail)

    # -- the shared master connection (control_master=True) ----------------------------------------

    def _control(self, command: str) -> subprocess.CompletedProcess[str]:
        """``ssh -O COMMAND``: ask the master connection to this destination."""
        argv = [*self._ssh_args(), *self.ssh_options, "-O", command, "--", self.destination]
        try:
            return subprocess.run(
                argv,
                stdin=subprocess.DEVNULL,
                capture_output=True,
                text=True,
                timeout=self.control_timeout,
                check=False,
            )
        except OSError as exc:
            raise ConnectError(
                f"cannot run {self.ssh!r}: {exc.strerror or exc}", self.host
            ) from None
        except subprocess.TimeoutExpired:
            raise ConnectError(
                f"ssh -O {command} gave no answer within {self.control_timeout:g} s", self.host
            ) from None

    def master_pid(self) -> int | None:
        """The process id of the master connection to this destination, or None if none runs."""
        answer = self._control("check")
        found = re.search(r"\(pid=([0-9]+)\)", answer.stderr)
        return int(found.group(1)) if answer.returncode == 0 and found else None

    def stop_master(self) -> bool:
        """End the master connection to this destination now (``ssh -O exit``); whether one ran.

        Sessions still using it end too: close the tunnels sharing it first.
        """
        return self._control("exit").returncode == 0


Tunnel = SSHTunnel


class Docker(SubprocessTunnel):
    """An agent in a new container from ``image`` (``docker run -i``), removed on close if ``rm``.

    ``name`` is both the container's name (``--name``) and the tunnel's: it is chosen here, not
    an address found elsewhere, so there is no separate label. ``docker`` names the command (a
    ``podman`` binary serves too); ``docker_options`` are extra ``run`` arguments, such as
    ``["--network", "none"]``; ``python3`` is the interpreter in the image (default
    ``python3``). The options of :class:`BaseTunnel` apply too.
    """

    docker = "docker"

    def __init__(
        self,
        name: str,
        image: str = "python:3",
        rm: bool = True,
        *,
        docker_options: Sequence[str] = (),
        **options: Any,
    ) -> None:
        super().__init__(_check("container name", name), **options)
        self.image = _check("image", image, _IMAGE)
        self.rm = rm
        self.docker_options = list(docker_options)

    def cmd_args(self) -> list[str]:
        rm = ["--rm"] if self.rm else []
        return [
            self.docker,
            "run",
            "-i",
            *rm,
            "--name",
            self.host,
            *self.docker_options,
            self.image,
            *self.python_args(),
        ]

    def explain_exit(self, returncode: int | None, stderr_tail: str) -> str:
        if returncode == 125:
            return f"{self.docker} could not start the container: {stderr_tail or 'no message'}"
        return super().explain_exit(returncode, stderr_tail)


class Podman(Docker):
    """A :class:`Docker` tunnel run by ``podman``."""

    docker = "podman"
