"""One live agent: the coordinator of its process, its pipes and the operations in flight.

The parts, each in a module of its own: the agent's process (_process), the frames going out
(_writer) and coming in (_reader), the operations awaiting answers (_requests), and whose turn
it is to read the answers: the broker thread's or a waiting caller's (_caller_reads). This
class starts and ends them together, handles the agent's messages (the protocol table in
_agent names a method here for each), and waits for answers: :meth:`Connection.wait` is the
one way to wait, used by synchronous calls and by futures alike. The controller never
unpickles what the agent sends: its payloads go through the closed codec.
"""

from __future__ import annotations

import codecs
import concurrent.futures
import contextlib
import math
import signal
import threading
import time
from typing import Any, Callable, Optional

from . import _agent, _bootstrap, _call_frames
from ._agent import AGENT, Msg
from ._broker import BROKER, TimerHandle, log
from ._call_frames import PickledCall
from ._caller_reads import POLL, DeferredInterrupt, StdoutTurns
from ._modserver import ModuleServer
from ._process import AgentProcess
from ._reader import FrameReader
from ._requests import Operation, RemoteFuture, RequestTable
from ._writer import ErrorFactory, FrameWriter
from .errors import (
    CallCancelled,
    CallTimeout,
    ChopsticksError,
    ConnectError,
    ConnectionLost,
    ConnectTimeout,
    ProtocolError,
    TunnelClosed,
)
from .output import OutputHandler

__all__ = ["Connection", "ExitExplainer"]

#: Explains why the agent's command exited: (status, stderr tail, after the handshake) -> text.
ExitExplainer = Callable[[Optional[int], str, bool], str]

#: After stdout's EOF, how long to wait for the exit status and the rest of stderr (25 ms polls).
EOF_POLLS = 40
#: stderr held back until the handshake (bytes): if the agent does not start, the error says
#: what the command printed (ssh's "Connection refused"), and it is not shown twice.
EARLY_STDERR = 64 * 1024

#: The agent's requests for work here (a module, a resource file) that the broker thread
#: answers per turn for one connection: the rest wait in its buffer, unread frames behind them
#: in the pipe, while the broker serves the other connections. An answer costs one request
#: more per REQUEST_BYTES it holds. An honest agent has one request out per thread importing.
REQUESTS_PER_TURN = 8
REQUEST_BYTES = 1024 * 1024
#: The frames that are such requests.
REQUESTS = (Msg.IMPORT, Msg.GET_DATA)


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
        depth_limit: int,
        output: OutputHandler,
        modserver: ModuleServer,
        explain_exit: ExitExplainer,
        compiled_agent: bytes | None = None,
    ) -> None:
        self.host = host
        self.connect_timeout = connect_timeout
        self.keepalive = keepalive
        self.depth = depth
        self.depth_limit = depth_limit
        self.output = output
        self.modserver = modserver
        self.explain_exit = explain_exit
        self.compiled_agent = compiled_agent
        self.hello: concurrent.futures.Future[dict[str, Any]] = concurrent.futures.Future()
        self.remote: dict[str, Any] = {}
        self.process = AgentProcess(host, argv, env)
        self.requests = RequestTable()
        self.writer = FrameWriter(self._caller_writes)
        self.turns = StdoutTurns(self)
        self.reader = FrameReader(host, _agent.handlers(self, AGENT), self._on_noise, REQUESTS)
        #: Complete frames wait in the reader for a later turn (see REQUESTS_PER_TURN).
        self.backlog = False
        self._backlog_armed = False
        self._ended: ErrorFactory | None = None
        self._first_call = True
        #: What calls named as their modules (PickledCall), each pushed once (_push_modules).
        self._modules_seen: set[str | frozenset[str]] = set()
        self._stdout_eof = False
        self._timers: list[TimerHandle] = []
        self._decoders = {
            k: codecs.getincrementaldecoder("utf-8")("replace") for k in ("stdout", "stderr")
        }
        self._early_stderr: list[bytes] | None = []  # broker thread only
        self.hello.add_done_callback(lambda _: BROKER.call_soon(self._release_early_stderr))

    @property
    def proc(self) -> Any:
        """The agent's ``subprocess.Popen``, once started."""
        return self.process.proc

    @property
    def alive(self) -> bool:
        return self._ended is None

    # -- life cycle ------------------------------------------------------------------------------

    def start(self) -> None:
        """Spawn the process and send the agent; the handshake completes ``hello`` later."""
        self.process.start()
        self.writer.fd = self.process.stdin
        self.turns.fd = self.process.stdout
        config = {
            "depth": self.depth + 1,
            "depth_limit": self.depth_limit,
            "host": self.host,
            "idle_timeout": self._idle_timeout(),
            "poll": POLL,
        }
        self.writer.queue(_bootstrap.first_bytes(config, self.compiled_agent))
        BROKER.call_soon(self._register)

    def _idle_timeout(self) -> float | None:
        # The agent exits when it hears nothing for this long: a cut link leaves no orphan.
        return None if not self.keepalive else self.keepalive * 6

    def _register(self) -> None:
        if self._ended is not None:
            return
        self.turns.begin()
        BROKER.watch(self.process.stderr, False, self._on_stderr)
        self._timers.append(BROKER.call_later(self.connect_timeout, self._on_connect_timeout))

    def close(self, wait: bool = True, timeout: float = 5.0) -> None:
        """End the agent: EOF on its stdin, then signals if it lingers. Idempotent."""
        self._end(lambda: TunnelClosed("the tunnel was closed", self.host), kill=False)
        if self.process.proc is None:
            return
        if not wait:
            self.process.reap_later(self._close_pipes)
            return
        self.process.wait(timeout)
        self._close_pipes()

    def _die(self, error: ErrorFactory) -> None:
        """End the connection from the thread reading it: kill the agent, fail every operation."""
        self._end(error, kill=True)
        self.process.reap_later(self._close_pipes)

    def _die_of_protocol_error(self, message: str) -> None:
        self._die(lambda: ProtocolError(message, self.host))

    def _end(self, error: ErrorFactory, kill: bool) -> None:
        if not self.writer.end(error):
            return  # ended already
        self._ended = error
        self.reader.stopped = True
        self.backlog = False
        self.turns.close()
        BROKER.run_and_wait(self._unwatch_all)
        for operation in self.requests.end(error):
            operation.fail(error())
        with contextlib.suppress(concurrent.futures.InvalidStateError):
            self.hello.set_exception(error())
        if self.process.proc is not None:
            self.process.end_input()
            if kill:
                self.process.signal(signal.SIGKILL)

    def _unwatch_all(self) -> None:
        for timer in self._timers:
            timer.cancel()
        self._timers = []
        self.writer.close_producers()
        for fd in self.process.fds:
            BROKER.unwatch(fd)

    def _close_pipes(self) -> None:
        BROKER.run_and_wait(self._unwatch_all)
        self.process.close_output_pipes()
        self.writer.forget_lent()

    # -- operations (any thread) -------------------------------------------------------------------

    def call(
        self, call: PickledCall, timeout: float | None, output: OutputHandler | None = None
    ) -> Any:
        """Run a pickled call remotely and return its value, reading the answer on this thread
        if it can. Raises as :meth:`wait` does."""
        return self.run(Operation(self.host, output), *self._call_frame(call), timeout=timeout)

    def run(
        self,
        operation: Operation,
        kind: int,
        payload: bytes | list[bytes],
        *,
        timeout: float | None,
    ) -> Any:
        """Send ``operation``'s first frame and wait for its answer as :meth:`wait` does,
        reading it on this thread if it can."""
        claimed = self.turns.claim()  # before sending: else the broker may read the answer first
        try:
            with DeferredInterrupt() as interrupts:
                try:
                    self._send_request(operation, kind, payload)
                except BaseException:
                    self.abandon(operation, CallCancelled("interrupted", self.host))
                    raise
                return self._wait(operation, timeout, interrupts)
        finally:
            if claimed:
                self.turns.release()

    def submit_call(self, call: PickledCall, output: OutputHandler | None = None) -> RemoteFuture:
        """Start a pickled call remotely; its future."""
        return self.submit(Operation(self.host, output), *self._call_frame(call))

    def submit(self, operation: Operation, kind: int, payload: bytes | list[bytes]) -> RemoteFuture:
        """Send ``operation``'s first frame; the future of its answer."""
        operation.future = RemoteFuture(
            self.host,
            wait=lambda timeout: self.wait(operation, timeout),
            cancel=lambda: self.abandon(operation, CallCancelled("cancelled", self.host)),
        )
        self.turns.return_to_broker_now()  # nobody may read this answer but the broker
        self._send_request(operation, kind, payload)
        return operation.future

    def wait(self, operation: Operation, timeout: float | None) -> Any:
        """Wait for ``operation``'s answer and return its value (or raise its error), reading
        it on this thread if no other thread reads this connection. After ``timeout`` seconds
        (None: no limit) the operation is cancelled and CallTimeout raised; on Ctrl-C it is
        cancelled and KeyboardInterrupt raised."""
        claimed = self.turns.reader != threading.get_ident() and self.turns.claim()
        try:
            with DeferredInterrupt() as interrupts:
                return self._wait(operation, timeout, interrupts)
        finally:
            if claimed:
                self.turns.release()

    def _wait(
        self, operation: Operation, timeout: float | None, interrupts: DeferredInterrupt
    ) -> Any:
        deadline = None if timeout is None else time.monotonic() + timeout
        try:
            if not operation.done and self.turns.reader == threading.get_ident():
                self.turns.read_until(operation, deadline, interrupts)
            if not operation.done:
                with interrupts.waiting():
                    left = None if deadline is None else max(0.0, deadline - time.monotonic())
                    if not operation.wait(left):
                        message = f"no answer within {timeout:g} s; cancelled"
                        self.abandon(operation, CallTimeout(message, self.host))
                        operation.wait(None)  # answered meanwhile, if not abandoned
        except BaseException:
            self.abandon(operation, CallCancelled("interrupted", self.host))
            raise
        if operation.error is not None:
            raise operation.error
        return operation.value

    def _call_frame(self, call: PickledCall) -> tuple[int, list[bytes]]:
        if call[3] not in self._modules_seen:  # one lookup per call: most name modules seen
            self._push_modules(call[3])
        if self._first_call:
            self._first_call = False
            return _call_frames.first_frame(call)
        return call[0], call[1]

    def _push_modules(self, modules: str | frozenset[str]) -> None:
        """Send the user's modules among those a call names (see PickledCall) that the agent
        has not got (see ModuleServer.push), before the call that imports them."""
        self._modules_seen.add(modules)
        if not _call_frames.PUSH_MODULES:
            return
        records = []
        for name in (modules,) if isinstance(modules, str) else modules:
            records += self.modserver.push(name)
        if records:
            with contextlib.suppress(ChopsticksError):  # the call's own frame reports the end
                self.writer.send(Msg.MODULES, 0, _agent.encode(records))

    def _send_request(self, operation: Operation, kind: int, payload: bytes | list[bytes]) -> None:
        self.requests.add(operation)
        if operation.done:
            return  # the connection has ended
        try:
            self.writer.send(kind, operation.req_id, payload)
        except ChopsticksError as exc:
            self.requests.take(operation.req_id)
            operation.fail(exc)
            return
        operation.on_sent(self)

    def abandon(self, operation: Operation, error: ChopsticksError) -> bool:
        """Fail ``operation`` with ``error`` and stop its remote work, unless it is answered;
        True if it was abandoned."""
        if self.requests.take(operation.req_id) is None:
            return False
        operation.fail(error)
        operation.discard()
        with contextlib.suppress(ChopsticksError):
            self.writer.send(Msg.CANCEL, operation.req_id)
        return True

    def _caller_writes(self) -> bool:
        return self.turns.mine()

    # -- reading (the broker thread, or a caller that claimed stdout) ----------------------------

    def read_stdout(self, on_broker: bool = False) -> None:
        """Read what stdout holds and handle the frames; end the connection on anything
        outside the protocol. The broker thread handles only REQUESTS_PER_TURN requests a
        call: frames left (``backlog``) are handled before anything more is read."""
        fd = self.process.stdout
        if fd < 0 or self._stdout_eof:
            return
        if self.backlog and self._backlog_armed and on_broker:
            return  # the pipe is readable, but this connection's next turn is _handle_backlog
        if not self.backlog:
            try:
                count = self.reader.buffer.read_from(fd)
            except BlockingIOError:
                return
            except OSError:
                count = 0
            if not count:
                self._on_eof()
                return
        self.reader.budget = REQUESTS_PER_TURN if on_broker else math.inf
        try:
            self.backlog = self.reader.handle_frames()
            if self.backlog and on_broker and not self._backlog_armed:
                self._backlog_armed = True
                BROKER.call_soon(self._handle_backlog)
        except ChopsticksError as exc:
            self._die_of_protocol_error(exc.message)
        except _agent.ShapeError as exc:
            self._die_of_protocol_error(str(exc))
        except _agent.CodecError as exc:
            self._die_of_protocol_error(f"undecodable message: {exc}")
        except Exception as exc:  # a bug here or a value no check foresaw: this tunnel only
            log.exception("chopsticks_nb: reading from %s failed", self.host)
            self._die_of_protocol_error(f"unexpected {type(exc).__name__} reading a message")

    # -- the agent's messages (named in the protocol table, _agent.Msg) ---------------------------

    def on_hello(self, req_id: int, info: dict[str, Any]) -> None:
        if self.hello.done():
            raise ProtocolError("a second handshake", self.host)
        self.remote = info
        for timer in self._timers:
            timer.cancel()
        self._timers = []
        if self.keepalive:
            self._timers.append(BROKER.call_later(self.keepalive, self._ping))
        with contextlib.suppress(concurrent.futures.InvalidStateError):
            self.hello.set_result(info)

    # An answer (checked already: a malformed one has ended the connection before its operation
    # leaves the table, so that the end fails it) completes its operation, unless abandoned
    # meanwhile. Whatever the operation's handler raises, the operation completes.

    def on_result(self, req_id: int, value: object) -> None:
        if self.writer.lender.lent:  # the agent has read the request: let its arguments go
            self.writer.release_lent()
        operation = self.requests.take(req_id)
        if operation is not None:
            try:
                operation.on_result(value)
            except Exception as exc:  # a transfer's result of the wrong shape, say
                self._failed_handling(operation, exc)

    def on_error(self, req_id: int, record: dict[str, Any]) -> None:
        operation = self.requests.take(req_id)
        if operation is not None:
            try:
                operation.on_error(record)
            except Exception as exc:
                self._failed_handling(operation, exc)

    def _failed_handling(self, operation: Operation, exc: Exception) -> None:
        message = exc.message if isinstance(exc, ChopsticksError) else str(exc)
        operation.fail(ProtocolError(message, self.host))
        raise exc  # the reader ends the connection

    def on_stdout(self, req_id: int, data: memoryview) -> None:
        self._deliver_output("stdout", data, req_id)

    def on_stderr(self, req_id: int, data: memoryview) -> None:
        self._deliver_output("stderr", data, req_id)

    def on_fetch_data(self, req_id: int, data: memoryview) -> None:
        operation = self.requests.get(req_id)
        if operation is not None:
            operation.on_data(data)

    def on_import(self, req_id: int, name: str) -> None:
        self._reply(req_id, _agent.encode(self.modserver.modules(name)))

    def on_get_data(self, req_id: int, path: str) -> None:
        self._reply(req_id, _agent.encode(self.modserver.data(path)))

    def _reply(self, req_id: int, answer: bytes) -> None:
        self.reader.budget -= len(answer) // REQUEST_BYTES
        self.writer.send_reply(req_id, answer)

    def _handle_backlog(self) -> None:
        """Broker thread: this connection's next turn at the frames a flood of requests left."""
        self._backlog_armed = False
        if not self.backlog or self._ended is not None:
            return
        if not self.turns.read_lock.acquire(blocking=False):
            # A caller reads the pipe: it handles them (read_until). Look again shortly, in
            # case it stops before it has.
            self._backlog_armed = True
            BROKER.call_later(0.001, self._handle_backlog)
            return
        try:
            self.read_stdout(on_broker=True)
        finally:
            self.turns.read_lock.release()

    # -- output -----------------------------------------------------------------------------------

    def _on_noise(self, data: bytes) -> None:
        self._deliver_output("stdout", data, None)

    def _deliver_output(self, stream: str, data: bytes | memoryview, req_id: int | None) -> None:
        text = self._decoders[stream].decode(data)
        if not text:
            return
        handler = self.requests.output_handler(req_id) or self.output
        try:
            handler(stream, text)
        except Exception:
            # A failing handler (user code, a display widget) must not abandon the frames
            # after this one in the buffer: the call's RESULT may be among them, and nothing
            # would read it until the agent wrote again (it may never), so the call would hang.
            log.exception("chopsticks_nb: the output handler of %s failed", self.host)

    def _on_stderr(self) -> None:
        data = self.process.read_stderr()
        if self.process.stderr_eof:
            BROKER.unwatch(self.process.stderr)
        elif data:
            early = self._early_stderr
            if early is not None and sum(map(len, early)) + len(data) <= EARLY_STDERR:
                early.append(data)
            else:  # too much to hold: show it all as it comes
                self._early_stderr = None
                self._deliver_output("stderr", b"".join(early or ()) + data, None)

    def _release_early_stderr(self) -> None:
        """The handshake is over: show what stderr held before, if the agent started (if not,
        the connection's error quotes it)."""
        early, self._early_stderr = self._early_stderr, None
        if early and self.hello.done() and self.hello.exception() is None:
            self._deliver_output("stderr", b"".join(early), None)

    # -- timers and the end of the stream (broker thread) ----------------------------------------

    def _ping(self) -> None:
        if self._ended is None and self.keepalive:
            with contextlib.suppress(ChopsticksError):
                self.writer.send(Msg.PING, 0)
            self._timers = [BROKER.call_later(self.keepalive, self._ping)]

    def _on_connect_timeout(self) -> None:
        if not self.hello.done():
            tail = self.process.stderr_tail()
            message = f"no answer from the agent within {self.connect_timeout:g} s"
            self._die(
                lambda: ConnectTimeout(message + (f"; stderr: {tail}" if tail else ""), self.host)
            )

    def _on_eof(self) -> None:
        """The agent's stdout closed: wait briefly for its exit status and stderr, then report."""
        self._stdout_eof = True
        self.turns.close()
        BROKER.unwatch(self.process.stdout)
        if self._ended is None:
            self._report_exit(EOF_POLLS)

    def _report_exit(self, polls: int) -> None:
        status = self.process.poll()
        if (status is None or not self.process.stderr_eof) and polls > 0:
            self._timers.append(BROKER.call_later(0.025, lambda: self._report_exit(polls - 1)))
            return
        tail = self.process.stderr_tail()
        if not self.hello.done():
            message = self.explain_exit(status, tail, False)
            self._die(lambda: ConnectError(message, self.host))
            return
        message = self.explain_exit(status, tail, True)
        if self.reader.unparsed:
            # The stream stopped inside a frame: a truncated message is outside the protocol,
            # whatever the reason the sender stopped.
            message = f"the stream ended inside a message ({self.reader.unparsed} bytes); {message}"
            self._die(lambda: ProtocolError(message, self.host))
        else:
            self._die(lambda: ConnectionLost(message, self.host))
