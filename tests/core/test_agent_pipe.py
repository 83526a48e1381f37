"""Who reads an agent's pipe: its main thread between calls, its reader thread during calls.

The main thread reads the requests while no call runs and runs each call as soon as it is read.
While a call runs, the reader thread takes the pipe (woken by the first call after a quiet spell
or by an import waiting for its answer, else on its patrol while calls keep starting) and the
main thread takes it back when its calls are done. These tests drive every hand-over on real
agents: what a running call must not block, and frames that arrive as the pipe changes hands.
Where a test needs the reader to hold the pipe, a fetch answered during a blocked call proves
it does (and that it has read every frame sent before the fetch).
"""

from __future__ import annotations

import hashlib
import os
import threading
import time
import zlib
from collections.abc import Callable
from pathlib import Path

import pipe_funcs as pf
import pytest

from chopsticks_nb import errors
from chopsticks_nb._call_frames import pickle_call
from chopsticks_nb._lending import frame_pieces
from chopsticks_nb.tunnel import Local
from fixtures.pythons import RemotePython
from fixtures.transports import OutputLog as Captured

#: Generous: these are waits for something that must happen, never measures of speed.
PATIENCE = 60.0


def wait_for(predicate: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + PATIENCE
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {PATIENCE} s")
        time.sleep(0.01)


def hold_pipe_with_reader(tunnel: Local, tmp_path: Path) -> None:
    """Return once the reader thread holds the pipe during the running call (it answered a
    fetch) and has read every frame sent before."""
    probe = tmp_path / "probe"
    probe.write_bytes(b"probe")
    fetched = tunnel.fetch(str(probe), str(tmp_path / "probe.back"))
    assert fetched["size"] == 5


@pytest.mark.parametrize(
    "before, busy",
    [("quiet", False), ("quiet", True), ("burst", False), ("burst", True)],
    ids=["sleep-after-quiet", "spin-after-quiet", "sleep-after-burst", "spin-after-burst"],
)
def test_cancel_reaches_a_long_call(captured: Captured, before: str, busy: bool) -> None:
    """After a quiet spell the call wakes the reader; after a burst of calls the reader is on
    patrol; a spinning call holds the GIL. In each case the cancel interrupts the call."""
    with Local("cancel", output=captured) as tunnel:
        tunnel.call(pf.record, "warm")
        if before == "burst":
            futures = [tunnel.submit(pf.record, i) for i in range(300)]
            assert [f.result() for f in futures] == list(range(300))
        else:
            time.sleep(0.2)  # calls stopped: the reader parks
        running = tunnel.submit(pf.wait_or_note, 60, busy)
        wait_for(lambda: "started" in captured.text("stdout"), "the call started")
        assert running.cancel()
        with pytest.raises(errors.CallCancelled):
            running.result()
        assert tunnel.call(pf.recorded)[-1] == "interrupted"


def test_imports_while_a_call_runs(served: Path, tmp_path: Path) -> None:
    """At once (right after a burst: the import wakes the reader) and while the reader already
    holds the pipe."""
    (served / "pipemod_a.py").write_text("VALUE = 'a'\n")
    (served / "pipemod_b.py").write_text("VALUE = 'b'\n")
    trigger = tmp_path / "trigger"
    with Local("imports") as tunnel:
        futures = [tunnel.submit(pf.record, i) for i in range(300)]
        assert tunnel.call(pf.value_of, "pipemod_a") == "a"
        assert [f.result() for f in futures] == list(range(300))
        running = tunnel.submit(pf.value_of_after_file, "pipemod_b", str(trigger), PATIENCE)
        hold_pipe_with_reader(tunnel, tmp_path)
        trigger.write_bytes(b"")
        assert running.result() == "b"


def test_a_background_thread_imports_while_no_call_runs(served: Path, captured: Captured) -> None:
    """The main thread, reading between calls, answers a thread started by an earlier call."""
    (served / "pipemod_idle.py").write_text("VALUE = 7\n")
    with Local("idle", output=captured) as tunnel:
        assert tunnel.call(pf.import_once_idle, "pipemod_idle")
        wait_for(lambda: "imported" in captured.text("stdout"), "the thread's import")
        assert captured.text("stdout") == "imported pipemod_idle=7, pipe 0\n"  # 0: main thread
        assert tunnel.call(pf.record, 1) == 1


@pytest.mark.parametrize("reader", [False, True], ids=["read-by-main", "queued-by-reader"])
def test_pipelined_calls_run_once_each_in_order(tmp_path: Path, reader: bool) -> None:
    trigger = tmp_path / "trigger"
    with Local("order") as tunnel:
        assert tunnel.call(pf.recorded) == []
        if reader:
            first = tunnel.submit(pf.wait_for_file, str(trigger), PATIENCE)
        else:
            time.sleep(0.2)  # calls stopped: the reader parks; trivial calls never meet it
        futures = [tunnel.submit(pf.record, i) for i in range(300)]
        if reader:
            hold_pipe_with_reader(tunnel, tmp_path)  # it has read and queued all 300
            assert not first.done()
            trigger.write_bytes(b"go")
            assert first.result() == b"go"
        assert [f.result() for f in futures] == list(range(300))
        assert tunnel.call(pf.recorded) == list(range(300))


def test_large_arguments_read_by_the_reader_thread_arrive_whole(tmp_path: Path) -> None:
    # The reader thread reads a call's large bytes arguments straight into their objects too,
    # from its buffer and the pipe, and queues the call with them.
    trigger = tmp_path / "trigger"
    with Local("blobs-queued") as tunnel:
        first = tunnel.submit(pf.wait_for_file, str(trigger), PATIENCE)
        blobs = [os.urandom((3 << 20) + i) for i in range(3)]
        futures = [tunnel.submit(zlib.crc32, blob) for blob in blobs]
        hold_pipe_with_reader(tunnel, tmp_path)
        trigger.write_bytes(b"")
        assert first.result() == b""
        assert [f.result() for f in futures] == [zlib.crc32(b) for b in blobs]


def test_an_agent_left_in_the_middle_of_a_large_argument_exits(tmp_path: Path) -> None:
    # EOF while the agent reads a large argument straight from the pipe ends it as EOF
    # anywhere else does: at once, by itself.
    with Local("blob-eof") as tunnel:
        tunnel.call(os.getpid)
        conn = tunnel._conn
        assert conn is not None and conn.proc is not None
        kind, pieces, *_ = pickle_call(len, (b"x" * (1 << 20),), {}, "blob-eof")
        frame = b"".join(frame_pieces(kind, 99, pieces, align=True))
        os.write(conn.process.stdin, frame[: len(frame) // 2])
        start = time.monotonic()
        tunnel.close()
        assert conn.proc.returncode == 0  # exited by itself: not killed after a wait
        assert time.monotonic() - start < PATIENCE


def test_a_cancelled_call_queued_by_the_reader_is_dropped(tmp_path: Path) -> None:
    trigger = tmp_path / "trigger"
    with Local("drop") as tunnel:
        first = tunnel.submit(pf.wait_for_file, str(trigger), PATIENCE)
        dropped = tunnel.submit(pf.record, "dropped")
        kept = tunnel.submit(pf.record, "kept")
        assert dropped.cancel()
        hold_pipe_with_reader(tunnel, tmp_path)  # the CANCEL was read during the first call
        trigger.write_bytes(b"")
        assert first.result() == b"" and kept.result() == "kept"
        assert tunnel.call(pf.recorded) == ["kept"]


def test_put_and_fetch_while_a_call_runs_and_between_calls(tmp_path: Path) -> None:
    source = tmp_path / "source"
    source.write_bytes(os.urandom(3 * 1024 * 1024 + 5))
    trigger = tmp_path / "trigger"
    with Local("files") as tunnel:
        running = tunnel.submit(pf.wait_for_file, str(trigger), PATIENCE)
        tunnel.put(str(source), str(tmp_path / "during"))
        tunnel.fetch(str(tmp_path / "during"), str(tmp_path / "during.back"))
        assert not running.done()  # both were served while the call was blocked
        tunnel.put(str(source), str(trigger))  # what the call waits for
        assert running.result() == source.read_bytes()
        tunnel.put(str(source), str(tmp_path / "idle"))
        tunnel.fetch(str(tmp_path / "idle"), str(tmp_path / "idle.back"))
    for name in ("during", "during.back", "idle", "idle.back"):
        assert (tmp_path / name).read_bytes() == source.read_bytes()


def test_frames_arriving_as_calls_end_are_each_handled_once(tmp_path: Path) -> None:
    """Waves of pipelined calls, a quarter of them cancelled as soon as sent, some long enough
    for the reader to take the pipe, while files go both ways and keepalive pings arrive: every
    answer arrives once, no call runs twice or out of order, every file arrives whole, the
    agent survives."""
    source = tmp_path / "source"
    source.write_bytes(os.urandom(8 * 1024 * 1024))
    sha1 = hashlib.sha1(source.read_bytes()).hexdigest()
    # Not remote_funcs: serving it (256 modules it reaches) keeps the broker from pinging for
    # longer than this keepalive allows.
    with Local("burst", keepalive=0.5) as tunnel:
        pid = tunnel.call(os.getpid)
        assert tunnel.call(pf.recorded) == []
        moved: list[dict[str, object]] = []

        def move_files() -> None:
            for n in range(3):
                moved.append(tunnel.put(str(source), str(tmp_path / f"put{n}")))
                moved.append(tunnel.fetch(str(tmp_path / f"put{n}"), str(tmp_path / f"back{n}")))

        mover = threading.Thread(target=move_files, name="mover")
        mover.start()
        futures = []
        cancelled = set()
        for i in range(800):
            if i % 40 == 0:
                time.sleep(0.005)  # now and then the agent runs out of calls: pipe back to main
                futures.append(tunnel.submit(pf.sleep_then_record, 0.005, i))
            else:
                futures.append(tunnel.submit(pf.record, i))
            if i % 4 == 1 and futures[-1].cancel():
                cancelled.add(i)
        mover.join()
        answered = {i: f.result() for i, f in enumerate(futures) if i not in cancelled}
        assert all(answer == i for i, answer in answered.items())
        ran = tunnel.call(pf.recorded)
        assert ran == sorted(set(ran))  # in order, none twice
        assert set(answered) <= set(ran) <= set(range(800))
        assert [m["sha1sum"] for m in moved] == [sha1] * 6
        assert tunnel.call(os.getpid) == pid


def test_every_hand_over_on_every_remote_python(
    remote_python: RemotePython, tmp_path: Path, served: Path, captured: Captured
) -> None:
    """The locks, signals and timed waits the hand-over uses, on each supported remote."""
    (served / "pipemod_v.py").write_text("VALUE = 'v'\n")
    (served / "pipemod_idle.py").write_text("VALUE = 7\n")
    trigger = tmp_path / "trigger"
    with Local(
        f"py{remote_python.version}", python3=str(remote_python.path), output=captured
    ) as tunnel:
        running = tunnel.submit(pf.value_of_after_file, "pipemod_v", str(trigger), PATIENCE)
        futures = [tunnel.submit(pf.record, i) for i in range(50)]
        dropped = tunnel.submit(pf.record, "dropped")
        assert dropped.cancel()
        hold_pipe_with_reader(tunnel, tmp_path)
        trigger.write_bytes(b"")
        assert running.result() == "v"
        assert [f.result() for f in futures] == list(range(50))
        assert tunnel.call(pf.recorded) == list(range(50))

        long = tunnel.submit(pf.wait_or_note, 60, False)
        wait_for(lambda: "started" in captured.text("stdout"), "the call started")
        assert long.cancel()
        assert tunnel.call(pf.recorded)[-1] == "interrupted"

        assert tunnel.call(pf.import_once_idle, "pipemod_idle")
        wait_for(lambda: "imported" in captured.text("stdout"), "the thread's import")
        assert captured.text("stdout").endswith("imported pipemod_idle=7, pipe 0\n")
