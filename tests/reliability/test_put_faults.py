"""put under contention and interruption, over real SSH: one whole file or the old one, always.

tests/core/test_files.py covers local agents (four equal-size concurrent puts, an agent closed
mid-stream, a cancelled fetch). Here the hosts are sshds in network namespaces that share this
machine's file system, so several hosts writing "the same remote path" really write one file.
"""

from __future__ import annotations

import hashlib
import os
import signal
import threading
import time
from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path

import pytest

from chopsticks_nb import errors
from chopsticks_nb.group import Group
from chopsticks_nb.tunnel import BaseTunnel
from fixtures.netns import NetnsHosts
from fixtures.system import wait_until
from reliability import remote_ops

BIG = 256 * 2**20  # about a second over ssh here: long enough to interrupt half-way


@pytest.fixture
def big_file(tmp_path: Path) -> Path:
    path = tmp_path / "big"
    with open(path, "wb") as f:
        f.truncate(BIG)  # zeros: ssh does not compress them by default
    return path


def leftovers(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if p.name.endswith(".part"))


def test_concurrent_puts_of_different_files_to_one_path(
    netns_hosts: NetnsHosts, tmp_path: Path, shared_dir: Path
) -> None:
    """Injects: four hosts putting four different files (3, 5, 7 and 9 MiB, distinct bytes)
    to the same path at once, over an existing file, three rounds. Asserts: after each round
    the path holds exactly one of the four files, whole (its SHA-1 is one of theirs), never a
    mix or a truncation; no temporary file is left."""
    sources = {}
    for i, size in enumerate((3, 5, 7, 9)):
        path = tmp_path / f"src{i}"
        path.write_bytes(os.urandom(size * 2**20))
        sources[hashlib.sha1(path.read_bytes()).hexdigest()] = path
    target = shared_dir / "target"
    target.write_bytes(b"old contents")
    tunnels = [netns_hosts.tunnel(name) for name in ("net1", "net2", "net3", "net4")]
    try:
        Group(tunnels).connect()
        for _ in range(3):
            threads = [
                threading.Thread(target=t.put, args=(str(src), str(target)))
                for t, src in zip(tunnels, sources.values())
            ]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            assert hashlib.sha1(target.read_bytes()).hexdigest() in sources
            assert leftovers(shared_dir) == []
    finally:
        for tunnel in tunnels:
            tunnel.close()


def interrupt_half_way(
    tunnel: BaseTunnel, source: Path, target: Path, interrupt: Callable[[], None]
) -> BaseException:
    """Start a put of ``source`` to ``target``; once a quarter of it arrived, ``interrupt``;
    return what the put raised."""
    errors_seen: list[BaseException] = []

    def watch() -> None:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            parts = [p for p in target.parent.iterdir() if p.name.endswith(".part")]
            if parts and parts[0].stat().st_size >= BIG // 4:
                interrupt()
                return
            time.sleep(0.005)

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        tunnel.put(str(source), str(target))
    except BaseException as exc:  # KeyboardInterrupt included
        errors_seen.append(exc)
    finally:
        watcher.join()
    assert errors_seen, "the put finished before it could be interrupted"
    return errors_seen[0]


def test_put_cancelled_half_way_leaves_the_old_file_and_no_part(
    netns_hosts: NetnsHosts, big_file: Path, shared_dir: Path
) -> None:
    """Injects: a real SIGINT (Ctrl-C) while a 256 MiB put is a quarter through.
    Asserts: KeyboardInterrupt reaches the caller; the target keeps its old contents; the
    remote temporary file is removed within 2 s (the cancel reaches the agent, the tunnel stays
    open); the tunnel's next put succeeds."""
    target = shared_dir / "target"
    target.write_bytes(b"old contents")
    with netns_hosts.tunnel("net1") as tunnel:
        tunnel.call(os.getpid)
        main = threading.main_thread().ident
        assert main is not None
        if signal.getsignal(signal.SIGINT) is not signal.default_int_handler:
            pytest.skip("SIGINT is not handled by Python's default handler here")
        raised = interrupt_half_way(
            tunnel, big_file, target, lambda: signal.pthread_kill(main, signal.SIGINT)
        )
        assert isinstance(raised, KeyboardInterrupt)
        assert target.read_bytes() == b"old contents"
        wait_until(lambda: leftovers(shared_dir) == [], timeout=2)
        small = big_file.with_name("small")
        small.write_bytes(b"new contents")
        assert tunnel.put(str(small), str(target))["size"] == 12
        assert target.read_bytes() == b"new contents"


@pytest.mark.parametrize("fault", ["kill-session", "kill-agent", "cut-link"])
def test_put_broken_half_way_leaves_the_old_file(
    netns_hosts: NetnsHosts, big_file: Path, shared_dir: Path, fault: str
) -> None:
    """Injects, while a 256 MiB put is a quarter through: SIGKILL of the sshd session, SIGKILL
    of the remote agent, or an iptables DROP of the link. Asserts: the put fails with
    ConnectionLost (within 10 s for the cut link); the target keeps its old contents. The
    remote temporary file is removed by the agent when its session dies (EOF) or when the
    silent link times it out (keepalive=1: 6 s); only a SIGKILLed agent cannot remove it
    (docs/reliability.md says so)."""
    target = shared_dir / "target"
    target.write_bytes(b"old contents")
    tunnel = netns_hosts.tunnel("net2", keepalive=1)
    try:
        agent, session = tunnel.call(remote_ops.pid_and_parent)
        with ExitStack() as undo:
            actions = {
                "kill-session": lambda: os.kill(session, signal.SIGKILL),
                "kill-agent": lambda: os.kill(agent, signal.SIGKILL),
                "cut-link": lambda: undo.enter_context(netns_hosts.cut("net2")),
            }
            started = time.monotonic()
            raised = interrupt_half_way(tunnel, big_file, target, actions[fault])
            assert isinstance(raised, errors.ConnectionLost), repr(raised)
            assert time.monotonic() - started < 12
            assert target.read_bytes() == b"old contents"
            if fault == "kill-agent":
                assert len(leftovers(shared_dir)) == 1  # nobody was left to remove it
            else:
                wait_until(lambda: leftovers(shared_dir) == [], timeout=10)
        assert target.read_bytes() == b"old contents"
        assert tunnel.call(os.getpid) != agent  # reconnects once the fault is gone
    finally:
        tunnel.close()
