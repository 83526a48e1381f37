"""Answers an agent's import requests from the controller's own import system.

It serves modules, never paths: a request names a dotted module and the answer is the source
that the controller's finders find for it (without importing anything here), together with the
not-yet-sent pure-Python modules it imports, so a package arrives in about one round trip.
Resource reads (``pkgutil.get_data``) are answered only for files inside the directory of a
package already served on this connection, after resolving links. The standard library is never
served: a remote's own standard library is the one that matches its Python. Nor is a module
under a name other than its own (an alias in ``sys.modules``).

What it finds is kept once per process (:data:`RECORDS`), for every connection: a group whose
hosts import one package reads and scans each file once, and an edited file is read again.
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
from typing import Any

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
    imports: frozenset[str]  # what its import runs: not imports inside functions
    #: What a file's record was read from, (origin, st_mtime_ns, st_size): valid while the file
    #: stats the same. None for a record not read from a file here (it never goes stale).
    stamp: tuple[str, int, int] | None = None
    #: A regular package's directories with links resolved: what it opens to resource reads.
    real_path: tuple[str, ...] = ()

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
        specs: dict[str, ModuleSpec | None] = {}  # one lookup of a package for all its modules
        try:
            record = self._record(name, specs)
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
                dep = self._record(dep_name, specs)
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
                self.package_dirs.update(sent.real_path)
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

    def _record(self, name: object, specs: dict[str, ModuleSpec | None]) -> ModuleRecord | None:
        if not _is_module_name(name):
            return None
        assert isinstance(name, str)
        top = name.partition(".")[0]
        if top in self.deny or (self.allow is not None and top not in self.allow):
            return None
        return RECORDS.get(name, specs)


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


class RecordCache:
    """Module records by name, and files' contents and imports by (path, mtime, size): what the
    module server finds, kept once per process for every connection.

    A record is reused while the import system looks the same (``sys.path``, meta path finders,
    path hooks) and its file stats the same: an edited module is read again. A name served from
    a file keeps that file while the import system looks the same, as an imported module keeps
    it in ``sys.modules``; so does a name found in the standard library or compiled (never
    served). A name not found at all is looked for again on every request: the module may be
    written in the meantime. Threads share it without a lock (the broker, and callers reading
    their own answers): each step is one dict operation, and a race costs a second lookup.
    """

    def __init__(self, limit: int = 4096) -> None:
        self.limit = limit
        self._records: dict[str, tuple[tuple[object, ...], ModuleRecord | None]] = {}
        self._files: dict[tuple[str, int, int, str, bool], tuple[bytes, frozenset[str]]] = {}
        self.lookups = 0  # names looked up in the import system (not answered from the cache)
        self.scans = 0  # files read and parsed

    def get(self, name: str, specs: dict[str, ModuleSpec | None]) -> ModuleRecord | None:
        """The servable record of ``name`` (see :func:`_lookup`); ``specs`` as there."""
        state = _import_state()
        entry = self._records.get(name)
        if entry is not None and entry[0] == state and _still_valid(entry[1]):
            return entry[1]
        record, lasting = _lookup(name, specs)
        self.lookups += 1
        if lasting:
            _bounded(self._records, self.limit)[name] = (state, record)
        else:
            self._records.pop(name, None)
        return record

    def scan(
        self, origin: str, stat: os.stat_result, name: str, is_pkg: bool
    ) -> tuple[bytes, frozenset[str]]:
        """The source of the module file ``origin`` and the modules importing it may import."""
        key = (origin, stat.st_mtime_ns, stat.st_size, name, is_pkg)
        found = self._files.get(key)
        if found is None:
            with open(origin, "rb") as f:
                source = f.read()
            found = source, frozenset(_imported_names(source, name, is_pkg))
            self.scans += 1
            _bounded(self._files, self.limit)[key] = found
        return found

    def clear(self) -> None:
        self._records.clear()
        self._files.clear()


def _bounded(entries: dict[Any, Any], limit: int) -> dict[Any, Any]:
    if len(entries) >= limit:
        entries.clear()  # rare: thousands of modules; starting afresh keeps this simple
    return entries


def _import_state() -> tuple[object, ...]:
    return (
        tuple(sys.path),
        tuple(map(id, sys.meta_path)),
        tuple(map(id, sys.path_hooks)),
    )


def _still_valid(record: ModuleRecord | None) -> bool:
    if record is None or record.stamp is None:
        return True
    origin, mtime_ns, size = record.stamp
    try:
        stat = os.stat(origin)
    except (OSError, ValueError):
        return False
    return stat.st_mtime_ns == mtime_ns and stat.st_size == size


#: The records of this process, shared by every ModuleServer.
RECORDS = RecordCache()


def find_spec_without_import(
    name: str, specs: dict[str, ModuleSpec | None] | None = None
) -> ModuleSpec | None:
    """What ``importlib.util.find_spec`` finds, without importing the parent packages here.

    ``specs`` remembers what was found on the way (a package's spec serves all its modules).
    """
    if specs is not None and name in specs:
        return specs[name]
    spec = _find_spec(name, specs)
    if specs is not None:
        specs[name] = spec
    return spec


def _find_spec(name: str, specs: dict[str, ModuleSpec | None] | None) -> ModuleSpec | None:
    module = sys.modules.get(name)
    if module is not None:
        spec = getattr(module, "__spec__", None)
        # An alias (sys.modules["x"] = chopsticks_nb) is another module's source: served as x,
        # the remote would run a second copy of it (a second agent module, with its own DEPTH).
        if getattr(spec, "name", None) != name or getattr(module, "__name__", None) != name:
            return None
        return spec
    parent, _, _ = name.rpartition(".")
    path = None
    if parent:
        parent_spec = find_spec_without_import(parent, specs)
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


def _lookup(
    name: str, specs: dict[str, ModuleSpec | None] | None
) -> tuple[ModuleRecord | None, bool]:
    """The servable record of ``name`` (None if it is not a pure-Python module here), and
    whether that answer lasts (see RecordCache) rather than may change.

    ``specs`` (see :func:`find_spec_without_import`) is for looking up many modules at once.
    """
    spec = find_spec_without_import(name, specs)
    if spec is None:
        return None, False
    locations = spec.submodule_search_locations
    if spec.origin in (None, "namespace") and locations is not None:
        return ModuleRecord(name, None, True, tuple(locations), None, frozenset()), False
    origin = spec.origin
    loader: object = spec.loader
    if isinstance(loader, _agent._RemoteModuleLoader):
        # This process is an agent: pass on what its own controller served (recursive tunnels).
        record = loader.record
        source = record["source"]
        imports = (
            frozenset(_imported_names(source, name, record["is_pkg"])) if source else frozenset()
        )
        path = tuple(record["path"])
        real_path = _real_dirs(path) if record["is_pkg"] and source else ()
        forwarded = ModuleRecord(
            name, record["origin"], record["is_pkg"], path, source, imports, None, real_path
        )
        return forwarded, source is not None
    if not origin or not origin.endswith(".py"):
        return None, True  # built in, frozen or compiled: never served
    if not os.path.isfile(origin):
        return None, False
    if _is_stdlib(origin) or isinstance(loader, importlib.machinery.ExtensionFileLoader):
        return None, True
    stat = os.stat(origin)
    is_pkg = locations is not None
    source, imports = RECORDS.scan(origin, stat, name, is_pkg)
    path = tuple(locations) if locations is not None else ()
    stamp = (origin, stat.st_mtime_ns, stat.st_size)
    return ModuleRecord(name, origin, is_pkg, path, source, imports, stamp, _real_dirs(path)), True


def _real_dirs(paths: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(os.path.realpath(p) for p in paths)


def _imported_names(source: bytes, name: str, is_pkg: bool) -> Iterator[str]:
    """Every module name importing ``source`` may import, including parents and ``from``
    targets. Imports inside functions are left out: they are fetched if the function runs."""
    try:
        tree = ast.parse(source)
    except (SyntaxError, ValueError):
        return
    package = name if is_pkg else name.rpartition(".")[0]
    for node in _run_at_import(tree):
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


# Statements and the clauses that hold statements (except handlers, match cases).
_BLOCKS = (ast.stmt, ast.excepthandler, getattr(ast, "match_case", ast.excepthandler))


def _run_at_import(tree: ast.Module) -> Iterator[ast.stmt]:
    """The import statements that importing the module runs, or may run: those at module
    level, in its blocks (if, try, with, loops) and class bodies; not those in function bodies,
    nor under ``if TYPE_CHECKING:``."""
    pending: list[ast.AST] = [tree]
    while pending:
        node = pending.pop()
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            yield node
            continue
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            continue
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            pending.extend(node.orelse)
            continue
        pending.extend(c for c in ast.iter_child_nodes(node) if isinstance(c, _BLOCKS))


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _with_parents(dotted: str) -> Iterator[str]:
    parts = dotted.split(".")
    for i in range(1, len(parts) + 1):
        yield ".".join(parts[:i])
