"""The queues chapter of the chopsticks 1.0 documentation, and the Queue API it describes.

Changes beyond the import (listed in docs/migrating.md):
- The chapter assumes the imports of Group and Queue.
- Its "Group alone" comparison loops with ``for file in ...`` but puts ``f``: a NameError on its
  own (with the original too); the smallest change is ``for f in ...``.
"""

from __future__ import annotations

import os
import pwd
from collections.abc import Iterator
from pathlib import Path

import pytest
from doc_examples import Examples

from chopsticks_nb.group import GroupResult
from chopsticks_nb.queue import AsyncResult, NotCompleted, Queue
from chopsticks_nb.tunnel import Local
from fixtures.sshd import SSHHosts

HOSTS = ["host1.example.com", "host2.example.com", "host3.example.com"]
FILES = ["a.txt", "b.txt", "c.txt"]
ASSUMED = "from chopsticks.group import Group\nfrom chopsticks.queue import Queue\n"

QUEUE_EXAMPLE = """
group = Group([
    'host1.example.com',
    'host2.example.com',
    'host3.example.com',
])

queue = Queue()
for f in ['a.txt', 'b.txt', 'c.txt']:
    queue.put(group, f, f)
queue.run()
"""

GROUP_ALONE = """
group = Group([
    'host1.example.com',
    'host2.example.com',
    'host3.example.com',
])

for file in ['a.txt', 'b.txt', 'c.txt']:
    group.put(f, f)
"""


@pytest.fixture
def remote_home(doc_hosts: SSHHosts, in_tmp_path: Path) -> Iterator[Path]:
    """The test user's home, where the hosts put relative paths; three local files to put."""
    for name in FILES:
        (in_tmp_path / name).write_text(f"contents of {name}\n")
    home = Path(pwd.getpwnam(doc_hosts.user).pw_dir)
    for name in FILES:
        (home / name).unlink(missing_ok=True)
    try:
        yield home
    finally:
        for name in FILES:
            (home / name).unlink(missing_ok=True)


def test_queue_puts_three_files_on_three_hosts(examples: Examples, remote_home: Path) -> None:
    namespace = examples.run(ASSUMED + QUEUE_EXAMPLE)
    assert len(namespace["queue"]) == 0
    for name in FILES:
        assert (remote_home / name).read_text() == f"contents of {name}\n"


def test_group_alone_needs_its_loop_variable_fixed(examples: Examples, remote_home: Path) -> None:
    with pytest.raises(NameError, match="'f' is not defined"):
        examples.run(ASSUMED + GROUP_ALONE)
    examples.run(ASSUMED + GROUP_ALONE, {"for file in": "for f in"})  # the smallest change
    for name in FILES:
        assert (remote_home / name).read_text() == f"contents of {name}\n"


def test_async_results_value_and_callbacks() -> None:
    queue = Queue()
    tunnel, other = Local("q1"), Local("q2")
    seen: list[object] = []
    try:
        one = queue.call(tunnel, os.getpid)
        assert isinstance(one, AsyncResult)
        with pytest.raises(NotCompleted):
            _ = one.value
        both = queue.call(tunnel + other, os.getpid).with_callback(seen.append)
        connected = queue.connect(other)
        queue.run()
    finally:
        tunnel.close()
        other.close()
    assert isinstance(one.value, int) and one.value != os.getpid()
    assert isinstance(both.value, GroupResult) and list(both.value) == ["q1", "q2"]
    assert both.value["q1"] == one.value  # each tunnel's tasks run in order on one agent
    assert seen == [both.value]
    assert isinstance(connected.value, dict)
