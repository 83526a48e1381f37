"""bench/bench_peers.py still runs: a quick pass (tiny sizes, one or two repeats) with every peer.

No figure is checked against a target (a timed assertion on this shared machine would only be
noise): the test checks that every contender answered every measure, over local subprocesses
and over SSH to loopback sshds, with and without ControlMaster reuse.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from fixtures.system import need_root, need_tool

RUNNER = Path(__file__).resolve().parents[2] / "bench" / "bench_peers.py"
CONTENDERS = {"floor", "chopsticks_nb", "chopsticks", "execnet", "mitogen", "rpyc"}
LOCAL = {
    "a_first_call",
    "b_round_trip",
    "c_big_argument",
    "c_one_vcpu",
    "c_two_vcpus",
    "d_group",
    "e_transfer",
    "f_package",
}
SSH = {"a_first_call", "b_round_trip", "d_group"}


def _check_section(section: dict, measures: set[str]) -> None:
    assert set(section) == measures
    for measure, figures in section.items():
        if measure == "d_group":
            groups = list(figures.values())
        elif measure == "e_transfer":
            groups = [figures["put"], figures["fetch"]]
        else:
            groups = [figures]
        for per_contender in groups:
            assert set(per_contender) == CONTENDERS, measure
            for name, values in per_contender.items():
                assert values["median"] > 0, (measure, name)
                assert values["min"] <= values["median"] <= values["max"], (measure, name)


@pytest.mark.timeout(150)
def test_quick_run_measures_every_peer(tmp_path: Path) -> None:
    need_root("the SSH part of bench/bench_peers.py")
    need_tool("/usr/sbin/sshd", "openssh-server")
    need_tool("ssh", "openssh-client")
    out = tmp_path / "peers.json"
    proc = subprocess.run(
        [sys.executable, str(RUNNER), "--quick", "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=140,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    results = json.loads(out.read_text())

    assert set(results["contenders"]) == CONTENDERS
    for name, info in results["contenders"].items():
        assert info["name"] == name
    assert set(results["sections"]) == {"local", "ssh", "ssh + ControlMaster"}
    _check_section(results["sections"]["local"], LOCAL)
    for transport in ("ssh", "ssh + ControlMaster"):
        _check_section(results["sections"][transport], SSH)

    package = results["sections"]["local"]["f_package"]
    for name in ("chopsticks_nb", "chopsticks", "mitogen"):  # they forward modules
        assert package[name]["round_trips"] >= 1, name
    rows = results["table"]
    assert {row["contender"] for row in rows} == CONTENDERS
    assert all(row["x_floor"] is not None for row in rows)
    assert "| (b) round trip | chopsticks_nb |" in proc.stdout
