"""bench/bench_ssh_reuse.py still runs: a quick pass (two repeats) over loopback sshds.

No figure is checked against a target (a timed assertion on this shared machine would only be
noise): the test checks that every measure came back both ways, and the sshds' own count of
logins: a fresh connect logs in each time, a connect over a master never does.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from fixtures.system import need_root, need_tool

RUNNER = Path(__file__).resolve().parents[2] / "bench" / "bench_ssh_reuse.py"
#: SSH logins per trial without a master: one per host
HOSTS_PER_TRIAL = {"ssh_true": 1, "connect_call": 1, "group_of_4_connect_call": 4}


@pytest.mark.timeout(120)
def test_quick_run_measures_both_ways(tmp_path: Path) -> None:
    need_root("bench/bench_ssh_reuse.py (it starts sshds)")
    need_tool("/usr/sbin/sshd", "openssh-server")
    need_tool("ssh", "openssh-client")
    out = tmp_path / "reuse.json"
    proc = subprocess.run(
        [sys.executable, str(RUNNER), "--quick", "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=110,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    figures = json.loads(out.read_text())
    repeats = figures["repeats"]
    for measure, hosts in HOSTS_PER_TRIAL.items():
        fresh, shared = figures[measure]["fresh"], figures[measure]["shared"]
        for way in (fresh, shared):
            assert 0 < way["min"] <= way["median"] <= way["max"], measure
        assert fresh["logins"] == repeats * hosts, measure
        assert shared["logins"] == 0, measure
