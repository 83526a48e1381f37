"""Stage 1: a Local tunnel sends the agent compiled; any other far side compiles its source."""

from __future__ import annotations

import subprocess
import sys

import pytest
import remote_funcs as rf

from chopsticks_nb import _bootstrap
from chopsticks_nb.tunnel import Local
from fixtures.pythons import RemotePython

MARKED_SOURCE = _bootstrap.agent_source() + b"\nMARKER = 'compiled by the controller'\n"


class MarkedLocal(Local):
    """Sends code compiled here from the agent's source plus a MARKER, whatever interpreter the
    far side runs: MARKER shows whether stage 1 loaded it."""

    def _compiled_agent(self) -> bytes:
        return _bootstrap.compile_for_stage1(MARKED_SOURCE)


@pytest.mark.speedup("compiled")
def test_a_local_tunnel_of_this_interpreter_sends_the_compiled_agent() -> None:
    length = str(len(_bootstrap.compiled_agent()))
    assert Local("same").cmd_args() == [sys.executable, "-c", _bootstrap.stage1(), length]
    with MarkedLocal("marked") as tunnel:
        state = tunnel.call(rf.agent_module_state)
    assert state["marker"] == "compiled by the controller"
    assert state["argv"] == ["-c"]  # user code does not see the code argument
    assert not state["zlib"]  # compiled code comes uncompressed: no zlib to import (0.35 ms)


def test_another_interpreter_gets_the_source_only(remote_python: RemotePython) -> None:
    tunnel = Local("other", python3=str(remote_python.path))
    assert tunnel._compiled_agent() is None
    assert tunnel.cmd_args() == [str(remote_python.path), "-c", _bootstrap.stage1()]


def test_stage1_loads_compiled_code_only_from_its_own_python_version(
    remote_python: RemotePython,
) -> None:
    """A code argument made by another Python version is ignored (the source is compiled):
    bytecode of another version may crash an interpreter. The same version loads it."""
    magic = subprocess.run(
        [remote_python.path, "-c", "import importlib.util as u; print(u.MAGIC_NUMBER.hex())"],
        capture_output=True, text=True, check=True,
    ).stdout.strip()  # fmt: skip
    import importlib.util

    same = magic == importlib.util.MAGIC_NUMBER.hex()
    with MarkedLocal(f"py{remote_python.version}", python3=str(remote_python.path)) as tunnel:
        state = tunnel.call(rf.agent_module_state)
        assert tunnel.call(rf.version)[:2] == tuple(map(int, remote_python.version.split(".")))
    assert state["marker"] == ("compiled by the controller" if same else None)
    assert state["argv"] == ["-c"]


def test_the_agent_keeps_its_source_compressed_until_a_nested_tunnel_needs_it() -> None:
    with Local("top") as tunnel:
        before = tunnel.call(rf.agent_module_state)
        nested = tunnel.call(rf.nested_agent_module_state)
        after = tunnel.call(rf.agent_module_state)
    assert (before["source"], before["source_zlib"]) == (False, True)
    # A nested Local sends the agent compiled, from its source (or, with that speed-up off, the
    # compressed source as received: it never needs the source itself).
    assert nested["source_zlib"] and after["source"] == _bootstrap.COMPILED
