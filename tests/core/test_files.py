"""put and fetch: streamed, checksummed, and whole or not at all."""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
import threading
import time
from pathlib import Path

import pytest
import remote_funcs as rf

from chopsticks_nb import _agent, errors
from chopsticks_nb._agent import CHUNK_SIZE
from chopsticks_nb.group import Group
from chopsticks_nb.queue import Queue
from chopsticks_nb.result import ErrorResult
from chopsticks_nb.tunnel import Local
from fixtures.pythons import RemotePython


def write_random(path: Path, size: int) -> str:
    data = os.urandom(size)
    path.write_bytes(data)
    return hashlib.sha1(data).hexdigest()


def test_put_then_fetch_round_trip_with_checksums(tmp_path: Path) -> None:
    source = tmp_path / "source.bin"
    sha1 = write_random(source, 3 * 1024 * 1024 + 17)
    with Local("files") as tunnel:
        put = tunnel.put(str(source), str(tmp_path / "remote.bin"), mode=0o600)
        fetched = tunnel.fetch(str(tmp_path / "remote.bin"), str(tmp_path / "back.bin"))
    assert put == {
        "local_path": str(source),
        "remote_path": str(tmp_path / "remote.bin"),
        "size": 3 * 1024 * 1024 + 17,
        "sha1sum": sha1,
    }
    assert os.stat(tmp_path / "remote.bin").st_mode & 0o777 == 0o600
    assert fetched["sha1sum"] == sha1 and fetched["local_path"] == str(tmp_path / "back.bin")
    assert (tmp_path / "back.bin").read_bytes() == source.read_bytes()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["back.bin", "remote.bin", "source.bin"]


def test_empty_file(tmp_path: Path) -> None:
    (tmp_path / "empty").write_bytes(b"")
    with Local("files") as tunnel:
        assert tunnel.put(str(tmp_path / "empty"), str(tmp_path / "r"))["size"] == 0
        assert tunnel.fetch(str(tmp_path / "r"), str(tmp_path / "l"))["size"] == 0


def test_put_and_fetch_without_paths_use_temporary_files(tmp_path: Path) -> None:
    source = tmp_path / "source.bin"
    write_random(source, 1000)
    with Local("files") as tunnel:
        remote = tunnel.put(str(source))["remote_path"]
        local = tunnel.fetch(remote)["local_path"]
    try:
        assert Path(local).read_bytes() == source.read_bytes()
    finally:
        os.unlink(remote)
        os.unlink(local)


def test_fetch_of_missing_file_is_a_transfer_error_and_leaves_nothing(tmp_path: Path) -> None:
    with (
        Local("files") as tunnel,
        pytest.raises(errors.TransferError, match=r"files: fetch failed.*FileNotFoundError"),
    ):
        tunnel.fetch(str(tmp_path / "absent"), str(tmp_path / "dest"))
    assert list(tmp_path.iterdir()) == []


def test_a_failed_fetch_without_a_local_path_leaves_no_temporary_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()
    with Local("files") as tunnel:
        with pytest.raises(errors.TransferError, match="FileNotFoundError"):
            tunnel.fetch(str(tmp_path / "absent"))
        with pytest.raises(errors.TransferError, match="max_size"):
            tunnel.fetch(__file__, max_size=10)
        fetched = tunnel.fetch(__file__)["local_path"]
    assert [p.name for p in (tmp_path / "tmp").iterdir()] == [os.path.basename(fetched)]


def test_put_into_missing_directory_fails_cleanly(tmp_path: Path) -> None:
    (tmp_path / "f").write_bytes(b"data")
    with Local("files") as tunnel:
        with pytest.raises(errors.TransferError, match="put to the remote failed"):
            tunnel.put(str(tmp_path / "f"), str(tmp_path / "nodir" / "f"))
        assert tunnel.call(os.getpid) > 0  # the tunnel is still usable


def test_missing_local_file_raises_before_anything_is_sent(tmp_path: Path) -> None:
    with Local("files") as tunnel, pytest.raises(FileNotFoundError):
        tunnel.put(str(tmp_path / "absent"), str(tmp_path / "x"))


def test_concurrent_puts_to_one_path_leave_one_whole_file(tmp_path: Path) -> None:
    sources = []
    for i in range(4):
        path = tmp_path / f"src{i}"
        path.write_bytes(bytes([i]) * (2 * 1024 * 1024))
        sources.append(path)
    target = tmp_path / "target"
    tunnels = [Local(f"put{i}") for i in range(4)]
    try:
        threads = [
            threading.Thread(target=t.put, args=(str(src), str(target)))
            for t, src in zip(tunnels, sources)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    finally:
        for tunnel in tunnels:
            tunnel.close()
    data = target.read_bytes()
    assert len(data) == 2 * 1024 * 1024 and len(set(data)) == 1  # one writer's file, whole
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        ["target", *(s.name for s in sources)]
    )


def test_put_interrupted_by_agent_death_leaves_old_file(tmp_path: Path) -> None:
    target = tmp_path / "target"
    target.write_bytes(b"old contents")
    source = tmp_path / "big"
    write_random(source, 64 * 1024 * 1024)
    tunnel = Local("dying")
    future = tunnel.submit_put(str(source), str(target))
    tunnel.close()  # kills the agent mid-stream
    with pytest.raises(errors.ChopsticksError):
        future.result(10)
    assert target.read_bytes() == b"old contents"


def test_cancelled_fetch_leaves_no_partial_file(tmp_path: Path) -> None:
    source = tmp_path / "big"
    write_random(source, 128 * 1024 * 1024)
    target = tmp_path / "dest"
    with Local("files") as tunnel:
        future = tunnel.submit_fetch(str(source), str(target))
        deadline = time.monotonic() + 10
        while not list(tmp_path.glob(".dest.*.part")) and time.monotonic() < deadline:
            time.sleep(0.001)
        assert future.cancel()
        assert sorted(p.name for p in tmp_path.iterdir()) == ["big"]  # at once, not eventually
        assert tunnel.call(os.getpid) > 0


def test_puts_of_every_chunking_arrive_checked(remote_python: RemotePython, tmp_path: Path) -> None:
    """A file of one chunk is hashed by the agent's own _sha1, a longer one by hashlib from its
    second chunk on: both sums must be right on every remote Python, at the boundaries too. The
    small puts import neither tempfile nor hashlib there (each costs milliseconds; a site
    customisation may have imported them already)."""
    sizes = [0, 1000, CHUNK_SIZE - 1, CHUNK_SIZE, CHUNK_SIZE + 1, 3 * CHUNK_SIZE + 5]
    costly = ["tempfile", "hashlib"]
    with Local(f"py{remote_python.version}", python3=str(remote_python.path)) as tunnel:
        loaded_at_start = tunnel.call(rf.loaded, costly)
        for size in sizes:
            source = tmp_path / f"source-{size}"
            sha1 = write_random(source, size)
            put = tunnel.put(str(source), str(tmp_path / f"remote-{size}"))
            assert (put["size"], put["sha1sum"]) == (size, sha1)
            assert (tmp_path / f"remote-{size}").read_bytes() == source.read_bytes()
            if size == CHUNK_SIZE:
                assert tunnel.call(rf.loaded, costly) == loaded_at_start
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.endswith(".part")) == []


def test_a_part_file_never_takes_an_existing_name(
    remote_python: RemotePython, tmp_path: Path
) -> None:
    with Local(f"py{remote_python.version}", python3=str(remote_python.path)) as tunnel:
        made = tunnel.call(rf.part_file_collisions, str(tmp_path))
    taken = {".target.%s.part" % (byte * 6) for byte in ("00", "01")}
    name = made.pop("name")
    assert re.fullmatch(r"\.target\.[0-9a-f]{12}\.part", name) and name not in taken
    assert made == {"mode": 0o600, "kept": "keep", "link_left_dangling": True}


@pytest.mark.parametrize("chunks", [1, 3])
def test_a_wrong_checksum_leaves_no_file(tmp_path: Path, chunks: int) -> None:
    target = tmp_path / "target"
    with Local("sums") as tunnel:
        outcome = tunnel.call(rf.upload_with_wrong_checksum, str(target), [b"x" * 1000] * chunks)
    assert "checksum mismatch" in outcome["error"] and outcome["left"] == []


def test_agent_exits_by_itself_after_a_failed_put(tmp_path: Path) -> None:
    """A put that failed on the remote gets no PUT_CLOSE (the controller stops sending): its
    placeholder stays among the uploads, and at EOF the agent must still exit, without the
    signals close() sends stragglers."""
    write_random(tmp_path / "source", 16 * 1024 * 1024)
    tunnel = Local("failed-put")
    with pytest.raises(errors.TransferError, match="FileNotFoundError"):
        tunnel.put(str(tmp_path / "source"), str(tmp_path / "no-such-dir" / "file"))
    assert tunnel._conn is not None and tunnel._conn.proc is not None
    proc = tunnel._conn.proc
    tunnel.close()
    assert proc.returncode == 0


# -- user mistakes and long names ----------------------------------------------------------------


def test_fetch_onto_a_directory_fails_that_host_at_once_leaving_nothing(tmp_path: Path) -> None:
    """A local path that is an existing directory: TransferError for that host at once (no
    fetch started, no temporary file, the directory untouched); the tunnel is not harmed
    (same agent), and a group's other hosts fetch as usual."""
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "inside").write_bytes(b"kept")
    source = tmp_path / "source"
    write_random(source, 1000)
    group = Group([Local("a"), Local("b")])
    try:
        pids = group.call(os.getpid)
        result = group.fetch(str(source), str(tmp_path / "{host}"), timeout=60)
        assert isinstance(result["a"], ErrorResult), result
        assert isinstance(result["a"].exception, errors.TransferError)
        assert "is a directory" in result["a"].msg
        assert (tmp_path / "b").read_bytes() == source.read_bytes()
        tunnel = group["a"]
        with pytest.raises(errors.TransferError, match=r"^a: cannot fetch to .*: it is a dir"):
            tunnel.fetch(str(source), str(tmp_path / "a"))
        assert group.call(os.getpid) == pids
    finally:
        group.close()
    assert sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*")) == [
        "a",
        "a/inside",
        "b",
        "source",
    ]


@pytest.mark.parametrize("name_bytes", [200, 236, 237, 250, 255])
def test_put_and_fetch_of_a_long_file_name(tmp_path: Path, name_bytes: int) -> None:
    """A file name near the 255-byte limit (multi-byte characters included): its temporary
    name, which adds 19 bytes, is shortened on both ends, and the files arrive whole."""
    name = ("é" * name_bytes)[: name_bytes // 2] + "x" * (name_bytes % 2)
    assert len(os.fsencode(name)) == name_bytes
    source = tmp_path / "source"
    write_random(source, 3 * CHUNK_SIZE)
    (tmp_path / "remote").mkdir()
    (tmp_path / "local").mkdir()
    with Local("names") as tunnel:
        put = tunnel.put(str(source), str(tmp_path / "remote" / name))
        fetched = tunnel.fetch(put["remote_path"], str(tmp_path / "local" / name))
    assert fetched["sha1sum"] == put["sha1sum"]
    assert (tmp_path / "local" / name).read_bytes() == source.read_bytes()
    assert [p.name for p in (tmp_path / "remote").iterdir()] == [name]
    assert [p.name for p in (tmp_path / "local").iterdir()] == [name]


def test_temporary_names_of_long_names_stay_unique_and_beside_the_target(tmp_path: Path) -> None:
    target = str(tmp_path / ("n" * 255))
    made = [_agent._create_part_file(target) for _ in range(50)]
    try:
        names = {os.path.basename(tmp) for _, tmp in made}
        assert len(names) == 50
        assert all(os.path.dirname(tmp) == str(tmp_path) for _, tmp in made)
        assert all(len(os.fsencode(name)) <= 255 and name.endswith(".part") for name in names)
    finally:
        for fd, tmp in made:
            os.close(fd)
            os.unlink(tmp)


# -- max_size ------------------------------------------------------------------------------------


def test_fetch_larger_than_max_size_fails_keeping_nothing(tmp_path: Path) -> None:
    """max_size: a file up to it is fetched; a larger one fails with TransferError naming the
    limit, the destination keeps its old contents, no temporary file is left, and the tunnel
    stays usable. The limit is checked as the bytes arrive (the remote's claims are not
    trusted)."""
    source = tmp_path / "source"
    write_random(source, 3 * CHUNK_SIZE)
    size = 3 * CHUNK_SIZE
    dest = tmp_path / "dest"
    dest.write_bytes(b"old")
    with Local("capped") as tunnel:
        assert tunnel.fetch(str(source), str(dest), max_size=size)["size"] == size
        dest.write_bytes(b"old")
        for limit in (0, CHUNK_SIZE, size - 1):
            with pytest.raises(errors.TransferError, match=rf"larger than max_size \({limit} "):
                tunnel.fetch(str(source), str(dest), max_size=limit)
            assert sorted(p.name for p in tmp_path.iterdir()) == ["dest", "source"]
            assert dest.read_bytes() == b"old"
        assert tunnel.call(os.getpid) > 0
        with pytest.raises(ValueError, match="max_size"):
            tunnel.fetch(str(source), str(dest), max_size=-1)


def test_group_and_queue_fetch_take_max_size(tmp_path: Path) -> None:
    small, big = tmp_path / "small", tmp_path / "big"
    write_random(small, 100)
    write_random(big, 1000)
    group = Group([Local("g1"), Local("g2")])
    try:
        result = group.fetch(str(small), str(tmp_path / "s-{host}"), max_size=100)
        assert result.ok, result
        result = group.fetch(str(big), str(tmp_path / "b-{host}"), max_size=999)
        assert all("max_size" in error.msg for _, error in result.failures()), result
        assert len(dict(result.failures())) == 2
        queue = Queue()
        queued = queue.fetch(group, str(big), str(tmp_path / "q-{host}"), max_size=999)
        queue.run()
        assert len(dict(queued.value.failures())) == 2
        with pytest.raises(ValueError, match="max_size"):
            group.fetch(str(big), str(tmp_path / "x-{host}"), max_size="1k")  # type: ignore[arg-type]
    finally:
        group.close()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["big", "s-g1", "s-g2", "small"]
