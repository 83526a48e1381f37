"""Scale: 64 real sshd hosts in one group, and 256 behind 4 relays, served by one broker thread
in bounded memory.

bench/bench_scale.py and bench/bench_relays.py measure the same operations with repeats and
write the figures as JSON; these tests keep them honest in every run (each well under a minute
here).
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from chopsticks_nb.group import Group
from chopsticks_nb.tunnel import Local, SSHTunnel
from fixtures.ci import unavailable
from fixtures.system import need_root, need_tool, process_alive, wait_until
from reliability.many_hosts import ManyHosts, start_many_hosts
from reliability.probes import watch_rss

HOSTS = 64
#: Hosts behind relays, and relays (Local agents here, as a bastion's would be on it).
RELAYED_HOSTS, RELAYS = 256, 4
RELAYED_PUT_SIZE = 2 * 2**20
#: Controller memory per relayed tunnel at most: a 16 KiB input buffer, a window (256 KiB) of
#: a put under way and a chunk (128 KiB) read; plus a base.
RELAYED_PER_TUNNEL_MIB = 0.5
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
        hosts = start_many_hosts(RELAYED_HOSTS)
    except (OSError, RuntimeError, TimeoutError) as exc:
        unavailable(f"could not start {RELAYED_HOSTS} sshd hosts: {exc}")
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
    names = many_hosts.names[:HOSTS]
    group = Group([SSHTunnel(n, ssh_config=str(many_hosts.config_path)) for n in names])
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


def fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def test_256_ssh_hosts_behind_4_relays(many_hosts: ManyHosts, shared_dir: Path) -> None:
    """Injects: 256 SSH tunnels to 256 loopback sshd hosts, spread over 4 Local relays with
    Group.split: connect, two rounds of calls, a put of 2 MiB to every host, close. Asserts:
    every host succeeds and every put's SHA-1 matches, within 60 s in all; the controller holds
    the relays' pipes and no pipe per host (its fds grow by 3 per relay), runs no thread but the
    broker, and its RSS grows by less than 0.5 MiB per tunnel + 32 MiB; after close no agent
    (relayed or relay) is left."""
    source = shared_dir / "source"
    source.write_bytes(os.urandom(RELAYED_PUT_SIZE))
    before = set(threading.enumerate())
    fds_before = fds()
    extra_threads: set[str] = set()
    relays = [Local(f"relay{i}") for i in range(RELAYS)]
    direct = Group([SSHTunnel(n, ssh_config=str(many_hosts.config_path)) for n in many_hosts.names])
    group = direct.split(relays)
    started = time.monotonic()
    with watch_rss() as peak:
        try:
            connected = group.connect(timeout=WALL_BOUND)
            extra_threads |= {t.name for t in set(threading.enumerate()) - before}
            assert connected.ok, dict(connected.failures())
            pids = group.call(os.getpid)
            assert pids.ok and len(set(pids.values())) == RELAYED_HOSTS
            assert group.call(os.getpid) == pids
            held = fds() - fds_before
            relay_pids = [relay.remote_info["pid"] for relay in relays]
            put = group.put(str(source), str(shared_dir / "copy"), timeout=WALL_BOUND)
            extra_threads |= {t.name for t in set(threading.enumerate()) - before}
        finally:
            group.close()
            for relay in relays:
                relay.close()
    elapsed = time.monotonic() - started
    print(f"{RELAYED_HOSTS} hosts behind {RELAYS} relays: connect + call + put "
          f"{RELAYED_PUT_SIZE >> 20} MiB + close in {elapsed:.1f} s; RSS {peak.start:.0f} -> "
          f"peak {peak.peak:.0f} MiB (+{peak.growth:.0f}); fds +{held} once connected; "
          f"extra threads {sorted(extra_threads)}")  # fmt: skip
    assert put.ok, dict(put.failures())
    assert len({info["sha1sum"] for info in put.values()}) == 1
    assert elapsed < WALL_BOUND
    assert held <= 3 * RELAYS + 3  # the relays' pipes, and the broker's epoll and wake pipe
    assert extra_threads <= {"chopsticks-broker", "rss-watch"}
    assert peak.growth < RELAYED_PER_TUNNEL_MIB * RELAYED_HOSTS + BASE_MIB
    agents = [*pids.values(), *relay_pids]
    wait_until(lambda: not any(process_alive(pid) for pid in agents), timeout=10)
