"""The agent's process: started with pipes, signalled, reaped without blocking, and its stderr.

Started in a session of its own (so signals reach the whole command: ssh, sudo, the agent), with
non-blocking pipes that the broker thread serves. Its stderr is relayed to the user as output,
and its last lines are kept to explain why it could not start or why it died.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import signal
import subprocess
import time
from collections import deque
from collections.abc import Sequence
from typing import Callable

from ._bounded import escape_controls
from ._broker import BROKER
from .errors import ConnectError

__all__ = ["AgentProcess"]

F_SETPIPE_SZ = getattr(fcntl, "F_SETPIPE_SZ", 1031)
PIPE_SIZE = 1024 * 1024  # fewer wake-ups for bulk data than the default 64 KiB
READ_SIZE = 1024 * 1024
STDERR_TAIL_LINES = 20
STDERR_LINE_CHARS = 1000  # of each line kept for the tail
#: Polls of the exit status after a death or a close: 50 ms apart, SIGTERM 40 polls before the
#: end (8 s), SIGKILL at the end (10 s).
REAP_POLLS, TERM_AT = 200, 40


class AgentProcess:
    """The command that runs the agent (``argv``), once started."""

    def __init__(self, host: str, argv: list[str], env: dict[str, str] | None) -> None:
        self.host = host
        self.argv = argv
        self.env = env
        self.proc: subprocess.Popen[bytes] | None = None
        self.stdin = self.stdout = self.stderr = -1
        self.stderr_eof = False
        self._stderr_tail: deque[str] = deque(maxlen=STDERR_TAIL_LINES)

    def start(self) -> None:
        """Spawn the command; ConnectError if it cannot run at all."""
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
        self.stdin = self.proc.stdin.fileno()
        self.stdout = self.proc.stdout.fileno()
        self.stderr = self.proc.stderr.fileno()
        for fd in (self.stdin, self.stdout, self.stderr):
            os.set_blocking(fd, False)
        for fd in (self.stdin, self.stdout):
            with contextlib.suppress(OSError):
                fcntl.fcntl(fd, F_SETPIPE_SZ, PIPE_SIZE)

    @property
    def fds(self) -> list[int]:
        """The pipes still open."""
        return [fd for fd in (self.stdin, self.stdout, self.stderr) if fd >= 0]

    def poll(self) -> int | None:
        assert self.proc is not None
        return self.proc.poll()

    def end_input(self) -> None:
        """Close the agent's stdin: EOF tells it to exit."""
        if self.proc is not None and self.proc.stdin is not None:
            with contextlib.suppress(OSError):
                self.proc.stdin.close()
            self.proc.stdin = None
        self.stdin = -1

    def signal(self, signum: int) -> None:
        """Signal the command's whole session, unless it has exited."""
        if self.proc is not None and self.proc.poll() is None:
            with contextlib.suppress(OSError):
                os.killpg(self.proc.pid, signum)

    @staticmethod
    def wait_all(processes: Sequence[AgentProcess], timeout: float) -> None:
        """Wait for the exits (after end_input): up to ``timeout`` in all, then SIGTERM those
        left, a second more, then SIGKILL. Together, so that N commands that linger cost one
        timeout, not N."""
        left = _wait_until(processes, time.monotonic() + timeout)
        for process in left:
            process.signal(signal.SIGTERM)
        left = _wait_until(left, time.monotonic() + 1.0)
        for process in left:
            process.signal(signal.SIGKILL)
        for process in left:
            assert process.proc is not None
            process.proc.wait()

    def reap_later(self, on_exit: Callable[[], None], polls: int = REAP_POLLS) -> None:
        """Collect the exit status without blocking (no zombie), signalling the command if it
        lingers; then ``on_exit()`` on the broker thread."""
        assert self.proc is not None
        if self.proc.poll() is not None:
            BROKER.call_soon(on_exit)
            return
        if polls == TERM_AT:
            self.signal(signal.SIGTERM)
        elif polls == 0:
            self.signal(signal.SIGKILL)
        BROKER.call_later(0.05, lambda: self.reap_later(on_exit, max(polls - 1, 0)))

    def close_output_pipes(self) -> None:
        """Close stdout and stderr (after the exit, everything read)."""
        assert self.proc is not None
        for name in ("stdout", "stderr"):
            stream = getattr(self.proc, name)
            if stream is not None:
                stream.close()
                setattr(self.proc, name, None)
        self.stdout = self.stderr = -1

    # -- stderr (broker thread) -------------------------------------------------------------------

    def read_stderr(self) -> bytes:
        """What stderr holds now; b"" at EOF (then ``stderr_eof``), or if nothing is there."""
        try:
            data = os.read(self.stderr, READ_SIZE)
        except BlockingIOError:
            return b""
        except OSError:
            data = b""
        if not data:
            self.stderr_eof = True
            return b""
        lines = data.decode("utf-8", "replace").splitlines()[-STDERR_TAIL_LINES:]
        self._stderr_tail.extend(line[:STDERR_LINE_CHARS] for line in lines if line.strip())
        return data

    def stderr_tail(self) -> str:
        """The last lines the command wrote to stderr, joined: what explains a failure. Escaped:
        a remote's text must not drive the terminal that shows the error."""
        return escape_controls(" | ".join(self._stderr_tail)[-2000:])


def _wait_until(processes: Sequence[AgentProcess], deadline: float) -> list[AgentProcess]:
    """Wait for each process to exit until ``deadline``; those still running."""
    left = []
    for process in processes:
        assert process.proc is not None
        try:
            process.proc.wait(max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            left.append(process)
    return left
