"""The import hook: remote code imports pure-Python modules from the controller, nothing else."""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys
import zipfile
from pathlib import Path
from typing import Any

import pytest
import remote_funcs as rf

from chopsticks_nb import errors
from chopsticks_nb._modserver import RECORDS, ModuleServer
from chopsticks_nb.group import Group
from chopsticks_nb.tunnel import Local


def make_package(root: Path, name: str, modules: int) -> None:
    """A package whose __init__ imports ``modules`` submodules, one of which imports another."""
    pkg = root / name
    pkg.mkdir()
    for i in range(modules):
        (pkg / f"mod{i}.py").write_text(f"from . import helper\nVALUE = {i}\n")
    (pkg / "helper.py").write_text("X = 1\n")
    imports = "\n".join(f"from . import mod{i}" for i in range(modules))
    total = " + ".join(f"mod{i}.VALUE" for i in range(modules)) or "0"
    (pkg / "__init__.py").write_text(f"{imports}\n\ndef total():\n    return {total}\n")
    (pkg / "data").mkdir()
    (pkg / "data" / "greeting.txt").write_bytes(b"hello \xff resource")


def test_package_of_fifty_modules_arrives_in_one_round_trip(served: Path) -> None:
    make_package(served, "genpkg", 50)
    with Local("imp") as tunnel:
        assert tunnel.call(rf.import_and_sum, "genpkg") == sum(range(50))
        assert tunnel._conn is not None
        assert tunnel._conn.modserver.requests <= 2
        assert "genpkg" not in sys.modules  # serving did not import it on the controller


def test_remote_sees_the_controller_path_as_module_file(served: Path) -> None:
    make_package(served, "genpkg", 1)
    with Local("imp") as tunnel:
        assert tunnel.call(rf.module_file, "genpkg.mod0") == str(served / "genpkg" / "mod0.py")


def test_namespace_package_and_its_modules(served: Path) -> None:
    (served / "nspkg" / "inner").mkdir(parents=True)
    (served / "nspkg" / "inner" / "leaf.py").write_text("def total():\n    return 7\n")
    with Local("ns") as tunnel:
        assert tunnel.call(rf.import_and_sum, "nspkg.inner.leaf") == 7


def test_pkgutil_get_data_reads_package_resources(served: Path) -> None:
    make_package(served, "genpkg", 1)
    with Local("res") as tunnel:
        assert (
            tunnel.call(rf.read_resource, "genpkg", "data/greeting.txt") == b"hello \xff resource"
        )


@pytest.mark.parametrize(
    "path",
    [
        "/etc/passwd",
        "{pkg}/../../secret.txt",
        "{pkg}/link-out",
        "relative/path",
        "{pkg}/missing.txt",
    ],
)
def test_resource_reads_outside_a_served_package_are_refused(served: Path, path: str) -> None:
    make_package(served, "genpkg", 1)
    (served.parent / "secret.txt").write_text("controller secret")
    os.symlink(served.parent / "secret.txt", served / "genpkg" / "link-out")
    with Local("sneaky") as tunnel, pytest.raises(errors.RemoteException) as info:
        tunnel.call(rf.read_via_loader, "genpkg", path.format(pkg=served / "genpkg"))
    assert info.value.remote_type in ("OSError", "FileNotFoundError")
    assert "controller secret" not in str(info.value)


def test_module_server_answers_only_dotted_module_names() -> None:
    server = ModuleServer()
    for bad in [
        "../etc/passwd",
        "/etc/passwd",
        "os.path/../x",
        "",
        "a..b",
        42,
        None,
        "__main__",
        "x" * 600,
    ]:
        assert server.modules(bad) == []
    assert server.modules("no_such_module_anywhere") == []
    assert server.modules("json") == []  # the remote's own standard library is the one to use
    assert server.data("/etc/passwd") is None  # nothing served yet, so no directory is open


def test_a_name_of_many_parts_is_looked_up_from_deep_in_a_stack(served: Path) -> None:
    """A caller reading its own answer may be deep in its own code: looking up a name of 256
    parts (within the 512-character limit) must not recurse once per part."""
    make_package(served, "genpkg", 1)

    def deep(levels: int) -> list[dict[str, object]]:
        if levels:
            return deep(levels - 1)
        return ModuleServer().modules(".".join(["genpkg"] * 73))

    assert deep(sys.getrecursionlimit() - 150) == []


def test_module_server_allow_and_deny_lists(served: Path) -> None:
    make_package(served, "genpkg", 1)
    assert ModuleServer(deny=["genpkg"]).modules("genpkg") == []
    assert ModuleServer(allow=["other"]).modules("genpkg") == []
    assert next(r["name"] for r in ModuleServer(allow=["genpkg"]).modules("genpkg")) == "genpkg"


def test_remote_own_modules_win_over_served_ones() -> None:
    # json is on both sides: the remote must use its own (the stdlib is never served anyway).
    with Local("own") as tunnel:
        assert tunnel.call(rf.module_file, "json").startswith(os.path.dirname(os.__file__))
        assert tunnel._conn is not None
        assert "json" not in tunnel._conn.modserver.sent


def test_missing_module_is_a_clean_remote_import_error() -> None:
    with Local("missing") as tunnel, pytest.raises(errors.RemoteException) as info:
        tunnel.call(rf.import_and_sum, "no_such_module_anywhere")
    assert info.value.remote_type == "ModuleNotFoundError"


def test_imports_inside_functions_are_fetched_when_they_run(served: Path) -> None:
    (served / "lazy_top.py").write_text("VALUE = 1\n")
    (served / "lazy_inner.py").write_text("VALUE = 2\n")
    (served / "lazy_user.py").write_text(
        "import lazy_top\n\ndef total():\n    import lazy_inner\n"
        "    return lazy_top.VALUE + lazy_inner.VALUE\n"
    )
    with Local("lazy") as tunnel:
        tunnel.call(rf.module_file, "lazy_user")
        assert tunnel._conn is not None
        server = tunnel._conn.modserver
        assert {"lazy_user", "lazy_top"} <= server.sent and "lazy_inner" not in server.sent
        requests = server.requests
        assert tunnel.call(rf.import_and_sum, "lazy_user") == 3
        assert "lazy_inner" in server.sent and server.requests == requests + 1


def test_only_imports_that_importing_runs_are_sent_along(served: Path) -> None:
    names = {n: served / f"{n}.py" for n in ["scanned", "a", "b", "c", "d", "e", "f", "g"]}
    for path in names.values():
        path.write_text("X = 1\n")
    names["scanned"].write_text(
        "import a\n"
        "try:\n    import b\nexcept ImportError:\n    b = None\n"
        "class K:\n    import c\n"
        "if a.X:\n    from d import X\n"
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n    import e\nelse:\n    import f\n"
        "def later():\n    import g\n"
        "async def later_too():\n    import g\n"
    )
    sent = {r["name"] for r in ModuleServer().modules("scanned")}
    assert sent == {"scanned", "a", "b", "c", "d", "f"}


def test_an_edited_module_is_read_again(served: Path) -> None:
    module = served / "edited.py"
    module.write_text("def total():\n    return 1\n")
    with Local("before") as tunnel:
        assert tunnel.call(rf.import_and_sum, "edited") == 1
    module.write_text("def total():\n    return 2\n")  # the same size: the time tells
    stat = module.stat()
    os.utime(module, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    with Local("after") as tunnel:
        assert tunnel.call(rf.import_and_sum, "edited") == 2


def test_a_module_written_after_a_failed_import_is_found(served: Path) -> None:
    with Local("early") as tunnel, pytest.raises(errors.RemoteException):
        tunnel.call(rf.import_and_sum, "written_later")
    (served / "written_later.py").write_text("def total():\n    return 5\n")
    with Local("late") as tunnel:
        assert tunnel.call(rf.import_and_sum, "written_later") == 5


def test_a_group_looks_up_and_scans_each_module_once(served: Path) -> None:
    make_package(served, "genpkg", 10)  # 12 modules: __init__, helper, mod0..mod9
    with Local("warm") as tunnel:
        tunnel.call(rf.getpid)  # remote_funcs is served and known from now on
    lookups, scans = RECORDS.lookups, RECORDS.scans
    with Group([Local(f"g{i}") for i in range(4)]) as group:
        assert set(group.call(rf.import_and_sum, "genpkg").values()) == {sum(range(10))}
        assert all(t._conn is not None and len(t._conn.modserver.sent) >= 13 for t in group)
    assert (RECORDS.lookups - lookups, RECORDS.scans - scans) == (12, 12)


def test_a_put_right_behind_a_call_still_importing_a_module(tmp_path: Path, served: Path) -> None:
    """importlib holds its global lock while a finder looks: the agent's import hook must not
    wait for the controller with it held, or the put's handler (importing tempfile) would stop
    until the answer came, and the answer would never be read."""
    (tmp_path / "source").write_bytes(b"data")
    (served / "imported_later.py").write_text("def total():\n    return 3\n")
    with Local("put-import") as tunnel:
        call = tunnel.submit(rf.import_and_sum, "imported_later")  # the agent asks for it
        put = tunnel.put(str(tmp_path / "source"), str(tmp_path / "copy"))
        assert call.result() == 3
    assert put["size"] == 4 and (tmp_path / "copy").read_bytes() == b"data"


def test_a_module_is_served_only_under_its_own_name(monkeypatch: pytest.MonkeyPatch) -> None:
    """``sys.modules["alias"] = module`` here must not make the remote run the module's source as
    a second module named "alias" (the controller's own agent-module alias included)."""
    monkeypatch.setitem(sys.modules, "chopsticks_alias", sys.modules["chopsticks_nb"])
    server = ModuleServer()
    assert server.modules("chopsticks_alias") == []
    assert server.modules("chopsticks_alias.tunnel") == []
    assert server.modules("_chopsticks_nb_agent") == []  # _agent.ALIAS, kept in sys.modules here
    assert server.modules("chopsticks_nb")[0]["name"] == "chopsticks_nb"


def test_an_alias_cannot_start_a_second_agent_module(monkeypatch: pytest.MonkeyPatch) -> None:
    """Served under an alias, chopsticks_nb would bring a second agent module to the remote with
    its own DEPTH: a tunnel opened through it would not count toward DEPTH_LIMIT (it got depth 1
    where its real depth is 2)."""
    monkeypatch.setitem(sys.modules, "chopsticks_alias", sys.modules["chopsticks_nb"])
    with Local("aliased") as tunnel:
        assert tunnel.call(rf.depth_through, "chopsticks_alias") == [1, "ModuleNotFoundError"]
        assert tunnel.call(rf.depth_through, "chopsticks_nb") == [1, 2]


def test_a_module_written_after_a_failed_import_is_found_on_the_same_connection(
    served: Path,
) -> None:
    """The remote forgets its misses on importlib.invalidate_caches(), as Python's own finders
    do; the controller then looks again, the directory having changed."""
    with Local("same") as tunnel:
        with pytest.raises(errors.RemoteException):
            tunnel.call(rf.import_and_sum, "written_later")
        (served / "written_later.py").write_text("def total():\n    return 5\n")
        assert tunnel.call(rf.import_again, "written_later") == 5


def test_a_connection_remembers_what_it_did_not_find_until_a_directory_changes(
    served: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    make_package(served, "genpkg", 1)
    server = ModuleServer()
    assert server.modules("not_yet") == [] and server.modules("genpkg.not_yet") == []
    lookups = RECORDS.lookups
    assert server.modules("not_yet") == [] and server.modules("genpkg.not_yet") == []
    assert RECORDS.lookups == lookups  # remembered: not looked for again
    (served / "genpkg" / "not_yet.py").write_text("X = 1\n")
    assert [r["name"] for r in server.modules("genpkg.not_yet")] == ["genpkg.not_yet"]
    assert server.modules("not_yet") == []  # its directory did not change
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "not_yet.py").write_text("X = 2\n")
    monkeypatch.syspath_prepend(str(elsewhere))
    assert server.modules("not_yet")[0]["source"] == b"X = 2\n"  # sys.path changed


class EditableFinder:
    """Finds one package outside sys.path, as the finder of a package installed in editable
    mode does; records what it is asked once the controller has imported the package."""

    def __init__(self, name: str, directory: Path) -> None:
        self.name = name
        self.directory = directory
        self.asked: list[str] | None = None

    def find_spec(self, fullname: str, path: object = None, target: object = None) -> Any:
        if self.asked is not None:
            self.asked.append(fullname)
        if fullname != self.name:
            return None
        package = self.directory / self.name
        return importlib.util.spec_from_file_location(
            fullname, package / "__init__.py", submodule_search_locations=[str(package)]
        )


def test_a_package_imported_through_its_own_finder_is_served_with_all_its_modules(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Its finder is not run for the remote (nor any other but the standard path rules): the
    package imported here says where it is, and its __path__ where its other modules are."""
    make_package(tmp_path, "edpkg", 3)
    (tmp_path / "edpkg" / "extra.py").write_text("def total():\n    return 42\n")
    finder = EditableFinder("edpkg", tmp_path)
    monkeypatch.setattr(sys, "meta_path", [finder, *sys.meta_path])
    try:
        importlib.import_module("edpkg")
        finder.asked = []
        with Local("editable") as tunnel:
            assert tunnel.call(rf.import_and_sum, "edpkg") == sum(range(3))
            assert tunnel.call(rf.import_and_sum, "edpkg.extra") == 42  # not imported here
        # A Local agent finds edpkg.extra on the shared disk itself (edpkg's __path__); a remote
        # on another machine asks for it:
        assert [r["name"] for r in ModuleServer().modules("edpkg.extra")] == ["edpkg.extra"]
        assert [name for name in finder.asked if name.startswith("edpkg")] == []
        assert "edpkg.extra" not in sys.modules
    finally:
        for name in [m for m in sys.modules if m.partition(".")[0] == "edpkg"]:
            del sys.modules[name]


def test_modules_inside_a_zip_on_sys_path_are_not_served(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Finding them would take zipimport's path hook: only directories are looked in."""
    archive = tmp_path / "modules.zip"
    with zipfile.ZipFile(archive, "w") as zipped:
        zipped.writestr("zipped_module.py", "def total():\n    return 1\n")
    monkeypatch.syspath_prepend(str(archive))
    assert ModuleServer().modules("zipped_module") == []
