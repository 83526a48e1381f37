"""chopsticks_nb.facts: called through real tunnels, and standing alone on every remote Python."""

from __future__ import annotations

import ast
import json
import os
import platform
import shutil
import socket
import subprocess
import sys
from collections.abc import Iterator

import pytest

from chopsticks_nb import facts
from chopsticks_nb.errors import RemoteException
from chopsticks_nb.group import Group
from chopsticks_nb.tunnel import Local
from fixtures.pythons import RemotePython

FACTS_FILE = facts.__file__

#: Loads facts.py by path (no package, no site-packages) and prints every fact as JSON.
STANDALONE = """
import importlib.util, json, sys
spec = importlib.util.spec_from_file_location("facts", sys.argv[1])
facts = importlib.util.module_from_spec(spec)
spec.loader.exec_module(facts)
out = {}
for name in facts.__all__:
    if name not in ("FactUnavailable", "parse_os_release"):
        out[name] = getattr(facts, name)()
json.dump(out, sys.stdout)
"""


@pytest.fixture
def local() -> Iterator[Local]:
    tunnel = Local("facts-host")
    try:
        yield tunnel
    finally:
        tunnel.close()


def test_every_public_fact_is_listed() -> None:
    public = {name for name in vars(facts) if not name.startswith("_")}
    imported = {"os", "platform", "shutil", "socket", "subprocess", "sys", "time"}
    assert set(facts.__all__) == public - imported
    assert facts.__all__ == sorted(facts.__all__)


def test_facts_module_imports_only_the_stdlib_at_top_level() -> None:
    with open(FACTS_FILE) as f:
        tree = ast.parse(f.read(), feature_version=(3, 6))  # also: no syntax newer than 3.6
    for node in ast.walk(tree):
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            assert node in tree.body, "imports belong at module level"
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module]
            for name in names:
                assert name and name.split(".")[0] in sys.stdlib_module_names, name
        if isinstance(node, ast.ImportFrom):
            assert node.module != "__future__"


def test_identity_facts(local: Local) -> None:
    assert local.call(facts.hostname) == socket.gethostname()
    assert local.call(facts.python_executable) == local.python3
    assert local.call(facts.python_version) == list(sys.version_info)
    assert local.call(facts.python_version, short=True) == list(sys.version_info[:2])
    uname = local.call(facts.uname)
    assert uname["system"] == platform.system() and uname["machine"] == platform.machine()


def test_ip_is_an_address_of_this_host(local: Local) -> None:
    address = local.call(facts.ip)
    assert isinstance(address, str)
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    with socket.socket(family, socket.SOCK_DGRAM) as sock:
        sock.bind((address, 0))  # only works for an address of one of our interfaces


def test_os_release(local: Local) -> None:
    release = local.call(facts.os_release)
    if os.path.exists("/etc/os-release"):
        with open("/etc/os-release") as f:
            assert release == facts.parse_os_release(f.read())
    assert release["ID"]


def test_parse_os_release() -> None:
    text = (
        '# comment\nNAME="Debian GNU/Linux"\nID=debian\nVERSION_ID="12"\n'
        "PRETTY_NAME='Quoted \\'single\\''\nEMPTY=\n\nnot a line\n"
    )
    assert facts.parse_os_release(text) == {
        "NAME": "Debian GNU/Linux",
        "ID": "debian",
        "VERSION_ID": "12",
        "PRETTY_NAME": "Quoted 'single'",
        "EMPTY": "",
    }


def test_resource_facts(local: Local) -> None:
    assert local.call(facts.cpu_count) == len(os.sched_getaffinity(0))
    memory = local.call(facts.memory)
    assert memory["total"] == os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    assert 0 < memory["available"] <= memory["total"]
    disk = local.call(facts.disk_usage, "/")
    total, _used, free = shutil.disk_usage("/")
    assert disk["path"] == "/" and disk["total"] == total
    assert abs(disk["free"] - free) < 1 << 30
    load = local.call(facts.load_average)
    assert isinstance(load, tuple) and len(load) == 3 and all(x >= 0 for x in load)
    with open("/proc/uptime") as f:
        here = float(f.read().split()[0])
    assert abs(local.call(facts.uptime) - here) < 60


def test_remote_failure_is_a_remote_exception(local: Local) -> None:
    with pytest.raises(RemoteException) as caught:
        local.call(facts.disk_usage, "/no/such/path")
    assert caught.value.remote_type in ("FileNotFoundError", "builtins.FileNotFoundError")


def test_facts_over_a_group() -> None:
    with Group([Local("f1"), Local("f2")]) as group:
        versions = group.call(facts.python_version, short=True)
        assert versions == {"f1": list(sys.version_info[:2]), "f2": list(sys.version_info[:2])}
        assert group.call(facts.cpu_count).ok


def test_facts_stand_alone_on_every_remote_python(remote_python: RemotePython) -> None:
    """The module works unchanged, stdlib only, on each supported remote interpreter."""
    proc = subprocess.run(
        [str(remote_python.path), "-I", "-S", "-c", STANDALONE, FACTS_FILE],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    found = json.loads(proc.stdout)
    assert found["python_version"][:2] == [int(x) for x in remote_python.version.split(".")]
    assert found["python_executable"].startswith(str(remote_python.path.parent))
    assert found["memory"]["total"] > 0 and found["cpu_count"] >= 1
    assert found["hostname"] == socket.gethostname()


def test_unanswerable_fact_raises_fact_unavailable() -> None:
    """On a platform without a load average (simulated by removing os.getloadavg)."""
    script = (
        "import importlib.util, os, sys\n"
        "del os.getloadavg\n"
        + STANDALONE.split("out = {}")[0]
        + "try:\n    facts.load_average()\nexcept facts.FactUnavailable as exc:\n"
        "    print('unavailable:', exc)\n"
    )
    proc = subprocess.run(
        [sys.executable, "-I", "-c", script, FACTS_FILE],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.stdout.startswith("unavailable: no load average on"), proc.stderr


def test_facts_through_a_tunnel_on_every_remote_python(remote_python: RemotePython) -> None:
    """The remote imports chopsticks_nb.facts, and so the package's __init__, from here."""
    with Local(f"facts-py{remote_python.version}", python3=str(remote_python.path)) as tunnel:
        short = tunnel.call(facts.python_version, short=True)
        assert short == [int(part) for part in remote_python.version.split(".")]
        assert tuple(short) >= (3, 0)  # chopsticks 1.0's own idiom, on every remote Python
        assert tunnel.call(facts.python_version)[:2] == short
        assert tunnel.call(facts.cpu_count) >= 1
