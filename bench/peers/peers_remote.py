"""Functions the contenders run on the far side.

Imported by name on the controller and forwarded by the libraries that forward modules
(chopsticks_nb, chopsticks, mitogen). Standard library only, valid on Python 3.6.
"""

import importlib
import os
import sys


def ping():
    """A warm-up call: makes the remote import this module before anything is timed."""
    return os.getpid()


def import_package(name, path=None):
    """Import the package ``name`` (from ``path`` when given); return its module count."""
    if path is not None and path not in sys.path:
        sys.path.insert(0, path)
    importlib.import_module(name)
    prefix = name + "."
    return sum(1 for module in list(sys.modules) if module == name or module.startswith(prefix))
