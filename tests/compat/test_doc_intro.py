"""The README's and the introduction's examples (chopsticks 1.0), ported by the import alone.

Changes beyond the import (each listed in docs/migrating.md):
- The README's group example calls ``ip`` without importing it (the blog post's copy has
  ``from chopsticks.facts import ip``): as written it is a NameError, with the original too.
- Docker Hub images are not reachable here: ``python:3.x`` becomes the test image (Debian's
  Python 3.11) run by podman. chopsticks_nb needs Python 3.6 or newer in the container, so the
  README's ``python:3.4`` and ``python:3.5`` would be refused (see test_doc_tunnels.py).
"""

from __future__ import annotations

import re
import time
import weakref

import pytest
from doc_examples import Examples

from fixtures.podman import PodmanImage

pytestmark = pytest.mark.usefixtures("doc_hosts")

ADDRESS = r"\d+\.\d+\.\d+\.\d+"
WEB = ["web1.example.com", "web2.example.com", "web3.example.com"]

# -- README ----------------------------------------------------------------------------------

README_TUNNEL = """
from chopsticks.tunnel import Tunnel
tun = Tunnel('troy.example.com')
"""

README_TUNNEL_CALL = """
import time
print('Time on %s:' % tun.host, tun.call(time.time))
"""

README_GROUP = """
from chopsticks.group import Group

group = Group([
    'web1.example.com',
    'web2.example.com',
    'web3.example.com',
])
for host, addr in group.call(ip).successful():
    print('%s ip:' % host, addr)
"""

README_DOCKER = """
from chopsticks.tunnel import Docker
from chopsticks.group import Group
from chopsticks.facts import python_version

group = Group([
    Docker('worker-1', image='python:3.4'),
    Docker('worker-2', image='python:3.5'),
    Docker('worker-3', image='python:3.6'),
])

for host, python_version in group.call(python_version).items():
    print('%s Python version:' % host, python_version)
"""

README_CONNECT = """
# Explictly connect and disconnect
group.connect()
group.call(time.time)
group.close()

# Reconnect and disconnect as context manager
with group:
    group.call(time.time)

# Implicit reconnect
group.call(time.time)

# Disconnect when destroyed
del group
"""

# -- the documentation's front page and introduction -----------------------------------------

INDEX_TASTER = """
import time
from chopsticks.tunnel import SSHTunnel

with SSHTunnel('www.chopsticks.io') as tun:
    print(tun.call(time.time))
"""

INTRO_GROUP = """
from chopsticks.group import Group

group = Group([
    'web1.example.com',
    'web2.example.com',
    'web3.example.com',
])
for host, t in group.call(time.time).successful():
    print('Time on %s:' % host, t)
"""

INTRO_DOCKER = """
from chopsticks.tunnel import Docker
from chopsticks.facts import python_version

dkr = Docker('py36', image='python:3.6')
print(dkr.call(python_version))
"""

INTRO_CONNECT = README_CONNECT.replace("Explictly", "Explicitly")


def printed_times(text: str, started: float) -> list[float]:
    times = [float(t) for t in re.findall(r"\d{9,}\.\d+", text)]
    assert all(started - 5 < t < time.time() + 5 for t in times), text
    return times


def test_readme_tunnel_and_call(examples: Examples, capsys: pytest.CaptureFixture[str]) -> None:
    started = time.time()
    namespace = examples.run(README_TUNNEL)
    examples.run(README_TUNNEL_CALL, namespace=namespace)
    out = capsys.readouterr().out
    assert out.startswith("Time on troy.example.com: ")
    assert len(printed_times(out, started)) == 1


def test_readme_group_needs_the_import_of_ip(
    examples: Examples, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(NameError, match="'ip' is not defined"):
        examples.run(README_GROUP)
    # The smallest change: import ip, as the blog post's copy of this example does.
    examples.run("from chopsticks.facts import ip\n" + README_GROUP)
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 3
    for host, line in zip(WEB, lines):
        assert re.fullmatch(f"{re.escape(host)} ip: {ADDRESS}", line), line


def test_readme_docker_group(
    examples: Examples, docker_is_podman: PodmanImage, capsys: pytest.CaptureFixture[str]
) -> None:
    image = docker_is_podman.image
    namespace = examples.run(
        README_DOCKER,
        {  # substitutions: no registry here; one local image (its python3 is 3.11)
            "'python:3.4'": repr(image),
            "'python:3.5'": repr(image),
            "'python:3.6'": repr(image),
        },
    )
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in lines] == ["worker-1", "worker-2", "worker-3"]
    for line in lines:
        assert re.fullmatch(r"worker-\d Python version: \[3, \d+, \d+, 'final', 0\]", line)
    assert namespace["group"].hosts == ["worker-1", "worker-2", "worker-3"]


@pytest.mark.parametrize("text", [README_CONNECT, INTRO_CONNECT], ids=["readme", "introduction"])
def test_connect_close_context_manager_reconnect_and_del(examples: Examples, text: str) -> None:
    namespace = examples.run("import time\nfrom chopsticks.facts import ip\n" + README_GROUP)
    group = namespace["group"]
    first_pids = [tunnel.remote_info["pid"] for tunnel in group]
    tunnels = [weakref.ref(tunnel) for tunnel in group]
    del group
    # The example's four steps, run one after the other in the same namespace.
    explicit, context_manager, implicit, destroyed = text.strip().split("\n\n")
    for step in (explicit, context_manager):
        examples.run(step, namespace=namespace)
        assert not any(tunnel.connected for tunnel in namespace["group"])
    examples.run(implicit, namespace=namespace)
    assert all(tunnel.connected for tunnel in namespace["group"])
    pids = [tunnel.remote_info["pid"] for tunnel in namespace["group"]]
    assert not set(pids) & set(first_pids)  # new agents: connected again
    examples.run(destroyed, namespace=namespace)
    assert "group" not in namespace
    assert [ref() for ref in tunnels] == [None, None, None]  # destroyed, so disconnected


def test_front_page_taster(examples: Examples, capsys: pytest.CaptureFixture[str]) -> None:
    started = time.time()
    namespace = examples.run(INDEX_TASTER)
    assert len(printed_times(capsys.readouterr().out, started)) == 1
    assert not namespace["tun"].connected  # the with block closed it


def test_introduction_tunnel_then_group(
    examples: Examples, capsys: pytest.CaptureFixture[str]
) -> None:
    started = time.time()
    namespace = examples.run(README_TUNNEL)  # the introduction repeats the README's two
    examples.run(README_TUNNEL_CALL, namespace=namespace)
    examples.run(INTRO_GROUP, namespace=namespace)
    lines = capsys.readouterr().out.splitlines()
    assert [line.rsplit(" ", 1)[0] for line in lines] == [
        "Time on troy.example.com:",
        *(f"Time on {host}:" for host in WEB),
    ]
    assert len(printed_times("\n".join(lines), started)) == 4


def test_introduction_docker(
    examples: Examples, docker_is_podman: PodmanImage, capsys: pytest.CaptureFixture[str]
) -> None:
    examples.run(INTRO_DOCKER, {"'python:3.6'": repr(docker_is_podman.image)})  # no registry
    assert re.fullmatch(r"\[3, \d+, \d+, 'final', 0\]\n", capsys.readouterr().out)
