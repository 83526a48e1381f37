"""How fast a 10,000-host GroupResult is grouped and shown (target: <= 200 ms for both views).

The results are built here, value by value as the codec would hand them over (a fresh object
per host, never one shared object), in a few shapes: mostly one answer with outliers and
failures, a small dict of facts per host, a config file per host, every answer different
(nothing to group: the per-host views), each with the hosts' printed output kept. For each
shape it times, as medians with their spread over the repeats:

* ``groups``: ``result.groups()``;
* ``text`` and ``html``: ``repr(result)`` and ``result._repr_html_()``, each grouping anew;
* ``shown``: both, as a notebook asks for both when it shows a result (the figure to hold
  to the target); ``markdown`` and ``diff`` apart.

Usage: python bench/bench_results.py [--hosts 10000] [--repeats 9]
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from _common import median_spread, write_timestamped  # noqa: E402

from chopsticks_nb import render  # noqa: E402
from chopsticks_nb._capture import OutputCapture  # noqa: E402
from chopsticks_nb.errors import ConnectError, RemoteException  # noqa: E402
from chopsticks_nb.result import ErrorResult, GroupResult  # noqa: E402

TARGET_MS = 200.0
CONFIG = "".join(f"option_{i} = value {i}\n" for i in range(60))  # about 1.3 KB


def names(count: int) -> list[str]:
    return [f"web{i:05d}" for i in range(1, count + 1)]


def failure(host: str, rng: random.Random) -> ErrorResult:
    if rng.random() < 0.5:
        return ErrorResult.from_exception(
            ConnectError(f"ssh: connect to host {host}: refused", host)
        )
    tb = "Traceback (most recent call last):\n  File \"<remote-cell>\", line 1\nKeyError: 'x'\n"
    return ErrorResult.from_exception(RemoteException("'x'", host, "KeyError", tb))


def outliers(hosts: list[str], rng: random.Random) -> dict[str, Any]:
    """'ok' almost everywhere; 0.5% answer something else, 0.1% fail."""
    values: dict[str, Any] = {}
    for host in hosts:
        roll = rng.random()
        if roll < 0.001:
            values[host] = failure(host, rng)
        elif roll < 0.006:
            values[host] = "".join(["restart", "ed"])  # a fresh str, as decoded
        else:
            values[host] = "".join(["o", "k"])
    return values


def facts(hosts: list[str], rng: random.Random) -> dict[str, Any]:
    """A dict of 12 facts per host; 1% run another kernel."""
    values: dict[str, Any] = {}
    for host in hosts:
        values[host] = {
            "os": "debian",
            "release": "12",
            "kernel": "6.1.0-18" if rng.random() > 0.01 else "5.10.0-28",
            "python": "3.11.2",
            "cpus": 8,
            "memory_gb": 31.3,
            "arch": "x86_64",
            "virtual": True,
            "timezone": "UTC",
            "selinux": None,
            "disks": 2,
            "swap_gb": 0.0,
        }
    return values


def configs(hosts: list[str], rng: random.Random) -> dict[str, Any]:
    """A config file per host (1.3 KB); 2% have one line changed."""
    other = CONFIG.replace("option_7 = value 7", "option_7 = value 70")
    # encode/decode: a fresh string per host, as the codec makes (its hash not yet computed)
    return {host: (other if rng.random() < 0.02 else CONFIG).encode().decode() for host in hosts}


def distinct(hosts: list[str], rng: random.Random) -> dict[str, Any]:
    """Nothing repeats: each host names itself (the per-host views)."""
    return {
        host: {"hostname": host, "load": rng.random(), "pid": rng.randrange(1 << 22)}
        for host in hosts
    }


SHAPES: dict[str, Callable[[list[str], random.Random], dict[str, Any]]] = {
    "one answer, 0.5% others, 0.1% failed": outliers,
    "12 facts per host, 1% differ": facts,
    "a 1.3 KB config per host, 2% differ": configs,
    "every answer different": distinct,
}


def build(shape: str, count: int) -> GroupResult:
    rng = random.Random(18)
    hosts = names(count)
    values = SHAPES[shape](hosts, rng)
    capture = OutputCapture()
    for host in hosts:  # three lines each; one host in a hundred says more
        handler = capture.handler(host, lambda stream, text: None)
        handler("stdout", "checking\nchecked\n")
        handler("stderr", "warning: slow disk\n" if rng.random() < 0.01 else "done\n")
    timings = {host: rng.uniform(0.01, 0.4) for host in hosts}
    return GroupResult(values, timings=timings, elapsed=0.5, outputs=capture.close())


def timed(action: Callable[[], object], repeats: int, cpu: list[float]) -> list[float]:
    """Wall milliseconds per run (CPU milliseconds appended to ``cpu``), each run starting
    cold: the folded host lists that a result's views share are forgotten first."""
    samples = []
    for _ in range(repeats):
        render._fold.cache_clear()
        start, start_cpu = time.perf_counter(), time.process_time()
        action()
        samples.append((time.perf_counter() - start) * 1000)
        cpu.append((time.process_time() - start_cpu) * 1000)
    return samples


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hosts", type=int, default=10_000)
    parser.add_argument("--repeats", type=int, default=9)
    args = parser.parse_args()
    figures: dict[str, Any] = {"hosts": args.hosts, "target_ms": TARGET_MS, "shapes": {}}
    print(
        f"{args.hosts} hosts; medians in ms (min-max); 'shown' = text + html, target {TARGET_MS:g}"
    )
    print(
        f"{'shape':40} {'groups':>7} {'text':>7} {'html':>7} {'shown':>15} {'shown CPU':>9}"
        f" {'markdown':>9} {'diff':>7} {'html KB':>8} groups"
    )
    for shape in SHAPES:
        result = build(shape, args.hosts)
        actions: dict[str, Callable[[], object]] = {
            "groups": result.groups,
            "text": lambda result=result: repr(result),
            "html": result._repr_html_,
            "shown": lambda result=result: (repr(result), result._repr_html_()),
            "markdown": result.to_markdown,
            "diff": lambda result=result: result.diff().text,
        }
        cpu: dict[str, list[float]] = {name: [] for name in actions}
        runs = {name: timed(action, args.repeats, cpu[name]) for name, action in actions.items()}
        stats = {name: median_spread(samples) for name, samples in runs.items()}
        size = len(result._repr_html_().encode()) / 1024
        count = len(result.groups())
        med = {name: statistics.median(samples) for name, samples in runs.items()}
        shown = f"{med['shown']:.0f} ({stats['shown']['min']:.0f}-{stats['shown']['max']:.0f})"
        shown_cpu = statistics.median(cpu["shown"])
        print(
            f"{shape:40} {med['groups']:7.1f} {med['text']:7.1f} {med['html']:7.1f} {shown:>15}"
            f" {shown_cpu:9.0f} {med['markdown']:9.1f} {med['diff']:7.1f} {size:8.0f} {count}"
        )
        figures["shapes"][shape] = {
            "ms": stats,
            "cpu_ms": {name: median_spread(samples) for name, samples in cpu.items()},
            "html_kb": size,
            "groups": count,
        }
    path = write_timestamped(ROOT / "bench" / "results", "bench_results", figures)
    print(f"raw figures: {path.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
