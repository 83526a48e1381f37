"""Why an agent did not start or stopped: its early stderr held back, its command's exit explained.

What the command writes to stderr before the handshake is held (up to EARLY_STDERR bytes): if
the agent does not start, the error quotes it (ssh's "Connection refused") and it is not shown
twice; if it starts, it is shown then. When the agent's stdout ends, the report waits briefly
for the exit status and the rest of stderr, and ends the connection with an error that says why.
"""

from __future__ import annotations

import concurrent.futures
from typing import Any, Callable, Optional, Protocol

from ._bounded import exception_text, short_repr
from ._broker import log
from ._process import AgentProcess
from ._reader import FrameReader
from ._writer import ErrorFactory
from .errors import ConnectError, ConnectionLost, ProtocolError

__all__ = ["EOF_POLLS", "ExitExplainer", "ExitReport"]

#: Explains why the agent's command exited: (status, stderr tail, after the handshake) -> text.
ExitExplainer = Callable[[Optional[int], str, bool], str]

#: After stdout's EOF, how long to wait for the exit status and the rest of stderr (25 ms polls).
EOF_POLLS = 40
#: Bytes of what the command printed before the handshake that an error message shows.
PRINTED_SHOWN = 300
#: stderr held back until the handshake (bytes).
EARLY_STDERR = 64 * 1024


class Agent(Protocol):
    """What the report reads of its connection (its process may be replaced: a relayed one)."""

    host: str
    explain_exit: ExitExplainer
    hello: concurrent.futures.Future[dict[str, Any]]

    @property
    def process(self) -> AgentProcess: ...
    @property
    def reader(self) -> FrameReader: ...


class ExitReport:
    """One connection's early stderr and the explanation of its agent's end."""

    def __init__(
        self,
        agent: Agent,
        *,
        show_stderr: Callable[[bytes], None],
        die: Callable[[ErrorFactory], None],
        later: Callable[[float, Callable[[], None]], None],
    ) -> None:
        self.agent = agent
        self.show_stderr = show_stderr
        self.die = die  # ends the connection with this error
        self.later = later  # a timer the connection cancels when it ends
        self._early_stderr: list[bytes] | None = []  # broker thread only

    def stderr_arrived(self, data: bytes) -> None:
        """Broker thread: what the command wrote to stderr, held back until the handshake."""
        early = self._early_stderr
        if early is not None and sum(map(len, early)) + len(data) <= EARLY_STDERR:
            early.append(data)
        else:  # too much to hold: show it all as it comes
            self._early_stderr = None
            self.show_stderr(b"".join(early or ()) + data)

    def release_early_stderr(self) -> None:
        """The handshake is over: show what stderr held before, if the agent started (if not,
        the connection's error quotes it)."""
        early, self._early_stderr = self._early_stderr, None
        hello = self.agent.hello
        if early and hello.done() and hello.exception() is None:
            self.show_stderr(b"".join(early))

    def no_handshake(self, seconds: float) -> str:
        """The message of a connect timeout: what the command printed and wrote to stderr."""
        tail = self.agent.process.stderr_tail()
        message = f"no answer from the agent within {seconds:g} s"
        return message + self.printed() + (f"; stderr: {tail}" if tail else "")

    def printed(self) -> str:
        """What the command wrote on stdout before any handshake (a login banner, a wrapper's
        message), escaped and cut, for a message saying why the agent did not start."""
        noise = self.agent.reader.noise(PRINTED_SHOWN)
        if not noise:
            return ""
        return f"; it printed {short_repr(noise.decode('utf-8', 'backslashreplace'), 400)}"

    def report(self, polls: int = EOF_POLLS) -> None:
        """Broker thread: the agent's stdout ended; wait up to ``polls`` 25 ms polls for its
        exit status and the rest of stderr, then end the connection saying why."""
        agent = self.agent
        status = agent.process.poll()
        if (status is None or not agent.process.stderr_eof) and polls > 0:
            self.later(0.025, lambda: self.report(polls - 1))
            return
        tail = agent.process.stderr_tail()
        host = agent.host
        if not agent.hello.done():
            message = self._explain(status, tail, False) + self.printed()
            self.die(lambda: ConnectError(message, host))
            return
        message = self._explain(status, tail, True)
        unparsed = agent.reader.unparsed
        if unparsed:
            # The stream stopped inside a frame: a truncated message is outside the protocol,
            # whatever the reason the sender stopped.
            message = f"the stream ended inside a message ({unparsed} bytes); {message}"
            self.die(lambda: ProtocolError(message, host))
        else:
            self.die(lambda: ConnectionLost(message, host))

    def _explain(self, status: int | None, tail: str, started: bool) -> str:
        try:
            return self.agent.explain_exit(status, tail, started)
        except Exception as exc:  # a tunnel's own explanation failed: a plain one
            log.exception("chopsticks_nb: explaining the exit of %s failed", self.agent.host)
            return f"the agent's command ended (status {status}; {exception_text(exc)})"
