"""Relayed tunnels: agents that another agent, their relay, starts and serves over its own pipe.

A tunnel made with ``via=relay`` has its command (``ssh HOST python3 -c STAGE1``, built here as
for any tunnel) run by the relay's agent as a child, which passes the child's bytes between the
child's pipes and its own pipe to the controller without reading them (the CHILD_* frames of
_agent.Msg; the relay's side is _relay_pump, sent along with the first child). The controller
holds one pipe per relay, however many hosts lie behind it.

Here a relayed tunnel is an ordinary Connection (:class:`RelayedConnection`) whose process is a
:class:`RelayedProcess` and whose frames go to the relay's connection instead of a pipe
(:class:`RelayedWriter`); what the relay passes back is fed to its frame reader. So every
feature of the protocol works through a relay unchanged, and a relayed agent's frames are
checked here as a direct agent's are: a relay can do no more harm than a hostile agent. Per
child and per direction at most CHILD_WINDOW bytes are under way unacknowledged, so neither
end buffers without bound, and a child that stops reading or floods stalls only itself. A
caller does not read its own answer from a relayed agent (it has no pipe to read): the thread
that reads the relay's pipe hands it over.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import signal
import subprocess
import threading
from typing import Any, Callable

from . import _agent, _relay_pump
from ._agent import CHILD_WINDOW, Msg
from ._broker import BROKER, TimerHandle
from ._connection import Connection
from ._process import STDERR_LINE_CHARS, STDERR_TAIL_LINES, AgentProcess
from ._writer import ErrorFactory, FrameWriter
from .errors import ChopsticksError, ConnectError, ConnectionLost, ProtocolError

__all__ = ["Relay", "RelayedConnection", "RelayedProcess", "RelayedWriter"]

#: Output of a relayed agent is acknowledged (CHILD_READ) once this much has been taken.
ACK_AT = CHILD_WINDOW // 4
#: The first size of a relayed agent's input buffer: small, as a relay serves many tunnels (it
#: grows for a larger frame, and shrinks back after).
BUFFER_SIZE = 16 * 1024
#: A piece of a frame larger than this is split to fit the window (smaller ones wait for room).
SPLIT_ABOVE = CHILD_WINDOW // 2
#: After a death: SIGTERM to a command that lingers, then SIGKILL, then give up (its relay may
#: be unable to say it exited).
TERM_AFTER, KILL_AFTER, GIVE_UP_AFTER = 8.0, 10.0, 15.0
#: How long a wait for the exit with no time limit (after SIGKILL) waits at most.
WAIT_AT_MOST = 5.0

_ATTACH = threading.Lock()


@functools.lru_cache(maxsize=1)
def pump_source() -> str:
    """The relay's side, sent with a connection's first child (see Msg.CHILD_START)."""
    return inspect.getsource(_relay_pump)


class Relay:
    """The tunnels one relay's agent serves: its children, by number. It is the relay
    connection's ``relay``; its handlers run on the thread reading the relay's pipe."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self.lock = threading.Lock()
        self.children: dict[int, RelayedConnection] = {}
        self.last = 0  # the number of the last child started
        self.pump_sent = False
        self.ended = False

    @staticmethod
    def of(conn: Connection) -> Relay:
        """The relay that ``conn``'s agent is (made on first use)."""
        with _ATTACH:
            if conn.relay is None:
                conn.relay = Relay(conn)
            relay = conn.relay
        assert isinstance(relay, Relay)
        return relay

    def start(self, child: RelayedConnection, argv: list[str]) -> int:
        """Have the relay run ``argv`` for ``child``; its number. ConnectError if the relay's
        connection has ended."""
        with self.lock:
            if not self.ended:
                self.last += 1
                number = self.last
                payload = {"argv": argv, "pump": None if self.pump_sent else pump_source()}
                try:
                    self.conn.writer.send(Msg.CHILD_START, number, _agent.encode(payload))
                except ChopsticksError:
                    pass
                else:
                    self.pump_sent = True
                    self.children[number] = child
                    return number
        raise ConnectError(f"its relay {self.conn.host} has lost its connection", child.host)

    def forget(self, number: int) -> None:
        """Frames of child ``number`` still on their way are dropped from now on."""
        with self.lock:
            self.children.pop(number, None)

    # -- the relay's frames (named in the protocol table; see Connection.on_child_*) -------------

    def _child(self, number: int) -> RelayedConnection | None:
        child = self.children.get(number)
        if child is None and not 0 < number <= self.last:
            raise ProtocolError(
                f"a frame for relayed command {number}, which was never started", self.conn.host
            )
        return child  # None: it has ended, and late frames are dropped

    def on_stdout(self, number: int, data: memoryview) -> None:
        child = self._child(number)
        if child is not None:
            child.feed_stdout(data)

    def on_stderr(self, number: int, data: memoryview) -> None:
        child = self._child(number)
        if child is not None:
            child.feed_stderr(data)

    def on_written(self, number: int, count: int) -> None:
        child = self._child(number)
        if child is not None:
            child.writer.on_written(count)

    def on_exit(self, number: int, info: dict[str, Any]) -> None:
        child = self._child(number)
        if child is not None:
            child.on_exit(info["status"], info["error"])

    def relay_ended(self, error: ErrorFactory) -> None:
        with self.lock:
            self.ended = True
            children = list(self.children.values())
            self.children.clear()
        message = error().message
        for child in children:
            child.relay_lost(self.conn.host, message)


class RelayedChild:
    """What stands in for the ``subprocess.Popen`` of a relayed command (``proc``): its
    ``returncode`` as the relay reports it, ``poll()`` and ``wait()``. ``pid`` is None: the
    process runs on another host."""

    pid = None

    def __init__(self, process: RelayedProcess) -> None:
        self.process = process
        self.args = process.argv

    @property
    def returncode(self) -> int | None:
        return self.process.returncode

    def poll(self) -> int | None:
        return self.process.returncode

    def wait(self, timeout: float | None = None) -> int | None:
        """As Popen.wait: TimeoutExpired after ``timeout``; with none, WAIT_AT_MOST at most,
        then it gives up (the relay may never say)."""
        if not self.process.ended.wait(WAIT_AT_MOST if timeout is None else timeout):
            if timeout is not None:
                raise subprocess.TimeoutExpired(self.args, timeout)
            self.process.finish(None)
        return self.process.returncode


class RelayedProcess(AgentProcess):
    """Stands in for the agent's process when its command runs on a relay, as its child.

    There are no pipes here (``stdin``, ``stdout`` and ``stderr`` stay -1): the relay passes the
    bytes on; its ``proc`` is a :class:`RelayedChild`, once started.
    """

    def __init__(self, host: str, argv: list[str], relay: Connection) -> None:
        super().__init__(host, argv, None)
        self.relay = relay
        self.mux: Relay | None = None
        self.number = 0
        self.returncode: int | None = None
        #: set once the exit is known, the relay is gone, or we gave up waiting
        self.ended = threading.Event()
        self._lock = threading.Lock()
        self._on_end: list[Callable[[], None]] = []
        self._timers: list[TimerHandle] = []
        self._input_ended = False

    def start_child(self, conn: RelayedConnection) -> int:
        """Ask the relay to run the command for ``conn``; its number there. ConnectError if
        the relay has lost its connection."""
        self.mux = Relay.of(self.relay)
        self.number = self.mux.start(conn, self.argv)
        self.proc = RelayedChild(self)  # type: ignore[assignment]  # stands in for the Popen
        return self.number

    def start(self) -> None:
        """Started by :meth:`start_child` already (the connection needs the number first)."""

    @property
    def fds(self) -> list[int]:
        return []

    def poll(self) -> int | None:
        return self.returncode

    def end_input(self) -> None:
        if not self._input_ended and self.number and not self.ended.is_set():
            self._input_ended = True
            self._send(Msg.CHILD_CLOSE, b"")

    def signal(self, signum: int) -> None:
        if self.number and not self.ended.is_set():
            self._send(Msg.CHILD_SIGNAL, _agent.encode(int(signum)))

    def _send(self, kind: int, payload: bytes) -> None:
        with contextlib.suppress(ChopsticksError):  # the relay has ended: so has the child
            self.relay.writer.send(kind, self.number, payload)

    def reap_later(self, on_exit: Callable[[], None], polls: int = 0) -> None:
        """``on_exit()`` on the broker thread once the exit is known, signalling the command
        if it lingers, and giving up after GIVE_UP_AFTER seconds."""
        with self._lock:
            if not self.ended.is_set():
                self._on_end.append(on_exit)
                if not self._timers:
                    self._timers = [
                        BROKER.call_later(TERM_AFTER, lambda: self.signal(signal.SIGTERM)),
                        BROKER.call_later(KILL_AFTER, lambda: self.signal(signal.SIGKILL)),
                        BROKER.call_later(GIVE_UP_AFTER, lambda: self.finish(None)),
                    ]
                return
        BROKER.call_soon(on_exit)

    def finish(self, returncode: int | None) -> None:
        """The command has exited (``returncode``), or nothing more will be heard of it."""
        with self._lock:
            if self.ended.is_set():
                return
            self.returncode = returncode
            self.ended.set()
            callbacks, self._on_end = self._on_end, []
            timers, self._timers = self._timers, []
        for timer in timers:
            timer.cancel()
        for callback in callbacks:
            BROKER.call_soon(callback)

    def close_output_pipes(self) -> None:
        if self.mux is not None:
            self.mux.forget(self.number)

    def read_stderr(self) -> bytes:
        return b""  # it comes through the relay: note_stderr

    def note_stderr(self, data: memoryview) -> None:
        """Keep the last lines of what the command wrote to stderr (see stderr_tail)."""
        lines = bytes(data).decode("utf-8", "replace").splitlines()[-STDERR_TAIL_LINES:]
        self._stderr_tail.extend(line[:STDERR_LINE_CHARS] for line in lines if line.strip())


class RelayedWriter(FrameWriter):
    """A relayed agent's outgoing frames, handed to its relay's connection as CHILD_STDIN
    frames within the room the relay has left for them (CHILD_WRITTEN gives it back).

    A put's chunks are half a window, so that they go whole, and the next is read only once
    the last has gone: a relay serves many tunnels, whose data under way adds up here.
    """

    chunk_size = CHILD_WINDOW // 2

    def __init__(self, host: str, relay: Connection, caller_writes: Callable[[], bool]) -> None:
        super().__init__(caller_writes)
        self.lender.active = False  # no pipe here: the relay's writer lends large pieces
        self.host = host
        self.relay = relay
        self.number = 0  # the child's, once started
        self.sent = 0  # bytes handed to the relay
        self.acked = 0  # of which the relay has written this many into the child's stdin

    def attach(self, number: int) -> None:
        with self.lock:
            self.number = number

    def on_written(self, count: int) -> None:
        """The relay's reader: the relay wrote ``count`` more bytes into the child's stdin."""
        with self.lock:
            if count < 0 or self.acked + count > self.sent:
                raise ProtocolError(
                    f"the relay acknowledged input for {self.host} that was never sent",
                    self.relay.host,
                )
            self.acked += count
            resume = self.watched and self.ended is None
        if resume:
            BROKER.call_soon(self._on_writable)

    def _flush_locked(self) -> None:
        """Hand the relay what fits in the room it has left; pieces stay whole unless one
        is too large ever to fit (SPLIT_ABOVE), as a piece may be lent to the relay's pipe."""
        out = self.out
        while out and self.number and self.ended is None:
            room = CHILD_WINDOW - (self.sent - self.acked)
            pieces: list[bytes] = []
            size = 0
            while out:
                piece = out[0]
                if len(piece) <= room - size:
                    pieces.append(out.popleft())  # type: ignore[arg-type]
                    size += len(piece)
                    continue
                if len(piece) > SPLIT_ABOVE and room - size >= ACK_AT:
                    view = memoryview(piece)
                    pieces.append(bytes(view[: room - size]))  # the head, copied: lendable
                    out[0] = view[room - size :]  # what is left of it, as the writer keeps it
                    size = room
                break
            if not pieces:
                return  # wait for room
            try:
                self.relay.writer.send(Msg.CHILD_STDIN, self.number, pieces)
            except ChopsticksError:  # the relay ended: this connection ends with it
                out.clear()
                self.out_bytes = 0
                return
            self.sent += size
            self.out_bytes -= size

    def _watch(self) -> None:
        if self.ended is None:
            self.watched = True
            self._on_writable()

    def _on_writable(self) -> None:
        """Broker thread: flush, and let producers add frames once nothing waits here."""
        while True:
            with self.lock:
                if self.ended is not None:
                    return
                self._flush_locked()
                if self.out or not self._producers:
                    if not self.out and not self._producers:
                        self.watched = False
                    return
            if not self._producers[0].produce():
                self._producers.popleft().close()


class RelayedConnection(Connection):
    """A Connection to an agent whose command runs on a relay (``relay``, the relay's live
    connection); the options are Connection's but ``env``, which is the relay's own."""

    input_buffer_size = BUFFER_SIZE

    def __init__(self, host: str, argv: list[str], *, relay: Connection, **options: Any) -> None:
        super().__init__(host, argv, **options)
        self.relay_conn = relay
        self.process: RelayedProcess = RelayedProcess(host, argv, relay)
        self.writer: RelayedWriter = RelayedWriter(host, relay, self._caller_writes)
        self._received = 0  # bytes of output (stdout and stderr) the relay passed on
        self._acked = 0  # of which acknowledged (CHILD_READ): the relay may send a window more
        self._eof_pending = False

    def start(self) -> None:
        self.writer.attach(self.process.start_child(self))
        super().start()

    # -- what the relay passes on (the thread reading the relay's pipe) -------------------------

    def _count(self, size: int) -> None:
        self._received += size
        if self._received - self._acked > CHILD_WINDOW:
            raise ProtocolError(
                f"the relay passed on more output of {self.host} than it was given room for",
                self.relay_conn.host,
            )

    def feed_stdout(self, data: memoryview) -> None:
        """The agent's stdout (empty: its end), to be read as if from its pipe."""
        self._count(len(data))
        with self.turns.read_lock:
            if data:
                self.reader.buffer.append(data)
            else:
                self._eof_pending = True
            self.read_stdout(on_broker=True)

    def feed_stderr(self, data: memoryview) -> None:
        """The command's stderr (empty: its end), shown to the user as a direct one's is."""
        self._count(len(data))
        with self.turns.read_lock:
            if data:
                self.process.note_stderr(data)
                if BROKER.in_broker_thread():
                    self._stderr_arrived(bytes(data))
                else:  # a caller reads the relay: what stderr holds is the I/O thread's
                    copy = bytes(data)
                    BROKER.call_soon(lambda: self._stderr_arrived(copy))
            else:
                self.process.stderr_eof = True
            if not self.backlog:
                self._acknowledge()

    def on_exit(self, status: int | None, error: str | None) -> None:
        """The relay reports the command's end, or why it could not start it."""
        self.process.finish(status)
        if error is not None:
            message = f"its relay {self.relay_conn.host} could not start it: {error}"
            self._die(lambda: ConnectError(message, self.host))
        if not self._stdout_eof and not self._eof_pending:
            self.feed_stdout(memoryview(b""))  # an exit ends its output, said or not

    def relay_lost(self, relay: str, message: str) -> None:
        """The relay's connection ended: so does this one, at once."""
        self.process.finish(None)
        if self.hello.done():
            lost = f"lost its relay {relay}: {message}"
            self._die(lambda: ConnectionLost(lost, self.host))
        else:
            failed = f"its relay {relay} failed: {message}"
            self._die(lambda: ConnectError(failed, self.host))

    def read_stdout(self, on_broker: bool = False) -> None:
        """Handle the frames fed so far, a fair share of requests at a time (the relay's
        reader serves every child), acknowledging what was taken once no frame waits."""
        if self._stdout_eof or (self.backlog and self._backlog_armed):
            return
        self._handle_frames(on_broker=True)
        if self.backlog or self._ended is not None:
            return
        self._acknowledge()
        if self._eof_pending:
            self._on_eof()

    def _acknowledge(self) -> None:
        taken = self._received - self._acked
        if taken >= ACK_AT:
            self._acked = self._received
            with contextlib.suppress(ChopsticksError):  # the relay ended: so does this
                self.relay_conn.writer.send(
                    Msg.CHILD_READ, self.process.number, _agent.encode(taken)
                )
