"""Answers an agent's import requests from the controller's own import system.

It serves modules, never paths: a request names a dotted module and the answer is the source
that the controller's finders find for it (without importing anything here), together with the
not-yet-sent pure-Python modules it imports, so a package arrives in about one round trip.
Resource reads (``pkgutil.get_data``) are answered only for files inside the directory of a
package already served on this connection, after resolving links. The standard library is never
served: a remote's own standard library is the one that matches its Python.
"""

from __future__ import annotations

import ast
import importlib.machinery
import os
import sys
import sysconfig
from collections.abc import Collection, Iterator
from dataclasses import dataclass
from functools import lru_cache
from importlib.machinery import ModuleSpec

from . import _agent

MAX_BUNDLE_MODULES = 256
MAX_BUNDLE_BYTES = 8 * 1024 * 1024
MAX_RESOURCE_BYTES = 64 * 1024 * 1024
MAX_NAME_LENGTH = 512


@dataclass(frozen=True)
class ModuleRecord:
    name: str
    origin: str | None
    is_pkg: bool
    path: tuple[str, ...]  # a package's directories
    source: bytes | None  # None for a namespace package
    imports: frozenset[str]

    def as_message(self) -> dict[str, object]:
        return {
            "name": self.name,
            "origin": self.origin,
            "is_pkg": self.is_pkg,
            "path": list(self.path),
            "source": self.source,
        }


class ModuleServer:
    """The import service of one connection: remembers what it sent and which dirs it opened."""

    def __init__(self, allow: Collection[str] | None = None, deny: Collection[str] = ()) -> None:
        self.allow = None if allow is None else frozenset(allow)
        self.deny = frozenset(deny)
        self.sent: set[str] = set()
        self.package_dirs: set[str] = set()
        self.requests = 0  # import round trips answered: a package should cost about one

    def modules(self, name: object) -> list[dict[str, object]]:
        """Records for ``name`` and the modules it imports that were not sent yet; [] if none."""
        self.requests += 1
        try:
            record = self._record(name)
        except (OSError, ValueError):  # a file that vanished or cannot be read: not found
            record = None
        if record is None:
            return []
        bundle = [record]
        size = len(record.source or b"")
        queue = sorted(record.imports)
        seen = {record.name, *self.sent}
        while queue and len(bundle) < MAX_BUNDLE_MODULES and size < MAX_BUNDLE_BYTES:
            dep_name = queue.pop(0)
            if dep_name in seen:
                continue
            seen.add(dep_name)
            try:
                dep = self._record(dep_name)
            except (OSError, ValueError):
                continue
            if dep is not None:
                bundle.append(dep)
                size += len(dep.source or b"")
                queue.extend(sorted(dep.imports - seen))
        for sent in bundle:
            self.sent.add(sent.name)
            # Only a regular package (one with an __init__.py) opens its directory to resource
            # reads. Any directory on sys.path is a namespace package (a notebook's working
            # directory is on sys.path: ~/Documents would be one), so opening those would let
            # a remote read almost any file there by naming the directory as a module.
            if sent.is_pkg and sent.source is not None:
                self.package_dirs.update(os.path.realpath(p) for p in sent.path)
        return [r.as_message() for r in bundle]

    def data(self, path: object) -> bytes | None:
        """A resource file's bytes if it lies inside a served package's directory, else None."""
        if not isinstance(path, str) or "\0" in path or not os.path.isabs(path):
            return None
        try:
            real = os.path.realpath(path)
            if not any(_is_within(real, d) for d in self.package_dirs) or not os.path.isfile(real):
                return None
            if os.path.getsize(real) > MAX_RESOURCE_BYTES:
                return None
            with open(real, "rb") as f:
                return f.read(MAX_RESOURCE_BYTES)
        except (OSError, ValueError):
            # Unreadable, vanished, or a name the file system cannot hold (a lone surrogate):
            # "not found", rather than an exception on the broker thread that would leave the
            # agent waiting for a reply for ever.
            return None

    def _record(self, name: object) -> ModuleRecord | None:
        if not _is_module_name(name):
            return None
        assert isinstance(name, str)
        top = name.partition(".")[0]
        if top in self.deny or (self.allow is not None and top not in self.allow):
            return None
        return find_record(name)


def _is_module_name(name: object) -> bool:
    return (
        isinstance(name, str)
        and 0 < len(name) <= MAX_NAME_LENGTH
        and all(part.isidentifier() for part in name.split("."))
        and name.partition(".")[0] != "__main__"
    )


def _is_within(path: str, directory: str) -> bool:
    return path == directory or path.startswith(directory.rstrip(os.sep) + os.sep)


@lru_cache(maxsize=1)
def _stdlib_dirs() -> tuple[str, ...]:
    paths = sysconfig.get_paths()
    return tuple({os.path.realpath(paths[k]) for k in ("stdlib", "platstdlib")})


def _is_stdlib(origin: str) -> bool:
    real = os.path.realpath(origin)
    if "site-packages" in real or "dist-packages" in real:
        return False
    return any(_is_within(real, d) for d in _stdlib_dirs())


def find_spec_without_import(name: str) -> ModuleSpec | None:
    """What ``importlib.util.find_spec`` finds, without importing the parent packages here."""
    module = sys.modules.get(name)
    if module is not None:
        return getattr(module, "__spec__", None)
    parent, _, _ = name.rpartition(".")
    path = None
    if parent:
        parent_spec = find_spec_without_import(parent)
        if parent_spec is None or parent_spec.submodule_search_locations is None:
            return None
        path = list(parent_spec.submodule_search_locations)
    for finder in sys.meta_path:
        find_spec = getattr(finder, "find_spec", None)
        if find_spec is None:
            continue
        try:
            spec = find_spec(name, path)
        except (ImportError, ValueError, OSError):
            continue
        if spec is not None:
            return spec  # type: ignore[no-any-return]
    return None


def find_record(name: str) -> ModuleRecord | None:
    """The servable record of ``name``, or None if it is not a pure-Python module here."""
    spec = find_spec_without_import(name)
    if spec is None:
        return None
    locations = spec.submodule_search_locations
    if spec.origin in (None, "namespace") and locations is not None:
        return ModuleRecord(name, None, True, tuple(locations), None, frozenset())
    origin = spec.origin
    loader: object = spec.loader
    if isinstance(loader, _agent._RemoteModuleLoader):
        # This process is an agent: pass on what its own controller served (recursive tunnels).
        record = loader.record
        source = record["source"]
        imports = (
            frozenset(_imported_names(source, name, record["is_pkg"])) if source else frozenset()
        )
        return ModuleRecord(
            name, record["origin"], record["is_pkg"], tuple(record["path"]), source, imports
        )
    if not origin or not origin.endswith(".py") or not os.path.isfile(origin) or _is_stdlib(origin):
        return None
    if isinstance(loader, importlib.machinery.ExtensionFileLoader):
        return None
    stat = os.stat(origin)
    source, imports = _read_source(
        origin, stat.st_mtime_ns, stat.st_size, name, locations is not None
    )
    path = tuple(locations) if locations is not None else ()
    return ModuleRecord(name, origin, locations is not None, path, source, imports)


@lru_cache(maxsize=4096)
def _read_source(
    origin: str, mtime_ns: int, size: int, name: str, is_pkg: bool
) -> tuple[bytes, frozenset[str]]:
    with open(origin, "rb") as f:
        source = f.read()
    return source, frozenset(_imported_names(source, name, is_pkg))


def _imported_names(source: bytes, name: str, is_pkg: bool) -> Iterator[str]:
    """Every module name ``source`` may import, including parents and ``from`` targets."""
    try:
        tree = ast.parse(source)
    except (SyntaxError, ValueError):
        return
    package = name if is_pkg else name.rpartition(".")[0]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield from _with_parents(alias.name)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".") if package else []
                if node.level - 1 > len(parts):
                    continue
                anchor = ".".join(parts[: len(parts) - (node.level - 1)])
                base = f"{anchor}.{base}" if base else anchor
            if not base:
                continue
            yield from _with_parents(base)
            for alias in node.names:
                if alias.name != "*":
                    yield f"{base}.{alias.name}"


def _with_parents(dotted: str) -> Iterator[str]:
    parts = dotted.split(".")
    for i in range(1, len(parts) + 1):
        yield ".".join(parts[:i])
