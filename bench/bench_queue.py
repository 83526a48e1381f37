"""Queue against lock-step Group calls: 3 Local hosts x 10 tasks of uneven length.

The same work two ways, on connected tunnels:

* group: for each task index, one ``group.call`` in which every host sleeps its own duration
  for that task; each round waits for the slowest host, so it takes sum over tasks of the max;
* queue: every (host, task) queued on its host; each host runs its tasks back to back, so it
  takes about the max over hosts of the sum.

Durations are fixed pseudo-random values (seeded) from 20 to 300 ms. Run::

    python bench/bench_queue.py [--repeats 3] [--seed 4]

It prints a table and writes the raw timings as JSON to bench/results/.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
HOSTS = 3
TASKS = 10


def sleep_for(seconds_by_pid: dict[int, float]) -> float:
    """Runs remotely: sleep this agent's own duration (agents are told apart by pid)."""
    seconds = seconds_by_pid[os.getpid()]
    time.sleep(seconds)
    return seconds


def main() -> None:
    sys.path.insert(0, str(ROOT))
    import bench_queue  # this file, by its module name, so the agents can import sleep_for
    from _common import write_timestamped

    from chopsticks_nb.group import Group
    from chopsticks_nb.queue import Queue
    from chopsticks_nb.tunnel import Local

    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--seed", type=int, default=4)
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results")
    args = parser.parse_args()

    rng = random.Random(args.seed)
    durations = [[round(rng.uniform(0.02, 0.3), 3) for _ in range(TASKS)] for _ in range(HOSTS)]
    lockstep_ideal = sum(max(durations[h][t] for h in range(HOSTS)) for t in range(TASKS))
    queue_ideal = max(sum(row) for row in durations)

    group = Group([Local(f"q{h}") for h in range(HOSTS)])
    try:
        group.connect().raise_failures()
        pids = [tunnel.remote_info["pid"] for tunnel in group]
        group.call(bench_queue.sleep_for, dict.fromkeys(pids, 0.0)).raise_failures()  # warm up
        group_times, queue_times = [], []
        for _ in range(args.repeats):
            start = time.perf_counter()
            for t in range(TASKS):
                table = {pids[h]: durations[h][t] for h in range(HOSTS)}
                group.call(bench_queue.sleep_for, table).raise_failures()
            group_times.append(time.perf_counter() - start)

            queue = Queue()
            results = [
                queue.call(tunnel, time.sleep, durations[h][t])
                for t in range(TASKS)
                for h, tunnel in enumerate(group)
            ]
            start = time.perf_counter()
            queue.run()
            queue_times.append(time.perf_counter() - start)
            bad = [r.value for r in results if r.value is not None]
            if bad:
                raise SystemExit(f"queued tasks failed: {bad[:3]}")
    finally:
        group.close()

    group_s, queue_s = statistics.median(group_times), statistics.median(queue_times)
    print(
        f"{HOSTS} Local hosts x {TASKS} tasks of 20-300 ms (seed {args.seed}; "
        f"{args.repeats} repeats, medians)"
    )
    print(f"{'approach':<22} {'measured s':>11} {'ideal s':>8}")
    print(f"{'Group, lock-step':<22} {group_s:>11.3f} {lockstep_ideal:>8.3f}")
    print(f"{'Queue':<22} {queue_s:>11.3f} {queue_ideal:>8.3f}")
    print(f"Queue speed-up: {group_s / queue_s:.2f}x (ideal {lockstep_ideal / queue_ideal:.2f}x)")

    out = write_timestamped(
        args.out,
        "bench_queue",
        {
            "durations_s": durations,
            "group_s": group_times,
            "queue_s": queue_times,
            "group_ideal_s": lockstep_ideal,
            "queue_ideal_s": queue_ideal,
            "speedup": group_s / queue_s,
        },
    )
    print(f"raw timings: {out}")


if __name__ == "__main__":
    main()
