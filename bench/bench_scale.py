"""Scale: one group of N real SSH hosts (default 64): connect, call, put a 10 MiB file, close.

The hosts are OpenSSH sshds on loopback addresses 127.0.0.64.. (16 addresses per sshd, the most
one sshd accepts), logged into as the tests' non-root user, exactly as the suite's scale test
does (tests/reliability/many_hosts.py). Each repeat uses a fresh group and measures, in turn:

* connect: ``Group.connect()`` on N new tunnels (ssh handshake, bootstrap, agent handshake);
* call: ``Group.call(os.getpid)`` (the first call, it imports nothing), then a second one;
* put: ``Group.put`` of one 10 MiB file to the same path on every host (SHA-1 checked);
* close: ``Group.close()`` (every agent and ssh client ended and reaped).

Controller memory is this process's RSS, sampled every 5 ms (peak, and growth over the start
of the repeat); threads are counted while the operations run. Needs root and openssh-server.
Run::

    .venv/bin/python bench/bench_scale.py [--hosts 64] [--repeats 3] [--put-mib 10]

It prints a table and writes the figures as JSON to bench/results/bench_scale-<time>.json.
"""

from __future__ import annotations

import argparse
import os
import resource
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
from reliability.probes import watch_rss  # noqa: E402

from chopsticks_nb.group import Group  # noqa: E402
from chopsticks_nb.tunnel import SSHTunnel  # noqa: E402

STEPS = ("connect", "call", "call_again", "put", "close")


def one_round(hosts: ManyHosts, source: Path, target: str) -> dict[str, Any]:
    group = Group([SSHTunnel(n, ssh_config=str(hosts.config_path)) for n in hosts.names])
    times: dict[str, float] = {}
    threads = 0

    def step(name: str, operation: Any) -> Any:
        nonlocal threads
        start = time.perf_counter()
        result = operation()
        times[name] = time.perf_counter() - start
        threads = max(threads, threading.active_count())
        failures = dict(result.failures()) if hasattr(result, "failures") else {}
        if failures:
            raise SystemExit(f"{name}: {len(failures)} hosts failed: {failures}")
        return result

    with watch_rss() as peak:
        try:
            step("connect", group.connect)
            step("call", lambda: group.call(os.getpid))
            step("call_again", lambda: group.call(os.getpid))
            put = step("put", lambda: group.put(str(source), target))
        finally:
            step("close", group.close)
    if len({info["sha1sum"] for info in put.values()}) != 1:
        raise SystemExit("put: checksums differ")
    return {
        "seconds": times,
        "total_s": sum(times.values()),
        "rss_start_mib": peak.start,
        "rss_peak_mib": peak.peak,
        "rss_growth_mib": peak.growth,
        "max_threads": threads,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--hosts", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--put-mib", type=int, default=10)
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results")
    args = parser.parse_args()
    if os.geteuid() != 0 or not os.access("/usr/sbin/sshd", os.X_OK):
        raise SystemExit("bench_scale needs root and openssh-server (it starts sshds)")

    started = time.perf_counter()
    hosts = start_many_hosts(args.hosts)
    sshd_start = time.perf_counter() - started
    shared = Path(tempfile.mkdtemp(prefix="chopsticks-nb-bench-scale-"))
    shared.chmod(0o777)
    try:
        source = shared / "source"
        source.write_bytes(os.urandom(args.put_mib * 2**20))
        rounds = [one_round(hosts, source, str(shared / "copy")) for _ in range(args.repeats)]
    finally:
        hosts.stop()
        shutil.rmtree(shared, ignore_errors=True)

    medians = {s: statistics.median(r["seconds"][s] for r in rounds) for s in STEPS}
    total = statistics.median(r["total_s"] for r in rounds)
    growth = max(r["rss_growth_mib"] for r in rounds)
    peak = max(r["rss_peak_mib"] for r in rounds)
    maxrss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    threads = max(r["max_threads"] for r in rounds)
    print(f"{args.hosts} SSH hosts (loopback sshds), {args.repeats} repeats, medians; "
          f"{os.cpu_count()} CPUs")  # fmt: skip
    print(f"{'step':>11} {'median s':>9} {'min s':>7} {'max s':>7}")
    for s in STEPS:
        samples = [r["seconds"][s] for r in rounds]
        print(f"{s:>11} {medians[s]:>9.3f} {min(samples):>7.3f} {max(samples):>7.3f}")
    print(f"{'total':>11} {total:>9.3f}")
    print(f"put throughput: {args.hosts * args.put_mib / medians['put']:.0f} MiB/s in all")
    print(f"controller RSS: peak {peak:.0f} MiB (growth over a round's start <= {growth:.0f} MiB, "
          f"{growth / args.hosts:.2f} MiB per host); ru_maxrss {maxrss:.0f} MiB; "
          f"threads at most {threads} (main, one broker, the RSS sampler)")  # fmt: skip

    out = write_timestamped(
        args.out,
        "bench_scale",
        {
            "hosts": args.hosts,
            "put_mib": args.put_mib,
            "repeats": args.repeats,
            "sshd_start_s": sshd_start,
            "median_s": medians,
            "median_total_s": total,
            "rss_peak_mib": peak,
            "rss_growth_max_mib": growth,
            "ru_maxrss_mib": maxrss,
            "max_threads": threads,
            "rounds": rounds,
        },
    )
    print(f"figures: {out}")


if __name__ == "__main__":
    main()
