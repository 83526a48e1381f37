"""chopsticks 1.0's documented API, beyond the examples: names where 1.0 had them, results,
errors, facts' return shapes, remote output."""

from __future__ import annotations

import os
import re
import sys
import uuid

import doc_stand_ins as stand_ins
import pytest

import chopsticks_nb
from chopsticks_nb import facts
from chopsticks_nb.errors import GroupError
from chopsticks_nb.group import ErrorResult, Group, GroupResult
from chopsticks_nb.tunnel import Docker, Local, RemoteException, SSHTunnel, Sudo
from fixtures.podman import PodmanImage
from fixtures.pythons import RemotePythons
from fixtures.sshd import SSHHosts
from fixtures.sudo import SudoUsers


def test_names_where_chopsticks_had_them() -> None:
    from chopsticks_nb import Tunnel as TopLevelTunnel  # the how-to imports it from the package
    from chopsticks_nb.facts import ip, python_executable, python_version
    from chopsticks_nb.group import ErrorResult, Group, GroupResult
    from chopsticks_nb.queue import AsyncResult, NotCompleted, Queue
    from chopsticks_nb.tunnel import (
        BaseTunnel,
        Docker,
        Local,
        RemoteException,
        SSHTunnel,
        SubprocessTunnel,
        Sudo,
        Tunnel,
    )

    assert Tunnel is SSHTunnel is TopLevelTunnel
    assert all(issubclass(kind, SubprocessTunnel) for kind in (Docker, Local, Sudo, SSHTunnel))
    assert issubclass(SubprocessTunnel, BaseTunnel)
    assert issubclass(NotCompleted, Exception) and issubclass(GroupResult, dict)
    assert all(callable(f) for f in (ip, python_version, python_executable, Group, Queue))
    assert AsyncResult and ErrorResult and RemoteException


def test_remote_exception_importable_from_tunnel() -> None:
    """chopsticks 1.0 defined RemoteException in chopsticks.tunnel."""
    from chopsticks_nb.tunnel import RemoteException as FromTunnel

    assert FromTunnel is chopsticks_nb.RemoteException
    assert "RemoteException" in chopsticks_nb.tunnel.__all__


def test_error_result_importable_from_tunnel() -> None:
    """chopsticks 1.0 defined ErrorResult in chopsticks.tunnel (the docs name chopsticks.group)."""
    from chopsticks_nb.tunnel import ErrorResult as FromTunnel

    assert FromTunnel is ErrorResult


def test_versioninfo_is_a_tuple_of_ints() -> None:
    info = chopsticks_nb.__versioninfo__
    assert isinstance(info, tuple) and all(isinstance(part, int) for part in info)
    assert ".".join(map(str, info)) == chopsticks_nb.__version__
    assert info >= (0, 1)


@pytest.fixture
def new_and_old(remote_pythons: RemotePythons) -> Group:
    """A host with this Python (3.11) and one with Python 3.8."""
    return Group([Local("new"), Local("old", python3=str(remote_pythons.path("3.8")))])


def test_group_results_and_error_results(new_and_old: Group) -> None:
    with new_and_old as group:
        result = group.call(stand_ins.needs_new_python)
    assert isinstance(result, GroupResult) and isinstance(result, dict)
    assert list(result.successful()) == [("new", "{}.{}".format(*sys.version_info))]
    [(host, error)] = list(result.failures())
    assert host == "old" and isinstance(error, ErrorResult)
    assert "this needs Python 3.10, not 3.8" in error.msg
    assert error.tb is not None and "needs_new_python" in error.tb  # the remote traceback
    # 1.0 raised RemoteException here; this raises GroupError, a ChopsticksError that is not a
    # RemoteException (that would also catch "host unreachable"): catch GroupError instead.
    with pytest.raises(GroupError, match=r"this needs Python 3\.10, not 3\.8") as caught:
        result.raise_failures()
    assert not isinstance(caught.value, RemoteException)
    plain = ErrorResult("a message")
    assert (plain.msg, plain.tb) == ("a message", None)
    assert ErrorResult("m", "tb text").tb == "tb text"


def test_group_filter(new_and_old: Group) -> None:
    with new_and_old as group:
        assert group.filter(stand_ins.new_python).hosts == ["new"]
        assert group.filter(stand_ins.new_python, exclude=True).hosts == ["old"]
        with pytest.raises(GroupError, match=r"this needs Python 3\.10"):  # as raise_failures
            group.filter(stand_ins.needs_new_python)


@pytest.fixture
def every_kind_of_host(
    sshd_hosts: SSHHosts, sudo_user: SudoUsers, podman_image: PodmanImage
) -> Group:
    ssh = SSHTunnel("web1", ssh_config=str(sshd_hosts.config_path))
    container = Docker(f"facts-{uuid.uuid4().hex[:8]}", image=podman_image.image)
    container.docker = str(podman_image.docker)  # podman stands in for the docker engine
    return Group([ssh, Sudo(sudo_user.target), container, Local("local")])


def test_facts_shapes_on_every_kind_of_host(every_kind_of_host: Group) -> None:
    with every_kind_of_host as group:
        short = group.call(facts.python_version, short=True)
        full = group.call(facts.python_version)
        executables = group.call(facts.python_executable)
        addresses = group.call(facts.ip)
    for host in group.hosts:
        assert isinstance(short[host], list) and len(short[host]) == 2, (host, short[host])
        assert tuple(short[host]) >= (3, 0)  # chopsticks 1.0's idiom
        assert isinstance(full[host], list) and full[host][:2] == short[host]
        assert full[host][3] in ("alpha", "beta", "candidate", "final")
        assert os.path.isabs(executables[host])
        assert re.fullmatch(r"[0-9a-f.:]+", addresses[host]), addresses[host]
    assert full["local"] == list(sys.version_info)


def test_remote_stderr_and_print_reach_the_controller_prefixed(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """1.0 echoed stderr as '[host] line' and sent print() to /dev/null; chopsticks_nb shows
    both, each prefixed. Either way print() cannot break the tunnel."""
    with Local("talker") as tun:
        assert tun.call(stand_ins.chatter, "hello") == "hello"
        assert tun.call(os.getpid) > 0
    captured = capsys.readouterr()
    assert "[talker] hello\n" in captured.err
    assert "[talker] hello\n" in captured.out


def test_values_keep_their_types() -> None:
    """1.0 sent results as JSON (a tuple came back a list, an int key a str, bytes failed)."""
    with Local() as tun:
        value = tun.call(stand_ins.shapes)
    assert value == stand_ins.shapes()
    assert type(value[1]) is tuple and type(value["set"]) is set
