"""One live agent: its process, its pipes, and the requests in flight.

Callers' threads write frames directly when the pipe has room (no thread hop on the way out);
everything else (reading, slow writes, file producers, timers) happens on the broker thread.
The controller never unpickles what the agent sends: replies go through the closed codec.
"""

from __future__ import annotations

import _signal  # type: ignore[import-not-found]  # signal without its enum wrappers: 7 us less a swap
import codecs
import concurrent.futures
import contextlib
import errno
import fcntl
import itertools
import os
import select
import signal
import subprocess
import sys
import threading
import time
from collections import deque
from typing import Any, Callable, Optional, Protocol

from . import _agent, _bootstrap, _vmsplice
from ._agent import HEADER, MAGIC, Msg
from ._broker import BROKER, TimerHandle, log
from ._modserver import ModuleServer
from ._serialize import PickledCall
from .errors import (
    CallCancelled,
    CallTimeout,
    ChopsticksError,
    ConnectError,
    ConnectionLost,
    ConnectTimeout,
    ProtocolError,
    RemoteException,
    SerializationError,
    TunnelClosed,
)
from .output import OutputHandler

#: Largest frame accepted from an agent, and largest raw data frame (output, file chunks).
MAX_FRAME = _agent.MAX_MESSAGE
MAX_DATA_FRAME = 8 * 1024 * 1024
#: Noise tolerated on stdout before the handshake (a login shell's banner).
MAX_NOISE = 64 * 1024
#: File producers stop adding data while this much waits to be written.
LOW_WATER = 1024 * 1024
#: Answers to the agent's import and resource requests that it may leave unread in our queue.
#: A real agent reads its input all the time; one that floods requests without reading the
#: answers would otherwise make us queue them all in memory.
MAX_UNREAD_REPLIES = 64 * 1024 * 1024
READ_SIZE = 1024 * 1024
STDERR_TAIL_LINES = 20
F_SETPIPE_SZ = getattr(fcntl, "F_SETPIPE_SZ", 1031)
_HEADER_SIZE = HEADER.size
_DATA_KINDS = frozenset((Msg.STDOUT, Msg.STDERR, Msg.FETCH_DATA))  # frames up to MAX_DATA_FRAME
_RESULT, _ERROR = Msg.RESULT, Msg.ERROR  # the hot path: no class lookups
_STDOUT, _STDERR = Msg.STDOUT, Msg.STDERR
#: Pieces of a frame this large are lent to the pipe by vmsplice (see _vmsplice), or, where
#: it does not work, lined up in the pipe (see _frame).
LEND_FROM = 64 * 1024
_BYTES_DATA = sys.getsizeof(b"") - 1  # where a bytes object's data starts, from its id()

#: The broker watches a connection's stdout again only once no caller has read it for this
#: long: pausing and resuming its watch around every call costs more than a small call.
#: Output that arrives between calls (a remote thread's prints) waits at most this long.
READER_GRACE = 0.002

ErrorFactory = Callable[[], ChopsticksError]
ExitExplainer = Callable[[Optional[int], str], str]


class InputBuffer:
    """Bytes read from an agent, parsed where they lie: one reusable buffer, so streaming a
    file costs no allocation per read. Views handed out are valid until the next read."""

    def __init__(self) -> None:
        self.data = bytearray(READ_SIZE)
        self.start = self.end = 0

    def __len__(self) -> int:
        return self.end - self.start

    def read_from(self, fd: int) -> int:
        if self.start == self.end:
            self.start = self.end = 0
            if len(self.data) > 2 * READ_SIZE:
                self.data = bytearray(READ_SIZE)  # give back what one huge frame took
        elif len(self.data) - self.end < READ_SIZE // 4:
            self.reserve(len(self.data) - self.start)
        with memoryview(self.data) as view:
            count = os.readv(fd, [view[self.end :]])
        self.end += count
        return count

    def reserve(self, size: int) -> None:
        """Make room for ``size`` bytes from the current start (moving or growing the buffer)."""
        kept = self.end - self.start
        if size > len(self.data):
            data = bytearray(size)
            data[:kept] = self.data[self.start : self.end]
            self.data = data
        else:
            self.data[:kept] = self.data[self.start : self.end]
        self.start, self.end = 0, kept


class Producer(Protocol):
    """Feeds a stream of frames (a put) as the pipe drains, on the broker thread."""

    def produce(self) -> bool:
        """Send the next frame; False when there is nothing more to send."""

    def close(self) -> None:
        """The connection ended: release what the producer holds."""


class RemoteFuture(concurrent.futures.Future[Any]):
    """The pending answer of one remote operation.

    ``cancel()`` also stops the remote work; ``result(timeout)`` cancels it when the time is up
    (raising :class:`CallTimeout`) and when the waiting thread is interrupted.
    """

    def __init__(self, host: str, conn: Connection | None = None) -> None:
        super().__init__()
        self.settled = False  # done() without its lock, for a reader's loop
        self.host = host
        self._conn = conn  # whose output completes this future: result() may read it itself
        self._on_cancel: Callable[[], None] | None = None

    def cancel(self) -> bool:
        return self._fail(CallCancelled("cancelled", self.host))

    def set_result(self, result: Any) -> None:
        super().set_result(result)
        self.settled = True

    def set_exception(self, exception: BaseException | None) -> None:
        super().set_exception(exception)
        self.settled = True

    def result(self, timeout: float | None = None) -> Any:
        try:
            left = timeout
            if self._conn is not None and not self.settled:
                left = self._conn.read_until(self, timeout)
            return super().result(left)
        except concurrent.futures.TimeoutError:
            message = f"no answer within {timeout:g} s; cancelled"
            if self._fail(CallTimeout(message, self.host)):
                raise CallTimeout(message, self.host) from None
            return super().result()
        except KeyboardInterrupt:
            self.cancel()
            raise

    def _fail(self, exc: ChopsticksError) -> bool:
        """Fail the future and stop the remote work; False if it had already finished."""
        if not _settle(self, exc=exc):
            return False
        if self._on_cancel is not None:
            self._on_cancel()
        return True


class _DeferredInterrupt:
    """While a caller reads its pipe, Ctrl-C interrupts its wait but never the handling of a
    frame: a KeyboardInterrupt in the middle of one would lose it (maybe the answer another
    thread waits for) or the bytes just read. Only the main thread receives KeyboardInterrupt,
    so elsewhere this does nothing."""

    def __init__(self) -> None:
        self.waiting = False
        self._previous: Callable[[int, Any], Any] | None = None
        self._pending: tuple[int, Any] | None = None

    @property
    def pending(self) -> bool:
        return self._pending is not None

    def __enter__(self) -> _DeferredInterrupt:
        if threading.get_ident() == threading.main_thread().ident:
            handler = _signal.getsignal(signal.SIGINT)
            if callable(handler):  # SIG_IGN and SIG_DFL raise nothing
                self._previous = handler
                _signal.signal(signal.SIGINT, self._on_sigint)
        return self

    def _on_sigint(self, signum: int, frame: Any) -> None:
        assert self._previous is not None
        if self.waiting:
            self._previous(signum, frame)
        else:
            self._pending = (signum, frame)

    def deliver(self) -> None:
        """At a safe point (no frame half-handled): raise a Ctrl-C that was deferred."""
        pending, self._pending = self._pending, None
        if pending is not None and self._previous is not None:
            self._previous(*pending)

    def __exit__(self, *exc_info: object) -> None:
        if self._previous is None:
            return
        _signal.signal(signal.SIGINT, self._previous)
        if self._pending is not None:
            self.deliver()


def _frame(kind: int, req_id: int, pieces: list[bytes], align: bool = True) -> list[bytes]:
    """A frame with its payload in ``pieces``. If one is large (a pickled bytes argument) and
    ``align`` (it is to be copied into the pipe, not lent by vmsplice), a PING frame goes
    first, as padding: the kernel copies a page into a pipe up to 4x slower when it lands 1-15
    bytes past where it lies in memory, modulo 4096 (measured: a 1 MB argument took 2x as long
    for some function names, bench/README.md). The padding lines the piece up modulo 64,
    assuming the frame starts a page, as it does in an empty pipe."""
    size = sum(map(len, pieces))
    frame = [HEADER.pack(kind, req_id, size), *pieces]
    if size < LEND_FROM or not align:
        return frame
    offset = HEADER.size  # of the piece in the frame
    for piece in pieces:
        if len(piece) >= LEND_FROM and type(piece) is bytes:  # its address is id() + _BYTES_DATA
            gap = (id(piece) + _BYTES_DATA - offset - HEADER.size) % 64
            return [HEADER.pack(Msg.PING, 0, gap) + bytes(gap), *frame]
        offset += len(piece)
    return frame


def _base(piece: bytes | memoryview) -> object:
    """The object ``piece`` is (what is left of): _flush_locked keeps suffixes as views."""
    return piece.obj if type(piece) is memoryview else piece


def _lendable(piece: bytes | memoryview) -> bool:
    """Whether vmsplice may lend the pipe ``piece``: large, and of an object that cannot
    change (see _vmsplice)."""
    return len(piece) >= LEND_FROM and type(_base(piece)) is bytes


def _time_left(deadline: float | None) -> float | None:
    return None if deadline is None else max(0.0, deadline - time.monotonic())


def _settle(
    future: concurrent.futures.Future[Any], *, value: Any = None, exc: BaseException | None = None
) -> bool:
    """Complete ``future`` unless it already is; True if this call completed it."""
    try:
        if exc is not None:
            future.set_exception(exc)
        else:
            future.set_result(value)
    except concurrent.futures.InvalidStateError:
        return False
    return True


class Pending:
    """An operation awaiting the agent's answer, in the connection's table until answered.

    Whoever takes it out of the table (the answer, a cancel, the connection's end) completes
    it, so it completes once."""

    def __init__(self, conn: Connection, req_id: int, output: OutputHandler | None = None) -> None:
        self.conn = conn
        self.req_id = req_id
        self.output = output

    def on_result(self, value: object) -> None:
        raise NotImplementedError

    def on_error(self, record: dict[str, Any]) -> None:
        self.fail(self.conn.error_from_record(record))

    def on_data(self, payload: memoryview) -> None:
        raise ProtocolError(f"unexpected data frame for request {self.req_id}", self.conn.host)

    def fail(self, exc: ChopsticksError) -> None:
        raise NotImplementedError


class Request(Pending):
    """A pending operation with a future. Subclasses handle data frames and results."""

    def __init__(self, conn: Connection, req_id: int, output: OutputHandler | None = None) -> None:
        super().__init__(conn, req_id, output)
        self.future = RemoteFuture(conn.host, conn)
        self.future._on_cancel = self.cancel

    def on_result(self, value: object) -> None:
        _settle(self.future, value=value)

    def fail(self, exc: ChopsticksError) -> None:
        _settle(self.future, exc=exc)

    def cancel(self) -> None:
        """The future failed early (cancel, timeout): forget it and stop the remote work."""
        self.conn.cancel(self.req_id)
        self.abandon()

    def abandon(self) -> None:
        """Release what the request holds locally (a fetch's partial file)."""


class Answer(Pending):
    """A call whose caller reads the answer on its own thread (:meth:`Connection.call_here`).

    A flag and a lock stand in for a Future: its condition and callbacks cost more than all
    the rest of a small call. The lock is only waited for when another thread completes it
    (the connection died)."""

    def __init__(self, conn: Connection, req_id: int, output: OutputHandler | None = None) -> None:
        super().__init__(conn, req_id, output)
        self.settled = False
        self.value: object = None
        self.error: ChopsticksError | None = None
        self._done = threading.Lock()
        self._done.acquire()

    def on_result(self, value: object) -> None:
        self.value = value
        self._settle()

    def fail(self, exc: ChopsticksError) -> None:
        self.error = exc
        self._settle()

    def _settle(self) -> None:
        self.settled = True
        self._done.release()

    def wait(self, timeout: float | None) -> bool:
        """Whether it is settled, waiting up to ``timeout`` seconds (None: no limit)."""
        return self.settled or self._done.acquire(True, -1 if timeout is None else timeout)

    def outcome(self) -> object:
        if self.error is not None:
            raise self.error
        return self.value


class Connection:
    """Starts an agent through ``argv`` and speaks the protocol with it."""

    def __init__(
        self,
        host: str,
        argv: list[str],
        *,
        env: dict[str, str] | None = None,
        connect_timeout: float,
        keepalive: float | None,
        depth: int,
        output: OutputHandler,
        modserver: ModuleServer,
        explain_exit: ExitExplainer,
        compiled_agent: bytes | None = None,
    ) -> None:
        self.host = host
        self.argv = argv
        self.env = env
        self.connect_timeout = connect_timeout
        self.keepalive = keepalive
        self.depth = depth
        self.output = output
        self.modserver = modserver
        self.explain_exit = explain_exit
        self.compiled_agent = compiled_agent
        self.hello: concurrent.futures.Future[dict[str, Any]] = concurrent.futures.Future()
        self.remote: dict[str, Any] = {}
        self.proc: subprocess.Popen[bytes] | None = None
        self._ids = itertools.count(1)
        self._lock = threading.Lock()
        self._requests: dict[int, Pending] = {}
        self._wlock = threading.Lock()
        self._out: deque[bytes | memoryview] = deque()
        self._out_bytes = 0
        self._queued_total = 0  # bytes ever queued: with _out_bytes, tells what was written
        self._calls_sent = False  # see _call_frame
        self._lending = _vmsplice.AVAILABLE  # large pieces go by vmsplice (_write_lending)
        self._lent: deque[tuple[int, bytes]] = deque()  # (queued_total at its end, object)
        self._replies: deque[tuple[int, int]] = deque()  # (queued_total at its end, size)
        self._reply_bytes = 0
        self._writer_watched = False
        self._producers: deque[Producer] = deque()
        self._input = InputBuffer()
        self._read_lock = threading.Lock()  # held by whoever reads stdout: broker or a caller
        self._reader: int | None = None  # the thread that claimed stdout (claim_reader)
        self._parked_since: float | None = None  # released by a caller, not yet given back
        self._give_back_armed = False
        self._last_release = 0.0  # when a caller last parked stdout
        self._polls = _agent.PollPolicy()  # whether to poll before waiting (_spin)
        self._poll: select.poll | None = None
        self._stdout_eof = False
        self._synced = False
        self._noise = b""
        self._decoders = {
            k: codecs.getincrementaldecoder("utf-8")("replace") for k in ("stdout", "stderr")
        }
        self._stderr_tail: deque[str] = deque(maxlen=STDERR_TAIL_LINES)
        self._stderr_eof = False
        self._dead: ErrorFactory | None = None
        self._timers: list[TimerHandle] = []
        self._fds: dict[str, int] = {}

    # -- life cycle (caller's thread) -------------------------------------------------------------

    def start(self) -> None:
        """Spawn the process and send the agent; the handshake completes ``hello`` later."""
        try:
            self.proc = subprocess.Popen(
                self.argv,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                env=self.env,
                start_new_session=True,
                bufsize=0,
            )
        except OSError as exc:
            raise ConnectError(
                f"cannot run {self.argv[0]!r}: {exc.strerror or exc}", self.host
            ) from None
        assert self.proc.stdin and self.proc.stdout and self.proc.stderr
        self._fds = {
            "stdin": self.proc.stdin.fileno(),
            "stdout": self.proc.stdout.fileno(),
            "stderr": self.proc.stderr.fileno(),
        }
        for fd in self._fds.values():
            os.set_blocking(fd, False)
        for name in ("stdin", "stdout"):
            with contextlib.suppress(OSError):  # bigger pipes: fewer wake-ups for bulk data
                fcntl.fcntl(self._fds[name], F_SETPIPE_SZ, 1024 * 1024)
        config = {"depth": self.depth + 1, "host": self.host, "idle_timeout": self._idle_timeout()}
        self._queue_bytes(_bootstrap.first_bytes(config, self.compiled_agent))
        BROKER.call_soon(self._register)

    def _idle_timeout(self) -> float | None:
        # The agent exits when it hears nothing for this long: a cut link leaves no orphan.
        return None if not self.keepalive else self.keepalive * 6

    def close(self, wait: bool = True, timeout: float = 5.0) -> None:
        """End the agent: EOF on its stdin, then signals if it lingers. Idempotent."""
        self._kill_with(lambda: TunnelClosed("the tunnel was closed", self.host), signal_now=False)
        proc = self.proc
        if proc is None:
            return
        if not wait:
            self._reap_later()
            return
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self._signal(signal.SIGTERM)
            try:
                proc.wait(1.0)
            except subprocess.TimeoutExpired:
                self._signal(signal.SIGKILL)
                proc.wait()
        self._close_pipes()

    @property
    def alive(self) -> bool:
        return self._dead is None

    # -- requests (any thread) --------------------------------------------------------------------

    def submit(
        self, request_factory: Callable[[int], Request], kind: int, payload: bytes | list[bytes]
    ) -> RemoteFuture:
        """Register a request made by ``request_factory(req_id)`` and send its first frame."""
        if self._parked_since is not None:
            self._unpark()
        req_id = next(self._ids)
        request = request_factory(req_id)
        with self._lock:
            if self._dead is not None:
                request.fail(self._dead())
                return request.future
            self._requests[req_id] = request
        try:
            self.send(kind, req_id, payload)
        except ChopsticksError as exc:
            request.fail(exc)
        return request.future

    def call(self, call: PickledCall, output: OutputHandler | None = None) -> RemoteFuture:
        """Run a pickled call (see dumps_call) remotely."""
        return self.submit(lambda req_id: Request(self, req_id, output), *self._call_frame(call))

    def _call_frame(self, call: PickledCall) -> tuple[int, list[bytes]]:
        """The frame kind and payload pieces to send ``call`` in. The connection's first call,
        if plain, goes in the codec (Msg.CALL_CODEC): the agent then starts without importing
        _pickle (3-4 ms). Later ones are pickled, 20x faster to make and read than the codec."""
        first = not self._calls_sent
        self._calls_sent = True
        if first and call[2] is not None:
            with contextlib.suppress(_agent.CodecError):  # too large for the codec: pickled
                return Msg.CALL_CODEC, [_agent.encode(call[2])]
        return call[0], call[1]

    def call_here(
        self, call: PickledCall, timeout: float | None, output: OutputHandler | None = None
    ) -> Any:
        """Run a pickled call (see dumps_call) remotely and return its value, reading the
        answer on this thread (waiting for the thread that reads, if another one does). Raises
        like ``RemoteFuture.result``: CallTimeout (and the call is cancelled) after ``timeout``
        seconds, KeyboardInterrupt (cancelling it too), or the call's error."""
        if not self.claim_reader():
            return self.call(call, output).result(timeout)
        try:
            answer = Answer(self, next(self._ids), output)
            with self._lock:
                if self._dead is not None:
                    raise self._dead()
                self._requests[answer.req_id] = answer
            deadline = None if timeout is None else time.monotonic() + timeout
            try:
                # Everything is ready before the frame goes: once it is written, this thread
                # should block at once, and the agent then runs on this CPU, not another.
                with _DeferredInterrupt() as interrupts:
                    kind, pieces = self._call_frame(call)
                    self._queue_bytes(*_frame(kind, answer.req_id, pieces, not self._lending))
                    self._read_while_waiting(answer, deadline, interrupts)
                settled = answer.wait(_time_left(deadline))
            except BaseException:
                self.cancel(answer.req_id)  # unsent, or interrupted: nothing will answer
                raise
            if settled or not self.cancel(answer.req_id):  # else: answered meanwhile
                answer.wait(None)
                return answer.outcome()
            raise CallTimeout(f"no answer within {timeout:g} s; cancelled", self.host)
        finally:
            self.release_reader()

    def forget(self, req_id: int) -> bool:
        with self._lock:
            return self._requests.pop(req_id, None) is not None

    def cancel(self, req_id: int) -> bool:
        """Forget a request and stop its remote work; False if it was already answered."""
        if not self.forget(req_id):
            return False
        with contextlib.suppress(ChopsticksError):
            self.send(Msg.CANCEL, req_id)
        return True

    def claim_reader(self) -> bool:
        """Take this connection's stdout from the broker for the calling thread, if free.

        A caller about to wait for its answer reads it itself rather than have the broker read
        it and wake the caller: two thread wake-ups fewer per round trip, the largest part of a
        small call's cost. Claim before sending, or the broker may read the answer first.
        """
        if BROKER.in_broker_thread() or not self._read_lock.acquire(blocking=False):
            return False
        with self._wlock:
            fd = self._fds.get("stdout")
            if fd is None or self._stdout_eof or self._dead is not None:
                self._read_lock.release()
                return False
            self._reader = threading.get_ident()
            if self._parked_since is None:
                BROKER.pause(fd)
            else:
                self._parked_since = None  # the broker was not watching it: nothing to undo
        return True

    def release_reader(self) -> None:
        """Give stdout back (after :meth:`claim_reader`): to the broker at once if other
        requests await answers, else to the next caller, and to the broker only once no
        caller has claimed it for READER_GRACE seconds (_give_back)."""
        with self._wlock:  # _kill_with sets _dead under it: never watch a dead connection's fd
            self._reader = None
            if self._dead is None:
                if self._requests:  # others await answers: the broker reads them from now
                    self._watch_stdout_locked()
                elif not self._stdout_eof:
                    self._parked_since = self._last_release = time.monotonic()
                    if not self._give_back_armed:
                        self._give_back_armed = True
                        BROKER.call_later(READER_GRACE, self._give_back)
                if self._out and not self._writer_watched:  # what this thread left unwritten
                    self._writer_watched = True
                    BROKER.call_soon(self._watch_writer)
        self._read_lock.release()

    def _give_back(self) -> None:
        """Broker thread: watch stdout again once callers have left it for READER_GRACE. While
        callers keep taking it, it stays armed: arming it again from the next caller would
        wake this thread (a GIL hand-off and two context switches) every few calls."""
        with self._wlock:
            since = self._parked_since
            now = time.monotonic()
            if since is None and self._reader is not None:
                since = self._last_release  # a caller has it: look again if calls keep coming
            left = 0.0 if since is None else since + READER_GRACE - now
            if left > 0 and self._dead is None:
                BROKER.call_later(left, self._give_back)
                return
            self._give_back_armed = False
            if self._parked_since is not None:
                self._watch_stdout_locked()

    def _unpark(self) -> None:
        """Let the broker read at once (a future's answer must not wait for _give_back)."""
        with self._wlock:
            if self._parked_since is not None:
                self._watch_stdout_locked()

    def _watch_stdout_locked(self) -> None:
        """Under _wlock: the broker reads stdout (again), unless the connection has ended."""
        self._parked_since = None
        if self._dead is None and not self._stdout_eof:
            BROKER.watch(self._fds["stdout"], False, self._on_stdout)

    def read_until(self, future: RemoteFuture | Answer, timeout: float | None) -> float | None:
        """Read the agent's output on this thread until ``future`` is done or ``timeout`` passes,
        handling every frame as the broker would; return the time left. If another thread reads
        this connection already, return at once: the caller just waits."""
        claimed_before = self._reader == threading.get_ident()
        if not claimed_before and not self.claim_reader():
            return timeout
        deadline = None if timeout is None else time.monotonic() + timeout
        try:
            with _DeferredInterrupt() as interrupts:
                self._read_while_waiting(future, deadline, interrupts)
        finally:
            if not claimed_before:
                self.release_reader()
        return _time_left(deadline)

    def _read_while_waiting(
        self,
        future: RemoteFuture | Answer,
        deadline: float | None,
        interrupts: _DeferredInterrupt,
    ) -> None:
        """The reading loop. The thread also writes what it left queued (a frame larger than
        the pipe's room), as the broker would: handing that to the broker costs two thread
        wake-ups per call."""
        poll = self._poll
        if poll is None:
            poll = self._poll = select.poll()  # not select(): no FD_SETSIZE limit
            poll.register(self._fds["stdout"], select.POLLIN)
        stdin = self._fds.get("stdin", -1)  # kept: _kill_with may drop it from _fds meanwhile
        writing = False
        spin = self._polls.ready()
        while not future.settled and not self._stdout_eof and self._dead is None:
            if interrupts.pending:
                interrupts.deliver()
            if spin and not self._out:
                spin = False
                if self._spin(future, interrupts):
                    continue
            if writing != (bool(self._out) and not self._writer_watched and stdin >= 0):
                writing = not writing
                if writing:
                    poll.register(stdin, select.POLLOUT)
                else:
                    poll.unregister(stdin)
            wait = -1 if deadline is None else max(0, int((deadline - time.monotonic()) * 1000))
            interrupts.waiting = True
            try:
                ready = poll.poll(wait)
            finally:
                interrupts.waiting = False
            if not ready:
                if wait == 0:
                    break
                continue
            if writing:
                with self._wlock:
                    if not self._writer_watched:
                        self._flush_locked()
            self._read_stdout()
        if writing:
            poll.unregister(stdin)

    def _spin(self, future: RemoteFuture | Answer, interrupts: _DeferredInterrupt) -> bool:
        """Read without sleeping for up to SPIN seconds; whether the answer came meanwhile."""
        end = time.perf_counter() + _agent.SPIN
        while True:
            self._read_stdout()
            if future.settled or self._stdout_eof or self._dead is not None:
                self._polls.answered()
                return True
            if interrupts.pending:
                interrupts.deliver()
            if time.perf_counter() > end:
                self._polls.in_vain()
                return False

    def add_producer(self, producer: Producer) -> None:
        def add() -> None:
            if self._dead is not None:
                producer.close()
                return
            self._producers.append(producer)
            self._watch_writer()

        BROKER.call_soon(add)

    def send(self, kind: int, req_id: int, payload: bytes | list[bytes] = b"") -> None:
        """Send one frame; a payload given as pieces goes out as they are (``writev``)."""
        if isinstance(payload, bytes):
            self._queue_bytes(HEADER.pack(kind, req_id, len(payload)), payload)
        else:
            self._queue_bytes(*_frame(kind, req_id, payload, not self._lending))

    def _queue_bytes(self, *chunks: bytes) -> None:
        """Write ``chunks`` now as far as the pipe takes them; queue the rest for the broker, or
        for this thread if it reads this connection (it writes while it waits)."""
        with self._wlock:
            if self._dead is not None:
                raise self._dead()
            size = 0
            for chunk in chunks:
                if chunk:  # writev would write 0 bytes of it, and _flush_locked wait for more
                    self._out.append(chunk)
                    size += len(chunk)
            self._out_bytes += size
            self._queued_total += size
            if self._writer_watched:
                return
            self._flush_locked()
            if self._out and self._reader != threading.get_ident():
                self._writer_watched = True
                BROKER.call_soon(self._watch_writer)

    def _flush_locked(self) -> None:
        fd = self._fds.get("stdin", -1)
        out = self._out
        if self._lent:
            self._release_lent_locked()
        while out and fd >= 0:
            try:
                if self._out_bytes >= LEND_FROM and self._lending:  # the cheap test first
                    written = self._write_lending(fd)
                else:
                    several = out if len(out) <= 64 else list(itertools.islice(out, 64))
                    written = os.writev(fd, several)
            except BlockingIOError:
                return
            except OSError:  # the agent is gone; the reader will notice EOF and say why
                written = self._out_bytes
            if written == self._out_bytes:
                out.clear()  # the usual case: all of it
                self._out_bytes = 0
                return
            self._out_bytes -= written
            while written:
                first = self._out[0]
                if len(first) <= written:
                    written -= len(first)
                    self._out.popleft()
                else:
                    self._out[0] = memoryview(first)[written:]
                    written = 0

    def _write_lending(self, fd: int) -> int:
        """Write what comes before the first large bytes object in _out (or what is left of
        one), or lend the pipe that object's pages if it comes first (see _vmsplice)."""
        out = self._out
        index = next((i for i, piece in enumerate(out) if _lendable(piece)), len(out))
        if index:
            return os.writev(fd, list(itertools.islice(out, min(index, 64))))
        data = _base(out[0])
        assert type(data) is bytes
        try:
            lent = _vmsplice.vmsplice(fd, data, len(data) - len(out[0]))
        except OSError as exc:
            if isinstance(exc, BlockingIOError) or exc.errno == errno.EPIPE:
                raise  # a full pipe, or no agent: as for a write
            self._lending = False  # not a pipe, or a sandbox that forbids it: copy instead
            return 0
        # Kept alive until the agent has read it: the pipe reads from its memory.
        self._lent.append((self._queued_total - self._out_bytes + lent, data))
        return lent

    def _release_lent_locked(self) -> None:
        """Under _wlock: drop what vmsplice lent the pipe that the agent has read."""
        fd = self._fds.get("stdin", -1)
        if fd < 0 or self._dead is not None:
            return  # until the agent has exited: _close_pipes
        try:
            read = self._queued_total - self._out_bytes - _vmsplice.unread(fd)
        except OSError:
            return
        lent = self._lent
        while lent and lent[0][0] <= read:
            lent.popleft()

    # -- broker thread ---------------------------------------------------------------------------

    def _register(self) -> None:
        if self._dead is not None:
            return
        with self._wlock:
            if self._reader is None and self._parked_since is None:  # else _give_back will
                self._watch_stdout_locked()
        BROKER.watch(self._fds["stderr"], False, self._on_stderr)
        self._timers.append(BROKER.call_later(self.connect_timeout, self._on_connect_timeout))

    def _watch_writer(self) -> None:
        if self._dead is None and "stdin" in self._fds:
            self._writer_watched = True
            BROKER.watch(self._fds["stdin"], True, self._on_writable)

    def _on_writable(self) -> None:
        while True:
            with self._wlock:
                self._flush_locked()
                if self._out_bytes >= LOW_WATER or not self._producers:
                    if not self._out and not self._producers and "stdin" in self._fds:
                        BROKER.unwatch(self._fds["stdin"])
                        self._writer_watched = False
                    return
            if not self._producers[0].produce():
                self._producers.popleft().close()

    def _on_stdout(self) -> None:
        if not self._read_lock.acquire(blocking=False):
            with self._wlock:
                fd = self._fds.get("stdout")
                if self._reader is not None and fd is not None:
                    BROKER.unwatch(fd)  # claimed after our select; release_reader rewatches it
            return
        try:
            self._read_stdout()
        finally:
            self._read_lock.release()

    def _read_stdout(self) -> None:
        fd = self._fds.get("stdout")
        if fd is None or self._stdout_eof:
            return
        try:
            count = self._input.read_from(fd)
        except BlockingIOError:
            return
        except OSError:
            count = 0
        if not count:
            self._on_eof()
            return
        try:
            if not self._synced and not self._find_magic():
                return
            self._read_frames()
        except ChopsticksError as exc:
            self._die_of_protocol_error(exc.message)
        except _agent.CodecError as exc:
            self._die_of_protocol_error(f"undecodable message: {exc}")

    def _die_of_protocol_error(self, message: str) -> None:
        self._die(lambda: ProtocolError(message, self.host))

    def _find_magic(self) -> bool:
        buf = self._input
        at = buf.data.find(MAGIC, buf.start, buf.end)
        if at < 0:
            if len(buf) > MAX_NOISE:
                raise ProtocolError(
                    "no chopsticks_nb handshake in the first 64 KiB of output", self.host
                )
            return False
        self._noise = bytes(buf.data[buf.start : at])
        if self._noise:
            self._deliver_output("stdout", self._noise, None)
        buf.start = at + len(MAGIC)
        self._synced = True
        return True

    def _read_frames(self) -> None:
        buf = self._input
        while buf.end - buf.start >= _HEADER_SIZE and self._dead is None:
            kind, req_id, length = HEADER.unpack_from(buf.data, buf.start)
            limit = MAX_DATA_FRAME if kind in _DATA_KINDS else MAX_FRAME
            if length > limit:
                raise ProtocolError(
                    f"frame of {length} bytes (kind {kind}) exceeds the {limit}-byte limit",
                    self.host,
                )
            end = _HEADER_SIZE + length
            if buf.end - buf.start < end:
                if end > len(buf.data) - buf.start:
                    # Grow with the bytes actually received (doubling), not to the length the
                    # header claims: a header claiming 500 MiB followed by nothing must not
                    # cost 500 MiB here.
                    buf.reserve(min(end, max(READ_SIZE, 2 * len(buf))))
                return
            begin = buf.start + _HEADER_SIZE
            buf.start += end
            with memoryview(buf.data)[begin : begin + length] as payload:
                self._dispatch(kind, req_id, payload)

    def _dispatch(self, kind: int, req_id: int, payload: memoryview) -> None:
        if kind in (_RESULT, _ERROR):
            # Check the answer before taking its request out of the table: a malformed answer
            # kills the connection, and only requests still in the table are failed by _die
            # (a request popped first would wait for ever).
            value = _agent.decode(payload)
            record = _error_record(value, self.host) if kind == _ERROR else None
            if self._lent:  # the agent has read the request: let its arguments go
                with self._wlock:
                    self._release_lent_locked()
            with self._lock:
                request = self._requests.pop(req_id, None)
            if request is None:
                return  # cancelled or timed out meanwhile
            try:
                if record is None:
                    request.on_result(value)
                else:
                    request.on_error(record)
            except ChopsticksError as exc:  # a transfer result of the wrong shape
                request.fail(ProtocolError(exc.message, self.host))
                raise
        elif kind in (_STDOUT, _STDERR):
            self._deliver_output("stdout" if kind == _STDOUT else "stderr", payload, req_id)
        elif kind == Msg.FETCH_DATA:
            with self._lock:
                request = self._requests.get(req_id)
            if request is not None:
                request.on_data(payload)
        elif kind == Msg.IMPORT:
            self._reply(req_id, self.modserver.modules(_agent.decode(payload)))
        elif kind == Msg.GET_DATA:
            self._reply(req_id, self.modserver.data(_agent.decode(payload)))
        elif kind == Msg.HELLO and not self.hello.done():
            self._on_hello(_agent.decode(payload))
        else:
            raise ProtocolError(f"unexpected message kind {kind}", self.host)

    def _reply(self, req_id: int, value: object) -> None:
        """Answer an agent's request, unless it leaves too many answers unread (a flood)."""
        payload = _agent.encode(value)
        with self._wlock:
            written = self._queued_total - self._out_bytes
            while self._replies and self._replies[0][0] <= written:
                self._reply_bytes -= self._replies.popleft()[1]
            if self._reply_bytes + len(payload) > MAX_UNREAD_REPLIES:
                raise ProtocolError(
                    f"the agent left {self._reply_bytes} bytes of answers unread and asks for "
                    "more: it does not read its input",
                    self.host,
                )
        self.send(Msg.REPLY, req_id, payload)
        with self._wlock:
            self._replies.append((self._queued_total, len(payload)))
            self._reply_bytes += len(payload)

    def _on_hello(self, info: object) -> None:
        if not isinstance(info, dict) or info.get("protocol") != _agent.PROTOCOL_VERSION:
            raise ProtocolError(f"handshake with an unknown protocol: {info!r:.200}", self.host)
        self.remote = info
        for timer in self._timers:
            timer.cancel()
        self._timers = []
        if self.keepalive:
            self._timers.append(BROKER.call_later(self.keepalive, self._ping))
        _settle(self.hello, value=info)

    def _ping(self) -> None:
        if self._dead is None and self.keepalive:
            with contextlib.suppress(ChopsticksError):
                self.send(Msg.PING, 0)
            self._timers = [BROKER.call_later(self.keepalive, self._ping)]

    def _deliver_output(self, stream: str, data: bytes | memoryview, req_id: int | None) -> None:
        text = self._decoders[stream].decode(data)
        if not text:
            return
        handler = self._output_handler(req_id)
        try:
            handler(stream, text)
        except Exception:
            # A failing handler (user code, a display widget) must not abandon the frames
            # after this one in the buffer: the call's RESULT may be among them, and nothing
            # would read it until the agent wrote again (it may never), so the call would hang.
            log.exception("chopsticks_nb: the output handler of %s failed", self.host)

    def _output_handler(self, req_id: int | None) -> OutputHandler:
        with self._lock:
            request = self._requests.get(req_id) if req_id else None
            if request is None and req_id is None:
                # Output outside the agent's relay (a child process): the oldest call owns it.
                request = next((r for r in self._requests.values() if r.output is not None), None)
        if request is not None and request.output is not None:
            return request.output
        return self.output

    def _on_stderr(self) -> None:
        fd = self._fds.get("stderr")
        if fd is None:
            return
        try:
            data = os.read(fd, READ_SIZE)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data:
            BROKER.unwatch(fd)
            self._stderr_eof = True
            return
        text = data.decode("utf-8", "replace")
        self._stderr_tail.extend(line for line in text.splitlines() if line.strip())
        self._deliver_output("stderr", data, None)

    def _on_connect_timeout(self) -> None:
        if not self.hello.done():
            tail = self.stderr_tail()
            message = f"no answer from the agent within {self.connect_timeout:g} s"
            self._die(
                lambda: ConnectTimeout(message + (f"; stderr: {tail}" if tail else ""), self.host)
            )

    def _on_eof(self) -> None:
        """The agent's stdout closed: wait briefly for its exit status and stderr, then report."""
        self._stdout_eof = True
        BROKER.unwatch(self._fds["stdout"])
        if self._dead is not None:
            return
        deadline = [40]  # polls, 25 ms apart

        def check() -> None:
            assert self.proc is not None
            deadline[0] -= 1
            if (self.proc.poll() is None or not self._stderr_eof) and deadline[0] > 0:
                self._timers.append(BROKER.call_later(0.025, check))
                return
            returncode = self.proc.poll()
            if not self.hello.done():
                message = self.explain_exit(returncode, self.stderr_tail())
                self._die(lambda: ConnectError(message, self.host))
            else:
                tail = self.stderr_tail()
                message = f"the agent exited (status {returncode})" + (
                    f"; stderr: {tail}" if tail else ""
                )
                if len(self._input):
                    # The stream stopped inside a frame: a truncated message is outside the
                    # protocol, whatever the reason the sender stopped.
                    pending = len(self._input)
                    message = f"the stream ended inside a message ({pending} bytes); {message}"
                    self._die(lambda: ProtocolError(message, self.host))
                else:
                    self._die(lambda: ConnectionLost(message, self.host))

        check()

    def stderr_tail(self) -> str:
        return " | ".join(self._stderr_tail)[-2000:]

    def _die(self, factory: ErrorFactory) -> None:
        """End the connection from the broker thread: kill the agent, fail every request."""
        self._kill_with(factory, signal_now=True)
        self._reap_later()

    def _kill_with(self, factory: ErrorFactory, signal_now: bool) -> None:
        with self._wlock:
            if self._dead is not None:
                return
            self._dead = factory
            self._out.clear()
            self._out_bytes = 0
        BROKER.run_and_wait(self._unwatch_all)
        with self._lock:
            requests = list(self._requests.values())
            self._requests.clear()
        for request in requests:
            request.fail(factory())
        _settle(self.hello, exc=factory())
        if self.proc is not None:
            if self.proc.stdin is not None:
                with contextlib.suppress(OSError):
                    self.proc.stdin.close()
                self.proc.stdin = None
            self._fds.pop("stdin", None)
            if signal_now:
                self._signal(signal.SIGKILL)

    def _unwatch_all(self) -> None:
        for timer in self._timers:
            timer.cancel()
        self._timers = []
        while self._producers:
            self._producers.popleft().close()
        for fd in self._fds.values():
            BROKER.unwatch(fd)

    def _signal(self, signum: int) -> None:
        assert self.proc is not None
        if self.proc.poll() is None:
            with contextlib.suppress(OSError):
                os.killpg(self.proc.pid, signum)

    def _reap_later(self, polls: int = 200) -> None:
        """Collect the exit status without blocking (no zombie), killing the agent if it lingers."""
        assert self.proc is not None
        if self.proc.poll() is not None:
            BROKER.call_soon(self._close_pipes)
            return
        if polls == 40:
            self._signal(signal.SIGTERM)
        elif polls == 0:
            self._signal(signal.SIGKILL)
        BROKER.call_later(0.05, lambda: self._reap_later(max(polls - 1, 0)))

    def _close_pipes(self) -> None:
        BROKER.run_and_wait(self._unwatch_all)
        assert self.proc is not None
        for name in ("stdout", "stderr"):
            stream = getattr(self.proc, name)
            if stream is not None:
                stream.close()
                setattr(self.proc, name, None)
        self._fds.clear()
        with self._wlock:
            self._lent.clear()  # the agent has exited: no one reads the pipe any more

    # -- errors ---------------------------------------------------------------------------------

    def error_from_record(self, record: dict[str, Any]) -> ChopsticksError:
        kind = record["kind"]
        if kind == "cancelled":
            return CallCancelled("cancelled", self.host)
        if kind == "encode":
            return SerializationError(f"the result cannot be sent back: {record['msg']}", self.host)
        return RemoteException(record["msg"], self.host, record["type"], record["tb"])


def _error_record(value: object, host: str) -> dict[str, Any]:
    """Check that an ERROR payload has the fields we use, with the types we expect."""
    if not isinstance(value, dict):
        raise ProtocolError(f"malformed error record: {value!r:.200}", host)
    record = {
        "kind": value.get("kind", "exception"),
        "type": value.get("type", "Exception"),
        "msg": value.get("msg", ""),
        "tb": value.get("tb"),
    }
    for key in ("kind", "type", "msg"):
        if not isinstance(record[key], str):
            raise ProtocolError(f"malformed error record field {key!r}", host)
    if record["tb"] is not None and not isinstance(record["tb"], str):
        raise ProtocolError("malformed error record field 'tb'", host)
    return record
