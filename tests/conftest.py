"""Suite-wide setup: the real-component fixtures live in tests/fixtures/ (see its docstring)."""

import os

import pytest

# jupyter_core warns (DeprecationWarning, an error under filterwarnings=error) on import unless
# told to use the platformdirs locations it is migrating to; opt in, as its message asks.
os.environ.setdefault("JUPYTER_PLATFORM_DIRS", "1")

pytest_plugins = [
    "pytester",
    "fixtures.ci",
    "fixtures.leaks",
    "fixtures.pythons",
    "fixtures.sshd",
    "fixtures.sudo",
    "fixtures.podman",
    "fixtures.netns",
    "fixtures.transports",
    "fixtures.slurm",
    "fixtures.browser",
    "fixtures.notebooks",
]


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Tests of a speed-up's own mechanism (marked ``speedup(name)``) are deselected when the
    environment turns it off (``CHOPSTICKS_NB_SPEEDUPS_OFF``): everything else must pass."""
    from chopsticks_nb import _speedups

    off = [
        item
        for item in items
        if any(not _speedups.enabled(mark.args[0]) for mark in item.iter_markers("speedup"))
    ]
    if off:
        config.hook.pytest_deselected(items=off)
        items[:] = [item for item in items if item not in off]
