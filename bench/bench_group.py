"""Group of N Local hosts: connect + one trivial call, against the floor of N bare interpreters.

For each N, each repeat measures, back to back:

* floor: N ``python3 -c pass`` processes (the interpreter Local tunnels run) spawned at once and
  waited for together: what starting N interpreters costs on this machine, with nothing else;
* group: ``Group([Local(...) x N]).call(os.getpid)`` on fresh tunnels: spawn, bootstrap,
  handshake and one call on every host (closing is timed apart, not included).

The figure of merit is median(group) / median(floor). Run::

    python bench/bench_group.py [--sizes 1 8 32 64] [--repeats 7]

It prints a table and writes the raw timings as JSON to bench/results/.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from _common import bare_starts, write_timestamped  # noqa: E402

from chopsticks_nb.group import Group  # noqa: E402
from chopsticks_nb.tunnel import Local  # noqa: E402

TARGET_N = 32
TARGET_RATIO = 1.6


def group_once(n: int) -> tuple[float, float]:
    group = Group([Local(f"bench{i}") for i in range(n)])
    start = time.perf_counter()
    result = group.call(os.getpid)
    elapsed = time.perf_counter() - start
    failed = dict(result.failures())
    close_start = time.perf_counter()
    group.close()
    closing = time.perf_counter() - close_start
    if failed:
        raise SystemExit(f"hosts failed during the benchmark: {failed}")
    return elapsed, closing


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1, 8, 32, 64])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results")
    args = parser.parse_args()

    python = Local.python3
    group_once(2)  # warm up: imports, page cache
    rows = []
    for n in args.sizes:
        floors, groups, closes = [], [], []
        for _ in range(args.repeats):
            floors.append(bare_starts(n, python))
            elapsed, closing = group_once(n)
            groups.append(elapsed)
            closes.append(closing)
        floor, group = statistics.median(floors), statistics.median(groups)
        rows.append(
            {
                "n": n,
                "floor_s": floors,
                "group_s": groups,
                "close_s": closes,
                "floor_median_s": floor,
                "group_median_s": group,
                "close_median_s": statistics.median(closes),
                "ratio": group / floor,
            }
        )

    print(
        f"Group(Local x N): connect + one call vs N bare `{Path(python).name} -c pass` "
        f"started at once ({args.repeats} repeats, medians; {os.cpu_count()} CPUs)"
    )
    print(
        f"{'N':>4} {'floor ms':>10} {'group ms':>10} {'ratio':>7} {'per host ms':>12} "
        f"{'close ms':>9}"
    )
    for row in rows:
        print(
            f"{row['n']:>4} {row['floor_median_s'] * 1e3:>10.1f} "
            f"{row['group_median_s'] * 1e3:>10.1f} {row['ratio']:>7.2f} "
            f"{row['group_median_s'] * 1e3 / row['n']:>12.2f} "
            f"{row['close_median_s'] * 1e3:>9.1f}"
        )
    target = next((r for r in rows if r["n"] == TARGET_N), None)
    if target is not None:
        verdict = "meets" if target["ratio"] <= TARGET_RATIO else "MISSES"
        print(
            f"N={TARGET_N}: {target['ratio']:.2f}x the floor ({verdict} the {TARGET_RATIO}x target)"
        )

    out = write_timestamped(
        args.out, "bench_group", {"interpreter": python, "repeats": args.repeats, "rows": rows}
    )
    print(f"raw timings: {out}")


if __name__ == "__main__":
    main()
