"""The user's modules go with the call that needs them, and compiled to a Local agent."""

from __future__ import annotations

import importlib
import linecache
import marshal
import os
import sys
from pathlib import Path
from typing import Any

import pytest
import remote_funcs as rf

from chopsticks_nb import _modserver
from chopsticks_nb._modserver import ModuleServer
from chopsticks_nb.tunnel import Local

SOURCE = "VALUE = 'source'\n\ndef value():\n    return VALUE\n"


def _module(served: Path, name: str, source: str = SOURCE) -> Any:
    path = served.joinpath(*name.split("."))
    for parent in reversed(path.parents):
        if parent != served and served in parent.parents and not parent.exists():
            parent.mkdir()
            (parent / "__init__.py").write_text("")
    path.with_suffix(".py").write_text(source)
    importlib.invalidate_caches()
    return importlib.import_module(name)


@pytest.mark.speedup("push_modules")
def test_a_function_of_the_users_module_goes_with_its_module(served: Path) -> None:
    module = _module(served, "usermod")
    with Local("push") as tunnel:
        assert tunnel.call(module.value) == "source"
        assert tunnel._conn is not None
        assert tunnel._conn.modserver.requests == 0  # the agent never had to ask
        assert "usermod" in tunnel._conn.modserver.sent


@pytest.mark.speedup("push_modules")
def test_a_module_of_a_package_goes_with_its_parents(served: Path) -> None:
    module = _module(served, "userpkg.inner.leaf")
    with Local("push-pkg") as tunnel:
        assert tunnel.call(module.value) == "source"
        assert tunnel._conn is not None
        assert tunnel._conn.modserver.requests == 0
        assert {"userpkg", "userpkg.inner", "userpkg.inner.leaf"} <= tunnel._conn.modserver.sent


@pytest.mark.speedup("push_modules")
def test_a_module_the_pickle_names_goes_too(served: Path) -> None:
    """A notebook function (sent as source) whose globals name a function of the user's module:
    the pickle refers to that module, and the module goes before it."""
    module = _module(served, "usermod2")
    filename = "<notebook-cell-push>"
    cell = "def twice():\n    return value() * 2\n"
    linecache.cache[filename] = (len(cell), None, cell.splitlines(True), filename)
    namespace: dict[str, Any] = {"__name__": "__main__", "value": module.value}
    exec(compile(cell, filename, "exec"), namespace)
    with Local("push-pickle") as tunnel:
        assert tunnel.call(namespace["twice"]) == "sourcesource"
        assert tunnel._conn is not None
        assert tunnel._conn.modserver.requests == 0


def test_an_installed_module_is_left_to_the_remote() -> None:
    origin = importlib.import_module("_pytest").__file__
    assert origin is not None and "site-packages" in origin.split(os.sep)
    assert ModuleServer().push("_pytest") == []  # the remote is likely to have its own
    assert ModuleServer().push("json") == []  # the standard library is never sent
    assert ModuleServer().push("no_such_module_here") == []


def test_push_sends_each_module_once(served: Path) -> None:
    _module(served, "usermod3")
    server = ModuleServer()
    assert [r["name"] for r in server.push("usermod3")] == ["usermod3"]
    assert server.push("usermod3") == []
    assert server.modules("usermod3")  # asked for all the same, it is answered


def test_a_module_asked_for_inside_a_call_still_arrives(served: Path) -> None:
    """Imports a function makes when it runs are asked for, as before."""
    _module(served, "asked", "def total():\n    return 7\n")
    with Local("asked") as tunnel:
        assert tunnel.call(rf.import_and_sum, "asked") == 7
        assert tunnel._conn is not None
        assert tunnel._conn.modserver.requests >= 1


@pytest.mark.speedup("compiled")
def test_a_local_agent_runs_modules_compiled_here(
    served: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The code compiled here is what runs there: made to differ from the source, it shows."""
    module = _module(served, "compiledmod")

    def code(record: _modserver.ModuleRecord) -> bytes:
        return marshal.dumps(compile(SOURCE.replace("source", "compiled"), "x.py", "exec"))

    monkeypatch.setattr(_modserver.RECORDS, "code", code)
    with Local("compiled") as tunnel:
        assert tunnel.call(module.value) == "compiled"
    # Not this very interpreter (another path to it, say): the source, compiled there.
    other = os.path.realpath(sys.executable)
    assert other != sys.executable
    with Local("source", python3=other) as tunnel:
        assert tunnel.call(module.value) == "source"


@pytest.mark.speedup("compiled")
def test_code_for_another_bytecode_is_not_run(
    served: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    module = _module(served, "othermagic")

    def code(record: _modserver.ModuleRecord) -> bytes:
        return b"not code for this interpreter"

    monkeypatch.setattr(_modserver.RECORDS, "code", code)
    monkeypatch.setattr(_modserver, "MAGIC_NUMBER", b"\x00\x00\r\n")
    with Local("other-magic") as tunnel:
        assert tunnel.call(module.value) == "source"


def test_module_records_carry_code_only_when_asked(served: Path) -> None:
    _module(served, "withcode")
    plain = ModuleServer().modules("withcode")
    assert "code" not in plain[0]
    compiled = ModuleServer(compiled=True).modules("withcode")
    code = marshal.loads(compiled[0]["code"])  # type: ignore[arg-type]
    assert code.co_filename == str(served / "withcode.py")
    namespace: dict[str, Any] = {}
    exec(code, namespace)
    assert namespace["value"]() == "source"
