"""Import and resource requests from a hostile agent run nothing on the controller, change
nothing there, read only what docs/reliability.md says a remote may read, and cannot take the
I/O thread from the other hosts.

tests/core/test_imports.py checks the path a real agent's loader takes (``pkgutil.get_data``
through the import hook). Here a hostile agent sends the IMPORT and GET_DATA frames itself, with
payloads no real agent would send, and returns the controller's decoded REPLY frames as its
call's result, so each answer can be checked: "not found" ([] or None) for everything a remote
may not read, the file's bytes for a resource it may (the control).
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Callable

import pytest

from chopsticks_nb._agent import encode
from chopsticks_nb._broker import BROKER
from chopsticks_nb._modserver import MAX_RESOURCE_BYTES, RECORDS
from chopsticks_nb._request_turns import REQUESTS_PER_TURN
from chopsticks_nb.group import Group
from chopsticks_nb.tunnel import Local
from security.hostile import HostileTunnel

SECRET = "controller secret"
CERTIFICATE = b"-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"


@pytest.fixture
def layout(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, Path]]:
    """On the controller's sys.path: a package ``hostpkg`` with a resource, links out of it,
    and a plain directory ``plaindir`` (which Python treats as a namespace package); a secret
    file beside them, outside every package."""
    root = tmp_path / "path"
    pkg = root / "hostpkg"
    (pkg / "data").mkdir(parents=True)
    (pkg / "__init__.py").write_text("VALUE = 1\n")
    (pkg / "data" / "ok.txt").write_bytes(b"served resource")
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_text(SECRET)
    (tmp_path / "secret.txt").write_text(SECRET)
    os.symlink(outside / "secret.txt", pkg / "link-out")
    os.symlink(outside, pkg / "dirlink")
    (root / "plaindir").mkdir()
    (root / "plaindir" / "secret.txt").write_text(SECRET)
    monkeypatch.syspath_prepend(str(root))
    yield {"root": root, "pkg": pkg, "outside": outside}
    for name in [m for m in sys.modules if m.startswith(("hostpkg", "plaindir"))]:
        del sys.modules[name]


def probe(requests: list[tuple[str, Any]]) -> list[Any]:
    """The controller's answers to ``requests`` sent by a hostile agent, in order."""
    # Sent as encoded payloads: a JSON command line cannot carry bytes values.
    raw = [(kind, {"hex": encode(value).hex()}) for kind, value in requests]
    with HostileTunnel("prober", "probe_requests", requests=raw) as tunnel:
        replies: list[Any] = tunnel.call(os.getpid)
    assert len(replies) == len(requests)
    assert SECRET.encode() not in encode(replies)
    return replies


def test_resource_requests_outside_a_served_package_are_not_found(
    layout: dict[str, Path],
) -> None:
    """Injects: GET_DATA for absolute paths elsewhere, ``..`` out of the package, a file link
    and a directory link out of it, a relative path, the package directory itself, a NUL byte,
    lone surrogates, /proc, and a file in a namespace package.
    Asserts: every answer is None (not found) and no answer holds the secret; the same
    package's real resource is served (the control)."""
    pkg = str(layout["pkg"])
    refused: list[Any] = [
        "/etc/passwd",
        "/proc/self/environ",
        f"{pkg}/../../secret.txt",
        f"{pkg}/data/../../../secret.txt",
        f"{pkg}/link-out",
        f"{pkg}/dirlink/secret.txt",
        "hostpkg/data/ok.txt",
        pkg,
        f"{pkg}/data",
        f"{pkg}/data/ok.txt\0",
        f"{pkg}/\ud800",
        f"{pkg}/\udcff",
        f"{layout['root']}/plaindir/secret.txt",
    ]
    requests: list[tuple[str, Any]] = [("import", "hostpkg"), ("import", "plaindir")]
    requests += [("data", path) for path in refused]
    requests += [("data", f"{pkg}/data/ok.txt"), ("data", f"{pkg}/data/../data/ok.txt")]
    replies = probe(requests)
    assert replies[0][0]["name"] == "hostpkg"  # the package was served: its directory is open
    assert replies[1][0]["name"] == "plaindir" and replies[1][0]["source"] is None
    assert replies[2:-2] == [None] * len(refused)
    assert replies[-2:] == [b"served resource", b"served resource"]


def test_resource_requests_before_any_package_is_served_are_not_found(
    layout: dict[str, Path],
) -> None:
    """Injects: GET_DATA for a package's own resource before that package was imported.
    Asserts: None: a directory opens only when its package is served on this connection."""
    assert probe([("data", f"{layout['pkg']}/data/ok.txt")]) == [None]


def test_module_requests_that_are_not_dotted_names_are_not_found(
    layout: dict[str, Path],
) -> None:
    """Injects: IMPORT with paths, ``..``, empty parts, NUL, surrogates, overlong names,
    ``__main__``, the standard library, and a module the controller has not got.
    Asserts: every answer is [] (not found); a real module is served (the control)."""
    names: list[Any] = [
        "../etc/passwd",
        "/etc/passwd",
        "hostpkg/../hostpkg",
        "hostpkg/data/ok.txt",
        "os.path/../x",
        ".hostpkg",
        "hostpkg.",
        "a..b",
        "",
        " ",
        "hostpkg\0",
        "\ud800",
        "x" * 600,
        "hostpkg." + "a" * 600,
        "__main__",
        "json",
        "os.path",
        "no_such_module_anywhere",
        "hostpkg.no_such_submodule",
    ]
    replies = probe([("import", name) for name in names] + [("import", "hostpkg")])
    assert replies[:-1] == [[]] * len(names)
    assert replies[-1][0]["source"] == b"VALUE = 1\n"


NOT_NAMES: list[Any] = [42, None, b"hostpkg", ["hostpkg"], {"name": "hostpkg"}]


@pytest.mark.parametrize("kind", ["import", "data"])
@pytest.mark.parametrize("value", NOT_NAMES, ids=lambda v: type(v).__name__)
def test_requests_that_are_not_strings_end_the_tunnel(
    layout: dict[str, Path], kind: str, value: Any
) -> None:
    """Injects: an IMPORT or GET_DATA whose payload decodes to something other than a string.
    Asserts: ProtocolError naming the host and the request kind (no real agent sends one)."""
    from chopsticks_nb import errors

    tunnel = HostileTunnel(
        "prober", "probe_requests", requests=[[kind, {"hex": encode(value).hex()}]]
    )
    expected = "IMPORT" if kind == "import" else "GET_DATA"
    with pytest.raises(errors.ProtocolError, match=rf"^prober: .*malformed {expected}: "):
        tunnel.call(os.getpid)
    tunnel.close()


def test_undecodable_request_payloads_end_the_tunnel(layout: dict[str, Path]) -> None:
    """Injects: an IMPORT whose payload is not a codec value. Asserts: ProtocolError naming the
    host (the controller answers nothing it cannot decode)."""
    from chopsticks_nb import errors

    tunnel = HostileTunnel("prober", "probe_requests", requests=[["import", {"hex": "80ff"}]])
    with pytest.raises(errors.ProtocolError, match=r"^prober: undecodable message"):
        tunnel.call(os.getpid)
    tunnel.close()


# -- no import hook of the controller runs, nothing is imported or changed there ---------------


class SideEffectFinder:
    """A meta path finder with side effects, as some installed ones have (setuptools' distutils
    hack, put on sys.meta_path by a .pth file, imports setuptools when asked for distutils and
    drops modules from sys.modules when asked for pip): it records every name it is asked for,
    and for the names in ``acts_on`` drops the module ``victim`` from sys.modules."""

    def __init__(self, acts_on: set[str], victim: str) -> None:
        self.acts_on = acts_on
        self.victim = victim
        self.asked: list[str] = []

    def find_spec(self, name: str, path: object = None, target: object = None) -> None:
        self.asked.append(name)
        if name.partition(".")[0] in self.acts_on:
            sys.modules.pop(self.victim, None)
        return None


class HookedEntry:
    """A path hook for one sys.path entry, and the finder it makes: both record their calls."""

    def __init__(self, entry: str) -> None:
        self.entry = entry
        self.calls: list[str] = []

    def __call__(self, entry: str) -> HookedEntry:
        if entry != self.entry:
            raise ImportError("not mine")
        self.calls.append(f"hook {entry}")
        return self

    def find_spec(self, name: str, target: object = None) -> None:
        self.calls.append(f"find_spec {name}")
        return None


def test_module_requests_run_no_import_hook_and_change_nothing(
    layout: dict[str, Path], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Injects: IMPORT requests for pip, distutils, setuptools' hack, a module of a package whose
    __init__ has a side effect, a module only a path hook knows, names that do not exist, while
    the controller has a meta path finder and a path hook with side effects installed (as
    setuptools' distutils hack and editable installs install theirs).
    Asserts: neither ever runs for a request; sys.modules holds the same modules before and
    after; the package's __init__ never ran here, yet its module is served, as is a package on
    sys.path (the controls)."""
    marker = tmp_path / "sidefx-ran"
    (layout["root"] / "sidefx").mkdir()
    (layout["root"] / "sidefx" / "__init__.py").write_text(f"open({str(marker)!r}, 'w').close()\n")
    (layout["root"] / "sidefx" / "child.py").write_text("VALUE = 2\n")
    names = [
        "pip",
        "distutils",
        "distutils.core",
        "_distutils_hack",
        "sidefx.child",
        "hooked_module",
        "no_such_module_anywhere",
        "no_such_parent.child",
        "hostpkg",
    ]
    probe([("import", "hostpkg")])  # whatever a tunnel imports on first use, imported now
    importlib.import_module("hostpkg")  # imported here: the finder's victim
    finder = SideEffectFinder({name.partition(".")[0] for name in names}, "hostpkg")
    hooked = HookedEntry(str(tmp_path / "hooked-entry"))
    monkeypatch.setattr(sys, "meta_path", [finder, *sys.meta_path])
    monkeypatch.setattr(sys, "path_hooks", [hooked, *sys.path_hooks])
    monkeypatch.setattr(sys, "path", [*sys.path, hooked.entry])
    monkeypatch.setattr(sys, "path_importer_cache", dict(sys.path_importer_cache))
    before = dict(sys.modules)

    replies = probe([("import", name) for name in names])

    assert dict(sys.modules) == before and all(sys.modules[k] is v for k, v in before.items())
    assert [name for name in finder.asked if name.partition(".")[0] in finder.acts_on] == []
    assert hooked.calls == []
    assert not marker.exists() and "sidefx" not in sys.modules
    served = dict(zip(names, replies))
    assert [r["name"] for r in served["sidefx.child"]] == ["sidefx.child"]
    assert served["hostpkg"][0]["source"] == b"VALUE = 1\n"
    for name in ("distutils", "distutils.core", "hooked_module", "no_such_module_anywhere"):
        assert served[name] == [], name
    assert served["no_such_parent.child"] == []


def test_module_requests_do_not_touch_the_modules_imported_here(
    layout: dict[str, Path], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Injects: IMPORT requests for a module imported lazily here (importlib.util.LazyLoader:
    reading any attribute of it runs it), and for a name whose sys.modules entry is an object
    that records every attribute read of it.
    Asserts: the lazy module is served from its file and still has not run here; nothing of the
    stand-in object was read, and its name is not found."""
    marker = tmp_path / "lazymod-ran"
    (layout["root"] / "lazymod.py").write_text(f"open({str(marker)!r}, 'w').close()\nVALUE = 3\n")
    spec = importlib.util.find_spec("lazymod")
    assert spec is not None and spec.loader is not None
    spec.loader = importlib.util.LazyLoader(spec.loader)
    lazy = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, "lazymod", lazy)
    spec.loader.exec_module(lazy)
    reads: list[str] = []

    class StandIn:
        def __getattribute__(self, name: str) -> Any:
            reads.append(name)
            return object.__getattribute__(self, name)

    monkeypatch.setitem(sys.modules, "standin_module", StandIn())

    replies = probe([("import", "lazymod"), ("import", "standin_module")])

    assert replies[0][0]["source"] == (layout["root"] / "lazymod.py").read_bytes()
    assert not marker.exists() and type(sys.modules["lazymod"]).__name__ == "_LazyModule"
    assert replies[1] == [] and reads == []


# -- floods ------------------------------------------------------------------------------------


def wait_until(condition: Callable[[], bool], what: str, seconds: float = 60.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, f"still waiting for {what}"
        time.sleep(0.01)


def test_a_request_flood_leaves_the_io_thread_to_the_other_hosts(layout: dict[str, Path]) -> None:
    """Injects: an agent asking for 500 different modules that do not exist, over and over, as
    fast as the controller answers, while two honest hosts make 20 group calls (answers the
    broker thread reads, as it reads the flood).
    Asserts: the honest calls all complete while the flood goes on (more requests answered after
    them; its tunnel alive); the broker never handled more than REQUESTS_PER_TURN of its
    requests in one turn; no name was looked for twice (each connection remembers its misses)
    though each was asked for many times. The round-trip times are in docs/reliability.md."""
    flood = HostileTunnel("flood", "request_flood", names=500)
    honest = Group([Local("honest1"), Local("honest2")])
    lookups = RECORDS.lookups
    try:
        honest.connect()
        flood.submit(os.getpid)  # never answered: the broker reads this pipe, not a caller
        conn = flood._conn
        assert conn is not None
        server = conn.modserver
        turns: list[int] = []
        handle_frames = conn.reader.handle_frames

        def counted() -> bool:  # the real method, with the requests each turn answered noted
            before = server.requests
            try:
                return handle_frames()
            finally:
                if BROKER.in_broker_thread():
                    turns.append(server.requests - before)

        conn.reader.handle_frames = counted  # type: ignore[method-assign]
        wait_until(lambda: server.requests > 5000, "the flood")
        for _ in range(20):
            result = honest.run(os.getpid, timeout=60)
            assert result.ok and all(isinstance(pid, int) for pid in result.values())
        after = server.requests
        wait_until(lambda: server.requests > after + 1000, "more of the flood")
        assert conn.alive
        assert max(turns) <= REQUESTS_PER_TURN and len(turns) > 100
        assert RECORDS.lookups - lookups < 2 * 500  # each name once, give or take a change
    finally:
        flood.close()
        honest.close()


# -- what a remote may read ------------------------------------------------------------------


@pytest.fixture
def private_files(layout: dict[str, Path]) -> dict[str, Path]:
    """Files in ``hostpkg`` that a remote must not read (and some it may: see the test)."""
    pkg = layout["pkg"]
    (pkg / ".git").mkdir()
    (pkg / "secrets").mkdir()
    files = {
        ".env": pkg / ".env",
        ".git/config": pkg / ".git" / "config",
        "data/.hidden": pkg / "data" / ".hidden",
        "id_rsa": pkg / "id_rsa",
        "id_ed25519.pub": pkg / "id_ed25519.pub",
        "TLS.KEY": pkg / "TLS.KEY",
        "prod.env": pkg / "prod.env",
        "secrets/token.txt": pkg / "secrets" / "token.txt",
        "db_credentials.json": pkg / "db_credentials.json",
        "data/Passwords.csv": pkg / "data" / "Passwords.csv",
    }
    for path in files.values():
        path.write_text(SECRET)
    for name in ("server.pem", "data/notes.txt"):  # whatever the name: a private key inside
        files[name] = pkg / name
        files[name].write_text(f"-----BEGIN EC PRIVATE KEY-----\n{SECRET}\n")
    (pkg / "data" / "cacert.pem").write_bytes(CERTIFICATE)  # public: readable
    os.symlink(pkg / ".env", pkg / "data" / "env-link")  # a visible name for a hidden file
    os.symlink(pkg / "data" / "ok.txt", pkg / ".ok-link")  # a hidden name for a visible file
    os.symlink("ok.txt", pkg / "data" / "ok-link")  # a link inside the package: readable
    os.mkfifo(pkg / "data" / "fifo")
    with open(pkg / "data" / "huge.bin", "wb") as f:
        f.truncate(MAX_RESOURCE_BYTES + 1)  # sparse: costs no disk
    return files


def test_resource_requests_for_hidden_secret_or_special_files_are_not_found(
    layout: dict[str, Path], private_files: dict[str, Path]
) -> None:
    """Injects: GET_DATA, inside a served package, for dotfiles and files in dot directories,
    typical secret files (keys, key stores, .env files, names with secret, credential or
    password in them, in any case, also as a directory name), files holding a PEM private key
    (one named .pem, one .txt), a link with a plain name to a dotfile, a link with a hidden
    name to a plain file, a FIFO (whose open would block a reader) and a file over the size
    cap.
    Asserts: every answer is None and none holds the secret; a plain resource, a link to it
    inside the package and a certificate bundle are served (the controls)."""
    pkg = layout["pkg"]
    refused = [str(path) for path in private_files.values()]
    refused += [f"{pkg}/data/env-link", f"{pkg}/.ok-link", f"{pkg}/data/fifo"]
    refused += [f"{pkg}/data/huge.bin", f"{pkg}/data/../.env"]
    requests: list[tuple[str, Any]] = [("import", "hostpkg")]
    requests += [("data", path) for path in refused]
    requests += [("data", f"{pkg}/data/ok.txt"), ("data", f"{pkg}/data/ok-link")]
    requests += [("data", f"{pkg}/data/cacert.pem")]
    replies = probe(requests)
    assert dict(zip(refused, replies[1:-3])) == dict.fromkeys(refused)
    assert replies[-3:] == [b"served resource", b"served resource", CERTIFICATE]


def test_modules_named_like_secrets_are_served_only_if_serve_names_them(
    layout: dict[str, Path],
) -> None:
    """Injects: IMPORT requests for a module ``secrets_script.py`` and a package ``credentials``
    in a directory on sys.path (as in a notebook's working directory), and for a module of a
    served package whose name has "password" in it.
    Asserts: the top-level ones are not found; with ``serve=`` naming them they are served; a
    package's own modules are served whatever their names (the password module)."""
    root = layout["root"]
    (root / "secrets_script.py").write_text(f"TOKEN = {SECRET!r}\n")
    (root / "credentials").mkdir()
    (root / "credentials" / "__init__.py").write_text(f"TOKEN = {SECRET!r}\n")
    (layout["pkg"] / "password_rules.py").write_text("MIN = 12\n")
    requests = [
        ("import", "secrets_script"),
        ("import", "credentials"),
        ("import", "hostpkg.password_rules"),
    ]
    replies = probe(requests)
    assert replies[:2] == [[], []]
    assert replies[2][0]["source"] == b"MIN = 12\n"
    raw = [(kind, {"hex": encode(value).hex()}) for kind, value in requests]
    serving = HostileTunnel(
        "prober", "probe_requests", requests=raw, serve=["secrets_script", "credentials"]
    )
    with serving:
        replies = serving.call(os.getpid)
    assert [reply[0]["name"] for reply in replies[:2]] == ["secrets_script", "credentials"]
    assert replies[2] == []  # hostpkg is not in serve=


def test_a_module_file_that_is_not_a_regular_file_is_not_found(layout: dict[str, Path]) -> None:
    """Injects: IMPORT of a module whose .py file is a FIFO (reading it would block the I/O
    thread for ever). Asserts: not found, at once."""
    os.mkfifo(layout["root"] / "fifo_module.py")
    assert probe([("import", "fifo_module")]) == [[]]
