"""bench/_placement.py's Placement pins a round trip's two ends where the runner says."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))

from _placement import Placement

SLEEPER = [sys.executable, "-c", "import time; time.sleep(60)"]


def test_placements_pin_both_ends_and_let_go() -> None:
    everywhere = os.sched_getaffinity(0)
    assert len(everywhere) >= 2, "placements need two vCPUs"
    for placement, ours, theirs in (("one_vcpu", {0}, {0}), ("two_vcpus", {0}, {1})):
        with Placement(placement) as place:
            remote = subprocess.Popen(SLEEPER)
            try:
                place.remote_started()
                assert os.sched_getaffinity(0) == ours, placement
                assert os.sched_getaffinity(remote.pid) == theirs, placement
            finally:
                remote.kill()
                remote.wait()
        assert os.sched_getaffinity(0) == everywhere, placement
