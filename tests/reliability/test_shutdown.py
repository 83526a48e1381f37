"""Shutting down leaves nothing: no child, thread or fd here, no agent on the remote side.

Every way a program stops using its tunnels is covered: ``close()``, leaving a ``with Group``,
dropping the last reference (garbage collection), the interpreter exiting with tunnels open and
a call in flight, and a Jupyter kernel shut down (politely, and killed). The autouse leak check
(tests/fixtures/leaks.py) adds its own verdict on children, threads and fds of this process.
"""

from __future__ import annotations

import gc
import json
import os
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest
from jupyter_client.manager import KernelManager
from security.hostile import HostileTunnel

from chopsticks_nb.group import Group
from chopsticks_nb.tunnel import Local, SSHTunnel
from fixtures.netns import NetnsHosts
from fixtures.sshd import SSHHosts
from fixtures.system import process_alive, wait_until
from reliability import remote_ops

#: Seconds within which every agent and ssh client of a closed tunnel must be gone.
GONE_WITHIN = 5.0


def processes_of(group: Group) -> list[int]:
    """Every agent pid (remote or local) and local tunnel process (ssh client) of ``group``."""
    agents = group.call(remote_ops.pid_and_parent)
    assert agents.ok, agents
    local = [t._conn.proc.pid for t in group if t._conn and t._conn.proc]
    return [pid for pid, _ in agents.values()] + local


def assert_all_gone(pids: list[int]) -> float:
    return wait_until(lambda: not any(process_alive(pid) for pid in pids), timeout=GONE_WITHIN)


def mixed(netns_hosts: NetnsHosts, tag: str) -> Group:
    return Group([netns_hosts.tunnel("net1"), netns_hosts.tunnel("net2"), Local(f"{tag}-local")])


def test_close_leaves_nothing(netns_hosts: NetnsHosts) -> None:
    """Injects: close() of each tunnel, one with a call still running. Asserts: the remote
    agents, the ssh clients and the local agent are gone within 5 s; the broker thread has
    stopped within 1 s (no tunnel left); the leak check finds no child, thread or fd."""
    group = mixed(netns_hosts, "close")
    pids = processes_of(group)
    running = group["net1"].submit(remote_ops.sleep, 30)
    for tunnel in group:
        tunnel.close()
    assert running.exception(5) is not None
    assert_all_gone(pids)
    wait_until(lambda: not [t for t in threading.enumerate() if t.name == "chopsticks-broker"],
               timeout=1)  # fmt: skip


def test_close_tells_every_lingering_agent_before_signalling_any(tmp_path: Path) -> None:
    """Injects: four remotes that do not exit when their stdin closes (hostile_agent's "deaf":
    it notes the EOF, then waits for a signal, as a hung host or a wrapper keeping its session
    does). Asserts: Group.close() closes every stdin (EOF) before it signals any (SIGTERM, once
    the close timeout is over), so N such remotes cost one timeout, not N; all are gone."""
    logs = [tmp_path / f"deaf{n}.log" for n in range(4)]
    group = Group([HostileTunnel(log.stem, "deaf", log=str(log)) for log in logs])
    assert group.call(os.getpid).ok
    pids = [t._conn.proc.pid for t in group if t._conn and t._conn.proc]
    group.close()
    events = [dict(line.split() for line in log.read_text().splitlines()) for log in logs]
    assert all(set(e) == {"eof", "term"} for e in events), events
    assert max(float(e["eof"]) for e in events) < min(float(e["term"]) for e in events)
    assert not any(process_alive(pid) for pid in pids)


def test_group_exit_and_garbage_collection_leave_nothing(netns_hosts: NetnsHosts) -> None:
    """Injects: leaving a ``with Group(...)`` block; then dropping the last reference to
    another group without closing it. Asserts: after each, every agent (remote and local) and
    ssh client is gone within 5 s."""
    with mixed(netns_hosts, "with") as group:
        pids = processes_of(group)
    assert_all_gone(pids)

    group = mixed(netns_hosts, "gc")
    pids = processes_of(group)
    del group
    gc.collect()
    assert_all_gone(pids)


EXITING = """
import json, os, sys, time
sys.path[:0] = {paths!r}
from chopsticks_nb.tunnel import Local
from fixtures.netns import NetnsTunnel
from reliability import remote_ops
from security.hostile import HostileTunnel
tunnels = [NetnsTunnel(n, namespace={switch!r}, ssh_config={config!r}) for n in ("net1", "net2")]
tunnels.append(Local("local"))
pids = [t.call(remote_ops.pid_and_parent)[0] for t in tunnels] + [t._conn.proc.pid for t in tunnels]
tunnels[0].submit(remote_ops.sleep, 60)  # still running at exit
print(json.dumps(pids), flush=True)
"""


def test_interpreter_exit_with_open_tunnels_and_a_call_in_flight(
    netns_hosts: NetnsHosts, tmp_path: Path
) -> None:
    """Injects: a script that opens SSH and Local tunnels, starts a 60 s call and exits
    without closing anything. Asserts: the interpreter exits within 10 s (status 0) and every
    agent and ssh client it started is gone within 5 s after."""
    script = tmp_path / "exiting.py"
    script.write_text(EXITING.format(paths=[str(Path(__file__).resolve().parents[1])],
                                     switch=netns_hosts.switch,
                                     config=str(netns_hosts.config_path)))  # fmt: skip
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                          timeout=10)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert_all_gone(json.loads(done.stdout))


KERNEL_CELL = """
import json, os
from chopsticks_nb.tunnel import Local, SSHTunnel
_tunnels = [Local("k1"), Local("k2"), SSHTunnel("web1", ssh_config={config!r})]
_pids = [t.call(os.getpid) for t in _tunnels] + [t._conn.proc.pid for t in _tunnels]
print(json.dumps(_pids))
"""


@pytest.fixture(scope="module")
def jupyter_client_warm() -> None:
    """jupyter_client keeps, for good once first used, zmq's process-wide context (an I/O
    thread's epoll fd and sockets) and the event loop of its synchronous wrappers (an epoll fd
    and a socket pair). Start both before the leak check's snapshot, so that only what the
    tests themselves leave behind is counted."""
    import zmq

    zmq.Context.instance().socket(zmq.PUB).close()
    KernelManager(kernel_name="python3").is_alive()


def run_in_kernel(code: str, cwd: Path) -> tuple[KernelManager, list[int]]:
    """Start a real ipykernel (this interpreter), run ``code``, return it and the JSON it
    printed."""
    manager = KernelManager(kernel_name="python3")
    manager.start_kernel(cwd=str(cwd))
    client = manager.client()
    client.start_channels()
    printed: list[str] = []

    def hook(message: dict[str, Any]) -> None:
        if message["msg_type"] == "stream" and message["content"]["name"] == "stdout":
            printed.append(message["content"]["text"])

    try:
        client.wait_for_ready(timeout=60)
        reply = client.execute_interactive(code, timeout=60, output_hook=hook)
        assert reply["content"]["status"] == "ok", reply["content"]
    except BaseException:
        manager.shutdown_kernel(now=True)
        raise
    finally:
        client.stop_channels()
    return manager, json.loads("".join(printed))


@pytest.mark.parametrize("how", ["shutdown", "kill"])
@pytest.mark.usefixtures("jupyter_client_warm")
def test_kernel_shutdown_leaves_no_agent(sshd_hosts: SSHHosts, tmp_path: Path, how: str) -> None:
    """Injects: a real Jupyter kernel (jupyter_client) runs a cell opening two Local tunnels and
    an SSH tunnel and calling them; the kernel is then shut down (a shutdown request) or
    killed (SIGKILL). Asserts: the kernel process, its local agents, its ssh client and the
    remote agent are all gone within 5 s."""
    manager, pids = run_in_kernel(KERNEL_CELL.format(config=str(sshd_hosts.config_path)), tmp_path)
    kernel_pid = manager.provisioner.process.pid  # type: ignore[union-attr]
    assert all(process_alive(pid) for pid in pids)
    try:
        manager.shutdown_kernel(now=how == "kill")
    finally:
        manager.cleanup_resources()
    assert_all_gone([kernel_pid, *pids])


def test_ssh_close_ends_the_remote_agent(sshd_hosts: SSHHosts) -> None:
    """Injects: close() of a loopback SSH tunnel (the sshd_hosts fixture). Asserts: the remote
    agent and the ssh client are gone within 5 s (the control for the kernel test's SSH part)."""
    tunnel = SSHTunnel("web2", ssh_config=str(sshd_hosts.config_path))
    pids = [tunnel.call(os.getpid)]
    assert tunnel._conn is not None and tunnel._conn.proc is not None
    pids.append(tunnel._conn.proc.pid)
    tunnel.close()
    assert_all_gone(pids)
