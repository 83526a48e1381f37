"""The package root: its public names, and what importing it costs."""

from __future__ import annotations

import subprocess
import sys

import chopsticks_nb


def test_all_lists_exactly_the_public_names() -> None:
    assert set(chopsticks_nb.__all__) == {"DEPTH_LIMIT", "__version__", *chopsticks_nb._EXPORTS}
    assert len(chopsticks_nb.__all__) == len(set(chopsticks_nb.__all__))
    for name in chopsticks_nb.__all__:
        assert getattr(chopsticks_nb, name) is not None


def test_import_is_light_and_never_imports_ipython() -> None:
    code = (
        "import sys, chopsticks_nb\n"
        "heavy = [m for m in ('IPython', 'ipywidgets', 'cloudpickle', 'chopsticks_nb.tunnel')"
        " if m in sys.modules]\n"
        "print(heavy)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
