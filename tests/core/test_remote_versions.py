"""The agent on every supported remote CPython (3.6 .. 3.13), and a clear refusal for 2.7."""

from __future__ import annotations

import hashlib
import os
import sys
from pathlib import Path

import pytest
import remote_funcs as rf

from chopsticks_nb import errors
from chopsticks_nb._call_frames import CODEC_FIRST
from chopsticks_nb.tunnel import Local
from fixtures.pythons import RemotePython, RemotePythons


def test_agent_source_stands_alone(remote_python: RemotePython) -> None:
    """The agent compiles and imports with only the stdlib, isolated from site and the cwd."""
    import subprocess

    agent = Path(__file__).parents[2] / "chopsticks_nb" / "_agent.py"
    code = (
        "import importlib.util as u, sys\n"
        f"s = u.spec_from_file_location('agent', {str(agent)!r}); m = u.module_from_spec(s)\n"
        "s.loader.exec_module(m); print(m.decode(m.encode([1, 'x'])))"
    )
    out = subprocess.run(
        [remote_python.path, "-I", "-S", "-c", code], capture_output=True, text=True
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[1, 'x']"


def test_call_exception_import_and_files(remote_python: RemotePython, tmp_path: Path) -> None:
    source = tmp_path / "data"
    source.write_bytes(os.urandom(1024 * 1024 + 3))
    with Local(f"py{remote_python.version}", python3=str(remote_python.path)) as tunnel:
        # The first call goes in the codec, not pickled (unless that speed-up is off).
        assert tunnel.call(rf.loaded, ["_pickle"]) == ([] if CODEC_FIRST else ["_pickle"])
        assert tunnel.call(rf.version)[:2] == tuple(
            int(p) for p in remote_python.version.split(".")
        )
        assert tunnel.call(rf.echo, 2**80, {"k": (1.5, None)}) == [[2**80, {"k": (1.5, None)}], {}]
        assert tunnel.call(rf.loaded, ["_pickle"]) == ["_pickle"]
        data = source.read_bytes()  # large arguments are read into their bytes objects there
        assert tunnel.call(rf.echo, data[:70000], 5, data) == [[data[:70000], 5, data], {}]
        with pytest.raises(errors.RemoteException) as info:
            tunnel.call(rf.boom, "old or new")
        assert info.value.remote_type == "RuntimeError" and "remote_funcs.py" in (
            info.value.remote_traceback or ""
        )
        put = tunnel.put(str(source), str(tmp_path / "remote"))
        fetched = tunnel.fetch(str(tmp_path / "remote"), str(tmp_path / "back"))
    assert put["sha1sum"] == fetched["sha1sum"] == hashlib.sha1(source.read_bytes()).hexdigest()


def test_a_relay_on_every_version(remote_python: RemotePython, tmp_path: Path) -> None:
    """The relay's side (the pump, compiled there from the controller's source) runs on every
    supported Python: an agent of that version behind a relay of that version answers calls,
    a large argument and a put."""
    python = str(remote_python.path)
    source = tmp_path / "data"
    source.write_bytes(os.urandom(700_000))
    relay = Local(f"relay{remote_python.version}", python3=python)
    with relay, Local(f"behind{remote_python.version}", python3=python, via=relay) as tunnel:
        assert tunnel.call(rf.version)[:2] == relay.call(rf.version)[:2]
        data = source.read_bytes()
        assert tunnel.call(rf.echo, data) == [[data], {}]
        put = tunnel.put(str(source), str(tmp_path / "remote"))
    assert put["sha1sum"] == hashlib.sha1(source.read_bytes()).hexdigest()


def test_python2_is_refused_with_a_clear_message(remote_pythons: RemotePythons) -> None:
    python2 = remote_pythons.path("2.7")
    with pytest.raises(
        errors.ConnectError, match=r"py2: the remote Python is too old.*3\.6 or newer.*2\.7"
    ):
        Local("py2", python3=str(python2)).connect()


def test_controller_version_is_supported_too() -> None:
    assert sys.version_info >= (3, 9)


def test_imports_on_the_agent_reader_thread_never_wait_for_the_controller() -> None:
    """The agent's I/O thread imports lazily (tempfile for a put); a module missing there
    must fail fast instead of waiting for a reply that only that thread could read."""
    with Local("reader") as tunnel:
        assert tunnel.call(rf.import_missing_as_reader_thread) == "did not ask"
