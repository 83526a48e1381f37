"""The slow link of bench/bench_slow_link.py: the delay relay itself, and a quick run of the bench.

The relay's timings are checked only from below (no byte may arrive before its delay, nor
faster than the rate cap lets it): a busy machine can only make them later. The bench's quick
run checks that every contender answered every measure, so that it cannot rot.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from fixtures.system import need_root, need_tool

BENCH = Path(__file__).resolve().parents[2] / "bench"
PROXY = BENCH / "peers" / "delay_proxy.py"


@contextmanager
def relay_to_echo(*options: str) -> Iterator[subprocess.Popen[bytes]]:
    """The relay, as ssh runs it, in front of a TCP echo server."""
    server = socket.create_server(("127.0.0.1", 0))

    def echo() -> None:
        conn, _ = server.accept()
        with conn:
            while data := conn.recv(65536):
                conn.sendall(data)

    thread = threading.Thread(target=echo, daemon=True)
    thread.start()
    port = str(server.getsockname()[1])
    proc = subprocess.Popen(
        [sys.executable, str(PROXY), "127.0.0.1", port, *options],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
    )
    try:
        yield proc
    finally:
        assert proc.stdin and proc.stdout
        if not proc.stdin.closed:
            proc.stdin.close()
        proc.wait(10)
        proc.stdout.close()
        server.close()
        thread.join(10)


def _read(proc: subprocess.Popen[bytes], size: int) -> bytes:
    assert proc.stdout
    data = b""
    while len(data) < size:
        chunk = os.read(proc.stdout.fileno(), size - len(data))
        assert chunk, "the relay closed early"
        data += chunk
    return data


def test_every_byte_takes_the_delay_each_way() -> None:
    delay = 0.05
    with relay_to_echo("--delay", str(delay)) as proc:
        assert proc.stdin
        for _ in range(3):
            start = time.monotonic()
            os.write(proc.stdin.fileno(), b"x")
            assert _read(proc, 1) == b"x"
            assert time.monotonic() - start >= 2 * delay


def test_a_stream_arrives_whole_and_in_order_then_ends() -> None:
    data = os.urandom(3 * 1024 * 1024)
    with relay_to_echo("--delay", "0.01") as proc:
        assert proc.stdin and proc.stdout
        writer = threading.Thread(target=lambda: (proc.stdin.write(data), proc.stdin.close()))
        writer.start()
        assert _read(proc, len(data)) == data
        writer.join(30)
        assert os.read(proc.stdout.fileno(), 1) == b""  # the end went through too


def test_the_rate_cap_paces_a_direction() -> None:
    size, rate = 256 * 1024, 1024 * 1024  # a quarter of a second, at least
    with relay_to_echo("--delay", "0", "--rate", str(rate)) as proc:
        assert proc.stdin
        start = time.monotonic()
        writer = threading.Thread(target=lambda: proc.stdin.write(b"y" * size))
        writer.start()
        assert _read(proc, size) == b"y" * size
        assert time.monotonic() - start >= size / rate
        writer.join(30)


@pytest.mark.timeout(240)
def test_quick_run_measures_every_contender(tmp_path: Path) -> None:
    need_root("bench/bench_slow_link.py (it starts sshds)")
    need_tool("/usr/sbin/sshd", "openssh-server")
    need_tool("ssh", "openssh-client")
    out = tmp_path / "slow.json"
    proc = subprocess.run(
        [sys.executable, str(BENCH / "bench_slow_link.py"), "--quick", "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=230,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    results = json.loads(out.read_text())
    contenders = set(results["contenders"])
    assert contenders == {"floor", "chopsticks_nb", "execnet", "mitogen"}
    slow = results["sections"]["slow"]
    for measure in ("a_first_call", "b_round_trip", "f_package", "f_package_function", "d_group"):
        assert set(slow[measure]) == contenders, measure
    assert set(slow["g_cell"]) == {"floor", "chopsticks_nb", "execnet"}  # mitogen runs no source
    capped = results["sections"]["capped"]
    for way in ("put", "fetch"):
        assert set(capped[way]) == contenders
        assert all(figures["median"] > 0 for figures in capped[way].values())
    assert results["link"]["echo"]["min"] >= 2 * results["delay"]
    assert "(a) connect + first call" in proc.stdout
