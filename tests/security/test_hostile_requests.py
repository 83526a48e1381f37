"""Import and resource requests from a hostile agent read no file outside a served package.

tests/core/test_imports.py checks the path a real agent's loader takes (``pkgutil.get_data``
through the import hook). Here a hostile agent sends the IMPORT and GET_DATA frames itself, with
payloads no real agent would send, and returns the controller's decoded REPLY frames as its
call's result, so each answer can be checked: "not found" ([] or None) for everything outside a
served package, the file's bytes for a resource inside one (the control).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from chopsticks_nb._agent import encode
from security.hostile import HostileTunnel

SECRET = "controller secret"


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
