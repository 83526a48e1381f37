"""Relayed tunnels (``via=``): a relay's agent runs the tunnels' commands and passes their bytes.

The relays are real agents (``Local``, and an ``SSHTunnel`` to a loopback sshd); the tunnels
behind them real ``SSHTunnel``s to the loopback sshds of ``sshd_hosts`` or ``Local`` agents.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import remote_funcs as rf
import result_funcs

import chopsticks_nb
from chopsticks_nb import errors
from chopsticks_nb.group import Group
from chopsticks_nb.tunnel import BaseTunnel, Local, SSHTunnel, SubprocessTunnel
from fixtures.interrupts import sigint_after
from fixtures.sshd import SSHHosts
from fixtures.system import process_alive, wait_until
from fixtures.transports import OutputLog


def ssh(hosts: SSHHosts, name: str, via: BaseTunnel, **options: Any) -> SSHTunnel:
    return SSHTunnel(
        name, ssh_config=str(hosts.config_path), connect_timeout=15, via=via, **options
    )


@pytest.fixture
def relay() -> Iterator[Local]:
    with Local("relay1") as tunnel:
        yield tunnel


def test_a_relayed_ssh_tunnel_calls_raises_prints_and_moves_files(
    sshd_hosts: SSHHosts, relay: Local, tmp_path: Path
) -> None:
    """Injects: an SSHTunnel to web1 through a Local relay: calls (3 and 6 MiB arguments and
    results among them), a remote exception, output, put and fetch of 3 MiB. Asserts: each
    works as over a direct tunnel; the agent is one level deeper than the relay; the
    controller holds no pipe of the tunnel's own."""
    log = OutputLog()
    data = os.urandom(3 * 2**20 + 5)
    source = tmp_path / "source"
    source.write_bytes(data)
    remote = f"/tmp/chopsticks-relay-{os.getpid()}"
    with ssh(sshd_hosts, "web1", relay, output=log) as tunnel:
        assert tunnel.remote_info["depth"] == relay.remote_info["depth"] + 1 == 2
        assert tunnel.call(rf.uid) != 0  # the test user on web1, not root as the relay
        assert tunnel.call(rf.echo, data, k=1) == [[data], {"k": 1}]  # a large frame
        big = data * 2
        assert tunnel.call(bytes, big) == big  # a large bytes result, read in place
        with pytest.raises(errors.RemoteException, match="through the relay") as info:
            tunnel.call(rf.boom, "through the relay")
        assert info.value.host == "web1" and info.value.remote_type == "RuntimeError"
        assert tunnel.call(rf.noisy, 2) == 2
        put = tunnel.put(str(source), remote)
        fetched = tunnel.fetch(remote, str(tmp_path / "back"))
        tunnel.call(os.unlink, remote)
        assert tunnel._conn is not None and tunnel._conn.process.fds == []
    assert put["sha1sum"] == fetched["sha1sum"] == hashlib.sha1(data).hexdigest()
    assert (tmp_path / "back").read_bytes() == data
    assert log.runs() == [("stdout", "out line 0\n"), ("stderr", "err line 0\n"),
                          ("stdout", "out line 1\n"), ("stderr", "err line 1\n")]  # fmt: skip


def test_the_import_hook_serves_through_a_relay(relay: Local, served: Path) -> None:
    """Injects: a module only the controller has, imported by a call on a tunnel behind a
    relay. Asserts: it is served (through the relay) and runs there."""
    (served / "relayed_only.py").write_text("def total():\n    return 42\n")
    with Local("behind", via=relay) as tunnel:
        assert tunnel.call(rf.import_and_sum, "relayed_only") == 42
        assert tunnel.call(rf.getpid) != relay.call(rf.getpid)


def test_cancel_timeout_and_ctrl_c_reach_the_agent_behind_a_relay(relay: Local) -> None:
    """Injects: a cancelled future, a call_timeout and a real Ctrl-C, each on a 60 s sleep
    behind a relay. Asserts: each raises its error at once (CallCancelled, CallTimeout,
    KeyboardInterrupt), the remote call was interrupted (the agent answers the next call
    while a 60 s sleep would still run), and the tunnel stays usable."""
    log = OutputLog()
    with Local("behind", via=relay, call_timeout=30, output=log) as tunnel:
        future = tunnel.submit(rf.say_then_sleep, 60)
        # a call cancelled before it starts is only dropped: cancel this one while it runs
        wait_until(lambda: "started" in log.text("stdout"), 30, "the call to start")
        future.cancel()
        with pytest.raises(errors.CallCancelled):
            future.result(timeout=10)
        assert tunnel.call(rf.echo, "after the cancel") == [["after the cancel"], {}]
        tunnel.call_timeout = 0.5
        with pytest.raises(errors.CallTimeout):
            tunnel.call(rf.sleep, 60)
        tunnel.call_timeout = 30
        assert tunnel.call(rf.echo, "after the timeout") == [["after the timeout"], {}]
        with pytest.raises(KeyboardInterrupt), sigint_after(0.5):
            tunnel.call(rf.sleep, 60)
        assert tunnel.call(rf.echo, "after Ctrl-C") == [["after Ctrl-C"], {}]


def test_relays_count_towards_the_depth_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    """Injects: a tunnel behind a relay that is itself behind a relay, with DEPTH_LIMIT 2 and
    then 3. Asserts: at 2 it is refused with DepthLimitExceeded naming the inner relay, before
    anything starts for it (the inner relay itself connects, 2 deep); at 3 its agent is 3
    deep and answers."""
    outer = Local("outer")
    inner = Local("inner", via=outer)
    deepest = Local("deepest", via=inner)
    try:
        with pytest.raises(errors.DepthLimitExceeded, match="at its relay inner") as info:
            deepest.connect()
        assert info.value.host == "deepest"
        assert inner.remote_info["depth"] == 2
        monkeypatch.setattr(chopsticks_nb, "DEPTH_LIMIT", 3)
        assert deepest.remote_info["depth"] == 3
        assert deepest.call(rf.echo, b"x" * 200_000) == [[b"x" * 200_000], {}]
    finally:
        for tunnel in (deepest, inner, outer):
            tunnel.close()


def test_a_killed_relay_fails_its_tunnels_at_once_naming_it(sshd_hosts: SSHHosts) -> None:
    """Injects: SIGKILL to a relay's agent while calls run on two SSH tunnels behind it and on
    a direct tunnel. Asserts: both relayed calls fail with ConnectionLost naming the relay
    (well before their 60 s sleep ends); the direct tunnel is untouched; the tunnels
    connect again (through a new relay agent) on their next call."""
    relay = Local("relay-k")
    direct = Local("direct")
    behind = [ssh(sshd_hosts, name, relay) for name in ("web1", "web2")]
    try:
        for tunnel in behind:
            tunnel.connect()
        futures = [tunnel.submit(rf.sleep, 60) for tunnel in behind]
        other = direct.submit(rf.sleep, 1)
        os.kill(relay.remote_info["pid"], signal.SIGKILL)
        for future in futures:
            with pytest.raises(errors.ConnectionLost, match="lost its relay relay-k") as info:
                future.result(timeout=20)
            assert info.value.host in ("web1", "web2")
        assert other.result(timeout=20) == 1
        assert [t.call(rf.echo, t.host) for t in behind] == [[["web1"], {}], [["web2"], {}]]
    finally:
        for tunnel in (*behind, relay, direct):
            tunnel.close()


def test_a_killed_agent_behind_a_relay_fails_only_itself(relay: Local) -> None:
    """Injects: SIGKILL to one of two agents behind a relay, while both run a call. Asserts:
    its call fails with ConnectionLost naming it; the other agent's call and the relay's own
    calls still answer."""
    victim, survivor = Local("victim", via=relay), Local("survivor", via=relay)
    try:
        lost = victim.submit(rf.sleep, 60)
        kept = survivor.submit(rf.sleep, 0.5)
        os.kill(victim.remote_info["pid"], signal.SIGKILL)
        with pytest.raises(errors.ConnectionLost) as info:
            lost.result(timeout=20)
        assert info.value.host == "victim" and "relay" not in str(info.value)
        assert kept.result(timeout=20) == 0.5
        assert relay.call(rf.echo, 1) == [[1], {}]
        assert survivor.call(rf.echo, 2) == [[2], {}]
    finally:
        victim.close()
        survivor.close()


def test_retries_go_through_a_new_relay_agent_after_the_relay_was_killed(tmp_path: Path) -> None:
    """Injects: the relay's agent killed (SIGKILL, by a call on one of the two agents behind
    it) while the group's call runs. Asserts (docs/scale.md, "Faults"): with ``retries=1``
    every host answers, from agents a new relay agent started, its one retry noted where its
    first attempt was lost; without retries the same loss is each host's outcome, a
    ConnectionLost naming the relay."""
    relay = Local("relay-r")
    group = Group([Local(name, via=relay) for name in ("r1", "r2")])
    try:
        group.connect().raise_failures()
        first_relay = relay.remote_info["pid"]
        marker = str(tmp_path / "killed")
        result = group.call(result_funcs.kill_parent_once, marker, retries=1, retry_delay=0)
        assert result.ok, result
        new_relay = relay.remote_info["pid"]
        assert new_relay != first_relay
        retried = {host for host, attempts in result.attempts.items() if attempts == 2}
        assert retried and set(result.attempts.values()) <= {1, 2}
        # A host may have answered through the old relay before it died (the race is real).
        assert {host: result[host] for host in retried} == dict.fromkeys(retried, new_relay)
        assert set(result.values()) <= {first_relay, new_relay}
        once = group.call(result_funcs.kill_parent_once, str(tmp_path / "again"))
    finally:
        group.close()
        relay.close()
    # The host that killed the relay is lost; the other may have answered just before.
    answered = dict(once.successful())
    assert set(answered.values()) <= {new_relay}, once
    lost = [host for host in once if host not in answered]
    assert lost, once
    for host in lost:
        assert once[host].status == "lost", once
        assert isinstance(once[host].exception, errors.ConnectionLost)
        assert "lost its relay relay-r" in str(once[host].exception)


def test_a_relay_that_cannot_run_the_command_says_so(relay: Local) -> None:
    """Injects: a tunnel behind a relay whose interpreter does not exist there. Asserts:
    ConnectError naming the tunnel, the relay and the missing program; the relay is fine."""
    missing = Local("nowhere", python3="/nonexistent/python3", via=relay)
    with pytest.raises(errors.ConnectError) as info:
        missing.connect()
    text = str(info.value)
    assert text.startswith("nowhere: its relay relay1 could not start it: cannot run")
    assert "/nonexistent/python3" in text
    assert relay.call(rf.echo, 3) == [[3], {}]


class Misbehaving(SubprocessTunnel):
    """A relayed command that is no agent: it runs ``program`` with this interpreter."""

    python3 = sys.executable

    def __init__(self, name: str, program: str, **options: Any) -> None:
        super().__init__(name, **options)
        self.program = program

    def cmd_args(self) -> list[str]:
        return [self.python3, "-c", self.program]


def test_commands_that_flood_or_hang_harm_only_themselves(relay: Local) -> None:
    """Injects: behind one relay, a command that floods its stdout and stderr without reading
    its input, one that neither reads nor writes, and an honest agent. Asserts: the flood ends
    its own tunnel (no handshake in its output), the silent one times out connecting; the
    relay and the honest agent answer meanwhile and after."""
    flood = Misbehaving(
        "flood",
        "import os\nwhile True:\n os.write(1, b'x' * 65536)\n os.write(2, b'y' * 65536)",
        via=relay,
        output=lambda stream, text: None,
    )
    silent = Misbehaving("silent", "import time; time.sleep(60)", via=relay, connect_timeout=2)
    honest = Local("honest", via=relay)
    group = Group([flood, silent, honest])
    try:
        result = group.connect(timeout=30)
        assert isinstance(result["flood"].exception, errors.ProtocolError)
        assert "no chopsticks_nb handshake" in str(result["flood"].exception)
        assert isinstance(result["silent"].exception, errors.ConnectTimeout)
        assert result["honest"]["depth"] == 2
        assert relay.call(rf.echo, 4) == [[4], {}]
        assert honest.call(rf.echo, 5) == [[5], {}]
    finally:
        group.close()


def test_a_group_spread_over_relays(sshd_hosts: SSHHosts, tmp_path: Path) -> None:
    """Injects: 32 SSH tunnels (eight sessions to each of web1..web4, named apart) spread over
    four Local relays with Group.split: connect, a call, a put of 1 MiB to each,
    and an output-printing exec. Asserts: every host succeeds, eight per relay; each host's
    data comes back intact; the controller holds four relay pipes (three fds each) and no
    pipe per host."""
    relays = [Local(f"relay{i}") for i in range(4)]
    names = [f"h{i:02d}" for i in range(32)]
    direct = Group(
        [SSHTunnel(f"web{1 + i % 4}", name=n, ssh_config=str(sshd_hosts.config_path),
                   connect_timeout=30) for i, n in enumerate(names)]
    )  # fmt: skip
    group = direct.split(relays)
    data = os.urandom(2**20)
    (tmp_path / "data").write_bytes(data)
    try:
        assert [t.via for t in group] == [r for r in relays for _ in range(8)]
        assert all(t.via is None for t in direct)  # split made copies
        assert group.connect(timeout=120).ok
        hosts = group.call(rf.uid)
        assert hosts.ok and len(hosts) == 32
        put = group.put(str(tmp_path / "data"))  # to a new temporary file on each host
        assert put.ok and {v["sha1sum"] for v in put.values()} == {hashlib.sha1(data).hexdigest()}
        out = group.exec("print('hello', 1)\n7")
        assert out.ok and set(out.values()) == {7}
        assert all(out.output(host) for host in names)
        conns = [t._conn for t in group]
        assert all(c is not None and c.process.fds == [] for c in conns)
        assert all(len(r._conn.process.fds) == 3 for r in relays if r._conn is not None)
        for tunnel in group:
            tunnel.call(os.unlink, put[tunnel.host]["remote_path"])
    finally:
        group.close()
        for relay in relays:
            relay.close()


def test_a_group_takes_via_and_an_inventory_passes_it_on(
    sshd_hosts: SSHHosts, relay: Local, tmp_path: Path
) -> None:
    """Injects: Group(names, via=relay), and an inventory with an SSH host and a local one
    read with via=relay. Asserts: the SSH tunnels go through the relay (their agents are one
    level deeper than it); the inventory's local host stays on this machine."""
    group = Group(["web1", "web2"], ssh_config=str(sshd_hosts.config_path), via=relay)
    inventory = tmp_path / "hosts.ini"
    inventory.write_text("web3\nhere ansible_connection=local\n")
    listed = Group.from_inventory(inventory, ssh_config=str(sshd_hosts.config_path), via=relay)
    try:
        assert {info["depth"] for info in group.connect().values()} == {2}
        assert listed["web3"].via is relay and listed["here"].via is None
        assert listed.connect().ok
        assert listed["web3"].remote_info["depth"] == 2
        assert listed["here"].remote_info["depth"] == 1
    finally:
        group.close()
        listed.close()


def test_an_ssh_relay_serves_agents_on_its_host(sshd_hosts: SSHHosts) -> None:
    """Injects: an SSHTunnel to web2 as the relay, and two Local agents behind it (agents on
    web2, started by the relay's agent). Asserts: they run there as the relay's user, as its
    children, and answer calls and puts."""
    relay = SSHTunnel("web2", ssh_config=str(sshd_hosts.config_path), connect_timeout=15)
    behind = [Local(f"on-web2-{i}", python3="/usr/bin/python3", via=relay) for i in (1, 2)]
    try:
        relay_pid = relay.call(rf.getpid)
        for tunnel in behind:
            assert tunnel.call(os.getppid) == relay_pid
            assert tunnel.call(rf.uid) == relay.call(rf.uid) != 0
            assert tunnel.call(rf.echo, b"z" * 3_000_000) == [[b"z" * 3_000_000], {}]
    finally:
        for tunnel in (*behind, relay):
            tunnel.close()


def test_via_is_checked() -> None:
    """Asserts: via= takes a tunnel; control_master cannot go through a relay; split() needs
    relays and spreads hosts in even blocks; behind() copies without connecting."""
    with pytest.raises(TypeError, match="via= takes a tunnel"):
        Local("x", via="relay")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="control_master"):
        SSHTunnel("web1", control_master=True, via=Local("r"))
    with pytest.raises(ValueError, match="control_master"):
        SSHTunnel("web1", control_master=True).behind(Local("r"))
    group = Group([Local(f"l{i}") for i in range(10)])
    relays = [Local(f"r{i}") for i in range(3)]
    with pytest.raises(ValueError):
        group.split([])
    with pytest.raises(TypeError):
        group.split(["r1"])  # type: ignore[list-item]
    spread = group.split(relays)
    assert [relays.index(t.via) for t in spread if t.via is not None] == [0] * 4 + [1] * 3 + [2] * 3
    assert spread.hosts == group.hosts
    assert all(t._conn is None for t in spread)
    assert spread["l0"].behind(None).via is None


def test_no_thread_is_left_by_relaying(relay: Local) -> None:
    """Asserts: relaying adds no thread here (the relay's pump thread is on the relay)."""
    before = threading.active_count()
    with Local("behind", via=relay) as tunnel:
        tunnel.call(rf.getpid)
        assert threading.active_count() == before


EXITING = """
import json, os, sys, time
import chopsticks_nb
from chopsticks_nb.tunnel import Local
chopsticks_nb.DEPTH_LIMIT = 3
outer = Local("outer")
inner = Local("inner", via=outer)
behind = [Local("a", via=outer), Local("b", via=inner)]
pids = [t.call(os.getpid) for t in (outer, inner, *behind)]
behind[0].submit(time.sleep, 60)  # still running at exit
behind[1].submit(time.sleep, 60)
print(json.dumps(pids), flush=True)
"""


def test_interpreter_exit_ends_relays_and_what_is_behind_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Injects: a script that opens a relay, a relay behind it and an agent behind each, starts
    a 60 s call on both agents and exits without closing anything. Asserts: it exits at once
    (status 0) and every agent it started is gone within 5 s after."""
    script = tmp_path / "exiting.py"
    script.write_text(EXITING)
    monkeypatch.setenv("PYTHONPATH", str(Path(chopsticks_nb.__file__).parents[1]))
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=20)
    assert done.returncode == 0, done.stderr
    pids = json.loads(done.stdout)
    assert len(set(pids)) == 4
    wait_until(lambda: not any(process_alive(pid) for pid in pids), timeout=5)
