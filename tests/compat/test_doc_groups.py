"""The groups and examples chapters of the chopsticks 1.0 documentation.

Changes beyond the import (each listed in docs/migrating.md):
- The groups chapter's ``ip`` example formats with ``'%s ip: %s' % host, addr``: a TypeError as
  written, with the original too; the smallest change is ``% (host, addr)``.
- Names the chapters assume are supplied: the imports, ``group``, ``install_virtualenv``.
- No registry, no /srv, no supervisord here: the test image, a shared directory and a stand-in
  ``supervisord`` script take their place.
"""

from __future__ import annotations

import doctest
import re
from pathlib import Path

import doc_stand_ins as stand_ins
import pytest
from doc_examples import Examples, port

from chopsticks_nb.facts import python_version
from chopsticks_nb.group import ErrorResult, GroupResult
from chopsticks_nb.tunnel import Docker
from fixtures.podman import PodmanImage

pytestmark = pytest.mark.usefixtures("doc_hosts")

WEB = ["web1.example.com", "web2.example.com", "web3.example.com"]

#: What the Group API section assumes: a group (the introduction's).
ASSUMED_GROUP = """
from chopsticks.group import Group

group = Group([
    'web1.example.com',
    'web2.example.com',
    'web3.example.com',
])
"""

GROUP_FETCH = """
group.fetch('/etc/passwd', local_path='passwd-{host}')
"""

SET_OPERATIONS = """
webservers = Group(['web1', 'web2'])
celery_workers = Group(['worker1', 'worker2', 'worker3'])

(webservers + celery_workers).call(install_virtualenv)
"""

SET_OPERATIONS_DOCTEST = """
>>> dck1 = Docker('docker1')
>>> dck2 = Docker('docker2')
>>> dck1 + dck2
Group([Docker('docker1'), Docker('docker2')])
"""

GROUP_EXAMPLE = """
from chopsticks.facts import ip
from chopsticks.group import Group

group = Group([
    'web1.example.com',
    'web2.example.com',
    'web3.example.com',
])
for host, addr in group.call(ip).items():
    print('%s ip: %s' % host, addr)
"""

MIXED_GROUP = """
all_hosts = Group([
    'web1.example.com',
    Docker('example'),
    Local('worker')
])
"""

EXAMPLES_CHAPTER = """
import subprocess
from chopsticks.group import Group

webservers = Group(['www1', 'www2', 'www3'])

webservers.put('uwsgi.ini', '/srv/www/supervisor/uwsgi.ini')
webservers.call(
    subprocess.check_output,
    'supervisord restart uwsgi',
    shell=True
).raise_failures()
webservers.close()
"""

#: Stands in for supervisord: records the restart if the configuration has arrived beside it.
SUPERVISORD = """#!/bin/sh
here=$(dirname "$0")
test -s "$here/uwsgi.ini" || { echo "no uwsgi.ini" >&2; exit 1; }
echo "$*" >> "$here/restarts.log"
echo "restarted uwsgi"
"""


def test_group_fetch_with_a_host_template(examples: Examples, in_tmp_path: Path) -> None:
    namespace = examples.run(ASSUMED_GROUP)
    examples.run(GROUP_FETCH, namespace=namespace)
    result = namespace["_"]
    assert isinstance(result, GroupResult) and list(result.successful()) == list(result.items())
    passwd = Path("/etc/passwd").read_bytes()
    for host in WEB:
        assert (in_tmp_path / f"passwd-{host}").read_bytes() == passwd
        assert result[host]["local_path"] == str(in_tmp_path / f"passwd-{host}")  # absolute
        assert result[host]["remote_path"] == "/etc/passwd"
        assert result[host]["size"] == len(passwd)


def test_set_operations_union(examples: Examples) -> None:
    namespace = examples.run(
        "from chopsticks.group import Group\n" + SET_OPERATIONS,  # the chapter assumes these
        namespace={"__name__": "__main__", "install_virtualenv": stand_ins.install_virtualenv},
    )
    try:
        result = namespace["_"]
        assert list(result) == ["web1", "web2", "worker1", "worker2", "worker3"]
        assert {host for host, _ in result.successful()} == set(result)
    finally:
        namespace["webservers"].close()
        namespace["celery_workers"].close()


def test_set_operations_doctest() -> None:
    """A tunnel acts as a group of one; the reprs are as the documentation prints them."""
    test = doctest.DocTestParser().get_doctest(
        port(SET_OPERATIONS_DOCTEST), {"Docker": Docker}, "set operations", None, 0
    )
    runner = doctest.DocTestRunner()
    runner.run(test, out=lambda text: None)
    assert runner.summarize(verbose=False) == doctest.TestResults(failed=0, attempted=3)


def test_group_example_needs_a_format_fix(
    examples: Examples, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(TypeError, match="not enough arguments for format string"):
        examples.run(GROUP_EXAMPLE)
    # The smallest change, which the original needed as much: format a tuple.
    examples.run(GROUP_EXAMPLE, {"% host, addr": "% (host, addr)"})
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in lines] == WEB
    for line in lines:
        assert re.fullmatch(r"\S+ ip: \d+\.\d+\.\d+\.\d+", line), line


def test_a_group_mixing_ssh_docker_and_local(
    examples: Examples, docker_is_podman: PodmanImage
) -> None:
    namespace = examples.run(
        "from chopsticks.group import Group\nfrom chopsticks.tunnel import Docker, Local\n"
        + MIXED_GROUP,  # the chapter assumes these imports
        {"Docker('example')": f"Docker('example', image={docker_is_podman.image!r})"},
    )
    versions = namespace["all_hosts"].call(python_version, short=True)
    assert list(versions) == ["web1.example.com", "example", "worker"]
    for host, version in versions.items():
        assert not isinstance(version, ErrorResult), (host, version)
        assert tuple(version) >= (3, 0)  # chopsticks 1.0's idiom, on each kind of host


def test_examples_chapter_put_then_restart(
    examples: Examples, in_tmp_path: Path, shared_dir: Path
) -> None:
    (in_tmp_path / "uwsgi.ini").write_text("[uwsgi]\nmodule = app\n")
    supervisord = shared_dir / "supervisord"
    supervisord.write_text(SUPERVISORD)
    supervisord.chmod(0o755)
    namespace = examples.run(
        EXAMPLES_CHAPTER,
        {  # substitutions: a directory the test user may write, a stand-in supervisord
            "/srv/www/supervisor/uwsgi.ini": f"{shared_dir}/uwsgi.ini",
            "'supervisord restart uwsgi'": f"'{supervisord} restart uwsgi'",
        },
    )
    assert (shared_dir / "uwsgi.ini").read_text() == "[uwsgi]\nmodule = app\n"
    assert (shared_dir / "restarts.log").read_text() == "restart uwsgi\n" * 3
    assert not any(tunnel.connected for tunnel in namespace["webservers"])


def test_examples_chapter_raises_failures(
    examples: Examples, in_tmp_path: Path, shared_dir: Path
) -> None:
    """Without the file in place the restart fails on every host, and raise_failures says so."""
    (in_tmp_path / "uwsgi.ini").write_text("[uwsgi]\n")
    supervisord = shared_dir / "supervisord"
    supervisord.write_text(SUPERVISORD)
    supervisord.chmod(0o755)
    with pytest.raises(Exception) as caught:
        examples.run(
            EXAMPLES_CHAPTER,
            {
                "/srv/www/supervisor/uwsgi.ini": "/nonexistent/uwsgi.ini",
                "'supervisord restart uwsgi'": f"'{supervisord} restart uwsgi'",
            },
        )
    from chopsticks_nb.errors import GroupError

    assert isinstance(caught.value, GroupError)  # 1.0: RemoteException (docs/migrating.md)
    assert "CalledProcessError" in str(caught.value)
    assert not (shared_dir / "restarts.log").exists()
