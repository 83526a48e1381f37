"""Where remote output goes: OutputBatcher's batches from the I/O thread, the default printer
(escapes shown, not obeyed), and a command's stderr before the handshake (shown once)."""

from __future__ import annotations

import queue
import shlex
import socket
import sys
import threading
import time

import output_funcs
import pytest
import remote_funcs

from chopsticks_nb._broker import BROKER
from chopsticks_nb.errors import ConnectError
from chopsticks_nb.group import Group
from chopsticks_nb.output import OutputBatch, OutputBatcher
from chopsticks_nb.tunnel import Local, SSHTunnel, SubprocessTunnel


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def texts(batches: list[OutputBatch], host: str, stream: str) -> str:
    return "".join(text for batch in batches for h, s, text in batch if (h, s) == (host, stream))


def test_group_output_arrives_whole_in_batches_at_most_one_per_interval() -> None:
    batches: list[OutputBatch] = []
    from_io_thread = threading.Event()

    def flush(batch: OutputBatch) -> None:
        batches.append(batch)
        if BROKER.in_broker_thread():
            from_io_thread.set()

    group = Group([Local("a"), Local("b")])
    try:
        group.connect().raise_failures()
        batcher = OutputBatcher(flush, interval=0.2)
        began = time.monotonic()
        result = group.run(remote_funcs.print_slowly, (10, 0.05), output=batcher)
        assert from_io_thread.wait(10), "no batch was passed on by the I/O thread"
        batcher.close()
        took = time.monotonic() - began
    finally:
        group.close()
    assert result == {"a": 10, "b": 10}
    lines = "".join(f"line {i}\n" for i in range(10))
    assert texts(batches, "a", "stdout") == lines and texts(batches, "b", "stdout") == lines
    # Each flush comes at least `interval` after the one before (the first at once, as
    # nothing was flushed before), and close() passes on the rest: so many, at most.
    assert len(batches) <= took / 0.2 + 2
    for batch in batches:  # consecutive pieces of one host and stream are joined
        assert all(batch[i][:2] != batch[i + 1][:2] for i in range(len(batch) - 1))


def test_a_tunnel_handler_from_for_host_feeds_the_same_batches() -> None:
    batches: list[OutputBatch] = []
    batcher = OutputBatcher(batches.append, interval=0.05)
    with Local("solo", output=batcher.for_host("solo")) as tunnel:
        assert tunnel.call(remote_funcs.noisy, 3) == 3
    batcher.close()
    assert texts(batches, "solo", "stdout") == "out line 0\nout line 1\nout line 2\n"
    assert texts(batches, "solo", "stderr") == "err line 0\nerr line 1\nerr line 2\n"


def test_wake_ticks_close_and_late_output() -> None:
    flushed: queue.SimpleQueue[OutputBatch] = queue.SimpleQueue()
    ticks: list[float] = []
    ticked = threading.Event()

    def on_tick() -> None:
        ticks.append(time.monotonic())
        if len(ticks) >= 3:
            ticked.set()

    with OutputBatcher(flushed.put, interval=0.01, tick=0.01, on_tick=on_tick) as batcher:
        batcher.wake()  # a flush without output: an empty batch
        assert flushed.get(timeout=10) == []
        assert ticked.wait(10), "the ticks did not come"
        batcher("h", "stdout", "kept ")
        batcher("h", "stdout", "together")
    # close() passed on what was left, in this thread
    assert flushed.get_nowait() == [("h", "stdout", "kept together")]
    # Output that arrives after close is passed on at once, on its own. (That no tick runs
    # after close is checked by the leak check: a live tick timer keeps the I/O thread up.)
    batcher("h", "stderr", "late")
    assert flushed.get_nowait() == [("h", "stderr", "late")]
    assert flushed.empty()


def test_bad_settings_are_refused() -> None:
    with pytest.raises(ValueError, match="tick and on_tick go together"):
        OutputBatcher(print, tick=1.0)
    with pytest.raises(ValueError, match="tick must be a positive"):
        OutputBatcher(print, tick=0, on_tick=lambda: None)
    with pytest.raises(ValueError, match="interval must be 0 or more"):
        OutputBatcher(print, interval=-1)


# -- the default handler, escapes, and stderr before the handshake ------------------------------


def test_a_tunnel_prints_lines_with_terminal_escapes_shown_not_obeyed(
    capfd: pytest.CaptureFixture[str],
) -> None:
    hostile = "title\x1b]0;pwned\x07 clear\x1b[2J clip\x1b]52;c;aGk=\x07"
    with Local("esc") as tunnel:
        tunnel.call(output_funcs.say, hostile)
        tunnel.call(output_funcs.say, "10%\r20%\rdone")
        tunnel.call(output_funcs.say, "oops", True)
    out, err = capfd.readouterr()
    assert out == (
        "[esc] title\\x1b]0;pwned\\x07 clear\\x1b[2J clip\\x1b]52;c;aGk=\\x07\n[esc] done\n"
    )
    assert "\x1b" not in out
    assert err == "[esc] oops\n"


def test_stderr_from_a_command_that_cannot_connect_is_in_the_error_only() -> None:
    """ssh's own message before the handshake is the error's, not also remote output."""
    seen: list[tuple[str, str]] = []
    port = free_port()
    tunnel = SSHTunnel(
        "127.0.0.1",
        port=port,
        output=lambda stream, text: seen.append((stream, text)),
        ssh_options=["-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null"],
    )
    try:
        with pytest.raises(ConnectError, match="Connection refused"):
            tunnel.connect()
    finally:
        tunnel.close()
    assert seen == []


class _Announcing(SubprocessTunnel):
    """A command that writes to stderr before it starts the agent (a wrapper, a banner)."""

    def cmd_args(self) -> list[str]:
        python = shlex.join(self.python_args())
        return ["sh", "-c", f"echo 'starting up' >&2; exec {python}"]


def test_stderr_before_the_handshake_is_shown_once_the_agent_runs() -> None:
    seen: queue.SimpleQueue[tuple[str, str]] = queue.SimpleQueue()
    with _Announcing(
        "wrapped", python3=sys.executable, output=lambda s, t: seen.put((s, t))
    ) as tunnel:
        assert tunnel.call(output_funcs.say, "hello") == 5
        got = [seen.get(timeout=10), seen.get(timeout=10)]
    assert sorted(got) == [("stderr", "starting up\n"), ("stdout", "hello\n")]
