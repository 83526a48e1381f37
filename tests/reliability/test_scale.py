"""Scale: 64 real sshd hosts in one group, served by one broker thread in bounded memory.

bench/bench_scale.py measures the same operations with repeats and writes the figures as JSON;
this test keeps them honest in every run (and stays well under a minute here).
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from chopsticks_nb.group import Group
from chopsticks_nb.tunnel import SSHTunnel
from fixtures.ci import unavailable
from fixtures.system import need_root, need_tool, process_alive, wait_until
from reliability.many_hosts import ManyHosts, start_many_hosts
from reliability.probes import watch_rss

HOSTS = 64
PUT_SIZE = 10 * 2**20
#: Controller memory per tunnel at most: its 1 MiB input buffer, and up to 1.5 MiB of file
#: data queued for a put (producers pause at 1 MiB, a chunk is 512 KiB); plus a base.
PER_TUNNEL_MIB, BASE_MIB = 3, 32
WALL_BOUND = 60.0


@pytest.fixture(scope="module")
def many_hosts() -> Iterator[ManyHosts]:
    need_root("many_hosts")
    need_tool("/usr/sbin/sshd", "openssh-server")
    need_tool("ssh", "openssh-client")
    try:
        hosts = start_many_hosts(HOSTS)
    except (OSError, RuntimeError, TimeoutError) as exc:
        unavailable(f"could not start {HOSTS} sshd hosts: {exc}")
    try:
        yield hosts
    finally:
        hosts.stop()


def test_sixty_four_ssh_hosts_connect_call_and_put(many_hosts: ManyHosts, shared_dir: Path) -> None:
    """Injects: a group of 64 SSH tunnels to 64 loopback sshd hosts: connect, one call, a put
    of a 10 MiB file to every host, close. Asserts: every host succeeds, every put's SHA-1
    matches, within 60 s in all; the controller never runs more than one broker thread (no
    thread per host); its RSS grows by less than 3 MiB per tunnel + 32 MiB; after close no
    remote agent is left."""
    source = shared_dir / "source"
    source.write_bytes(os.urandom(PUT_SIZE))
    before = set(threading.enumerate())
    extra_threads: set[str] = set()
    group = Group([SSHTunnel(n, ssh_config=str(many_hosts.config_path)) for n in many_hosts.names])
    started = time.monotonic()
    with watch_rss() as peak:
        try:
            connected = group.connect(timeout=WALL_BOUND)
            extra_threads |= {t.name for t in set(threading.enumerate()) - before}
            assert connected.ok, dict(connected.failures())
            pids = group.call(os.getpid)
            assert pids.ok and len(set(pids.values())) == HOSTS
            assert group.call(os.getpid) == pids  # a second round trip, on warm tunnels
            put = group.put(str(source), str(shared_dir / "copy"), timeout=WALL_BOUND)
            extra_threads |= {t.name for t in set(threading.enumerate()) - before}
        finally:
            group.close()
    elapsed = time.monotonic() - started
    print(f"{HOSTS} hosts: connect + call + put {PUT_SIZE >> 20} MiB + close in {elapsed:.1f} s; "
          f"RSS {peak.start:.0f} -> peak {peak.peak:.0f} MiB (+{peak.growth:.0f}); "
          f"extra threads {sorted(extra_threads)}")  # fmt: skip
    assert put.ok, dict(put.failures())
    assert len({info["sha1sum"] for info in put.values()}) == 1
    assert elapsed < WALL_BOUND
    assert extra_threads <= {"chopsticks-broker", "rss-watch"}
    assert peak.growth < PER_TUNNEL_MIB * HOSTS + BASE_MIB
    wait_until(lambda: not any(process_alive(pid) for pid in pids.values()), timeout=5)
