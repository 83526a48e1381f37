"""What group operations and queue runs show while they run: a presenter's watch gets every
event, a terminal gets one line redrawn in place, quiet shows nothing."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from pathlib import Path

import output_funcs
import pytest
import remote_funcs

from chopsticks_nb import progress
from chopsticks_nb.group import Group
from chopsticks_nb.progress import Operation, Watch, set_presenter
from chopsticks_nb.queue import Queue
from chopsticks_nb.result import HostDone
from chopsticks_nb.tunnel import Local


class Recorder:
    """A watch that keeps what it is told."""

    takes_output = True

    def __init__(self, operation: Operation) -> None:
        self.operation = operation
        self.pieces: list[tuple[str, str, str]] = []
        self.reports: list[tuple[str, bool, int, int, bool]] = []
        self.finished = 0
        self._lock = threading.Lock()

    def output(self, host: str, stream: str, text: str) -> None:
        with self._lock:
            self.pieces.append((host, stream, text))

    def done(self, done: HostDone, *, host_finished: bool = True) -> None:
        with self._lock:
            self.reports.append((done.host, done.ok, done.done, done.total, host_finished))

    def finish(self) -> None:
        self.finished += 1

    def text(self, host: str) -> str:
        return "".join(t for h, _, t in self.pieces if h == host)


@pytest.fixture
def watches() -> Iterator[list[Recorder]]:
    made: list[Recorder] = []

    def present(operation: Operation) -> Watch:
        made.append(Recorder(operation))
        return made[-1]

    previous = set_presenter(present)
    try:
        yield made
    finally:
        set_presenter(previous)


@pytest.fixture
def pair() -> Iterator[Group]:
    group = Group([Local("a"), Local("b")])
    try:
        yield group
    finally:
        group.close()


def test_a_group_call_tells_its_watch_everything(watches: list[Recorder], pair: Group) -> None:
    result = pair.call(output_funcs.lines, 3)
    assert result == {"a": 3, "b": 3}
    (watch,) = watches
    assert watch.operation.what == "call" and watch.operation.hosts == ["a", "b"]
    assert watch.operation.total == 2
    assert watch.text("a") == watch.text("b") == "line 0\nline 1\nline 2\n"
    assert sorted(r[:2] for r in watch.reports) == [("a", True), ("b", True)]
    assert [r[2] for r in watch.reports] == [1, 2] and watch.finished == 1


def test_the_users_output_handler_and_the_watch_both_get_the_output(
    watches: list[Recorder], pair: Group
) -> None:
    mine: list[tuple[str, str, str]] = []
    seen: list[HostDone] = []
    pair.run(
        output_funcs.say,
        ("hi",),
        output=lambda h, s, t: mine.append((h, s, t)),
        progress=seen.append,
    )
    assert sorted(mine) == [("a", "stdout", "hi\n"), ("b", "stdout", "hi\n")]
    assert watches[0].text("a") == "hi\n" and len(seen) == 2


def test_quiet_shows_nothing(watches: list[Recorder], pair: Group, tmp_path: Path) -> None:
    pair.run(output_funcs.say, ("hi",), quiet=True)
    pair.exec("1", quiet=True)
    pair.connect(quiet=True)
    source = tmp_path / "f.txt"
    source.write_text("x")
    pair.put(source, str(tmp_path / "put-{host}.txt"), quiet=True)
    pair.fetch(str(source), tmp_path / "fetched-{host}.txt", quiet=True)
    assert watches == []


def test_every_group_operation_has_a_watch(
    watches: list[Recorder], pair: Group, tmp_path: Path
) -> None:
    source = tmp_path / "f.txt"
    source.write_text("x")
    pair.connect()
    pair.exec("print('from exec')")
    pair.put(source, str(tmp_path / "put-{host}.txt"))
    pair.fetch(str(source), tmp_path / "fetched-{host}.txt")
    assert [w.operation.what for w in watches] == ["connect", "exec", "put", "fetch"]
    assert [w.operation.output for w in watches] == [False, True, False, False]
    assert watches[1].text("b") == "from exec\n"
    assert all(w.finished == 1 and len(w.reports) == 2 for w in watches)


def test_a_failed_or_interrupted_operation_still_finishes_its_watch(
    watches: list[Recorder], pair: Group
) -> None:
    result = pair.run(remote_funcs.sleep, (30,), timeout=0.5)
    assert {e.status for _, e in result.failures()} == {"timeout"}
    assert watches[0].finished == 1
    assert sorted(r[:2] for r in watches[0].reports) == [("a", False), ("b", False)]


def test_a_queue_run_reports_each_task_and_when_a_host_is_through(
    watches: list[Recorder], pair: Group
) -> None:
    queue = Queue()
    queue.call(pair, remote_funcs.echo, 1)
    queue.call(pair["a"], remote_funcs.boom, "no")
    queue.run()
    (watch,) = watches
    assert watch.operation.what == "queue" and watch.operation.total == 3
    assert not watch.operation.output and watch.pieces == []
    by_host: dict[str, list[tuple[bool, bool]]] = {}
    for host, ok, _done, _total, finished in watch.reports:
        by_host.setdefault(host, []).append((ok, finished))
    assert by_host == {"a": [(True, False), (False, True)], "b": [(True, True)]}
    assert [r[2] for r in watch.reports] == [1, 2, 3] and watch.finished == 1
    queue.call(pair, remote_funcs.echo, 2)
    queue.run(quiet=True)
    assert len(watches) == 1


def test_no_terminal_no_line(pair: Group, capfd: pytest.CaptureFixture[str]) -> None:
    assert progress.start_watch(Operation("call", pair.tunnels, 2)) is None  # stderr: a pipe
    pair.call(remote_funcs.sleep, 0.1)
    assert capfd.readouterr().err == ""


def test_a_terminal_shows_one_line_redrawn_in_place_then_erased(
    pair: Group, monkeypatch: pytest.MonkeyPatch
) -> None:
    master, slave = os.openpty()
    terminal = os.fdopen(slave, "w", buffering=1, encoding="utf-8")
    try:
        monkeypatch.setattr("sys.stderr", terminal)
        monkeypatch.setattr(progress, "SHOW_AFTER", 0.05)
        monkeypatch.setattr(progress, "REDRAW", 0.05)
        pair.connect()
        pair.call(remote_funcs.sleep, 0.6)
        terminal.flush()
        drawn = _read_all(master)
    finally:
        terminal.close()
        os.close(master)
    assert "\rcall on a,b: 2 running, 0 of 2 done · " in drawn
    assert drawn.endswith("\r\x1b[K")  # erased at the end: the result is what stays
    assert drawn.count("\rcall on a,b") >= 2  # redrawn in place while it ran


def _read_all(fd: int) -> str:
    os.set_blocking(fd, False)
    chunks: list[bytes] = []
    while True:
        try:
            chunk = os.read(fd, 65536)
        except BlockingIOError:
            break
        if not chunk:
            break
        chunks.append(chunk)
    return b"".join(chunks).decode()
