"""bench/bench_core.py still runs: a quick pass (tiny sizes, one repeat of each placement).

No figure is checked against a target (a timed assertion on this shared machine would only be
noise): the test checks that every measure came back, against its floors, and that the 1 MB
round trip was measured with both ends on one vCPU and on two. Memory is checked: the peak
RSS of receiving a large result is at most 1.5 bytes per byte of it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def run_bench_core(*args: str, timeout: float) -> None:
    proc = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "bench_core.py"), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]


@pytest.mark.timeout(120)
def test_quick_run_measures_every_figure() -> None:
    assert len(os.sched_getaffinity(0)) >= 2, "the placed (c) needs two vCPUs"
    run_bench_core("--quick", timeout=110)
    figures = json.loads((ROOT / "bench" / "results" / "core-quick.json").read_text())["figures"]

    for name, floor in (
        ("a_first_call", "bare_start_s"),
        ("b_round_trip", "pipe_echo_s"),
        ("c_1mb_argument", "pipe_echo_s"),
        ("c_1mb_argument", "pipe_echo_lent_s"),
    ):
        assert figures[name]["chopsticks_nb_s"]["median"] > 0, name
        assert figures[name][floor]["median"] > 0, name
    assert set(figures["c_placed"]) == {"one_vcpu", "two_vcpus"}
    for placement, placed in figures["c_placed"].items():
        measured = (
            placed[key] for key in ("chopsticks_nb_us", "pipe_echo_us", "pipe_echo_lent_us")
        )
        assert [len(samples) for samples in measured] == [1, 1, 1], placement
        assert placed["ratio"]["median"] > 0, placement
    transfer = figures["e_transfer"]
    keys = ("put", "fetch", "cat_pipe_put", "cat_pipe_fetch", "cat_pipe_fetch_sha1")
    for key in (*keys, "cat_copy_file_range"):
        assert transfer[f"{key}_mb_s"]["median"] > 0, key
    for ratio in ("put_of_floor", "fetch_of_floor", "fetch_of_checked_floor"):
        assert transfer[ratio]["median"] > 0, ratio
    assert figures["f_package_import"]["import_round_trips"] >= 1
    large = figures["g_large_result"]
    assert large["chopsticks_nb_s"] > 0 and large["cat_pipe_s"] > 0
    # Memory is no timing: a bytes result is held once (read in place), not twice.
    assert 0 < large["peak_rss_per_result_byte"] <= 1.5, large


@pytest.mark.timeout(60)
def test_only_runs_the_measures_named_into_results_of_their_own() -> None:
    run_bench_core("--quick", "--only", "e", "f", timeout=50)
    written = ROOT / "bench" / "results" / "core-quick-ef.json"
    assert set(json.loads(written.read_text())["figures"]) == {"e_transfer", "f_package_import"}
