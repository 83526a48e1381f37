"""Groups: one operation run on many hosts at once.

A :class:`Group` is an ordered set of tunnels. Each operation (call, exec, put, fetch, connect)
is started on every tunnel before any is waited for, by the fan-out engine
(:mod:`chopsticks_nb._fanout`), and its answers form a :class:`~chopsticks_nb.result.GroupResult`
where a failed host holds an :class:`~chopsticks_nb.result.ErrorResult` instead of stopping the
others::

    group = Group(["web[01-20]", "db1", Local("worker")])
    for host, value in group.call(time.time).successful():
        print(host, value)
    group.call(install).raise_failures()

Hosts may also come from where they are already written down: :meth:`Group.from_ssh_config`,
:meth:`Group.from_inventory` (Ansible), :meth:`Group.from_slurm` and :meth:`Group.allocate`
(Slurm).

``GroupResult`` and ``ErrorResult`` live in :mod:`chopsticks_nb.result`; they can also be
imported from here, as the examples have done.
"""

from __future__ import annotations

import concurrent.futures
import os
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Callable

from ._capture import OutputCapture
from ._fanout import check_retries, gather
from ._paths import local_paths, make_parent_dirs, remote_put_paths
from ._serialize import unsendable_name
from ._transfer import check_max_size
from .errors import SerializationError
from .hosts import expand, is_expression
from .output import HostOutput
from .progress import Operation, Watching
from .result import ErrorResult, GroupResult, OnInterrupt, ProgressCallback
from .tunnel import BaseTunnel, SSHTunnel, close_together

if TYPE_CHECKING:
    from .slurm import Progress

__all__ = ["ErrorResult", "Group", "GroupResult"]


def _host_names(text: str) -> list[str]:
    """The names a host name or range (``"web[01-20],db1"``) stands for, in order; a bad range
    raises HostRangeError, pointing at the position."""
    return expand(text) if is_expression(text) else [text]


class Group:
    """A set of tunnels, for running one operation on all of them in parallel.

    ``hosts`` may hold tunnels, host names and host ranges (``"web[01-20]"``, ``"db[1-3,7]"``,
    see :mod:`chopsticks_nb.hosts`); each name becomes an :class:`SSHTunnel` made with
    ``tunnel_options`` (``ssh_config=``, ``user=``, ``control_master=True``, ``via=relay``
    to reach them through a relay's agent...). A string on
    its own is read the same way: ``Group("web[01-20]")``, and ``Group("db1")`` is a group of
    one (but a single tunnel is refused: write ``Group([tunnel])``). Tunnels are told apart by
    their ``host`` name (results are keyed by it), so two tunnels with the same name are
    refused. Groups connect lazily, reconnect after :meth:`close`, work as context managers
    (connect on entry, close on exit) and combine like sets of names with ``+``/``|`` (union),
    ``&``, ``-`` and ``^``; a tunnel acts as a group of one.
    """

    def __init__(self, hosts: str | Iterable[BaseTunnel | str], **tunnel_options: Any) -> None:
        if isinstance(hosts, BaseTunnel):
            raise TypeError("Group() takes a list of tunnels or host names, not a single tunnel")
        tunnels: list[BaseTunnel] = []
        names: set[str] = set()
        for host in [hosts] if isinstance(hosts, str) else hosts:
            made = (
                [SSHTunnel(name, **tunnel_options) for name in _host_names(host)]
                if isinstance(host, str)
                else [host]
            )
            for tunnel in made:
                if not isinstance(tunnel, BaseTunnel):
                    raise TypeError(
                        f"a Group holds tunnels or host names, not {type(host).__name__}"
                    )
                if tunnel.host in names:
                    raise ValueError(
                        f"duplicate host name {tunnel.host!r} in a Group: results are "
                        "keyed by host name, so each tunnel needs its own"
                    )
                names.add(tunnel.host)
                tunnels.append(tunnel)
        self._tunnels = tunnels
        self._on_close: list[Callable[[], object]] = []

    # -- where hosts come from ----------------------------------------------------------------

    @classmethod
    def from_ssh_config(
        cls, pattern: str = "*", path: str | os.PathLike[str] | None = None, **tunnel_options: Any
    ) -> Group:
        """The concrete ``Host`` entries of an ssh config matching ``pattern``, as SSHTunnels.

        ``path`` is the config (default ``~/.ssh/config``; ``Include`` is followed); ``pattern``
        a glob such as ``"web*"``, without regard to case. Patterns in the file (``Host *``,
        ``Host !x``) match hosts rather than name them, so they make no tunnel. Only names are
        read: ssh reads each entry when its tunnel connects (given ``-F path`` when ``path``
        is given). ``tunnel_options`` go to every tunnel (``control_master=True``,
        ``connect_timeout=``...). Raises SSHConfigError naming the file and line for a config
        ssh would refuse, FileNotFoundError if there is no config.
        """
        from ._host_sources import ssh_config_tunnels

        return cls(ssh_config_tunnels(pattern, path, tunnel_options))

    @classmethod
    def from_inventory(
        cls, path: str | os.PathLike[str], group: str = "all", **tunnel_options: Any
    ) -> Group:
        """The hosts of an Ansible inventory (INI or YAML; Ansible is not needed) in ``group``.

        Each host becomes ``SSHTunnel(ansible_host, name=<inventory name>, user=ansible_user,
        port=ansible_port, python3=ansible_python_interpreter)``; ``ansible_become`` runs its
        agent through ``sudo -n -u ansible_become_user`` there (root by default). A host with
        ``ansible_connection=local`` becomes a :class:`~chopsticks_nb.tunnel.Local` (a
        :class:`~chopsticks_nb.tunnel.Sudo` if it becomes another user); other connection
        kinds are refused. Groups, ``children``, host ranges (``web[01:20]``) and group and
        host variables are read as Ansible reads them. ``tunnel_options`` fill in what the
        inventory does not say (``ssh_config=``, ``user=``, ``control_master=True``...).
        Raises InventoryError naming the file and line.
        """
        from ._host_sources import inventory_tunnels

        return cls(inventory_tunnels(path, group, tunnel_options))

    @classmethod
    def from_slurm(cls, job: int | str, **tunnel_options: Any) -> Group:
        """One :class:`~chopsticks_nb.slurm.Srun` tunnel per node of the running Slurm job
        ``job``: each agent runs as a job step on its node. ``tunnel_options`` go to each
        tunnel (``python3=``, ``srun_options=``...). Raises SlurmError if the job is not running.
        """
        from .slurm import job_tunnels

        return cls(job_tunnels(job, **tunnel_options))

    @classmethod
    def allocate(
        cls,
        nodes: int = 1,
        *,
        partition: str | None = None,
        time: str | int | None = None,
        timeout: float | None = None,
        progress: Progress | None = None,
        tunnel_options: Mapping[str, Any] | None = None,
        **sbatch_options: Any,
    ) -> Group:
        """Ask Slurm for ``nodes`` nodes (``salloc --no-shell``) and make a Group over them.

        :meth:`close` (or leaving a ``with`` block) also releases the allocation. ``partition``,
        ``time`` and ``sbatch_options`` (``gres="gpu:1"``, ``exclusive=True``...) become
        salloc's options; while the request waits, ``progress`` is told each change of its state
        (see :meth:`Allocation.create <chopsticks_nb.slurm.Allocation.create>`, which also takes
        ``timeout``). ``tunnel_options`` go to each node's tunnel.
        """
        from .slurm import Allocation

        allocation = Allocation.create(
            nodes,
            partition=partition,
            time=time,
            timeout=timeout,
            progress=progress,
            **sbatch_options,
        )
        try:
            group = cls(allocation.tunnels(**dict(tunnel_options or {})))
        except BaseException:
            allocation.release()
            raise
        group.on_close(allocation.release)
        return group

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

    # A tunnel on the left: its own operators give way to these (it acts as a group of one).

    def __ror__(self, other: BaseTunnel) -> Group:
        left = self._operand(other)
        return NotImplemented if left is None else Group(left) | self

    __radd__ = __ror__

    def __rand__(self, other: BaseTunnel) -> Group:
        left = self._operand(other)
        return NotImplemented if left is None else Group(left) & self

    def __rsub__(self, other: BaseTunnel) -> Group:
        left = self._operand(other)
        return NotImplemented if left is None else Group(left) - self

    def __rxor__(self, other: BaseTunnel) -> Group:
        left = self._operand(other)
        return NotImplemented if left is None else Group(left) ^ self

    def split(self, relays: Sequence[BaseTunnel]) -> Group:
        """This group's hosts spread over ``relays``: a new Group of copies of its tunnels (not
        connected), each going through one of the relays (``tunnel.behind(relay)``), so the
        controller holds one pipe per relay. Consecutive hosts share a relay, in blocks as
        even as they divide (``web[001-256]`` over 4 relays: 64 each, in order).
        """
        relays = list(relays)
        if not relays:
            raise ValueError("split() needs at least one relay")
        for relay in relays:
            if not isinstance(relay, BaseTunnel):
                raise TypeError(f"split() takes tunnels (the relays), not {type(relay).__name__}")
        count = len(self._tunnels)
        return Group(
            [
                tunnel.behind(relays[index * len(relays) // count])
                for index, tunnel in enumerate(self._tunnels)
            ]
        )

    # -- connections --------------------------------------------------------------------------

    def connect(
        self,
        *,
        timeout: float | None = None,
        progress: ProgressCallback | None = None,
        on_interrupt: OnInterrupt = "raise",
        quiet: bool = False,
    ) -> GroupResult:
        """Connect every tunnel in parallel; a GroupResult of what each agent said of itself.

        A host that cannot connect holds an ErrorResult; nothing is raised for it. Each tunnel
        applies its own ``connect_timeout``; ``timeout`` bounds the whole operation. Other
        options as in :meth:`run`.
        """
        with self._watching("connect", quiet, progress, output=False) as watching:
            result = gather(
                self._tunnels,
                lambda tunnel: tunnel.submit_connect(),
                timeout=timeout,
                progress=watching.progress_callback,
                on_interrupt=on_interrupt,
                cancellable=False,
            )
        for host, info in list(result.successful()):
            result[host] = dict(info)
        return result

    def close(self) -> None:
        """Close every tunnel (each can connect again later), all at once (agents that do
        not exit when told are signalled after 5 s in all, not 5 s each), then release what
        the group holds (see :meth:`on_close`)."""
        close_together(self._tunnels)
        callbacks, self._on_close = self._on_close, []
        failure: BaseException | None = None
        for callback in callbacks:
            try:
                callback()
            except BaseException as exc:  # release the rest, then say what failed
                failure = failure or exc
        if failure is not None:
            raise failure

    def on_close(self, release: Callable[[], object]) -> None:
        """Call ``release()`` once, the next time the group is closed, after its tunnels.

        For what the group holds beyond its connections: :meth:`allocate` releases its Slurm
        allocation this way. Groups made from this one (``group - other``) do not inherit it.
        """
        self._on_close.append(release)

    def __enter__(self) -> Group:
        """Connect every host (those that cannot connect fail their calls later) and return self."""
        self.connect()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- operations ---------------------------------------------------------------------------

    def call(
        self,
        callable: Callable[..., Any],
        /,
        *args: Any,
        retries: int = 0,
        retry_delay: float = 1.0,
        **kwargs: Any,
    ) -> GroupResult:
        """Run ``callable(*args, **kwargs)`` on every host in parallel; a :class:`GroupResult`.

        Never raises for a host's failure: that host's entry is an :class:`ErrorResult`.
        ``retries`` and ``retry_delay`` are :meth:`run`'s (a function's own ``retries``
        argument goes through :meth:`run`'s ``kwargs``). Use :meth:`run` for a timeout,
        progress reports or output routing.
        """
        return self.run(callable, args, kwargs, retries=retries, retry_delay=retry_delay)

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
        retries: int = 0,
        retry_delay: float = 1.0,
        quiet: bool = False,
    ) -> GroupResult:
        """The full form of :meth:`call`.

        ``timeout``: seconds for the whole operation (connecting and retries included); hosts
        that have not answered by then are cancelled remotely and hold an ErrorResult with
        status ``"timeout"``. ``progress``: called as ``progress(HostDone(...))`` in this
        thread each time a host finishes (a progress bar, a live table). ``output``: called as
        ``output(host, stream, text)`` on the broker thread with each host's remote stdout and
        stderr for this call (instead of the tunnel's own handler). Either way the result keeps
        what each host printed, bounded (``result.output(host)``).

        ``retries``: a host that was unreachable or lost its connection is tried again, up to
        this many more times, ``retry_delay`` seconds after each failure (a lost call may have
        run in part: retry work that can run twice). A remote exception, a timeout or a
        protocol error is never retried. ``result.attempts[host]`` counts the attempts.

        Progress is shown once the operation has run about a second: one updating line in a
        terminal, a live view of every host in a notebook (once ``%load_ext chopsticks_nb`` has
        run; it shows the remote output too); ``quiet=True`` shows nothing (the output still
        goes to ``output`` or the tunnels' handlers).

        On KeyboardInterrupt every unfinished remote call is cancelled (the agent interrupts it),
        then :class:`~chopsticks_nb.errors.GroupInterrupted` (a KeyboardInterrupt carrying the
        partial result) is raised; with ``on_interrupt="return"`` the partial result is
        returned instead.
        """
        check_retries(retries, retry_delay)
        call_args = tuple(args)
        call_kwargs = dict(kwargs or {})
        capture = OutputCapture()
        with self._watching("call", quiet, progress, output) as watching:

            def start(tunnel: BaseTunnel) -> concurrent.futures.Future[Any]:
                watched = watching.handler(tunnel.host) or tunnel.output
                handler = capture.handler(tunnel.host, None, watched)
                return tunnel.submit_call(callable, call_args, call_kwargs, output=handler)

            return gather(
                self._tunnels,
                start,
                timeout=timeout,
                progress=watching.progress_callback,
                on_interrupt=on_interrupt,
                retries=retries,
                retry_delay=retry_delay,
                capture=capture,
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
        retries: int = 0,
        retry_delay: float = 1.0,
        quiet: bool = False,
    ) -> GroupResult:
        """Run Python source on every host in parallel, each in its tunnel's persistent namespace.

        As :meth:`BaseTunnel.exec <chopsticks_nb.tunnel.BaseTunnel.exec>` on every host: ``names``
        are bound in the namespace first (functions and classes travel as source), and each
        host's value is that of the code's last line if it is an expression (else None). Names
        the code defines stay there for later calls on the same connection. ``filename`` names
        the code in remote tracebacks; the other options are those of :meth:`run`. A name that
        cannot be sent fails each host with a SerializationError that names it. This is what
        the notebook's ``%%remote`` magic runs. A host retried after losing its connection
        starts with a new, empty namespace.
        """
        check_retries(retries, retry_delay)
        bound = dict(names or {})
        capture = OutputCapture()
        with self._watching("exec", quiet, progress, output) as watching:

            def start(tunnel: BaseTunnel) -> concurrent.futures.Future[Any]:
                watched = watching.handler(tunnel.host) or tunnel.output
                handler = capture.handler(tunnel.host, None, watched)
                try:
                    return tunnel.submit_exec(code, bound, filename=filename, output=handler)
                except SerializationError as exc:
                    named = unsendable_name(bound, tunnel.host, lambda: tunnel.remote_info)
                    if named is None:
                        raise
                    raise named from exc

            return gather(
                self._tunnels,
                start,
                timeout=timeout,
                progress=watching.progress_callback,
                on_interrupt=on_interrupt,
                retries=retries,
                retry_delay=retry_delay,
                capture=capture,
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
        retries: int = 0,
        retry_delay: float = 1.0,
        quiet: bool = False,
    ) -> GroupResult:
        """Copy a local file to every host in parallel (streamed; any size).

        ``remote_path`` may hold ``{host}``, replaced by each host's name
        (``"/etc/app/{host}.ini"``). Without it each host makes a temporary file. Each value is a
        dict with ``local_path``, ``remote_path``, ``size`` and ``sha1sum``. Raises OSError at
        once if the local file cannot be read. Options as in :meth:`run`.
        """
        check_retries(retries, retry_delay)
        local = os.fspath(local_path)
        with open(local, "rb"):  # fail once, here, rather than once per host
            pass
        remote_paths = remote_put_paths(remote_path, self.hosts)
        with self._watching("put", quiet, progress, output=False) as watching:
            return gather(
                self._tunnels,
                lambda tunnel: tunnel.submit_put(local, remote_paths[tunnel.host], mode),
                timeout=timeout,
                progress=watching.progress_callback,
                on_interrupt=on_interrupt,
                retries=retries,
                retry_delay=retry_delay,
            )

    def fetch(
        self,
        remote_path: str,
        local_path: str | os.PathLike[str] | None = None,
        *,
        max_size: int | None = None,
        timeout: float | None = None,
        progress: ProgressCallback | None = None,
        on_interrupt: OnInterrupt = "raise",
        retries: int = 0,
        retry_delay: float = 1.0,
        quiet: bool = False,
    ) -> GroupResult:
        """Copy a remote file from every host in parallel (streamed; any size).

        ``local_path`` is a template into which each host name is put with ``str.format``:
        ``"passwd-{host}"``, or ``"out/{host}/passwd"`` (directories below the template's own
        are created). Every path must be distinct and stay inside the template's directory:
        host names with ``/`` or that are ``..`` are refused (ValueError, before anything
        starts). Without ``local_path`` each host's file goes to a new temporary file. Each
        value is a dict with ``local_path``, ``remote_path``, ``size`` and ``sha1sum``.
        A local path that is a directory fails that host at once. ``max_size`` (bytes; None,
        the default: no limit) fails a host whose file is larger, keeping nothing of it, as
        in :meth:`BaseTunnel.fetch <chopsticks_nb.tunnel.BaseTunnel.fetch>`. The other options
        are those of :meth:`run`.
        """
        check_max_size(max_size)
        check_retries(retries, retry_delay)
        paths = local_paths(local_path, self.hosts)
        make_parent_dirs(local_path, paths)
        with self._watching("fetch", quiet, progress, output=False) as watching:
            return gather(
                self._tunnels,
                lambda tunnel: tunnel.submit_fetch(
                    remote_path, paths[tunnel.host], max_size=max_size
                ),
                timeout=timeout,
                progress=watching.progress_callback,
                on_interrupt=on_interrupt,
                retries=retries,
                retry_delay=retry_delay,
            )

    def _watching(
        self,
        what: str,
        quiet: bool,
        progress: ProgressCallback | None,
        output: HostOutput | bool | None = None,
    ) -> Watching:
        """The watch of an operation (``output=False``: one without remote output)."""
        operation = Operation(what, self._tunnels, len(self._tunnels), output is not False)
        handler = output if callable(output) else None
        return Watching(operation, quiet=quiet, output=handler, progress=progress)

    def filter(
        self, predicate: Callable[[], Any], exclude: bool = False, *, timeout: float | None = None
    ) -> Group:
        """The group of the tunnels on which ``predicate()`` is true (false if ``exclude``).

        ``predicate`` runs remotely, on every host in parallel. Raises
        :class:`~chopsticks_nb.errors.GroupError` if any host cannot be reached or fails to
        evaluate it.
        """
        result = self.run(predicate, timeout=timeout).raise_failures()
        return Group([t for t in self._tunnels if bool(result[t.host]) != exclude])
