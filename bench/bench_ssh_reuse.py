"""Shared SSH connections: connecting again over a master connection against a fresh connect.

Starts loopback sshds the way bench/bench_peers.py does (bench/peers/sshd.py: the tests'
fixture, one sshd per host on 127.0.0.2.., logins as the non-root test user; needs root and
openssh). Every trial measures both ways back to back, so a noisy moment hits both:

* ``ssh true``: ``ssh -F CONFIG web1 true``, a new SSH connection, against the same command
  through a running master (``ControlMaster=auto``): the floor of each;
* connect + call: a new ``SSHTunnel("web1")`` connects and runs ``os.getpid`` (then closes),
  against the same with ``control_master=True`` once its master is up: what a reconnect after
  ``close()`` or a kernel restart costs (a new tunnel object goes the same way as a new process:
  ssh finds the master by its socket);
* group of 4: ``Group.from_ssh_config("web*")``, connect + one call on each host, both ways.

It also counts, from the sshds' logs, the SSH logins each way made: a reuse makes none. The
master sockets go to a private directory made for the run (``$XDG_RUNTIME_DIR`` points at it),
and the masters are stopped at the end.

Run::

    .venv/bin/python bench/bench_ssh_reuse.py [--repeats 20] [--quick]

It prints a table and writes the figures as JSON to bench/results/bench_ssh_reuse-<time>.json
(``--out PATH`` to choose; tests/bench/test_ssh_reuse_smoke.py runs ``--quick``).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE.parent), str(HERE), str(HERE / "peers")]

from _common import RESULTS, median_spread, write_timestamped  # noqa: E402
from sshd import loopback_hosts, unavailable_reason  # noqa: E402

from chopsticks_nb import _ssh_control  # noqa: E402
from chopsticks_nb.group import Group  # noqa: E402
from chopsticks_nb.tunnel import SSHTunnel  # noqa: E402


def elapsed(action: Callable[[], object]) -> float:
    start = time.perf_counter()
    action()
    return time.perf_counter() - start


def ssh_true(config: Path, shared: bool) -> float:
    options = _ssh_control.options(str(_ssh_control.socket_directory()), 600) if shared else []
    argv = ["ssh", "-F", str(config), *options, "web1", "true"]
    return elapsed(lambda: subprocess.run(argv, check=True, timeout=60))


def connect_call(config: Path, shared: bool) -> float:
    tunnel = SSHTunnel("web1", ssh_config=str(config), control_master=shared)
    try:
        return elapsed(lambda: tunnel.call(os.getpid))
    finally:
        tunnel.close()


def group_connect_call(config: Path, shared: bool) -> float:
    group = Group.from_ssh_config("web*", config, control_master=shared)
    try:
        return elapsed(lambda: group.call(os.getpid).raise_failures())
    finally:
        group.close()


def logins(cluster: Any) -> int:
    return sum(host.log.read_text().count("Accepted publickey") for host in cluster.hosts.values())


def measure(
    cluster: Any, repeats: int, trial: Callable[[Path, bool], float]
) -> dict[str, dict[str, Any]]:
    """``trial`` both ways, ``repeats`` times, alternating which goes first."""
    config = Path(cluster.config_path)
    samples: dict[bool, list[float]] = {False: [], True: []}
    new_logins = {False: 0, True: 0}
    trial(config, True)  # warm-up, and the masters come up
    for index in range(repeats):
        for shared in (False, True) if index % 2 else (True, False):
            before = logins(cluster)
            samples[shared].append(trial(config, shared))
            new_logins[shared] += logins(cluster) - before
    return {
        "fresh": {**median_spread(samples[False]), "logins": new_logins[False]},
        "shared": {**median_spread(samples[True]), "logins": new_logins[True]},
    }


def stop_masters(config: Path, names: list[str]) -> None:
    for name in names:
        SSHTunnel(name, ssh_config=str(config), control_master=True).stop_master()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--quick", action="store_true", help="2 repeats: does it run?")
    parser.add_argument("--out", type=Path, help="write the figures here instead")
    args = parser.parse_args()
    repeats = 2 if args.quick else args.repeats
    reason = unavailable_reason()
    if reason is not None:
        sys.exit(f"bench_ssh_reuse: {reason}")
    sockets = Path(tempfile.mkdtemp(prefix="cm-bench-", dir="/tmp"))
    os.environ["XDG_RUNTIME_DIR"] = str(sockets)
    figures: dict[str, Any] = {"repeats": repeats}
    try:
        with loopback_hosts(4) as cluster:
            config = Path(cluster.config_path)
            try:
                figures["ssh_true"] = measure(cluster, repeats, ssh_true)
                figures["connect_call"] = measure(cluster, repeats, connect_call)
                figures["group_of_4_connect_call"] = measure(cluster, repeats, group_connect_call)
            finally:
                stop_masters(config, cluster.names)
    finally:
        shutil.rmtree(sockets, ignore_errors=True)
    if args.out is not None:
        args.out.write_text(json.dumps(figures, indent=2) + "\n")
        path = args.out
    else:
        path = write_timestamped(RESULTS, "bench_ssh_reuse", figures)
    print(f"{'':28} {'fresh (ms)':>22} {'over a master (ms)':>22} {'ratio':>6}")
    for name in ("ssh_true", "connect_call", "group_of_4_connect_call"):
        fresh, shared = figures[name]["fresh"], figures[name]["shared"]
        print(
            f"{name:28} {fresh['median'] * 1e3:8.1f} ({fresh['min'] * 1e3:.1f}-"
            f"{fresh['max'] * 1e3:.1f}) {shared['median'] * 1e3:8.1f} "
            f"({shared['min'] * 1e3:.1f}-{shared['max'] * 1e3:.1f}) "
            f"{fresh['median'] / shared['median']:6.1f}x"
        )
        print(f"{'':28} logins: {fresh['logins']:>4} fresh, {shared['logins']} over a master")
    print(f"figures: {path}")


if __name__ == "__main__":
    main()
