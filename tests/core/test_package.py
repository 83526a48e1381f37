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


def _imports(path: Path) -> list[tuple[str, bool]]:
    """Every module ``path`` imports, anywhere in it, as an absolute name, and whether the
    import is only for type checkers (under ``if TYPE_CHECKING:``)."""
    package = ".".join(("chopsticks_nb", *path.relative_to(PACKAGE).parent.parts))
    tree = ast.parse(path.read_text())
    typing_only = {
        id(child)
        for node in ast.walk(tree)
        if isinstance(node, ast.If) and ast.unparse(node.test) == "TYPE_CHECKING"
        for child in ast.walk(node)
    }
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
    the host ranges, to fold host lists, and both import _bounded, which imports nothing of
    the package)."""
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
    for name, allowed in (
        ("errors.py", ("chopsticks_nb._bounded",)),
        ("render.py", ("chopsticks_nb.hosts", "chopsticks_nb._bounded")),
        ("_bounded.py", ()),
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
