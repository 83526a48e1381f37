"""Faults on real sshd hosts: each fails only its host, within a stated bound, and heals.

The hosts are sshds in network namespaces (``netns_hosts``), reached by the real ``SSHTunnel``
(ssh keepalives every 2 s, 3 missed end the session) from a switch namespace. Faults are real:
SIGKILL of the remote agent or of its sshd session, iptables DROP or an interface taken down
inside a host's namespace, a stopped sshd, a name that does not resolve, a key the host does not
accept. Bounds are those docs/reliability.md promises.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path

import pytest

from chopsticks_nb import errors
from chopsticks_nb.errors import GroupInterrupted
from chopsticks_nb.group import Group
from chopsticks_nb.result import ErrorResult
from chopsticks_nb.tunnel import Local
from fixtures.interrupts import sigint_after
from fixtures.netns import NetnsHosts
from fixtures.system import process_alive, wait_until
from reliability import remote_ops

#: A dead agent or sshd session is noticed at once (EOF on the pipe): well within this.
DEAD_PROCESS_BOUND = 2.0
#: A silent link is noticed by ssh's keepalive (ServerAliveInterval=2, ServerAliveCountMax=3).
CUT_LINK_BOUND = 10.0
#: A failed connection attempt (refused, unresolvable, wrong key) is reported within this.
CONNECT_FAULT_BOUND = 3.0
#: With keepalive=1 the agent exits after 6 silent seconds; plus scheduling slack.
ORPHAN_BOUND = 10.0


@pytest.fixture
def hosts(netns_hosts: NetnsHosts) -> Iterator[NetnsHosts]:
    yield netns_hosts
    netns_hosts.kill_agents()  # an orphan a failed test left must not fail the next one


def group_of(hosts: NetnsHosts, names: list[str], **options: object) -> Group:
    return Group([hosts.tunnel(name, **options) for name in names])


def at(delay: float, action: Callable[[], object]) -> threading.Thread:
    """Run ``action`` on a thread after ``delay`` seconds (the thread is returned started)."""

    def run() -> None:
        time.sleep(delay)
        action()

    thread = threading.Thread(target=run, name="fault-injector")
    thread.start()
    return thread


def test_faults_during_a_group_call_fail_only_their_host_and_heal(hosts: NetnsHosts) -> None:
    """Injects, 1 s into a 4 s group call on six hosts: SIGKILL of net2's agent, SIGKILL of
    net3's sshd session, an iptables DROP of net4's ssh traffic, net5's interface taken down,
    SIGSTOP of net6's sshd session (a hung host). Asserts: net1's result arrives; net2 and net3
    fail with ConnectionLost within 2 s of the fault, net4, net5 and net6 within 10 s; the
    agents left on net3-net6 exit by themselves within 10 s of the fault (keepalive=1: six
    silent seconds); once the faults are undone the same tunnels reconnect and every host
    answers."""
    names = ["net1", "net2", "net3", "net4", "net5", "net6"]
    group = group_of(hosts, names, keepalive=1)
    try:
        check_faults_and_healing(hosts, group, names)
    finally:
        group.close()


def check_faults_and_healing(hosts: NetnsHosts, group: Group, names: list[str]) -> None:
    with ExitStack() as undo:
        before = group.call(remote_ops.pid_and_parent)
        assert before.ok, before
        agent, session, frozen = before["net2"][0], before["net3"][1], before["net6"][1]
        orphans = {name: before[name][0] for name in ("net3", "net4", "net5", "net6")}
        faulted: dict[str, float] = {}

        def inject() -> None:
            os.kill(agent, signal.SIGKILL)
            faulted["net2"] = time.perf_counter()
            os.kill(session, signal.SIGKILL)
            faulted["net3"] = time.perf_counter()
            undo.enter_context(hosts.cut("net4"))
            faulted["net4"] = time.perf_counter()
            undo.enter_context(hosts.link_down("net5"))
            faulted["net5"] = time.perf_counter()
            undo.callback(os.kill, frozen, signal.SIGCONT)
            os.kill(frozen, signal.SIGSTOP)  # a hung host: the TCP peer lives, nothing answers
            faulted["net6"] = time.perf_counter()

        started = time.perf_counter()
        injector = at(1.0, inject)
        result = group.run(remote_ops.sleep, (4,), timeout=30)
        injector.join()
        assert result["net1"] == 4
        for name, bound in [("net2", DEAD_PROCESS_BOUND), ("net3", DEAD_PROCESS_BOUND),
                            ("net4", CUT_LINK_BOUND), ("net5", CUT_LINK_BOUND),
                            ("net6", CUT_LINK_BOUND)]:  # fmt: skip
            outcome = result[name]
            assert isinstance(outcome, ErrorResult), (name, outcome)
            assert isinstance(outcome.exception, errors.ConnectionLost), (name, outcome)
            assert outcome.exception.host == name
            detected = started + result.timings[name] - faulted[name]
            print(f"{name}: {outcome.msg!r} after {detected:.2f} s")
            assert 0 < detected < bound, (name, detected)
        # net3's agent lost its sshd session (EOF on its input); the agents behind the cut
        # links hear nothing more. Each must exit by itself.
        for name, pid in orphans.items():
            left = faulted[name] + ORPHAN_BOUND - time.perf_counter()
            wait_until(lambda pid=pid: not process_alive(pid), timeout=max(0.0, left))
            since = time.perf_counter() - faulted[name]
            print(f"{name}: agent {pid} gone, checked {since:.1f} s after the fault")
    after = group.call(remote_ops.pid_and_parent)  # faults undone: the tunnels reconnect
    assert after.ok, after
    assert all(after[name][0] != before[name][0] for name in names[1:])
    assert after["net1"] == before["net1"]  # the healthy host kept its agent


def test_a_relay_cut_off_fails_its_tunnels_within_the_bound_and_heals(hosts: NetnsHosts) -> None:
    """Injects: net1 as a relay for two agents on its host (``Local`` behind it), beside a
    direct tunnel to net2, all with keepalive=1; 1 s into a 4 s call on the three, every ssh
    packet of net1 dropped. Asserts: net2's result arrives; both relayed calls fail with
    ConnectionLost naming the relay within 10 s of the cut; the relay's agent and the agents
    behind it exit by themselves within 10 s; once the cut is undone the same tunnels
    reconnect (through a new relay agent) and answer."""
    relay = hosts.tunnel("net1", keepalive=1)
    behind = [
        Local(f"on-net1-{i}", python3="/usr/bin/python3", keepalive=1, via=relay) for i in (1, 2)
    ]
    group = Group([*behind, hosts.tunnel("net2", keepalive=1)])
    try:
        with ExitStack() as undo:
            before = group.call(remote_ops.pid_and_parent)
            assert before.ok, before
            relay_agent = relay.remote_info["pid"]
            assert {before[t.host][1] for t in behind} == {relay_agent}
            orphans = [relay_agent, *(before[t.host][0] for t in behind)]
            faulted: dict[str, float] = {}

            def inject() -> None:
                undo.enter_context(hosts.cut("net1"))
                faulted["net1"] = time.perf_counter()

            started = time.perf_counter()
            injector = at(1.0, inject)
            result = group.run(remote_ops.sleep, (4,), timeout=30)
            injector.join()
            assert result["net2"] == 4
            for tunnel in behind:
                outcome = result[tunnel.host]
                assert isinstance(outcome, ErrorResult), outcome
                assert isinstance(outcome.exception, errors.ConnectionLost), outcome
                assert outcome.exception.host == tunnel.host
                assert "lost its relay net1" in outcome.msg, outcome.msg
                detected = started + result.timings[tunnel.host] - faulted["net1"]
                print(f"{tunnel.host}: {outcome.msg!r} after {detected:.2f} s")
                assert 0 < detected < CUT_LINK_BOUND
            for pid in orphans:
                left = faulted["net1"] + ORPHAN_BOUND - time.perf_counter()
                wait_until(lambda pid=pid: not process_alive(pid), timeout=max(0.0, left))
        after = group.call(remote_ops.pid_and_parent)
        assert after.ok, after
        assert relay.remote_info["pid"] != relay_agent
    finally:
        group.close()
        relay.close()


def test_connect_faults_fail_only_their_host_and_heal(hosts: NetnsHosts, tmp_path: Path) -> None:
    """Injects: net6's sshd stopped before connecting, a host name that does not resolve, and
    net7 reached with a key it does not accept, in one group with healthy net1.
    Asserts: net1's result arrives; each faulty host fails with ConnectError (status
    "unreachable") naming it, within 3 s; with sshd started again, the same tunnel connects."""
    wrong_key = tmp_path / "wrong_key"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(wrong_key)],
                   check=True)  # fmt: skip
    wrong_config = tmp_path / "ssh_config"
    wrong_config.write_text(
        hosts.config_path.read_text().replace(str(hosts.key_path), str(wrong_key))
    )
    group = Group(
        [
            hosts.tunnel("net1"),
            hosts.tunnel("net6"),
            hosts.tunnel("no-such-host.invalid"),
            hosts.tunnel("net7", ssh_config=str(wrong_config)),
        ]
    )
    try:
        with hosts.sshd_down("net6"):
            result = group.call(os.getpid)
        assert isinstance(result["net1"], int)
        expected = {
            "net6": "Connection refused",
            "no-such-host.invalid": "Could not resolve hostname",
            "net7": "Permission denied",
        }
        for name, text in expected.items():
            outcome = result[name]
            assert isinstance(outcome, ErrorResult) and outcome.status == "unreachable", outcome
            assert isinstance(outcome.exception, errors.ConnectError)
            assert outcome.exception.host == name and text in outcome.msg, outcome.msg
            print(f"{name}: {outcome.msg!r} after {result.timings[name]:.2f} s")
            assert result.timings[name] < CONNECT_FAULT_BOUND
        again = Group([group["net1"], group["net6"]]).call(os.getpid)
        assert again.ok, again  # sshd is back: the tunnel that failed connects now
    finally:
        group.close()


CONTROLLER = """
import json, os, sys, time
from chopsticks_nb.tunnel import Local
sys.path[:0] = {paths!r}
from fixtures.netns import NetnsTunnel
tunnels = [NetnsTunnel(name, namespace={switch!r}, ssh_config={config!r}) for name in {names!r}]
tunnels.append(Local("local"))
pids = {{t.host: t.call(os.getpid) for t in tunnels}}
clients = [t._conn.proc.pid for t in tunnels]
print(json.dumps({{"agents": pids, "clients": clients}}), flush=True)
time.sleep(60)
"""


def test_agents_exit_when_their_controller_is_killed(hosts: NetnsHosts, tmp_path: Path) -> None:
    """Injects: SIGKILL of a controller process (a script in a subprocess) that holds SSH
    tunnels to net1 and net2 and a Local tunnel. Asserts: within 5 s no agent of it is left,
    remote or local, and its ssh client processes are gone too."""
    script = tmp_path / "controller.py"
    tests_dir = str(Path(__file__).resolve().parents[1])
    script.write_text(
        CONTROLLER.format(
            paths=[tests_dir],
            switch=hosts.switch,
            config=str(hosts.config_path),
            names=["net1", "net2"],
        )
    )
    proc = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        state = json.loads(proc.stdout.readline())
        agents = list(state["agents"].values())
        assert all(process_alive(pid) for pid in agents + state["clients"])
        proc.kill()
        proc.wait()
        waited = wait_until(
            lambda: not any(process_alive(pid) for pid in agents + state["clients"]), timeout=5
        )
        print(f"agents and ssh clients gone {waited:.2f} s after the controller was killed")
    finally:
        proc.kill()
        proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()


def test_interrupting_a_group_of_eight_sleepers(hosts: NetnsHosts) -> None:
    """Injects: a real SIGINT (Ctrl-C) 0.5 s into ``time.sleep(60)`` on eight SSH hosts.
    Asserts: control returns within 1 s of the signal with GroupInterrupted, every host marked
    "interrupted"; the remote sleeps were cancelled (the next call on the same tunnels, served
    by the same agents, answers within 1 s, which it could not if a sleep still ran)."""
    group = group_of(hosts, hosts.names)
    try:
        pids = group.call(os.getpid)
        assert pids.ok and len(pids) == 8
        with sigint_after(0.5), pytest.raises(GroupInterrupted) as caught:
            started = time.monotonic()
            group.run(time.sleep, (60,))
        returned = time.monotonic() - started - 0.5
        print(f"control returned {returned:.3f} s after SIGINT")
        assert returned < 1.0
        assert {e.status for e in caught.value.result.values()} == {"interrupted"}
        started = time.monotonic()
        assert group.call(os.getpid) == pids  # the same agents, free again
        assert time.monotonic() - started < 1.0
    finally:
        group.close()
