"""How fast host ranges fold and expand: 10,000 names of a few shapes (fold: well under 100 ms).

Usage: python bench/bench_hosts.py [--repeats N]
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from chopsticks_nb.hosts import expand, fold


def shapes() -> dict[str, list[str]]:
    rng = random.Random(20)
    one_range = expand("web[00001-10000]")
    rng.shuffle(one_range)
    return {
        "web[00001-10000], shuffled": one_range,
        "rack[1-10]-n[0001-1000]": expand("rack[1-10]-n[0001-1000]"),
        "10 prefixes x 1000, with gaps": [
            f"{prefix}{n}" for prefix in "abcdefghij" for n in range(0, 2000, 2)
        ],
        "random numbers in two fields": [
            f"h{rng.randrange(10**6)}.dc{rng.randrange(5)}" for _ in range(10_000)
        ],
    }


def timed(action: Callable[[], object], repeats: int) -> tuple[float, float]:
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        action()
        samples.append(time.perf_counter() - start)
    return statistics.median(samples) * 1000, max(samples) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=15)
    repeats = parser.parse_args().repeats
    print(f"{'names':34} {'count':>6} {'fold median':>12} {'max':>8}  folded")
    for label, names in shapes().items():
        median, worst = timed(lambda names=names: fold(names), repeats)
        folded = fold(names)
        shown = folded if len(folded) < 40 else f"{folded[:37]}..."
        print(f"{label:34} {len(names):6} {median:9.1f} ms {worst:5.1f} ms  {shown}")
    median, worst = timed(lambda: expand("rack[1-10]-n[0001-1000]"), repeats)
    print(f"{'expand rack[1-10]-n[0001-1000]':34} {10_000:6} {median:9.1f} ms {worst:5.1f} ms")


if __name__ == "__main__":
    main()
