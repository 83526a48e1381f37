"""Answers an agent's import and resource requests, running no import hook of the controller.

It serves modules, never paths: a request names a dotted module and the answer is the source of
the file Python's own path rules find for it, together with the not-yet-sent pure-Python modules
it imports, so a package arrives in about one round trip. Finding runs nothing: only the
standard library's file finder (``importlib.machinery.FileFinder``, which lists directories) on
the entries of ``sys.path``, and for a package's modules on its ``__path__``; and what
``sys.modules`` says about a module imported already, read from the module's own dictionary (so
not even a lazy module loads). No other meta path finder or path hook runs (a ``.pth`` file's
finder, an editable install's, zipimport), no module is imported here, not even the parent of
the module asked for, and ``sys.modules`` is not touched. A process that is itself an agent
passes on what its own controller serves.

What a remote may read (docs/reliability.md, "Modules and resources"): the standard library is
never served (the remote's own is the one that matches its Python), nor a compiled module, nor
a module under a name other than its own (an alias in ``sys.modules``), nor a top-level module
or package whose name looks like a secret (:data:`SECRET_NAMES`) unless ``serve=`` names it,
nor a file that is not a regular file or is larger than :data:`MAX_MODULE_BYTES`. Resource
reads (``pkgutil.get_data``) are answered only for regular files inside the directory of a
regular package already served on this connection, both as asked and with links resolved,
with no part of the path below that directory hidden (a dot first) or named like a secret, and
holding no private key.

What it finds is kept once per process (:data:`RECORDS`), for every connection: a group whose
hosts import one package reads and scans each file once, and an edited file is read again.
What it does not find is kept per connection, until ``sys.path`` or a directory it looked in
changes: a remote asking again for a name that does not exist costs a few ``stat`` calls.
"""

from __future__ import annotations

import ast
import fnmatch
import logging
import marshal
import os
import re
import stat
import sys
from collections.abc import Collection, Iterator, Sequence
from dataclasses import dataclass
from importlib.machinery import (
    BYTECODE_SUFFIXES,
    EXTENSION_SUFFIXES,
    SOURCE_SUFFIXES,
    ExtensionFileLoader,
    FileFinder,
    ModuleSpec,
    SourceFileLoader,
    SourcelessFileLoader,
)
from importlib.util import MAGIC_NUMBER
from types import ModuleType
from typing import Any, Optional

from . import _agent

MAX_BUNDLE_MODULES = 256
MAX_BUNDLE_BYTES = 8 * 1024 * 1024
MAX_MODULE_BYTES = 8 * 1024 * 1024
MAX_RESOURCE_BYTES = 64 * 1024 * 1024
MAX_NAME_LENGTH = 512
#: Names one connection remembers not finding (a flood of new names starts the memory afresh).
MAX_MISSES = 4096

#: Names of files that hold secrets by custom (fnmatch patterns, matched in lower case). No part
#: of a resource's path below its package matches one, nor does a served top-level module's or
#: package's name unless ``serve=`` names it.
SECRET_NAMES = (
    "*secret*",
    "*credential*",
    "*password*",
    "*passwd*",
    "*.env",
    "*.key",
    "*.p12",
    "*.pfx",
    "*.jks",
    "*.keystore",
    "*.kdbx",
    "*.ppk",
    "id_rsa*",
    "id_dsa*",
    "id_ecdsa*",
    "id_ed25519*",
)

#: What a PEM private key holds ("-----BEGIN RSA PRIVATE KEY-----"): no resource holding it is
#: served (a certificate bundle, such as certifi's cacert.pem, is).
PRIVATE_KEY = b"PRIVATE KEY-----"

log = logging.getLogger("chopsticks_nb")


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

    def as_message(self, compiled: bool = False) -> dict[str, object]:
        message: dict[str, object] = {
            "name": self.name,
            "origin": self.origin,
            "is_pkg": self.is_pkg,
            "path": list(self.path),
            "source": self.source,
        }
        if compiled and self.source is not None:
            code = RECORDS.code(self)
            if code is not None:
                message["code"] = code
                message["magic"] = MAGIC_NUMBER
        return message


@dataclass(frozen=True)
class Miss:
    """A name not found: true while ``sys.path`` and the directories looked in stay the same."""

    path: tuple[str, ...]
    places: tuple[tuple[str, int], ...]  # (directory, st_mtime_ns)

    @classmethod
    def now(cls, path: tuple[str, ...], places: Sequence[str]) -> Miss:
        return cls(path, tuple((place, _mtime_ns(place)) for place in places))

    def still_true(self, path: tuple[str, ...]) -> bool:
        return path == self.path and all(_mtime_ns(p) == mtime for p, mtime in self.places)


class ModuleServer:
    """The import service of one connection: what it sent, which package directories that
    opened to resource reads, and which names it did not find.

    ``compiled``: the far side runs this very interpreter (see _bootstrap.compiled_agent_for),
    so modules go with their code compiled here, and it need not compile them (the ``compiled``
    speed-up).
    """

    def __init__(
        self,
        allow: Collection[str] | None = None,
        deny: Collection[str] = (),
        *,
        compiled: bool = False,
    ) -> None:
        self.allow = None if allow is None else frozenset(allow)
        self.deny = frozenset(deny)
        self.compiled = compiled
        self.sent: set[str] = set()
        self.pushed: set[str] = set()  # the names push() looked at
        #: The directories of the regular packages served: as found -> with links resolved.
        self.package_dirs: dict[str, str] = {}
        self.misses: dict[str, Miss] = {}
        self.requests = 0  # import round trips answered: a package should cost about one
        self._warned = False

    def modules(self, name: object) -> list[dict[str, object]]:
        """Records for ``name`` and the modules it imports that were not sent yet; [] if none."""
        self.requests += 1
        search = Search()  # one lookup of a package for all its modules
        record = self._record(name, search)
        if record is None:
            return []
        return self._bundle(record, search)

    def push(self, name: str) -> list[dict[str, object]]:
        """What to send before a call of a callable from module ``name``, so that the agent
        need not ask (a round trip): ``name`` and its parent packages with what importing them
        imports, those not sent yet; [] unless ``name`` is the user's own code. An installed
        module (site-packages) is left to the remote's own copy, and asked for only if it
        has none: the remote is likely to have installed it too."""
        if name in self.pushed:
            return []
        self.pushed.add(name)
        search = Search()
        records: list[dict[str, object]] = []
        for prefix in _with_parents(name):
            if prefix in self.sent:
                continue
            record = self._record(prefix, search)
            if record is None or (record.origin is not None and _is_installed(record.origin)):
                return records
            records += self._bundle(record, search)
        return records

    def _bundle(self, record: ModuleRecord, search: Search) -> list[dict[str, object]]:
        """``record`` and the modules it imports that were not sent yet, as sent."""
        bundle = [record]
        size = len(record.source or b"")
        queue = sorted(record.imports)
        seen = {record.name, *self.sent}
        while queue and len(bundle) < MAX_BUNDLE_MODULES and size < MAX_BUNDLE_BYTES:
            dep_name = queue.pop(0)
            if dep_name in seen:
                continue
            seen.add(dep_name)
            dep = self._record(dep_name, search)
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
                dirs = zip(map(os.path.normpath, sent.path), sent.real_path)
                self.package_dirs.update(dirs)
        return [r.as_message(self.compiled) for r in bundle]

    def data(self, path: object) -> bytes | None:
        """A resource file's bytes if the rules above let a remote read it, else None."""
        if not isinstance(path, str) or "\0" in path or not os.path.isabs(path):
            return None
        try:
            asked = os.path.normpath(path)
            real = os.path.realpath(path)
            for directory, real_directory in self.package_dirs.items():
                if _may_read(asked, directory) and _may_read(real, real_directory):
                    data = _read_regular_file(real, MAX_RESOURCE_BYTES)
                    return None if data is None or PRIVATE_KEY in data else data
        except (OSError, ValueError):
            # Unreadable, vanished, or a name the file system cannot hold (a lone surrogate):
            # "not found", rather than an exception on the broker thread that would leave the
            # agent waiting for a reply for ever.
            pass
        return None

    def _record(self, name: object, search: Search) -> ModuleRecord | None:
        if not _is_module_name(name):
            return None
        assert isinstance(name, str)
        top = name.partition(".")[0]
        if top in self.deny or (self.allow is not None and top not in self.allow):
            return None
        if self.allow is None and _looks_secret(top):  # named in serve=, it is served
            self._warn_secret(name)
            return None
        miss = self.misses.get(name)
        if miss is not None:
            if miss.still_true(search.path):
                return None
            del self.misses[name]
        try:
            record = RECORDS.get(name, search)
        except (OSError, ValueError):  # a file that vanished or cannot be read: not found
            record = None
        places = search.places.get(name)
        if record is None and places is not None:
            _bounded(self.misses, MAX_MISSES)[name] = Miss.now(search.path, places)
        return record

    def _warn_secret(self, name: str) -> None:
        if not self._warned:  # once a connection: a remote probing names cannot flood the log
            self._warned = True
            log.warning(
                "chopsticks_nb: a remote asked for module %r, whose name looks like it holds "
                "secrets: not served (name it in serve= to serve it)",
                name,
            )


def _is_module_name(name: object) -> bool:
    return (
        isinstance(name, str)
        and 0 < len(name) <= MAX_NAME_LENGTH
        and all(part.isidentifier() for part in name.split("."))
        and name.partition(".")[0] != "__main__"
    )


_SECRET = re.compile("|".join(fnmatch.translate(pattern) for pattern in SECRET_NAMES))


def _looks_secret(name: str) -> bool:
    return _SECRET.match(name.lower()) is not None


def _is_within(path: str, directory: str) -> bool:
    return path == directory or path.startswith(directory.rstrip(os.sep) + os.sep)


def _may_read(path: str, directory: str) -> bool:
    """Whether ``path`` lies below ``directory`` through parts neither hidden nor secret."""
    if not _is_within(path, directory) or path == directory:
        return False
    parts = os.path.relpath(path, directory).split(os.sep)
    return not any(part.startswith(".") or _looks_secret(part) for part in parts)


def _read_regular_file(path: str, limit: int, info: os.stat_result | None = None) -> bytes | None:
    """The bytes of ``path`` if it is a regular file of at most ``limit`` bytes, else None.
    Nothing else is even opened (opening a device can act: ``info`` is what ``os.stat`` said of
    it, if the caller asked), and the open file is checked again: a FIFO put there meanwhile
    must not block the reading thread."""
    info = info or os.stat(path)
    if not stat.S_ISREG(info.st_mode) or info.st_size > limit:
        return None
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY)
    with os.fdopen(fd, "rb") as f:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode) or info.st_size > limit:
            return None
        data = f.read(info.st_size + 1)  # not read(limit + 1): that allocates the limit
        if len(data) > info.st_size:  # it grew meanwhile
            data += f.read(limit + 1 - len(data))
    return data if len(data) <= limit else None


def _mtime_ns(path: str) -> int:
    try:
        return os.stat(path).st_mtime_ns
    except (OSError, ValueError):
        return -1


# Where os.py is: the standard library's directory (sysconfig would import a module here). Its
# compiled part (lib-dynload) holds nothing that is ever served.
_STDLIB = os.path.realpath(os.path.dirname(os.__file__))


def _is_installed(origin: str) -> bool:
    """Whether the module file ``origin`` was installed (a site-packages directory), rather
    than lying among the user's own files."""
    parts = os.path.realpath(origin).split(os.sep)
    return "site-packages" in parts or "dist-packages" in parts


def _is_stdlib(origin: str) -> bool:
    real = os.path.realpath(origin)
    if "site-packages" in real or "dist-packages" in real:
        return False
    return _is_within(real, _STDLIB)


class Search:
    """What one request finds on its way: records by name (a package's record serves all its
    modules), and for each name looked for in directories, those directories."""

    def __init__(self) -> None:
        #: sys.path's entries when the request came (only strings count, as for Python).
        self.path = tuple(p for p in sys.path if type(p) is str)
        self.records: dict[str, ModuleRecord | None] = {}
        self.places: dict[str, tuple[str, ...]] = {}
        self._top_places: tuple[str, ...] | None = None

    def top_places(self) -> tuple[str, ...]:
        """The directories a top-level module is looked for in ("" is the working directory)."""
        if self._top_places is None:
            self._top_places = tuple(os.path.abspath(p) for p in self.path)
        return self._top_places


class RecordCache:
    """Module records by name, and files' contents and imports by (path, mtime, size): what the
    module server finds, kept once per process for every connection.

    A record is reused while ``sys.path`` is the same and its file stats the same: an edited
    module is read again. A name served from a file keeps that file while ``sys.path`` is the
    same, as an imported module keeps it in ``sys.modules``; so does a name found in the
    standard library or compiled (never served). A name not found, or a namespace package, is
    looked for again (each connection remembers its own misses: ModuleServer). Threads share it
    without a lock (the broker, and callers reading their own answers): each step is one dict
    operation, and a race costs a second lookup.
    """

    def __init__(self, limit: int = 4096) -> None:
        self.limit = limit
        self._records: dict[str, tuple[tuple[str, ...], ModuleRecord | None]] = {}
        self._files: dict[tuple[str, int, int, str, bool], tuple[bytes, frozenset[str]]] = {}
        self._code: dict[tuple[str, int, int, str], bytes] = {}
        self.lookups = 0  # names looked up in directories or sys.modules (not from the cache)
        self.scans = 0  # files read and parsed

    def get(self, name: str, search: Search) -> ModuleRecord | None:
        """The servable record of ``name`` (see :func:`_lookup`), remembered in ``search``."""
        if name in search.records:
            return search.records[name]
        parent = name.rpartition(".")[0]
        if parent and parent not in search.records:
            # Parents first, from the top: each looks its own parent up in search.records, so
            # no recursion goes deeper than one level, whatever the name's depth.
            for prefix in _with_parents(parent):
                self.get(prefix, search)
        entry = self._records.get(name)
        if entry is not None and entry[0] == search.path and _still_valid(entry[1]):
            record = entry[1]
        else:
            record, lasting = _lookup(name, search)
            self.lookups += 1
            if lasting:
                _bounded(self._records, self.limit)[name] = (search.path, record)
            else:
                self._records.pop(name, None)
        search.records[name] = record
        return record

    def scan(
        self, origin: str, info: os.stat_result, name: str, is_pkg: bool
    ) -> tuple[bytes, frozenset[str]] | None:
        """The source of the module file ``origin`` and the modules importing it may import;
        None if it is not a regular file of at most MAX_MODULE_BYTES."""
        key = (origin, info.st_mtime_ns, info.st_size, name, is_pkg)
        found = self._files.get(key)
        if found is None:
            source = _read_regular_file(origin, MAX_MODULE_BYTES, info)
            if source is None:
                return None
            found = source, frozenset(_imported_names(source, name, is_pkg))
            self.scans += 1
            _bounded(self._files, self.limit)[key] = found
        return found

    def code(self, record: ModuleRecord) -> bytes | None:
        """The code of a file's record compiled here, marshalled (as its loader there would
        compile it); None if it is not from a file here, or does not compile."""
        if record.stamp is None or record.source is None:
            return None
        key = (*record.stamp, record.origin or "")
        found = self._code.get(key)
        if found is None:
            try:
                code = compile(
                    record.source, record.origin or record.name, "exec", dont_inherit=True
                )
            except (SyntaxError, ValueError, Warning):  # a warning made an error here
                return None  # the remote compiles it and reports the error where it imports
            found = _bounded(self._code, self.limit)[key] = marshal.dumps(code)
        return found

    def clear(self) -> None:
        self._records.clear()
        self._files.clear()
        self._code.clear()


def _bounded(entries: dict[Any, Any], limit: int) -> dict[Any, Any]:
    if len(entries) >= limit:
        entries.clear()  # rare: thousands of modules; starting afresh keeps this simple
    return entries


def _still_valid(record: ModuleRecord | None) -> bool:
    if record is None or record.stamp is None:
        return True
    origin, mtime_ns, size = record.stamp
    try:
        info = os.stat(origin)
    except (OSError, ValueError):
        return False
    return info.st_mtime_ns == mtime_ns and info.st_size == size


#: The records of this process, shared by every ModuleServer.
RECORDS = RecordCache()

#: A record (None: not served), and whether that answer lasts (see RecordCache).
Found = tuple[Optional[ModuleRecord], bool]


_ABSENT = object()


def _lookup(name: str, search: Search) -> Found:
    """The servable record of ``name`` (None if it is not a pure-Python module here), and
    whether that answer lasts (see RecordCache) rather than may change."""
    if name in sys.builtin_module_names:
        return None, True
    module = sys.modules.get(name, _ABSENT)
    if module is not _ABSENT:
        found = _imported(name, module)
        if found is not None:
            return found
    parent = name.rpartition(".")[0]
    if parent:
        package = RECORDS.get(parent, search)
        if package is None or not package.is_pkg:
            if parent in search.places:  # not found because its parent was not
                search.places[name] = search.places[parent]
            return None, False
        places = package.path
    else:
        places = search.top_places()
    search.places[name] = places
    spec = _find_in(name, places)
    if spec is None:
        return _forwarded(name)
    locations = spec.submodule_search_locations
    if spec.loader is None:  # a namespace package: the directories of that name
        assert locations is not None
        return ModuleRecord(name, None, True, tuple(locations), None, frozenset()), False
    assert spec.origin is not None
    return _from_file(name, spec.origin, None if locations is None else tuple(locations))


# What Python's own path entry finder recognises, in its order: a compiled module shadows a
# source file of the same name (it is what an import here would load: never served).
_LOADERS = (
    (ExtensionFileLoader, EXTENSION_SUFFIXES),
    (SourceFileLoader, SOURCE_SUFFIXES),
    (SourcelessFileLoader, BYTECODE_SUFFIXES),
)
#: The file finders of the directories looked in, kept: each lists its directory again only
#: when the directory's mtime changes. Never sys.path_importer_cache: what a path hook put
#: there (zipimport, an editable install's finder) is not run.
_FINDERS: dict[str, FileFinder] = {}


def _find_in(name: str, places: Sequence[str]) -> ModuleSpec | None:
    """Where the standard path rules find ``name`` in the directories ``places``: the first
    module or regular package, else a namespace package of every directory of that name."""
    portions: list[str] = []
    for place in places:
        finder = _FINDERS.get(place)
        if finder is None:
            finder = _bounded(_FINDERS, 4096)[place] = FileFinder(place, *_LOADERS)
        try:
            spec = finder.find_spec(name)
        except (OSError, ValueError):  # unreadable, or a name the file system cannot hold
            continue
        if spec is None:
            continue
        if spec.loader is not None:
            return spec
        portions.extend(spec.submodule_search_locations or ())
    if not portions:
        return None
    namespace = ModuleSpec(name, None, is_package=True)
    namespace.submodule_search_locations = portions
    return namespace


#: The slot of a module object that holds its dictionary: read through it, no code of the
#: module's class runs (a lazy module's __getattribute__ would import it).
_MODULE_DICT: Any = vars(ModuleType)["__dict__"]


def _imported(name: str, module: object) -> Found | None:
    """The record of a module imported here already, from what its spec says about where it
    came from; None for a namespace package (looked for on the path instead)."""
    if not issubclass(type(module), ModuleType):
        return None, False  # an import blocked here (None), or an object standing in
    namespace = _MODULE_DICT.__get__(module, ModuleType)
    spec = namespace.get("__spec__")
    # An alias (sys.modules["x"] = chopsticks_nb) is another module's source: served as x,
    # the remote would run a second copy of it (a second agent module, with its own DEPTH).
    if (
        type(spec) is not ModuleSpec
        or not _is_str(spec.name, name)
        or not _is_str(namespace.get("__name__"), name)
    ):
        return None, False
    loader: object = spec.loader
    if type(loader) is _agent._RemoteModuleLoader:
        return _from_upstream(name, loader.record)
    origin, locations = spec.origin, spec.submodule_search_locations
    if type(origin) is not str:  # a namespace package, or a module made in memory
        return None if locations is not None else (None, False)
    if locations is None:
        return _from_file(name, origin, None)
    path = namespace.get("__path__")
    if not _is_str_list(path):
        path = locations if _is_str_list(locations) else [os.path.dirname(origin)]
    return _from_file(name, origin, tuple(path))


def _is_str(value: object, expected: str) -> bool:
    return type(value) is str and value == expected


def _is_str_list(value: object) -> bool:
    # The exact types first: isinstance() would ask an unknown object for its __class__.
    return (
        type(value) in (list, tuple)
        and isinstance(value, (list, tuple))
        and all(type(v) is str for v in value)
    )


def _from_file(name: str, origin: str, path: tuple[str, ...] | None) -> Found:
    """The record of the module file ``origin`` (a package's if ``path``, its directories)."""
    if not origin.endswith(".py") or _is_stdlib(origin):
        return None, True  # compiled, frozen or built in; or the standard library
    try:
        info = os.stat(origin)
    except (OSError, ValueError):
        return None, False
    scanned = RECORDS.scan(origin, info, name, path is not None)
    if scanned is None:
        return None, False
    source, imports = scanned
    stamp = (origin, info.st_mtime_ns, info.st_size)
    dirs = path or ()
    return ModuleRecord(
        name, origin, path is not None, dirs, source, imports, stamp, _real_dirs(dirs)
    ), True


def _forwarded(name: str) -> Found:
    """What this process's own controller serves, if this process is an agent (a nested
    tunnel): the agent's import hook is the one finder asked, and it imports nothing."""
    finder = next((f for f in sys.meta_path if type(f) is _agent._RemoteModuleFinder), None)
    if finder is None:
        return None, False
    record = finder.lookup(name)
    if record is None:
        return None, False
    return _from_upstream(name, record)


def _from_upstream(name: str, record: dict[str, Any]) -> Found:
    """A record this agent's own controller served, passed on."""
    source = record["source"]
    imports = frozenset(_imported_names(source, name, record["is_pkg"])) if source else frozenset()
    path = tuple(record["path"])
    real_path = _real_dirs(path) if record["is_pkg"] and source else ()
    forwarded = ModuleRecord(
        name, record["origin"], record["is_pkg"], path, source, imports, None, real_path
    )
    return forwarded, source is not None


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
