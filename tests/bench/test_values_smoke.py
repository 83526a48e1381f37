"""bench/bench_values.py still runs: its quick mode (1 MB arrays, two rounds) measures every
figure it reports.

No figure is checked against its target (timings on this shared machine are noise): the test
checks that each part ran and measured what it says, and that hostile messages were refused.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
HONEST = {
    "None x 1M (1 byte each)",
    "empty tuples",
    "empty lists in a dict",
    "small ints",
    "short strs",
    "one huge int",
    "datetimes",
    "short Decimals",
    "pd.NA (3 bytes each)",
    "tiny float arrays",
    "1-row DataFrames",
}


@pytest.mark.timeout(180)
def test_a_quick_run_measures_every_figure() -> None:
    proc = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "bench_values.py"), "--quick"],
        capture_output=True,
        text=True,
        timeout=170,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    written = Path(proc.stdout.strip().splitlines()[-1].removeprefix("written to "))
    figures = json.loads(written.read_text())["figures"]
    written.unlink()

    costs = figures["b_decode_costs"]  # (b): every message decoded or refused, CPU measured
    hostile = {name for name in costs if name.startswith("hostile: ")}
    assert set(costs) == HONEST | hostile and len(hostile) >= 5
    for name, cost in costs.items():
        assert cost["bytes"] > 0 and cost["cpu_ms"] >= 0 and cost["ns_per_byte"] >= 0, name
    assert all(costs[name]["outcome"] == "decoded" for name in HONEST)
    assert costs["hostile: colliding-ints-set"]["outcome"].startswith("refused: ")

    arrays = figures["a_array_vs_bytes"]  # (a): both kinds timed, their memory sampled
    assert arrays["size_mb"] == 1.0
    assert arrays["bytes_mb_s"] > 0 and arrays["float64_mb_s"] > 0
    assert arrays["float64_speed_vs_bytes"] > 0
    for kind in ("bytes", "float64"):
        assert arrays[f"{kind}_s"]["median"] > 0
        assert arrays[f"{kind}_peak_rss_x_size"]["median"] >= 0

    hostile_host = figures["c_hostile_host"]  # (c): the hostile host failed, the honest went on
    assert hostile_host["message_bytes"] == 10**6
    assert hostile_host["time_to_fail_s"]["median"] > 0
    assert hostile_host["honest_round_trip_before_s"]["median"] > 0
    assert hostile_host["honest_round_trip_during_s"]["median"] > 0
    assert hostile_host["honest_calls_during"] >= 1
