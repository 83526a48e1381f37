"""One live agent: the coordinator of its process, its pipes and the operations in flight.

The parts, each in a module of its own: the agent's process (_process), the frames going out
(_writer) and coming in (_reader), the operations awaiting answers (_requests), whose turn
it is to read the answers: the broker thread's or a waiting caller's (_caller_reads), the
agent's requests answered a fair share per turn (_request_turns), and its early stderr and
the explanation of its end (_exit_report). This
class starts and ends them together, handles the agent's messages (the protocol table in
_agent names a method here for each), and waits for answers: :meth:`Connection.wait` is the
one way to wait, used by synchronous calls and by futures alike. The controller never
unpickles what the agent sends: its payloads go through the closed codec.
"""

from __future__ import annotations

import codecs
import concurrent.futures
import contextlib
import signal
import threading
import time
from collections.abc import Sequence
from typing import Any, NoReturn, Protocol

from . import _agent, _bootstrap, _call_frames
from ._agent import AGENT, Msg
from ._bounded import exception_text
from ._broker import BROKER, TimerHandle, log
from ._bytes_in_place import ENABLED as BYTES_IN_PLACE
from ._call_frames import PickledCall
from ._caller_reads import POLL, DeferredInterrupt, StdoutTurns
from ._exit_report import ExitExplainer, ExitReport
from ._modserver import ModuleServer
from ._process import AgentProcess
from ._reader import READ_SIZE, FrameReader
from ._request_turns import REQUESTS, RequestTurns
from ._requests import Operation, RemoteFuture, RequestTable
from ._writer import ErrorFactory, FrameWriter
from .errors import (
    CallCancelled,
    CallTimeout,
    ChopsticksError,
    ConnectTimeout,
    ProtocolError,
    TunnelClosed,
)
from .output import OutputHandler

__all__ = ["ChildHandlers", "Connection", "ExitExplainer", "close_connections"]

#: How long close() waits for an agent to exit once told to, before signalling it.
CLOSE_TIMEOUT = 5.0


class ChildHandlers(Protocol):
    """What handles the frames of the commands an agent runs as a relay (see _relays)."""

    def on_stdout(self, child: int, data: memoryview) -> None: ...
    def on_stderr(self, child: int, data: memoryview) -> None: ...
    def on_written(self, child: int, count: int) -> None: ...
    def on_exit(self, child: int, info: dict[str, Any]) -> None: ...

    def relay_ended(self, error: ErrorFactory) -> None:
        """The relay's connection ended with ``error()``: so do those of its children."""


class Connection:
    """Starts an agent through ``argv`` and speaks the protocol with it."""

    #: The first size of the buffer of what the agent sends (it grows for larger frames).
    input_buffer_size = READ_SIZE

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
        self.reader = FrameReader(
            host, _agent.handlers(self, AGENT), self._on_noise, REQUESTS, self.input_buffer_size
        )
        #: The tunnels this agent relays, once it relays any (see _relays).
        self.relay: ChildHandlers | None = None
        self.request_turns = RequestTurns(
            self.reader, self.turns.read_lock, lambda: self.read_stdout(on_broker=True)
        )
        self.exit_report = ExitReport(
            self,
            show_stderr=lambda data: self._deliver_output("stderr", data, None),
            die=self._die,
            later=lambda delay, then: self._timers.append(BROKER.call_later(delay, then)),
        )
        self._ended: ErrorFactory | None = None
        self._first_call = True
        #: What calls named as their modules (PickledCall), each pushed once (_push_modules).
        self._modules_seen: set[str | frozenset[str]] = set()
        self._stdout_eof = False
        self._timers: list[TimerHandle] = []
        self._decoders = {
            k: codecs.getincrementaldecoder("utf-8")("replace") for k in ("stdout", "stderr")
        }
        self.hello.add_done_callback(
            lambda _: BROKER.call_soon(self.exit_report.release_early_stderr)
        )

    @property
    def proc(self) -> Any:
        """The agent's ``subprocess.Popen``, once started."""
        return self.process.proc

    @property
    def alive(self) -> bool:
        return self._ended is None

    @property
    def backlog(self) -> bool:
        """Complete frames wait in the reader for a later turn (see _request_turns)."""
        return self.request_turns.backlog

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
            "bytes_in_place": BYTES_IN_PLACE,
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
        if self.process.stderr >= 0:  # a relayed agent's stderr comes through its relay
            BROKER.watch(self.process.stderr, False, self._on_stderr)
        self._timers.append(BROKER.call_later(self.connect_timeout, self._on_connect_timeout))

    def close(self, wait: bool = True, timeout: float = CLOSE_TIMEOUT) -> None:
        """End the agent: EOF on its stdin, then signals if it lingers. Idempotent."""
        if wait:
            close_connections([self], timeout)
            return
        self._end_input()
        if self.process.proc is not None:
            self.process.reap_later(self._close_pipes)

    def _end_input(self) -> None:
        self._end(lambda: TunnelClosed("the tunnel was closed", self.host), kill=False)

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
        self.request_turns.stop()
        self.turns.close()
        BROKER.run_and_wait(self._unwatch_all)
        for operation in self.requests.end(error):
            try:
                operation.fail(error())
            except Exception:  # the others must fail too, and this one is failed already
                log.error("chopsticks_nb: failing an operation of %s", self.host, exc_info=True)
        with contextlib.suppress(concurrent.futures.InvalidStateError):
            self.hello.set_exception(error())
        if self.process.proc is not None:
            self.process.end_input()
            if kill:
                self.process.signal(signal.SIGKILL)
        if self.relay is not None:
            self.relay.relay_ended(error)

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
        outside the protocol. The broker thread handles only a share of the agent's requests a
        call: frames left (``backlog``) are handled before anything more is read."""
        fd = self.process.stdout
        if fd < 0 or self._stdout_eof:
            return
        if on_broker and self.request_turns.waiting():
            return  # the pipe is readable, but this connection's next turn is lined up
        reader = self.reader
        if not self.backlog:
            try:
                count = reader.buffer.read_from(fd)
            except BlockingIOError:
                return
            except OSError:
                count = 0
            except Exception as exc:  # no memory for the buffer, say
                self._die_of_protocol_error(f"unexpected {exception_text(exc)} reading a message")
                return
            if not count:
                self._on_eof()
                return
        self._handle_frames(on_broker)

    def _handle_frames(self, on_broker: bool) -> None:
        """Handle the frames read (see read_stdout); end the connection on a bad one."""
        self.request_turns.begin(on_broker)
        try:
            self.request_turns.end(self.reader.handle_frames(), on_broker)
        except ChopsticksError as exc:
            self._die_of_protocol_error(exc.message)
        except _agent.ShapeError as exc:
            self._die_of_protocol_error(exception_text(exc, with_type=False))
        except _agent.CodecError as exc:
            self._die_of_protocol_error(f"undecodable message: {exception_text(exc)}")
        except Exception as exc:  # a bug here or a value no check foresaw: this tunnel only
            log.exception("chopsticks_nb: reading from %s failed", self.host)
            self._die_of_protocol_error(f"unexpected {exception_text(exc)} reading a message")

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
    # meanwhile. Out of the table, nothing else would complete it: it completes here, whatever
    # its handler does.

    def on_result(self, req_id: int, value: object) -> None:
        if self.writer.lender.lent:  # the agent has read the request: let its arguments go
            self.writer.release_lent()
        operation = self.requests.take(req_id)
        if operation is not None:
            try:
                operation.on_result(value)
            except BaseException as exc:  # a transfer's result of the wrong shape, say
                self._failed_handling(operation, exc)
            if not operation.done:
                self._failed_handling(operation, None)

    def on_error(self, req_id: int, record: dict[str, Any]) -> None:
        operation = self.requests.take(req_id)
        if operation is not None:
            try:
                operation.on_error(record)
            except BaseException as exc:
                self._failed_handling(operation, exc)
            if not operation.done:
                self._failed_handling(operation, None)

    def _failed_handling(self, operation: Operation, exc: BaseException | None) -> NoReturn:
        """The handler of an answer raised ``exc`` (an exception whose text may not even be
        made), or completed nothing (None): the operation fails with ProtocolError, and so does
        the connection (the reader ends it)."""
        if exc is None:
            exc = ProtocolError("an answer left its operation incomplete", self.host)
        if isinstance(exc, ChopsticksError):
            message = exc.message
        elif isinstance(exc, _agent.CodecError):  # a shape check: its text says what
            message = exception_text(exc, with_type=False)
        else:
            message = f"unexpected {exception_text(exc)} handling an answer"
        operation.fail(ProtocolError(message, self.host))
        raise exc

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

    # The frames of the commands this agent runs as a relay (see _relays).

    def on_child_stdout(self, req_id: int, data: memoryview) -> None:
        self._children().on_stdout(req_id, data)

    def on_child_stderr(self, req_id: int, data: memoryview) -> None:
        self._children().on_stderr(req_id, data)

    def on_child_written(self, req_id: int, count: int) -> None:
        self._children().on_written(req_id, count)

    def on_child_exit(self, req_id: int, info: dict[str, Any]) -> None:
        self._children().on_exit(req_id, info)

    def _children(self) -> ChildHandlers:
        if self.relay is None:
            raise ProtocolError("a frame of a relayed command, but nothing is relayed", self.host)
        return self.relay

    def _reply(self, req_id: int, answer: bytes) -> None:
        self.request_turns.charge(answer)
        self.writer.send_reply(req_id, answer)

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
            self.exit_report.stderr_arrived(data)

    # -- timers and the end of the stream (broker thread) ----------------------------------------

    def _ping(self) -> None:
        if self._ended is None and self.keepalive:
            with contextlib.suppress(ChopsticksError):
                self.writer.send(Msg.PING, 0)
            self._timers = [BROKER.call_later(self.keepalive, self._ping)]

    def _on_connect_timeout(self) -> None:
        if not self.hello.done():
            message = self.exit_report.no_handshake(self.connect_timeout)
            self._die(lambda: ConnectTimeout(message, self.host))

    def _on_eof(self) -> None:
        """The agent's stdout closed: wait briefly for its exit status and stderr, then report."""
        self._stdout_eof = True
        self.turns.close()
        BROKER.unwatch(self.process.stdout)
        if self._ended is None:
            self.exit_report.report()


def close_connections(connections: Sequence[Connection], timeout: float = CLOSE_TIMEOUT) -> None:
    """Close connections together: every agent is told to exit (EOF) before any is waited
    for, so that N agents that linger cost one ``timeout``, not N (see AgentProcess.wait_all)."""
    for conn in connections:
        conn._end_input()
    started = [conn for conn in connections if conn.process.proc is not None]
    AgentProcess.wait_all([conn.process for conn in started], timeout)
    for conn in started:
        conn._close_pipes()
