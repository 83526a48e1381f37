"""examples/demo.py (what scripts/demo.sh runs) works and prints one row per host."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

DEMO = Path(__file__).resolve().parents[2] / "examples" / "demo.py"


def test_demo_prints_a_row_per_host() -> None:
    proc = subprocess.run(
        [sys.executable, str(DEMO)], capture_output=True, text=True, timeout=90, check=False
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    rows = [line for line in proc.stdout.splitlines() if line.startswith("local-")]
    assert [row.split()[0] for row in rows] == [f"local-{n}" for n in range(1, 5)]
    assert "ERROR" not in proc.stdout
