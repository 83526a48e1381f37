"""The core behaviour over every transport: Local, SSHTunnel, Sudo, Podman and a Local behind a
relay (``any_tunnel``)."""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
import uuid
from pathlib import Path

import agent_probes as probes
import pytest
import remote_funcs as rf

from chopsticks_nb import errors
from chopsticks_nb.group import Group
from chopsticks_nb.tunnel import BaseTunnel
from fixtures.podman import PodmanImage
from fixtures.sshd import SSHHosts
from fixtures.sudo import SudoUsers
from fixtures.system import wait_until
from fixtures.transports import TRANSPORTS, OutputLog, Transport, make_transport


def cube(value: int) -> int:
    """Defined here, in the test module: the remote imports this module to find it."""
    return value**3


def test_a_call_returns_its_value(any_tunnel: BaseTunnel, transport: Transport) -> None:
    assert any_tunnel.call(os.getuid) == transport.remote_uid
    assert any_tunnel.call(rf.getpid) == any_tunnel.remote_info["pid"]
    blob = os.urandom(100_000)
    assert any_tunnel.call(rf.echo, 1, "two", blob, key=(3.5, None)) == [
        [1, "two", blob],
        {"key": (3.5, None)},
    ]


def test_functions_of_the_test_module_run_remotely(any_tunnel: BaseTunnel) -> None:
    def offset(value: int) -> int:  # no module to import it from: it travels as source
        return cube(value) + 1

    assert any_tunnel.call(cube, 3) == 27
    assert any_tunnel.call(offset, 2) == 9


def test_a_remote_exception_names_host_type_and_remote_code(any_tunnel: BaseTunnel) -> None:
    with pytest.raises(errors.RemoteException) as info:
        any_tunnel.call(rf.boom, "broken far away")
    exc = info.value
    assert exc.host == any_tunnel.host
    assert exc.remote_type == "RuntimeError"
    assert str(exc) == f"RuntimeError on {any_tunnel.host}: broken far away"
    assert exc.remote_traceback is not None
    assert "remote_funcs.py" in exc.remote_traceback and "in boom" in exc.remote_traceback
    assert "raise RuntimeError(message)" in exc.remote_traceback
    assert any_tunnel.call(rf.echo, "after") == [["after"], {}]  # the agent lives on


def test_remote_output_is_relayed_in_order_before_the_result(
    any_tunnel: BaseTunnel, remote_output: OutputLog
) -> None:
    assert any_tunnel.call(rf.noisy, 3) == 3
    assert remote_output.runs() == [
        (stream, f"{word} line {i}\n")
        for i in range(3)
        for stream, word in (("stdout", "out"), ("stderr", "err"))
    ]


def test_the_import_hook_serves_a_package_only_the_controller_has(
    any_tunnel: BaseTunnel, served: Path
) -> None:
    name = f"only_here_{uuid.uuid4().hex[:8]}"
    package = served / name
    (package / "deep").mkdir(parents=True)
    (package / "__init__.py").write_text("from . import part\n\ndef total():\n    return part.N\n")
    (package / "part.py").write_text("N = 41\n")
    (package / "deep" / "__init__.py").write_text("")
    (package / "deep" / "leaf.py").write_text(
        "from .. import part\n\ndef total():\n    return -part.N\n"
    )
    assert any_tunnel.call(rf.loaded, [name]) == []
    assert any_tunnel.call(rf.import_and_sum, name) == 41
    assert any_tunnel.call(rf.import_and_sum, f"{name}.deep.leaf") == -41
    assert any_tunnel.call(rf.loaded, [name, f"{name}.part", f"{name}.deep.leaf"]) == sorted(
        [name, f"{name}.deep.leaf", f"{name}.part"]
    )
    assert any_tunnel.call(rf.module_file, f"{name}.deep.leaf") == str(package / "deep" / "leaf.py")


def test_put_and_fetch_a_file_of_a_few_megabytes(any_tunnel: BaseTunnel, tmp_path: Path) -> None:
    data = os.urandom(3 * 1024 * 1024 + 7)
    sha1 = hashlib.sha1(data).hexdigest()
    (tmp_path / "sent").write_bytes(data)
    remote_dir = any_tunnel.call(tempfile.mkdtemp)  # somewhere the remote user may write
    remote = f"{remote_dir}/received"
    try:
        put = any_tunnel.put(str(tmp_path / "sent"), remote)
        assert put == {
            "local_path": str(tmp_path / "sent"),
            "remote_path": remote,
            "size": len(data),
            "sha1sum": sha1,
        }
        assert any_tunnel.call(os.path.getsize, remote) == len(data)
        fetched = any_tunnel.fetch(remote, str(tmp_path / "back"))
    finally:
        any_tunnel.call(shutil.rmtree, remote_dir)
    assert fetched["size"] == len(data) and fetched["sha1sum"] == sha1
    assert (tmp_path / "back").read_bytes() == data


def test_a_call_timeout_cancels_the_remote_work(transport: Transport) -> None:
    with transport.new(call_timeout=1.0) as tunnel:
        with pytest.raises(errors.CallTimeout) as info:
            tunnel.call(probes.sleep_noting, 600)
        assert info.value.host == tunnel.host
        # Within the same 1 s timeout: a sleep still running would hold this call up.
        assert tunnel.call(probes.notes) == ["KeyboardInterrupt"]
        assert tunnel.call(probes.sleep_noting, 0) == 0


def test_after_close_the_next_call_connects_again(any_tunnel: BaseTunnel) -> None:
    first = any_tunnel.call(probes.agent_token)
    any_tunnel.close()
    assert not any_tunnel.connected
    second = any_tunnel.call(probes.agent_token)
    assert any_tunnel.connected
    assert second != first
    assert any_tunnel.call(rf.echo, "again") == [["again"], {}]


def test_a_killed_agent_fails_its_call_and_the_tunnel_reconnects(
    any_tunnel: BaseTunnel, transport: Transport
) -> None:
    first = any_tunnel.call(probes.agent_token)
    running = any_tunnel.submit(probes.sleep_noting, 600)
    transport.kill_agent(any_tunnel)
    with pytest.raises(errors.ConnectionLost) as info:
        running.result(30)
    assert info.value.host == any_tunnel.host
    assert str(info.value).startswith(f"{any_tunnel.host}: ")
    assert any_tunnel.call(probes.agent_token) != first
    assert any_tunnel.call(os.getuid) == transport.remote_uid


def test_a_killed_idle_agent_is_noticed_and_the_next_call_reconnects(
    any_tunnel: BaseTunnel, transport: Transport
) -> None:
    # docs/reliability.md: a tunnel whose agent died reconnects by itself on its next use (a
    # call already sent to the dead agent fails with ConnectionLost: see the test before).
    first = any_tunnel.call(probes.agent_token)
    transport.kill_agent(any_tunnel)
    wait_until(lambda: not any_tunnel.connected, timeout=10, what="the tunnel to see the death")
    assert any_tunnel.call(probes.agent_token) != first  # a new agent
    assert any_tunnel.connected


def test_a_group_of_every_transport(
    request: pytest.FixtureRequest,
    sshd_hosts: SSHHosts,
    sudo_user: SudoUsers,
    podman_image: PodmanImage,
) -> None:
    transports = [make_transport(request, kind) for kind in TRANSPORTS]
    tunnels = [transport.new() for transport in transports]
    with Group(tunnels) as group:
        result = group.call(os.getuid)
    assert result.ok
    assert dict(result) == {
        tunnel.host: transport.remote_uid for tunnel, transport in zip(tunnels, transports)
    }
    assert len(result) == len(TRANSPORTS)
