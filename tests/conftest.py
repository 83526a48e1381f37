"""Suite-wide setup: the real-component fixtures live in tests/fixtures/ (see its docstring)."""

import os

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
    "fixtures.slurm",
]
