"""Helpers shared by the benchmark scripts: timing, statistics, physical floors, JSON output."""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import platform
import select
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable

from chopsticks_nb import _lending

RESULTS = Path(__file__).parent / "results"

# The source of the echo server (bench/echo_server.py), given to `python -c`.
ECHO_SERVER = (Path(__file__).parent / "echo_server.py").read_text()


def median_spread(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    return {
        "median": statistics.median(ordered),
        "min": ordered[0],
        "max": ordered[-1],
        "p99": ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))],
    }


def timed(func: Callable[[], Any], repeat: int) -> list[float]:
    samples = []
    for _ in range(repeat):
        start = time.perf_counter()
        func()
        samples.append(time.perf_counter() - start)
    return samples


def bare_starts(n: int, python: str = sys.executable) -> float:
    """Seconds to start and reap ``n`` bare ``python -c pass`` at once: the floor of connecting.

    Each in a session of its own, as a Local agent is: with the kernel's scheduler autogroups
    (on here), a new session is a scheduling group of its own, so under other load N sessions
    get N shares of the CPU where N processes of one session get one (32 starts: 760 against
    270 ms in one minute of 2026-12-04, the machine busy with other suites)."""
    start = time.perf_counter()
    procs = [subprocess.Popen([python, "-c", "pass"], start_new_session=True) for _ in range(n)]
    for proc in procs:
        proc.wait()
    return time.perf_counter() - start


class PipeEcho:
    """A raw length-prefixed echo over a subprocess pipe: the floor of a round trip. With
    ``lend``, the message's pages are lent to the pipe by vmsplice, as chopsticks_nb does."""

    def __init__(self, reply: int = 1 << 30, lend: bool = False) -> None:
        self.reply = reply
        self.lend = lend
        self.proc = subprocess.Popen(
            [sys.executable, "-c", ECHO_SERVER, str(reply)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            bufsize=0,
        )
        assert self.proc.stdin and self.proc.stdout
        self.w = self.proc.stdin.fileno()
        self.r = self.proc.stdout.fileno()
        for fd in (self.w, self.r):  # 1 MB pipes, as chopsticks_nb makes: the floor's best case
            with contextlib.suppress(OSError):
                fcntl.fcntl(fd, getattr(fcntl, "F_SETPIPE_SZ", 1031), 1024 * 1024)

    def echo(self, data: bytes) -> None:
        if self.lend:
            self._lend(data)
        else:
            self._write(data)
        expected = 4 + min(len(data), self.reply)
        got = 0
        while got < expected:
            got += len(os.read(self.r, expected - got))

    def _lend(self, data: bytes) -> None:
        os.write(self.w, len(data).to_bytes(4, "big"))
        start = 0
        while start < len(data):
            try:
                start += _lending.vmsplice(self.w, data, start)
            except BlockingIOError:
                select.select([], [self.w], [])

    def _write(self, data: bytes) -> None:
        pieces = [len(data).to_bytes(4, "big"), memoryview(data)]  # no copy of the data
        while pieces:
            written = os.writev(self.w, pieces)
            while pieces and written >= len(pieces[0]):
                written -= len(pieces.pop(0))
            if pieces:
                pieces[0] = pieces[0][written:]

    def close(self) -> None:
        assert self.proc.stdin
        self.proc.stdin.close()
        self.proc.wait()
        assert self.proc.stdout
        self.proc.stdout.close()


def write_timestamped(directory: Path, name: str, figures: dict[str, Any]) -> Path:
    """Write ``figures`` with the machine's description to DIRECTORY/NAME-<time>.json."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{name}-{time.strftime('%Y%m%d-%H%M%S')}.json"
    document = {
        "benchmark": name,
        "python": sys.version,
        "machine": platform.platform(),
        "cpus": os.cpu_count(),
        **figures,
    }
    path.write_text(json.dumps(document, indent=2) + "\n")
    return path


def write_results(name: str, figures: dict[str, Any]) -> Path:
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"{name}.json"
    machine = {"cpus": os.cpu_count(), "python": sys.version.split()[0]}
    document = {"machine": dict(machine, platform=platform.platform()), "figures": figures}
    path.write_text(json.dumps(document, indent=2) + "\n")
    return path
