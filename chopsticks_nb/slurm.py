"""Slurm: agents started as job steps on the nodes of a job, and allocations to run them in.

``Srun(node, job=JOB)`` is a tunnel whose pipe is a job step, ``srun --jobid JOB --nodelist NODE
... python3``: nothing to install on the nodes, no port to open, Slurm places and accounts for it.
:func:`job_tunnels` gives one per node of a running job; :meth:`Allocation.create` asks Slurm for
nodes (``salloc --no-shell``), reports the request's state while it waits, and releases the
nodes (``scancel``) when done::

    from chopsticks_nb import Group
    from chopsticks_nb.slurm import Allocation

    with Allocation.create(2, partition="debug", time="30:00", progress=print) as allocation:
        group = Group(allocation.tunnels())
        print(group.call(os.getpid))
        group.close()
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import selectors
import signal
import subprocess
import time
import weakref
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Callable

from . import _bootstrap
from .errors import ConnectError
from .tunnel import SubprocessTunnel

__all__ = [
    "Allocation",
    "JobState",
    "SlurmError",
    "Srun",
    "job_nodes",
    "job_state",
    "job_tunnels",
]

log = logging.getLogger("chopsticks_nb.slurm")

#: seconds any one Slurm command (squeue, scontrol, scancel) may take
COMMAND_TIMEOUT = 30.0
#: job states in which a job holds its nodes or still waits for them
ACTIVE_STATES = frozenset(
    {"PENDING", "CONFIGURING", "RUNNING", "SUSPENDED", "COMPLETING", "RESIZING", "REQUEUED"}
)

_JOB = re.compile(r"[0-9]+\Z")
_NODE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*\Z")
_OPTION = re.compile(r"[a-z][a-z0-9_]*[a-z0-9]\Z")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
#: salloc options that this module sets itself, or that would hide the messages it reads
_RESERVED = frozenset({"no_shell", "quiet", "job_name", "help", "usage", "version"})
_GRANTED = re.compile(rb"[Gg]ranted job allocation (\d+)")
_JOB_IN_MESSAGE = re.compile(rb"job allocation (\d+)")


class SlurmError(ConnectError):
    """Slurm refused or failed: no such job, a job not running, salloc failed or timed out."""


def _job_id(job: int | str) -> str:
    """Job ids are data: a number, never something srun could read as an option."""
    text = str(job) if isinstance(job, int) and not isinstance(job, bool) else job
    if not isinstance(text, str) or not _JOB.match(text):
        raise ValueError(f"invalid Slurm job id {job!r}: a job id is a number, such as 4242")
    return text


def _node_name(node: str) -> str:
    if not isinstance(node, str) or not _NODE.match(node):
        raise ValueError(
            f"invalid Slurm node name {node!r}: letters, digits, '.', '-' and '_' only, "
            "not starting with '-'"
        )
    return node


def _run(argv: list[str]) -> subprocess.CompletedProcess[str]:
    """Run one Slurm client command, bounded by COMMAND_TIMEOUT; a SlurmError if it cannot run."""
    try:
        return subprocess.run(
            argv,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=COMMAND_TIMEOUT,
            check=False,
        )
    except OSError as exc:
        raise SlurmError(f"cannot run {argv[0]!r}: {exc.strerror or exc}") from None
    except subprocess.TimeoutExpired:
        raise SlurmError(f"{argv[0]} gave no answer within {COMMAND_TIMEOUT:g} s") from None


def _message(text: str) -> str:
    """A Slurm command's stderr as one line, without the repeated ``salloc:`` prefixes."""
    lines = (re.sub(r"^[a-z_]+: (error: )?", "", line).strip() for line in text.splitlines())
    return "; ".join(line for line in lines if line)


# -- jobs ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class JobState:
    """What Slurm says of a job: ``state`` (PENDING, RUNNING, CANCELLED, ...), the ``reason`` it
    waits (Resources, Priority, JobHeldUser, ...) and its ``nodelist`` (``node[1-4]``)."""

    job: str
    state: str
    reason: str = ""
    nodelist: str = ""

    @property
    def active(self) -> bool:
        """True while the job holds its nodes or waits for them."""
        return self.state in ACTIVE_STATES

    def __str__(self) -> str:
        if self.state == "RUNNING":
            return f"job {self.job} is RUNNING on {self.nodelist}"
        if not self.active:
            return f"job {self.job} has ended ({self.state})"
        reason = f" ({self.reason})" if self.reason and self.reason != "None" else ""
        return f"job {self.job} is {self.state}{reason}"


def job_state(job: int | str) -> JobState:
    """The state of a Slurm job (``squeue``); a SlurmError if Slurm does not know it."""
    job = _job_id(job)
    fields = "--format=%A|%T|%r|%N"
    proc = _run(["squeue", "--noheader", "--states=all", f"--jobs={job}", fields])
    if proc.returncode != 0:
        detail = _message(proc.stderr)
        if "invalid job id" in detail.lower():
            raise SlurmError(f"Slurm has no job {job} (it never existed, or ended long ago)")
        raise SlurmError(f"squeue failed for job {job}: {detail or proc.returncode}")
    for line in proc.stdout.splitlines():
        parts = line.strip().split("|")
        if len(parts) == 4 and parts[0] == job:
            return JobState(job, *parts[1:])
    raise SlurmError(f"Slurm has no job {job} (squeue: {proc.stdout.strip() or 'no answer'})")


def job_nodes(job: int | str) -> list[str]:
    """The node names of a running Slurm job, in Slurm's order.

    A SlurmError names the job when it is unknown, still pending (with the reason) or has ended.
    """
    state = job_state(job)
    if state.state != "RUNNING":
        waiting = ": it has no nodes yet" if state.state == "PENDING" else ""
        raise SlurmError(f"{state}{waiting}; only a running job's nodes can run steps")
    return _expand(state.nodelist)


def _expand(nodelist: str) -> list[str]:
    """``node[1-3],gpu7`` -> the node names (``scontrol show hostnames``)."""
    proc = _run(["scontrol", "show", "hostnames", nodelist])
    if proc.returncode != 0:
        raise SlurmError(f"cannot expand the node list {nodelist!r}: {_message(proc.stderr)}")
    return [_node_name(name) for name in proc.stdout.split()]


def job_tunnels(job: int | str, **options: Any) -> list[Srun]:
    """One :class:`Srun` tunnel per node of a running job; ``options`` go to each tunnel."""
    job = _job_id(job)
    return [Srun(node, job=job, **options) for node in job_nodes(job)]


# -- the tunnel ---------------------------------------------------------------------------------


#: srun's messages (lower case) -> what they mean, most specific first
_SRUN_FAILURES = (
    ("has expired", "job {job} has ended"),
    ("invalid job id", "Slurm has no job {job} (invalid job id)"),
    ("pending execution", "job {job} is still pending: it has no nodes yet"),
    ("requested node configuration is not available", "node {node} is not in job {job}"),
    ("due to time limit", "job {job} reached its time limit"),
    ("cancelled", "job {job} was cancelled"),
    ("access/permission denied", "job {job} belongs to another user"),
    ("unable to contact slurm controller", "cannot reach the Slurm controller (job {job})"),
)


class Srun(SubprocessTunnel):
    """An agent started as a job step on ``node`` of the running Slurm job ``job``.

    The command is ``srun --jobid=JOB --nodelist=NODE --nodes=1 --ntasks=1 --overlap
    --unbuffered --quiet -- python3 -c ...``: the step shares the job's resources with its
    other steps, and its stdin and stdout are the tunnel's pipe. ``srun`` names the command,
    ``srun_options`` are extra srun arguments (``["--cpus-per-task=8"]``), ``python3`` is the
    interpreter on the node, ``name`` (default: ``node``) the tunnel's name. When the job ends
    or is cancelled the step ends too, and the calls in flight fail at once with a
    ConnectionLost naming the job.
    """

    srun = "srun"
    #: the Allocation this tunnel's job came from, kept alive as long as the tunnel
    allocation: Allocation | None = None

    def __init__(
        self,
        node: str,
        *,
        job: int | str,
        name: str | None = None,
        srun: str | None = None,
        srun_options: Sequence[str] = (),
        **options: Any,
    ) -> None:
        self.node = _node_name(node)
        super().__init__(node if name is None else name, **options)
        self.job = _job_id(job)
        if srun is not None:
            self.srun = srun
        self.srun_options = list(srun_options)

    def __repr__(self) -> str:
        name = "" if self.host == self.node else f", name={self.host!r}"
        return f"Srun({self.node!r}, job={self.job!r}{name})"

    def cmd_args(self) -> list[str]:
        return [
            self.srun,
            f"--jobid={self.job}",
            f"--nodelist={self.node}",
            "--nodes=1",
            "--ntasks=1",
            "--overlap",  # beside the job's other steps, and each other
            "--unbuffered",
            "--quiet",  # no progress chatter on stderr; errors still come
            *self.srun_options,
            "--",
            *self.python_args(),
        ]

    def explain_exit(self, returncode: int | None, stderr_tail: str) -> str:
        """Why srun ended, in words naming the job (and the node, where it is the cause)."""
        detail = stderr_tail
        known = self._known_failure(detail)
        if known is not None:
            return known
        if "execve()" in detail.lower():
            return f"cannot run {self.python3} on node {self.node} ({detail})"
        if returncode == _bootstrap.EXIT_TOO_OLD:
            return super().explain_exit(returncode, detail)
        return f"srun exited with status {returncode} (job {self.job}): {detail or 'no message'}"

    def explain_loss(self, returncode: int | None, stderr_tail: str) -> str:
        """The step ended under a running agent: the job ended, was cancelled or reached its
        time limit, mostly; in words naming the job, as :meth:`explain_exit` says them."""
        known = self._known_failure(stderr_tail)
        if known is not None:
            return known
        detail = f"; stderr: {stderr_tail}" if stderr_tail else ""
        return f"job {self.job}: srun exited with status {returncode}{detail}"

    def _known_failure(self, detail: str) -> str | None:
        """The reason srun's stderr gives (_SRUN_FAILURES) in words naming the job, followed by
        the stderr itself; None if it gives none of them."""
        lowered = detail.lower()
        for needle, meaning in _SRUN_FAILURES:
            if needle in lowered:
                return f"{meaning.format(job=self.job, node=self.node)} ({detail})"
        return None


# -- allocations --------------------------------------------------------------------------------


def _salloc_options(options: dict[str, object]) -> list[str]:
    """Keyword options as ``--key=value`` arguments: each one argument, so no value can become
    an option; names are checked and ``_`` becomes ``-``; True gives ``--key``; None/False
    leave it out."""
    args = []
    for key, value in options.items():
        if not _OPTION.match(key) or key in _RESERVED:
            raise ValueError(f"invalid or reserved salloc option {key!r}")
        flag = "--" + key.replace("_", "-")
        if value is None or value is False:
            continue
        if value is True:
            args.append(flag)
        elif isinstance(value, (int, float, str)):
            text = str(value)
            if _CONTROL.search(text) or not text:
                raise ValueError(f"invalid value {value!r} for salloc option {key!r}")
            args.append(f"{flag}={text}")
        else:
            raise TypeError(f"salloc option {key!r} takes a str or a number, not {value!r}")
    return args


def _cancel(job: str) -> None:
    """``scancel JOB``; a job that has already ended is not an error."""
    proc = _run(["scancel", job])
    if proc.returncode != 0 and "already completing or completed" not in proc.stderr:
        raise SlurmError(f"scancel {job} failed: {_message(proc.stderr) or proc.returncode}")


def _cancel_quietly(job: str) -> None:
    """Release a forgotten allocation (garbage collection, interpreter exit): log, never raise."""
    try:
        _cancel(job)
    except SlurmError as exc:
        log.warning("could not release Slurm job %s: %s", job, exc)


def _stop(proc: subprocess.Popen[bytes]) -> None:
    """End a salloc that still waits: on SIGTERM it withdraws its request."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


Progress = Callable[[JobState], object]


def _log_state(state: JobState) -> None:
    log.info("%s", state)


class _Request:
    """One ``salloc --no-shell`` run: reads its messages and watches the job while it waits."""

    def __init__(
        self, argv: list[str], what: str, progress: Progress, poll_interval: float
    ) -> None:
        self.argv = argv
        self.what = what
        self.progress = progress
        self.poll_interval = poll_interval
        self.job: str | None = None
        self.last: JobState | None = None
        self.output = b""

    def report(self) -> None:
        assert self.job is not None
        with contextlib.suppress(SlurmError):  # not yet visible to squeue: next time
            state = job_state(self.job)
            if state != self.last:
                self.last = state
                self.progress(state)

    def wait(self, timeout: float | None) -> str:
        """Run salloc until it has the allocation; its job id. Withdraws it on any failure."""
        proc = subprocess.Popen(
            self.argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            start_new_session=True,  # Ctrl-C is ours to handle, not salloc's
        )
        try:
            assert proc.stderr is not None
            with proc.stderr:
                self._read(proc.stderr.fileno(), timeout)
            proc.wait(COMMAND_TIMEOUT)
        except BaseException:
            _stop(proc)
            if self.job is not None:
                _cancel(self.job)
            raise
        granted = _GRANTED.search(self.output)
        if proc.returncode != 0 or granted is None:
            if self.job is not None:
                _cancel(self.job)
            message = _message(self.output.decode(errors="replace"))
            raise SlurmError(f"salloc failed (status {proc.returncode}): {message or 'no message'}")
        return granted.group(1).decode()

    def _read(self, fd: int, timeout: float | None) -> None:
        deadline = None if timeout is None else time.monotonic() + timeout
        next_report = 0.0
        with selectors.DefaultSelector() as selector:
            selector.register(fd, selectors.EVENT_READ)
            while True:
                now = time.monotonic()
                if self.job is not None and now >= next_report:
                    self.report()
                    next_report = now + self.poll_interval
                if deadline is not None and now >= deadline:
                    waiting = self.last or self.what
                    raise SlurmError(
                        f"{waiting}: not granted within {timeout:g} s, so it was withdrawn"
                    )
                wait = self.poll_interval if self.job is not None else 0.5
                if deadline is not None:
                    wait = min(wait, deadline - now)
                if selector.select(max(wait, 0.0)):
                    data = os.read(fd, 65536)
                    if not data:
                        return
                    self.output += data
                    found = _JOB_IN_MESSAGE.search(self.output)
                    if found and self.job is None:
                        self.job = found.group(1).decode()


class Allocation:
    """Nodes allocated by Slurm to this program (a job made by ``salloc --no-shell``).

    Make one with :meth:`create`; :meth:`tunnels` gives an :class:`Srun` tunnel per node.
    :meth:`release` (or leaving a ``with`` block) cancels the job; so does garbage collection
    and the interpreter's exit, so a notebook kernel that ends leaves no nodes held. Tunnels from
    :meth:`tunnels` keep their allocation alive.
    """

    def __init__(self, job: int | str, nodes: Sequence[str]) -> None:
        """Take charge of the running job ``job`` on ``nodes``: releasing this cancels it."""
        self.job = _job_id(job)
        self.nodes = [_node_name(node) for node in nodes]
        self._finalizer = weakref.finalize(self, _cancel_quietly, self.job)

    @classmethod
    def create(
        cls,
        nodes: int = 1,
        *,
        partition: str | None = None,
        time: str | int | None = None,
        name: str = "chopsticks_nb",
        timeout: float | None = None,
        progress: Progress | None = None,
        poll_interval: float = 1.0,
        salloc: str = "salloc",
        **sbatch_options: object,
    ) -> Allocation:
        """Ask Slurm for ``nodes`` nodes and wait until it grants them.

        ``partition``, ``time`` (minutes, or ``"HH:MM:SS"``, ``"D-HH"``...), ``name`` (the job
        name) and any other ``sbatch_options`` become salloc's ``--key=value`` options
        (``gres="gpu:1"`` gives ``--gres=gpu:1``; ``exclusive=True`` gives ``--exclusive``).
        While the request waits, ``progress`` is called with a :class:`JobState` each time its
        state or reason changes (checked every ``poll_interval`` seconds; default: logged on the
        ``chopsticks_nb.slurm`` logger; ``progress=print`` shows it). After ``timeout`` seconds
        (default: no limit) or on KeyboardInterrupt the request is withdrawn, and SlurmError
        (or the KeyboardInterrupt) is raised.
        """
        if isinstance(nodes, bool) or not isinstance(nodes, int) or nodes < 1:
            raise ValueError(f"nodes must be a positive number, not {nodes!r}")
        options = {"partition": partition, "time": time, **sbatch_options}
        if not isinstance(name, str) or not name or _CONTROL.search(name):
            raise ValueError(f"invalid job name {name!r}")
        argv = [salloc, "--no-shell", f"--nodes={nodes}", f"--job-name={name}"]
        argv += _salloc_options(options)
        what = f"the request for {nodes} node{'s' if nodes > 1 else ''}"
        request = _Request(argv, what, progress or _log_state, poll_interval)
        job = request.wait(timeout)
        try:
            request.report()
            allocation = cls(job, job_nodes(job))
        except BaseException:
            _cancel(job)
            raise
        return allocation

    @property
    def released(self) -> bool:
        return not self._finalizer.alive

    def tunnels(self, **options: Any) -> list[Srun]:
        """One :class:`Srun` tunnel per node; ``options`` go to each (``python3``, timeouts...)."""
        tunnels = [Srun(node, job=self.job, **options) for node in self.nodes]
        for tunnel in tunnels:
            tunnel.allocation = self
        return tunnels

    def release(self, *, timeout: float = 10.0) -> None:
        """Cancel the job and wait (up to ``timeout`` s) until it no longer holds its nodes.

        Steps still running in it end, so their tunnels' calls fail. Calling it again does
        nothing.
        """
        if self._finalizer.detach() is None:
            return
        try:
            _cancel(self.job)
        except BaseException:
            self._finalizer = weakref.finalize(self, _cancel_quietly, self.job)
            raise
        deadline = time.monotonic() + timeout
        while True:
            try:
                state = job_state(self.job)
            except SlurmError:
                return  # purged: certainly not running
            if not state.active:
                return
            if time.monotonic() >= deadline:
                raise SlurmError(f"{state} {timeout:g} s after scancel")
            time.sleep(0.05)

    def __enter__(self) -> Allocation:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.release()

    def __repr__(self) -> str:
        released = ", released" if self.released else ""
        return f"<Allocation job {self.job} on {', '.join(self.nodes)}{released}>"
