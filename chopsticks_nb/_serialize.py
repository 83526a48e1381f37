"""The source pickler: calls pickled for the agent, notebook functions and classes as source.

Pickle only ever flows this way, controller -> agent.

Importable callables travel by reference (the remote imports them, through the import hook if
it has not got them). Functions and classes the remote cannot import, those defined in
``__main__``, in a notebook cell or inside another function, travel as *source* with the
globals they refer to, so they work whatever the remote's Python version: pickled bytecode is
only valid for the exact Python that made it. Bytecode by value (cloudpickle) is the fallback
when there is no source, and only if the remote's Python and cloudpickle match ours exactly.

The pickler is the stdlib's, not cloudpickle's: cloudpickle's own reducers refer to cloudpickle,
which a remote without it would have to import from here, and which old remotes cannot run.
"""

from __future__ import annotations

import ast
import builtins
import importlib
import linecache
import pickle
import sys
import textwrap
import types
from collections.abc import Mapping, Sequence
from typing import Any, Callable

from . import _agent
from ._agent import PICKLE_PROTOCOL
from ._bounded import short_repr
from .errors import SerializationError

RemoteInfo = Callable[[], dict[str, Any]]


class Chunks(list[bytes]):
    """A pickle as the pieces the pickler wrote: with protocol 4 a large ``bytes`` value
    arrives as a piece of its own, the caller's object itself, so a 1 MB value is sent with
    ``writev`` and never copied here. ``modules``: the modules it names (the remote imports
    them to load it)."""

    write = list.append
    modules: frozenset[str] = frozenset()


def dumps(obj: object, host: str, remote_info: RemoteInfo | None = None) -> Chunks:
    """Pickle ``obj``, shipping notebook and ``__main__`` functions and classes as source."""
    chunks = Chunks()
    pickler = _SourcePickler(chunks, host, remote_info)
    try:
        pickler.dump(obj)
    except SerializationError:
        raise
    except (pickle.PicklingError, TypeError, AttributeError, ValueError) as exc:
        culprit = _culprit(obj, host, remote_info) or str(exc)
        raise SerializationError(f"cannot send {_describe(obj)}: {culprit}", host) from None
    chunks.modules = frozenset(pickler.modules)
    return chunks


def _culprit(obj: object, host: str, remote_info: RemoteInfo | None) -> str | None:
    """For a call ``(func, args, kwargs)`` that failed to pickle: which part fails on its own,
    and why (each is pickled alone only now, on that failure); None if none does."""
    if not (isinstance(obj, tuple) and len(obj) == 3 and callable(obj[0])):
        return None
    func, args, kwargs = obj
    parts = [("the function itself", func)]
    parts += [(f"its argument args[{number}]", arg) for number, arg in enumerate(args)]
    parts += [(f"its argument kwargs[{name!r}]", value) for name, value in kwargs.items()]
    for what, part in parts:
        try:
            dumps(part, host, remote_info)
        except SerializationError as exc:
            why = exc.message.split(": ", 1)[-1]
            return f"{what}, a {_type_name(part)}, cannot be pickled: {why}"
    return None


def _type_name(value: object) -> str:
    """``value``'s type as a user names it: ``lock``, ``_thread.lock``, ``mymod.Thing``."""
    kind = type(value).__qualname__
    module = type(value).__module__
    return kind if module == "builtins" else f"{module}.{kind}"


def unsendable_name(
    names: Mapping[str, Any], host: str, remote_info: RemoteInfo | None = None
) -> SerializationError | None:
    """The error naming the first of ``names`` that cannot be pickled on its own, or None.

    For code run with names bound (``Group.exec``, ``%%remote``) that failed to pickle: the
    error of the whole call says what failed, not under which name the caller knows it. Each
    name is pickled alone only now, on that failure.
    """
    for name, value in names.items():
        try:
            dumps(value, host, remote_info)
        except SerializationError as exc:
            why = exc.message.split(": ", 1)[-1]
            kind = _type_name(value)
            return SerializationError(
                f"cannot send {name!r} ({kind}) from the notebook: {why}", host
            )
    return None


def _describe(obj: object) -> str:
    if isinstance(obj, tuple) and len(obj) == 3 and callable(obj[0]):
        obj = obj[0]
    return f"{getattr(obj, '__qualname__', type(obj).__name__)}"


def importable_name(func: object) -> tuple[str, str] | None:
    """``(module, qualname)`` by which the remote finds this very callable, if it can."""
    module = getattr(func, "__module__", None)
    qualname = getattr(func, "__qualname__", None)  # a functools.partial has none
    if not isinstance(module, str) or not isinstance(qualname, str) or not qualname:
        return None
    if module == "__main__" or "<" in qualname or module not in sys.modules:
        return None
    found: Any = sys.modules[module]
    for part in qualname.split("."):
        found = getattr(found, part, None)
    return (module, qualname) if found is func else None


def _needs_value(obj: Any) -> bool:
    """True unless the remote can import ``obj`` by name and would find this very object."""
    return importable_name(obj) is None


class _SourcePickler(pickle.Pickler):
    def __init__(self, file: Chunks, host: str, remote_info: RemoteInfo | None) -> None:
        super().__init__(file, protocol=PICKLE_PROTOCOL)
        self.host = host
        self.remote_info = remote_info
        self.modules: set[str] = set()  # named by reference: the remote imports them

    def reducer_override(self, obj: Any) -> Any:
        if isinstance(obj, types.ModuleType):
            self.modules.add(obj.__name__)
            return _reduce_module(obj, self.host)
        if isinstance(obj, types.MethodType):
            return getattr, (obj.__self__, obj.__func__.__name__)
        if isinstance(obj, types.FunctionType):
            if _needs_value(obj):
                return _reduce_function(obj) or self._by_bytecode(obj)
            self.modules.add(obj.__module__)
            return NotImplemented
        if isinstance(obj, type) and obj.__module__ != "builtins":
            if _needs_value(obj):
                return _reduce_class(obj) or self._by_bytecode(obj)
            self.modules.add(obj.__module__)
            return NotImplemented
        wrapped = getattr(obj, "__wrapped__", None)
        if isinstance(wrapped, types.FunctionType) and callable(obj) and _needs_value(obj):
            return _reduce_decorated(wrapped) or self._by_bytecode(obj)
        return NotImplemented

    def _by_bytecode(self, obj: Any) -> Any:
        why = _bytecode_refusal(self.remote_info)
        if why:
            name = getattr(obj, "__qualname__", repr(obj))
            raise SerializationError(
                f"cannot send {name!r}: no source is available and {why}", self.host
            )
        import cloudpickle

        return pickle.loads, (cloudpickle.dumps(obj, protocol=PICKLE_PROTOCOL),)


def _bytecode_refusal(remote_info: RemoteInfo | None) -> str | None:
    """Why bytecode cannot go by value to this remote, or None if it can."""
    import cloudpickle

    if remote_info is None:
        return "the remote interpreter is unknown"
    info = remote_info()
    remote = ".".join(short_repr(part, 40) for part in info.get("version", ())[:2])
    here = "{}.{}".format(*sys.version_info[:2])
    if remote != here:
        return f"bytecode only runs on the Python that made it (remote {remote}, here {here})"
    theirs, ours = info.get("cloudpickle"), cloudpickle.__version__
    if theirs != ours:
        return f"the remote cloudpickle ({short_repr(theirs, 40)}) is not ours ({ours!r})"
    return None


def _reduce_module(module: types.ModuleType, host: str) -> Any:
    if module.__name__ == "__main__" or module.__name__ not in sys.modules:
        raise SerializationError(
            f"cannot send the module {module.__name__!r}: it cannot be imported", host
        )
    return importlib.import_module, (module.__name__,)


# -- finding a definition's source ----------------------------------------------------------------


def _definition(
    filename: str, firstlineno: int, match: Callable[[ast.AST], bool], decorators: bool = False
) -> tuple[str, int] | None:
    """The source text and first line of the definition in ``filename`` that ``match`` picks."""
    lines = linecache.getlines(filename)
    if not lines:
        return None
    text = "".join(lines)
    try:
        tree = ast.parse(text)
    except SyntaxError:
        return None
    found = [node for node in ast.walk(tree) if match(node)]
    if len(found) != 1:
        return None
    node = found[0]
    assert isinstance(node, (ast.Lambda, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))
    if isinstance(node, ast.Lambda):
        segment = ast.get_source_segment(text, node)
        return None if segment is None else (f"__chopsticks_lambda__ = ({segment})\n", node.lineno)
    start, end = node.lineno, node.end_lineno or node.lineno  # the def line: decorators left out
    if decorators and isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
        start = min([start, *(d.lineno for d in node.decorator_list)])
    return textwrap.dedent("".join(lines[start - 1 : end])), start


def _function_source(
    func: types.FunctionType, decorators: bool = False
) -> tuple[str, int, str] | None:
    code = func.__code__
    if func.__name__ == "<lambda>":
        argnames = code.co_varnames[: code.co_argcount]

        def match(node: ast.AST) -> bool:
            return (
                isinstance(node, ast.Lambda)
                and node.lineno == code.co_firstlineno
                and tuple(a.arg for a in node.args.args) == argnames
            )

        name = "__chopsticks_lambda__"
    else:

        def match(node: ast.AST) -> bool:
            if (
                not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
                or node.name != code.co_name
            ):
                return False
            first = min([node.lineno, *(d.lineno for d in node.decorator_list)])
            return code.co_firstlineno in (node.lineno, first)

        name = code.co_name  # what the def binds: __name__ differs under functools.wraps
    found = _definition(code.co_filename, code.co_firstlineno, match, decorators)
    return None if found is None else (found[0], found[1], name)


def _class_source(cls: type) -> tuple[str, int, str] | None:
    """A class's source, first line and file: found through the code of one of its methods
    (works in notebooks), else by name (classes without methods of their own, dataclasses)."""
    for value in vars(cls).values():
        func = getattr(value, "__func__", getattr(value, "fget", value))
        code = getattr(func, "__code__", None)
        if code is None:
            continue
        line = code.co_firstlineno

        def match(node: ast.AST, line: int = line) -> bool:
            return (
                isinstance(node, ast.ClassDef)
                and node.name == cls.__name__
                and node.lineno <= line <= (node.end_lineno or node.lineno)
            )

        found = _definition(code.co_filename, line, match, decorators=True)
        if found is not None:  # a generated method (dataclass, namedtuple) has no source
            return (*found, code.co_filename)
    return _class_source_by_name(cls)


def _class_source_by_name(cls: type) -> tuple[str, int, str] | None:
    """The source of a module-level class that no method leads to, from its module's file or,
    in a notebook, from the cells' source that IPython keeps in linecache (the newest first)."""
    if cls.__qualname__ != cls.__name__:
        return None
    firstlineno = getattr(cls, "__firstlineno__", None)  # Python 3.13+

    def match(node: ast.AST) -> bool:
        return (
            isinstance(node, ast.ClassDef)
            and node.name == cls.__name__
            and firstlineno in (None, min([node.lineno, *(d.lineno for d in node.decorator_list)]))
            and _body_fits(node, cls)
        )

    module = sys.modules.get(cls.__module__)
    filename = getattr(module, "__file__", None)
    candidates = [filename] if isinstance(filename, str) else []
    if cls.__module__ == "__main__":
        # IPython caches each cell's source under a made-up file name, with no mtime.
        marker = f"class {cls.__name__}"
        cells = [
            name
            for name, entry in list(linecache.cache.items())
            if len(entry) == 4 and entry[1] is None and any(marker in ln for ln in entry[2])
        ]
        candidates += reversed(cells)
    for candidate in candidates:
        found = _definition(candidate, firstlineno or 0, match, decorators=True)
        if found is not None:
            return (*found, candidate)
    return None


def _body_fits(node: ast.ClassDef, cls: type) -> bool:
    """Does this class statement define what ``cls`` holds (telling apart redefinitions)?"""
    annotations = vars(cls).get("__annotations__", {})
    for item in node.body:
        if isinstance(item, ast.AnnAssign) and isinstance(item.target, ast.Name):
            if item.target.id not in annotations:
                return False
        elif isinstance(item, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            if item.name not in vars(cls):
                return False
        elif isinstance(item, ast.Assign):
            names = [t.id for t in item.targets if isinstance(t, ast.Name)]
            if any(name not in vars(cls) for name in names):
                return False
    return True


# -- what a definition refers to ---------------------------------------------------------------


def _loaded_names(nodes: Sequence[ast.AST]) -> set[str]:
    return {
        node.id
        for tree in nodes
        for node in ast.walk(tree)
        if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Load)
    }


def _globals_for(names: set[str], namespace: dict[str, Any]) -> dict[str, Any]:
    return {
        name: namespace[name]
        for name in sorted(names)
        if name in namespace and not _is_builtin(name, namespace[name])
    }


def _is_builtin(name: str, value: object) -> bool:
    """``value`` is the builtin ``name``, or a local wrapper of it (IPython's ``open``): the
    remote uses its own."""
    if not hasattr(builtins, name):
        return False
    builtin = getattr(builtins, name)
    return value is builtin or getattr(value, "__wrapped__", None) is builtin


def _reduce_function(func: types.FunctionType) -> Any:
    found = _function_source(func)
    if found is None:
        return None
    source, firstlineno, name = found
    freevars = func.__code__.co_freevars
    closure = tuple(cell.cell_contents for cell in func.__closure__ or ())
    tree = ast.parse(source)
    names = _loaded_names([tree]) - set(freevars)
    defaults = [
        d
        for node in ast.walk(tree)
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
        for d in [*node.args.defaults, *node.args.kw_defaults]
        if d is not None
    ]
    creation = _globals_for(_loaded_names(defaults) - set(freevars), func.__globals__)
    state = (
        _globals_for(names, func.__globals__),
        closure,
        func.__defaults__,
        func.__kwdefaults__,
        func.__qualname__,
        func.__module__,
        dict(func.__dict__),
    )
    make = (source, func.__code__.co_filename, firstlineno, name, freevars, creation)
    return _agent.make_function, make, state, None, None, _agent.fill_function


def _reduce_class(cls: type) -> Any:
    found = _class_source(cls)
    if found is None:
        return None
    source, firstlineno, filename = found
    module = sys.modules.get(cls.__module__)
    namespace = vars(module) if module is not None else {}
    node = ast.parse(source).body[0]
    assert isinstance(node, ast.ClassDef)
    functions = [n for n in node.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))]
    at_creation = [*node.bases, *node.keywords, *node.decorator_list]
    at_creation += [n for n in node.body if n not in functions]
    at_creation += [d for f in functions for d in [*f.decorator_list, *f.args.defaults]]
    creation = _globals_for(_loaded_names(at_creation) - {cls.__name__}, namespace)
    later = _globals_for(_loaded_names(functions), namespace)
    later.update(_enclosing_values(cls, filename))
    make = (source, filename, firstlineno, cls.__name__, creation)
    return _agent.make_definition, make, later, None, None, _agent.fill_class


def _reduce_decorated(wrapped: types.FunctionType) -> Any:
    """A decorated function that is not a plain function (``functools.lru_cache``...): its whole
    definition is run remotely, decorators and all."""
    found = _function_source(wrapped, decorators=True)
    if found is None:
        return None
    source, firstlineno, name = found
    names = _loaded_names([ast.parse(source)]) - {name}
    make = (
        source,
        wrapped.__code__.co_filename,
        firstlineno,
        name,
        _globals_for(names, wrapped.__globals__),
    )
    return _agent.make_definition, make


def _enclosing_values(cls: type, filename: str) -> dict[str, Any]:
    """Variables a class's methods take from an enclosing function: globals, once rebuilt.

    Only methods written in the class's source count: a generated one (a dataclass's
    ``__repr__`` wrapper) closes over functions that are rebuilt remotely with the class.
    """
    values: dict[str, Any] = {}
    for value in vars(cls).values():
        func = getattr(value, "__func__", getattr(value, "fget", value))
        code = getattr(func, "__code__", None)
        if code is not None and code.co_filename != filename:
            continue
        for name, cell in zip(
            code.co_freevars if code else (), getattr(func, "__closure__", None) or ()
        ):
            if name != "__class__":
                values[name] = cell.cell_contents
    return values
