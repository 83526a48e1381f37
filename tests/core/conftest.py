"""Fixtures for the core tests: real local agents."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from chopsticks_nb import _bootstrap
from chopsticks_nb.tunnel import Local, SubprocessTunnel
from fixtures.transports import OutputLog

HERE = Path(__file__).parent


#: An output handler that keeps what the remote printed.
Captured = OutputLog


class SlowLink(SubprocessTunnel):
    """A local agent whose stdin arrives through slow_link.py in chunks of ``chunk`` bytes."""

    python3 = sys.executable

    def __init__(self, name: str, chunk: int, compiled: bool = False, **options: object) -> None:
        super().__init__(name, **options)  # type: ignore[arg-type]
        self.chunk = chunk
        self.compiled = compiled

    def _compiled_agent(self) -> bytes | None:
        return _bootstrap.compiled_agent() if self.compiled else None

    def cmd_args(self) -> list[str]:
        return [sys.executable, str(HERE / "slow_link.py"), str(self.chunk), *self.python_args()]


@pytest.fixture
def captured() -> Captured:
    return Captured()


@pytest.fixture
def local(captured: Captured) -> Iterator[Local]:
    with Local("local1", output=captured) as tunnel:
        yield tunnel


@pytest.fixture
def served(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A directory on the controller's sys.path that the remote has not got; the modules the
    controller imported from it are forgotten afterwards."""
    root = tmp_path / "served"
    root.mkdir()
    monkeypatch.syspath_prepend(str(root))
    yield root
    for name, module in list(sys.modules.items()):
        places = [getattr(module, "__file__", None) or "", *getattr(module, "__path__", [])]
        if any(str(place).startswith(str(root)) for place in places):
            del sys.modules[name]
