"""The how-to chapter of the chopsticks 1.0 documentation: single-file scripts, interpreter paths.

The scripts run as real scripts (``python script.py``), as the chapter means them. Differences:
- ``python2`` can still be set on a tunnel class, but is never used: remotes run Python 3.6+.
- The chapter's own ``MyTunnel`` sets ``python3`` to a ``python2`` path that does not exist on
  the test hosts: the connection fails with a clear message, which shows the setting is used.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest
from doc_examples import Examples, port

from chopsticks_nb import errors
from chopsticks_nb.facts import python_version
from chopsticks_nb.tunnel import SSHTunnel
from fixtures.pythons import RemotePythons
from fixtures.sshd import SSHHosts

pytestmark = pytest.mark.usefixtures("doc_hosts")

SCRIPT_WITH_MAIN_GUARD = """
from chopsticks import Tunnel

def do_it():
    return 'done'

if __name__ == '__main__':
    with Tunnel('remote') as tun:
        tun.call(do_it)
"""

SCRIPT_WITHOUT_GUARD = """
from chopsticks import Tunnel

def do_it():
    return 'done'

tunnel = Tunnel('remote')
tunnel.call(do_it)
"""

MY_TUNNEL = """
class MyTunnel(Tunnel):
    python3 = '/usr/local/bin/python2'
"""

ALL_TUNNELS = """
Tunnel.python2 = '/usr/bin/python2'
"""


@pytest.mark.parametrize(
    "script", [SCRIPT_WITH_MAIN_GUARD, SCRIPT_WITHOUT_GUARD], ids=["main-guard", "no-guard"]
)
def test_single_file_script(script: str, tmp_path: Path) -> None:
    path = tmp_path / "script.py"
    path.write_text(port(script))  # any failure there (connect, ship, call) raises: status 1
    done = subprocess.run(
        [sys.executable, str(path)], capture_output=True, text=True, timeout=60, check=False
    )
    assert (done.returncode, done.stdout, done.stderr) == (0, "", "")


def test_my_tunnel_uses_its_python3(examples: Examples) -> None:
    namespace = examples.run("from chopsticks.tunnel import Tunnel\n" + MY_TUNNEL)  # assumed
    tun = namespace["MyTunnel"]("web1")
    with pytest.raises(errors.ConnectError, match="web1: the remote interpreter was not found"):
        tun.call(time.time)


def test_my_tunnel_with_an_interpreter_that_is_there(
    examples: Examples, remote_pythons: RemotePythons
) -> None:
    python = remote_pythons.path("3.8")
    namespace = examples.run(
        "from chopsticks.tunnel import Tunnel\n" + MY_TUNNEL,  # assumed import
        {"'/usr/local/bin/python2'": repr(str(python))},  # a Python the test hosts have
    )
    with namespace["MyTunnel"]("web1") as tun:
        assert tun.call(python_version, short=True) == [3, 8]


def test_setting_python2_on_all_tunnels(
    examples: Examples, monkeypatch: pytest.MonkeyPatch, doc_hosts: SSHHosts
) -> None:
    monkeypatch.setattr(SSHTunnel, "python2", None, raising=False)  # removed after the test
    examples.run("from chopsticks.tunnel import Tunnel\n" + ALL_TUNNELS)  # assumed import
    assert SSHTunnel.python2 == "/usr/bin/python2"
    with SSHTunnel("web1") as tun:  # still Python 3: python2 is never used
        assert tun.call(python_version)[0] == 3
