"""Relays: N real SSH hosts (default 256) reached directly, and through 4 relays.

The hosts are OpenSSH sshds on loopback addresses (16 per sshd), logged into as the tests'
non-root user, as the suite's scale tests do (tests/reliability/many_hosts.py). Each repeat
runs both ways in turn (alternating which goes first), each with fresh tunnels:

* direct: ``Group([SSHTunnel(h) ...])``: the controller runs N ssh clients;
* relayed: the same group ``.split()`` over R ``Local`` relays (agents on this machine, as a
  bastion's would be on it): each relay's agent runs N/R ssh clients, and the controller holds
  one pipe per relay. The relays connect with their first tunnel, inside the timed connect.

and measures, in turn: connect (every handshake), a first call and a second one
(``os.getpid``), a put of one 10 MiB file to every host (SHA-1 checked), close. While it runs,
a sampler thread reads this process's RSS every 5 ms and its threads and open file descriptors
every 20 ms (the most seen: during the put, each host's upload holds the file open too); the
fds are also counted once connected, and the relays' agents' RSS at the end of the put.

    .venv/bin/python bench/bench_relays.py [--hosts 256] [--relays 4] [--repeats 2] [--put-mib 10]

Needs root and openssh-server. Prints a table; writes the figures as JSON to
bench/results/bench_relays-<time>.json.
"""

from __future__ import annotations

import argparse
import gc
import os
import shutil
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from _common import write_timestamped  # noqa: E402
from reliability.many_hosts import ManyHosts, start_many_hosts  # noqa: E402
from reliability.probes import rss_mib  # noqa: E402

from chopsticks_nb.group import Group  # noqa: E402
from chopsticks_nb.tunnel import BaseTunnel, Local, SSHTunnel  # noqa: E402

STEPS = ("connect", "call", "call_again", "put", "close")
MODES = ("direct", "relayed")


class Sampler:
    """Peak RSS (every 5 ms), threads and open fds (every 20 ms) of this process."""

    def __init__(self) -> None:
        gc.collect()
        self.start_rss = rss_mib()
        self.start_fds = len(os.listdir("/proc/self/fd"))
        self.peak_rss = self.start_rss
        self.peak_fds = self.start_fds
        self.peak_threads = threading.active_count()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="sampler", daemon=True)

    def _run(self) -> None:
        tick = 0
        while not self._stop.wait(0.005):
            self.peak_rss = max(self.peak_rss, rss_mib())
            tick += 1
            if tick % 4 == 0:
                self.peak_fds = max(self.peak_fds, len(os.listdir("/proc/self/fd")))
                # the sampler itself is not counted
                self.peak_threads = max(self.peak_threads, threading.active_count() - 1)

    def __enter__(self) -> Sampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak_rss = max(self.peak_rss, rss_mib())


def one_round(
    mode: str, hosts: ManyHosts, relay_count: int, source: Path, target: str
) -> dict[str, Any]:
    tunnels = [SSHTunnel(n, ssh_config=str(hosts.config_path)) for n in hosts.names]
    relays: list[BaseTunnel] = []
    group = Group(tunnels)
    if mode == "relayed":
        relays = [Local(f"relay{i}") for i in range(relay_count)]
        group = group.split(relays)
    times: dict[str, float] = {}
    relay_rss = 0.0

    def step(name: str, operation: Any) -> Any:
        start = time.perf_counter()
        result = operation()
        times[name] = time.perf_counter() - start
        failures = dict(result.failures()) if hasattr(result, "failures") else {}
        if failures:
            raise SystemExit(f"{mode} {name}: {len(failures)} hosts failed: {failures}")
        return result

    with Sampler() as sampler:
        try:
            step("connect", group.connect)
            step("call", lambda: group.call(os.getpid))
            fds_connected = len(os.listdir("/proc/self/fd")) - sampler.start_fds
            step("call_again", lambda: group.call(os.getpid))
            put = step("put", lambda: group.put(str(source), target))
            relay_rss = sum(rss_mib(relay.remote_info["pid"]) for relay in relays)
        finally:
            step("close", group.close)
            for relay in relays:
                relay.close()
    if len({info["sha1sum"] for info in put.values()}) != 1:
        raise SystemExit(f"{mode} put: checksums differ")
    return {
        "mode": mode,
        "seconds": times,
        "rss_start_mib": sampler.start_rss,
        "rss_growth_mib": sampler.peak_rss - sampler.start_rss,
        "fds_connected": fds_connected,
        "fds_growth": sampler.peak_fds - sampler.start_fds,
        "max_threads": sampler.peak_threads,
        "relays_rss_mib": relay_rss,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--hosts", type=int, default=256)
    parser.add_argument("--relays", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--put-mib", type=int, default=10)
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results")
    args = parser.parse_args()
    if os.geteuid() != 0 or not os.access("/usr/sbin/sshd", os.X_OK):
        raise SystemExit("bench_relays needs root and openssh-server (it starts sshds)")

    hosts = start_many_hosts(args.hosts)
    shared = Path(tempfile.mkdtemp(prefix="chopsticks-nb-bench-relays-"))
    shared.chmod(0o777)
    rounds: list[dict[str, Any]] = []
    try:
        source = shared / "source"
        source.write_bytes(os.urandom(args.put_mib * 2**20))
        for repeat in range(args.repeats):
            for mode in MODES if repeat % 2 == 0 else reversed(MODES):
                rounds.append(one_round(mode, hosts, args.relays, source, str(shared / "copy")))
                print(f"  {mode}: {rounds[-1]['seconds']}", flush=True)
    finally:
        hosts.stop()
        shutil.rmtree(shared, ignore_errors=True)

    summary: dict[str, dict[str, float]] = {}
    for mode in MODES:
        mine = [r for r in rounds if r["mode"] == mode]
        figures = {s: statistics.median(r["seconds"][s] for r in mine) for s in STEPS}
        figures["connect_and_call"] = statistics.median(
            r["seconds"]["connect"] + r["seconds"]["call"] for r in mine
        )
        figures["rss_growth_mib"] = max(r["rss_growth_mib"] for r in mine)
        figures["fds_connected"] = max(r["fds_connected"] for r in mine)
        figures["fds_growth"] = max(r["fds_growth"] for r in mine)
        figures["max_threads"] = max(r["max_threads"] for r in mine)
        figures["relays_rss_mib"] = max(r["relays_rss_mib"] for r in mine)
        summary[mode] = figures
    print(f"{args.hosts} SSH hosts (loopback sshds), {args.relays} relays, {args.repeats} "
          f"repeats, medians (memory, fds, threads: the most seen); "
          f"{os.cpu_count()} CPUs")  # fmt: skip
    print(f"{'':>22} {'direct':>10} {'relayed':>10}")
    rows = [*STEPS, "connect_and_call", "rss_growth_mib", "fds_connected", "fds_growth",
            "max_threads",
            "relays_rss_mib"]  # fmt: skip
    for row in rows:
        print(f"{row:>22} {summary['direct'][row]:>10.3f} {summary['relayed'][row]:>10.3f}")
    ratio = summary["relayed"]["rss_growth_mib"] / summary["direct"]["rss_growth_mib"]
    print(f"controller RSS growth, relayed / direct: {ratio:.2f}")
    out = write_timestamped(
        args.out,
        "bench_relays",
        {
            "hosts": args.hosts,
            "relays": args.relays,
            "put_mib": args.put_mib,
            "repeats": args.repeats,
            "summary": summary,
            "rounds": rounds,
        },
    )
    print(f"figures: {out}")


if __name__ == "__main__":
    main()
