"""Fixtures shared by the reliability tests."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest


@pytest.fixture
def shared_dir() -> Iterator[Path]:
    """A directory every test user can write (pytest's tmp_path is private to root)."""
    path = Path(tempfile.mkdtemp(prefix="chopsticks-nb-shared-"))
    path.chmod(0o777)
    yield path
    shutil.rmtree(path, ignore_errors=True)
