"""Tunnels: one agent on the far side of a pipe, and the calls, puts and fetches made through it.

``Local`` and ``Sudo`` start a subprocess here, ``SSHTunnel`` (alias ``Tunnel``) goes through
the OpenSSH client, ``Docker``/``Podman`` run a throwaway container. To reach a new kind of
host, subclass :class:`SubprocessTunnel` and return the command in :meth:`cmd_args`.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import os
import re
import shlex
import sys
import threading
import weakref
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Callable, Literal

from . import _agent, _bootstrap, _transfer
from ._broker import BROKER
from ._call_frames import pickle_call
from ._connection import Connection
from ._modserver import ModuleServer
from ._requests import RemoteFuture
from .errors import ChopsticksError, DepthLimitExceeded, RemoteException
from .output import HostPrefixPrinter, OutputHandler
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


def _check(kind: str, value: str, pattern: re.Pattern[str] = _NAME) -> str:
    """Host names, users and images are data: never let one become a command-line option."""
    if not isinstance(value, str) or not pattern.match(value):
        raise ValueError(f"invalid {kind} {value!r}: it must not start with '-' or contain spaces")
    return value


#: Makes a request (an operation and its first frame) for a live connection.
Requester = Callable[[Connection], _transfer.Request]


def _put_request(local_path: str, remote_path: str | None, mode: int) -> Requester:
    return lambda conn: _transfer.put_request(conn, os.fspath(local_path), remote_path, mode)


def _fetch_request(remote_path: str, local_path: str | None) -> Requester:
    local = None if local_path is None else os.fspath(local_path)
    return lambda conn: _transfer.fetch_request(conn, remote_path, local)


def _failed(host: str, error: ChopsticksError) -> RemoteFuture:
    """A future failed with ``error`` (the operation could not even start)."""
    future = RemoteFuture(host)
    future.set_exception(error)
    return future


def _close_connection(conn: Connection) -> None:
    conn.close(wait=not BROKER.in_broker_thread())


class BaseTunnel:
    """A connection to one agent. Connects lazily; reconnects after close or after a failure.

    Options (keyword-only): ``connect_timeout`` (seconds until the handshake, default 30),
    ``call_timeout`` (default for :meth:`call`, default None: wait as long as the call runs),
    ``keepalive`` (seconds between pings; the agent exits after six silent intervals, so a dead
    controller or a cut link leaves no remote process; None turns both off), ``output`` (a
    callable ``(stream, text)`` for remote stdout/stderr; default prints ``[host] line``),
    ``serve``/``deny`` (top-level packages the import hook may / may not serve).
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
    ) -> None:
        self.host = host
        if connect_timeout is not None:
            self.connect_timeout = connect_timeout
        if call_timeout is not None:
            self.call_timeout = call_timeout
        if keepalive != "default":
            self.keepalive = keepalive or None
        self.output: OutputHandler = output or HostPrefixPrinter(host)
        self._serve = serve
        self._deny = deny
        self._lock = threading.Lock()
        self._conn: Connection | None = None
        self._finalizer: weakref.finalize[Any, Any] | None = None

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.host!r})"

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

            depth, limit = _agent.DEPTH, chopsticks_nb.DEPTH_LIMIT
            if depth >= limit:
                message = f"tunnels nest {depth} deep here; DEPTH_LIMIT is {limit}"
                raise DepthLimitExceeded(message, self.host)
            conn = Connection(
                self.host,
                self.cmd_args(),
                env=self._env(),
                connect_timeout=self.connect_timeout,
                keepalive=self.keepalive,
                depth=_agent.DEPTH,
                depth_limit=limit,
                output=self.output,
                modserver=ModuleServer(self._serve, self._deny),
                compiled_agent=self._compiled_agent(),
                explain_exit=self._weak_explainer(),
            )
            conn.start()
            self._conn = conn
            self._finalizer = weakref.finalize(self, _close_connection, conn)
            return conn

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
        with self._lock:
            conn = self._conn
            self._detach()
        if conn is not None:
            conn.close()

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
        return conn.call(payload, self.call_timeout)

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

    def fetch(self, remote_path: str, local_path: str | None = None) -> dict[str, Any]:
        """Copy a remote file here (streamed, any size); without ``local_path``, to a temp file.

        Returns a dict with ``local_path``, ``remote_path``, ``size`` and ``sha1sum``.
        """
        result: dict[str, Any] = self._run(_fetch_request(remote_path, local_path))
        return result

    def submit_fetch(self, remote_path: str, local_path: str | None = None) -> RemoteFuture:
        return self._submit(_fetch_request(remote_path, local_path))

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
    """An agent in a local subprocess, running this interpreter (``sys.executable``)."""

    python3 = sys.executable or "python3"

    def __init__(self, name: str = "localhost", **options: Any) -> None:
        super().__init__(name, **options)

    def _compiled_agent(self) -> bytes | None:
        # This very interpreter: send the agent compiled (stage 1 checks the bytecode magic).
        # Not for Sudo: sudo runs what the sudoers policy says, maybe another Python.
        return _bootstrap.compiled_agent_for(self.python3)


class Sudo(SubprocessTunnel):
    """An agent in a local subprocess run as ``user`` through ``sudo -n`` (never prompts).

    sudo must allow the interpreter without a password, for example in /etc/sudoers.d/::

        youruser ALL=(root) NOPASSWD: /usr/bin/python3, /usr/bin/python3 *
    """

    python3 = "/usr/bin/python3"
    sudo = "sudo"

    def __init__(self, user: str = "root", name: str | None = None, **options: Any) -> None:
        self.user = _check("user", user, _USER)
        super().__init__(name or user, **options)

    def cmd_args(self) -> list[str]:
        return [self.sudo, "-n", "-u", self.user, "--", *self.python_args()]

    def explain_exit(self, returncode: int | None, stderr_tail: str) -> str:
        if "password is required" in stderr_tail or "not allowed" in stderr_tail:
            return f"sudo refused to run {self.python3} as {self.user}: {stderr_tail}"
        return super().explain_exit(returncode, stderr_tail)


class SSHTunnel(SubprocessTunnel):
    """An agent on ``host``, reached with the OpenSSH client (honours ``~/.ssh/config``).

    ``user`` and ``port`` override the config; ``sudo=True`` runs the agent as root there
    (through ``sudo -n``); ``ssh_config`` names a config file (``-F``); ``ssh_options`` are extra
    arguments for ssh, such as ``["-o", "ControlMaster=auto"]``. Keepalives are on by default
    (``ServerAliveInterval``), so a cut link is noticed in seconds.
    """

    ssh = "ssh"
    server_alive_interval = 2

    def __init__(
        self,
        host: str,
        user: str | None = None,
        sudo: bool = False,
        *,
        port: int | None = None,
        ssh_config: str | None = None,
        ssh_options: Sequence[str] = (),
        **options: Any,
    ) -> None:
        super().__init__(_check("host name", host), **options)
        self.user = None if user is None else _check("user", user, _USER)
        self.port = None if port is None else int(port)
        self.sudo = sudo
        self.ssh_config = ssh_config
        self.ssh_options = list(ssh_options)

    def cmd_args(self) -> list[str]:
        args = [
            self.ssh,
            "-T",
            "-o", "BatchMode=yes",
            "-o", f"ServerAliveInterval={self.server_alive_interval}",
            "-o", "ServerAliveCountMax=3",
            "-o", f"ConnectTimeout={max(1, int(self.connect_timeout))}",
        ]  # fmt: skip
        if self.ssh_config is not None:
            args += ["-F", os.fspath(self.ssh_config)]
        if self.port is not None:
            args += ["-p", str(self.port)]
        if self.user is not None:
            args += ["-l", self.user]
        remote = (["sudo", "-n", "--"] if self.sudo else []) + self.python_args()
        return [*args, *self.ssh_options, "--", self.host, shlex.join(remote)]

    def explain_exit(self, returncode: int | None, stderr_tail: str) -> str:
        if returncode == 255:
            return f"ssh could not connect: {stderr_tail or 'no message'}"
        return super().explain_exit(returncode, stderr_tail)


Tunnel = SSHTunnel


class Docker(SubprocessTunnel):
    """An agent in a new container from ``image`` (``docker run -i``), removed on close if ``rm``.

    ``docker`` names the command (a ``podman`` binary serves too); ``docker_options`` are extra
    ``run`` arguments, such as ``["--network", "none"]``.
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
