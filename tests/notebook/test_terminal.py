"""Terminal IPython (a real ``ipython`` process): text results, prefixed output, full errors."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

SESSION = """\
%load_ext chopsticks_nb
from chopsticks_nb import Group, Local
g = Group([Local("a"), Local("b")])
%%remote g
import sys
print("from the host", file=sys.stderr)
41 + 1


%remote g 1 / 0
g.close()
"""


def test_terminal_ipython_shows_text_and_remote_tracebacks(tmp_path: Path) -> None:
    ipython = Path(sys.executable).parent / "ipython"
    env = dict(os.environ, IPYTHONDIR=str(tmp_path / "ipython"))
    out = subprocess.run(
        [
            str(ipython),
            "--simple-prompt",
            "--no-banner",
            "--colors=nocolor",
            "--HistoryManager.enabled=False",
        ],
        input=SESSION,
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        check=False,
    )
    # Both hosts answered 42: one line for the two of them, and what they printed, folded.
    assert "GroupResult (2 hosts: 2 ok in " in out.stdout, out.stdout + out.stderr
    assert "\n  2 hosts a,b: 42  [" in out.stdout
    assert "2 hosts a,b printed the same 1 line" in out.stdout
    assert "[a] from the host" in out.stderr and "[b] from the host" in out.stderr
    # A failed host fails the cell; in a terminal, with the remote tracebacks.
    assert "GroupError: 2 of 2 hosts failed: a,b" in out.stdout
    assert "--- remote traceback from a ---" in out.stdout
    assert "ZeroDivisionError: division by zero" in out.stdout
    assert "<table" not in out.stdout and "<div" not in out.stdout  # no HTML in a terminal
