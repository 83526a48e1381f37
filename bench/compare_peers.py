"""Compare chopsticks_nb in bench_peers runs of two versions of the code, run interleaved.

Each argument is ``LABEL=RUN.json[,RUN.json...]``: the JSON files that ``bench_peers.py --out``
wrote for one version (run them alternately, before, after, before, after..., so that a noisy
spell of this shared machine hits both). For every measure it prints chopsticks_nb's median
over the runs of each version, as a time (or a rate for transfers) and as a ratio to the floor
measured in the same run (the ratio cancels most of the machine's drift), and the change of
the last version against the first. Usage::

    python bench/compare_peers.py before=a1.json,a2.json after=b1.json,b2.json
"""

from __future__ import annotations

import json
import statistics
import sys
from collections.abc import Iterator
from typing import Any

REFERENCE = "chopsticks_nb"
RATES = ("put", "fetch")  # MB/s: higher is better


def measures(run: dict[str, Any]) -> Iterator[tuple[str, float, float]]:
    """(name, chopsticks_nb's median, the floor's median) for every measure of one run."""
    for section, found in run["sections"].items():
        for key, value in found.items():
            if key == "d_group":
                for n, contenders in value.items():
                    yield f"{section} (d) N={n}", *_pair(contenders)
            elif key == "e_transfer":
                for way in RATES:
                    yield f"{section} (e) {way} MB/s", *_pair(value[way])
            else:
                yield f"{section} ({key[0]}) {key[2:]}", *_pair(value)


def _pair(contenders: dict[str, Any]) -> tuple[float, float]:
    return contenders[REFERENCE]["median"], contenders["floor"]["median"]


def summarise(paths: list[str]) -> dict[str, tuple[float, float]]:
    """Per measure: the median over runs of chopsticks_nb's value and of its ratio to the floor."""
    values: dict[str, list[tuple[float, float]]] = {}
    for path in paths:
        with open(path) as f:
            for name, ours, floor in measures(json.load(f)):
                values.setdefault(name, []).append((ours, ours / floor))
    return {
        name: (statistics.median(v for v, _ in pairs), statistics.median(r for _, r in pairs))
        for name, pairs in values.items()
    }


def main(args: list[str]) -> None:
    versions = [
        (label, summarise(files.split(","))) for label, files in (a.split("=", 1) for a in args)
    ]
    (first, base), (last, new) = versions[0], versions[-1]
    head = " | ".join(f"{label} | x floor" for label, _ in versions)
    print(f"| measure | {head} | {last} vs {first} (x floor) |")
    print("| --- |" + " ---: | ---: |" * len(versions) + " ---: |")
    for name in base:
        cells = " | ".join(f"{_show(name, s[name][0])} | {s[name][1]:.2f}" for _, s in versions)
        change = new[name][1] / base[name][1] - 1
        if name.endswith("MB/s"):
            change = -change  # a higher rate is better: report a drop as a slowdown
        print(f"| {name} | {cells} | {change:+.0%} {'slower' if change > 0 else 'faster'} |")


def _show(name: str, value: float) -> str:
    if name.endswith("MB/s"):
        return f"{value:.0f}"
    return f"{value * 1e6:.1f} us" if value < 1e-3 else f"{value * 1e3:.1f} ms"


if __name__ == "__main__":
    main(sys.argv[1:])
