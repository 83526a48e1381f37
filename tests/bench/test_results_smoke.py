"""bench/bench_results.py still runs: a small result of every shape, one repeat.

No figure is checked against its target (timings on this shared machine are noise): the test
checks that every shape was built and every view measured, with the groups each shape makes.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.timeout(120)
def test_a_small_run_measures_every_view_of_every_shape() -> None:
    proc = subprocess.run(
        [
            sys.executable,
            str(ROOT / "bench" / "bench_results.py"),
            "--hosts",
            "300",
            "--repeats",
            "1",
        ],
        capture_output=True,
        text=True,
        timeout=110,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    written = proc.stdout.strip().splitlines()[-1].removeprefix("raw figures: ")
    figures = json.loads((ROOT / written).read_text())
    (ROOT / written).unlink()
    assert figures["hosts"] == 300
    shapes = figures["shapes"]
    assert len(shapes) == 4
    for shape in shapes.values():
        assert set(shape["ms"]) == {"groups", "text", "html", "shown", "markdown", "diff"}
        assert all(stats["median"] > 0 for stats in shape["ms"].values())
    assert shapes["every answer different"]["groups"] == 300
    assert 2 <= shapes["12 facts per host, 1% differ"]["groups"] < 300
