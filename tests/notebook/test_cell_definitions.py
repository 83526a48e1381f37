"""Definitions made in IPython cells travel as source: the cases notebooks hit that scripts
rarely do (classes with no methods of their own, dataclasses, functools.wraps, IPython's open).
Here in the in-process shell; test_kernel.py does the same in a kernel, to other Pythons."""

from __future__ import annotations

import builtins
from pathlib import Path

from IPython.core.interactiveshell import InteractiveShell
from nbhelpers import run

from fixtures.pythons import RemotePythons


def test_cell_classes_without_methods_and_dataclasses(
    shell: InteractiveShell, remote_pythons: RemotePythons
) -> None:
    run(
        shell,
        f"from chopsticks_nb import Local\n"
        f"old = Local('old', python3={str(remote_pythons.path('3.8'))!r})",
    )
    run(
        shell,
        "import dataclasses\n"
        "@dataclasses.dataclass(frozen=True)\n"
        "class Pair:\n    left: int\n    right: int = 2\n"
        "class Limits:\n    low = 1\n    high = 9\n",
    )
    run(shell, "class Limits:\n    low = 3\n    high = 4\n")  # redefined: the newest counts
    value = run(
        shell,
        "old.call(lambda: (dataclasses.astuple(Pair(1)), Limits.low, "
        "Limits.high, Pair.__dataclass_params__.frozen))",
    )
    assert value == ((1, 2), 3, 4, True)


def test_wrapped_functions_and_ipythons_open(
    shell: InteractiveShell, remote_pythons: RemotePythons, tmp_path: Path
) -> None:
    run(
        shell,
        f"from chopsticks_nb import Local\n"
        f"old = Local('old', python3={str(remote_pythons.path('3.10'))!r})",
    )
    run(
        shell,
        "import functools\n"
        "def logged(func):\n"
        "    @functools.wraps(func)\n"
        "    def wrapper(*args):\n"
        "        return ('logged', func(*args))\n"
        "    return wrapper\n"
        "@logged\n"
        "def double(x):\n    return 2 * x\n"
        f"def first_line(path={str(tmp_path)!r} + '/f'):\n"
        "    with open(path, 'w') as f:\n        f.write('hi')\n"
        "    with open(path) as f:\n        return f.read()\n",
    )
    assert run(shell, "old.call(double, 4)") == ("logged", 8)
    # The shell's `open` is IPython's wrapper of the builtin: the remote uses its own open.
    assert getattr(shell.user_ns["open"], "__wrapped__", None) is builtins.open
    assert run(shell, "old.call(first_line)") == "hi"
