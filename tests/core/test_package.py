"""The package root: its public names, what importing it costs, and which way imports point."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import chopsticks_nb

PACKAGE = Path(chopsticks_nb.__file__).parent


def test_all_lists_exactly_the_public_names() -> None:
    assert set(chopsticks_nb.__all__) == {"DEPTH_LIMIT", "__version__", *chopsticks_nb._EXPORTS}
    assert len(chopsticks_nb.__all__) == len(set(chopsticks_nb.__all__))
    for name in chopsticks_nb.__all__:
        assert getattr(chopsticks_nb, name) is not None
    for name, module in chopsticks_nb._EXPORTS.items():
        assert getattr(chopsticks_nb, name).__module__ == f"chopsticks_nb.{module}", name


def _type_checking_imports(path: Path) -> dict[str, str]:
    """name -> module of the ``from .module import name as name`` lines under TYPE_CHECKING."""
    tree = ast.parse(path.read_text())
    found: dict[str, str] = {}
    for node in tree.body:
        if isinstance(node, ast.If) and ast.unparse(node.test) == "TYPE_CHECKING":
            for statement in node.body:
                assert isinstance(statement, ast.ImportFrom) and statement.level == 1
                for alias in statement.names:
                    assert alias.asname == alias.name, f"{alias.name} is not re-exported"
                    found[alias.name] = str(statement.module)
    return found


def test_the_type_checkers_names_agree_with_the_export_table() -> None:
    assert _type_checking_imports(PACKAGE / "__init__.py") == chopsticks_nb._EXPORTS


def test_import_is_light_and_never_imports_ipython() -> None:
    code = (
        "import sys, chopsticks_nb\n"
        "heavy = [m for m in ('IPython', 'ipywidgets', 'cloudpickle', 'chopsticks_nb.tunnel')"
        " if m in sys.modules]\n"
        "print(heavy)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_results_and_their_rendering_import_no_notebook_code() -> None:
    code = (
        "import sys\n"
        "import chopsticks_nb.result, chopsticks_nb.render\n"
        "from chopsticks_nb.result import ErrorResult, GroupResult\n"
        "page = GroupResult({'a': 1, 'b': ErrorResult('no', 'tb')})._repr_html_()\n"
        "assert '<table>' in page and repr(GroupResult({'a': 1})) == \"GroupResult({'a': 1})\"\n"
        "print(sorted(m for m in sys.modules if m.startswith(('IPython', 'ipywidgets', "
        "'chopsticks_nb.notebook'))))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert out.stdout.strip() == "[]"


def _under_type_checking(tree: ast.Module) -> set[int]:
    """The ids of the nodes under ``if TYPE_CHECKING:``: imports only for type checkers."""
    return {
        id(child)
        for node in ast.walk(tree)
        if isinstance(node, ast.If) and ast.unparse(node.test) == "TYPE_CHECKING"
        for child in ast.walk(node)
    }


def _imports(path: Path) -> list[tuple[str, bool]]:
    """Every module ``path`` imports, anywhere in it, as an absolute name, and whether the
    import is only for type checkers (under ``if TYPE_CHECKING:``)."""
    package = ".".join(("chopsticks_nb", *path.relative_to(PACKAGE).parent.parts))
    tree = ast.parse(path.read_text())
    typing_only = _under_type_checking(tree)
    found = []
    for node in ast.walk(tree):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = package.split(".")[: len(package.split(".")) - node.level + 1]
            module = ".".join([*base, node.module] if node.module else base)
            if not node.level:
                module = str(node.module)
            names = [module] + [f"{module}.{alias.name}" for alias in node.names]
        found += [(name, id(node) in typing_only) for name in names]
    return found


def _runtime_imports(path: Path) -> list[str]:
    return [module for module, typing_only in _imports(path) if not typing_only]


def test_imports_point_down() -> None:
    """The core never imports the notebook layer, the notebook layer imports no private module,
    tunnel.py never imports group.py (not even for typing), and errors.py and render.py name
    the result model only for type checkers (result.py imports them; render.py imports only
    the host folding, printable() and the count of tracebacks shown; both import _bounded and
    _hostfold, which import nothing of the package)."""
    for path in sorted(PACKAGE.rglob("*.py")):
        name = path.relative_to(PACKAGE).as_posix()
        imported = [module for module, _ in _imports(path)]
        if name.startswith("notebook/"):
            private = [m for m in imported if m.startswith("chopsticks_nb._")]
            assert not private, f"{name} imports {private}"
        elif name != "__init__.py":  # the package loads the extension when asked to
            notebook = [m for m in imported if m.startswith("chopsticks_nb.notebook")]
            assert not notebook, f"{name} imports {notebook}"
    tunnel = [module for module, _ in _imports(PACKAGE / "tunnel.py")]
    assert not [m for m in tunnel if m.startswith("chopsticks_nb.group")]
    render_uses = (
        "chopsticks_nb._hostfold",
        "chopsticks_nb.outputlog",
        "chopsticks_nb.errors",
        "chopsticks_nb._bounded",
    )
    for name, allowed in (
        ("errors.py", ("chopsticks_nb._bounded", "chopsticks_nb._hostfold")),
        ("render.py", render_uses),
        ("_bounded.py", ()),
        ("_hostfold.py", ()),
    ):
        core = [m for m in _runtime_imports(PACKAGE / name) if m.startswith("chopsticks_nb.")]
        assert not [m for m in core if not m.startswith(allowed)], f"{name} imports {core}"


def test_numpy_and_pandas_are_imported_only_when_such_a_value_arrives() -> None:
    """A tunnel, plain results, and rich stdlib results import neither numpy nor pandas (nor
    the builders of arrays and frames) on the controller; an array result imports numpy."""
    code = (
        "import sys, datetime\n"
        "from chopsticks_nb.tunnel import Local\n"
        "libraries = lambda: sorted(m for m in ('numpy', 'pandas', 'chopsticks_nb._arrays',\n"
        "                                       'chopsticks_nb._frames') if m in sys.modules)\n"
        "with Local('l', python3=sys.executable) as tunnel:\n"
        "    tunnel.call(len, 'x'), tunnel.call(datetime.date.today)\n"
        "    print(libraries())\n"
        "    tunnel.call(eval, '__import__(\"numpy\").zeros(2)')\n"
        "    print(libraries())\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert out.stdout.split("\n")[:2] == ["[]", "['chopsticks_nb._arrays', 'numpy']"]


# -- the layers of docs/how-it-works.md ("The pieces") ---------------------------------------------

DOC = PACKAGE.parent / "docs" / "how-it-works.md"
#: The imports that point up the page, each made inside the function that needs it (never at
#: import): ``tunnel`` reads ``chopsticks_nb.DEPTH_LIMIT`` and makes ``tunnel + tunnel`` a
#: ``Group`` through the package's public name, and ``result`` makes ``result.failed`` a
#: ``Group`` the same way. (``_values`` also imports ``_arrays`` and ``_frames`` upwards, by
#: ``importlib`` and name, the first time such a value arrives: no import statement to check;
#: test_numpy_and_pandas_are_imported_only_when_such_a_value_arrives covers it.)
UPWARD = {("tunnel", "chopsticks_nb"), ("result", "chopsticks_nb")}
NAME_COLUMN = 18  # where the pieces' code block has each module's name


def _doc_block(heading: str, opening: str) -> list[str]:
    """The lines of the first code block after ``heading`` whose first line is ``opening``."""
    text = DOC.read_text()
    rest = text[text.index(heading) :]
    start = rest.index("```\n" + opening)
    return rest[start + 4 : rest.index("```", start + 4)].splitlines()


def _documented_layers() -> list[str]:
    """The modules of "The pieces", top of the page first."""
    names = []
    for line in _doc_block("## The pieces", " notebook layer"):
        if len(line) > NAME_COLUMN and line[NAME_COLUMN - 1] == " " and line[NAME_COLUMN] != " ":
            names.append(line[NAME_COLUMN:].split()[0])
    return names


def _module_name(path: Path) -> str:
    """``tunnel``, ``notebook/live``, ``notebook`` (a package's __init__)."""
    name = path.relative_to(PACKAGE).with_suffix("").as_posix()
    return name.removesuffix("/__init__")


def _package_imports(path: Path) -> dict[str, bool]:
    """The modules of the package that ``path`` imports at run time (not for type checkers),
    each with whether every import of it is inside a function (made when first used).
    ``chopsticks_nb`` stands for the package root's own names (``chopsticks_nb.Group``)."""
    package = ".".join(("chopsticks_nb", *path.relative_to(PACKAGE).parent.parts))
    tree = ast.parse(path.read_text())
    typing_only = _under_type_checking(tree)
    top_level = {id(node) for node in tree.body}
    modules = {_module_name(p) for p in PACKAGE.rglob("*.py")}
    found: dict[str, bool] = {}
    for node in ast.walk(tree):
        if id(node) in typing_only:
            continue
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            module = str(node.module)
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                module = ".".join([*base, node.module] if node.module else base)
            within = [f"{module}.{alias.name}" for alias in node.names]
            names = [name for name in within if name[14:].replace(".", "/") in modules]
            if len(names) < len(within):  # names of a module, not modules: the module itself
                names.append(module)
        for name in names:
            if name == "chopsticks_nb" or name.startswith("chopsticks_nb."):
                short = name[14:].replace(".", "/") or "chopsticks_nb"
                lazy = id(node) not in top_level
                found[short] = found.get(short, True) and lazy
    found.pop(_module_name(path), None)
    return found


def _import_graph() -> dict[str, dict[str, bool]]:
    return {
        _module_name(path): _package_imports(path)
        for path in sorted(PACKAGE.rglob("*.py"))
        if path != PACKAGE / "__init__.py"
    }


def test_every_import_points_down_the_documented_layers() -> None:
    """docs/how-it-works.md lists every module once, in layers; each module imports only
    modules below it, but the UPWARD references, made inside functions."""
    layers = _documented_layers()
    graph = _import_graph()
    assert sorted(layers) == sorted(graph), "the pieces list every module exactly once"
    place = {name: i for i, name in enumerate(layers)}
    place["chopsticks_nb"] = -1  # the package root, above everything
    upward = set()
    for module, imported in graph.items():
        for target, lazy in imported.items():
            if place[target] < place[module]:
                upward.add((module, target))
                assert lazy, f"{module} imports {target}, above it, at import time"
    assert upward == UPWARD, f"imports pointing up: {sorted(upward)}"


def _drawn_map(graph: dict[str, dict[str, bool]], layers: list[str]) -> list[str]:
    """The map of "Which imports which" as the code makes it: a line per module that imports
    any, in page order; ``*`` marks an import made inside a function, when first used."""
    place = {name: i for i, name in enumerate(layers)}
    place["chopsticks_nb"] = -1
    lines = []
    for module in layers:
        targets = sorted(graph[module], key=place.__getitem__)
        if targets:
            names = [t + ("*" if graph[module][t] else "") for t in targets]
            lines.append(f"{module} -> {', '.join(names)}")
    return lines


def test_the_documented_import_map_is_the_code_s() -> None:
    layers = _documented_layers()
    drawn = " ".join(_doc_block("Which imports which", "notebook ->")).replace("  ", " ")
    expected = " ".join(_drawn_map(_import_graph(), layers))
    assert " ".join(drawn.split()) == expected
