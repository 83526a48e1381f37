"""Other hosts' round trips while one hostile agent floods the controller with import requests.

Two honest ``Local`` hosts answer ``Group.run(os.getpid)`` (answers the I/O thread reads) and a
third ``tunnel.call(os.getpid)`` (an answer its caller reads), first alone, then while the
hostile agent of tests/security asks for modules that do not exist (``--names`` different
names, over and over, with up to 8192 requests unanswered) as fast as the controller answers.
docs/reliability.md ("Modules and resources") keeps the figures.

Usage: python bench/bench_request_flood.py [--names 500] [--seconds 5]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from _common import median_spread, write_results  # noqa: E402
from security.hostile import HostileTunnel  # noqa: E402

from chopsticks_nb.group import Group  # noqa: E402
from chopsticks_nb.tunnel import Local  # noqa: E402


def round_trips(group: Group, single: Local, seconds: float) -> dict[str, dict[str, float]]:
    """Alternate a group call and a single call for ``seconds``; their spreads in ms."""
    grouped: list[float] = []
    alone: list[float] = []
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        start = time.perf_counter()
        assert group.run(os.getpid, timeout=120).ok
        grouped.append((time.perf_counter() - start) * 1000)
        start = time.perf_counter()
        single.call(os.getpid)
        alone.append((time.perf_counter() - start) * 1000)
    return {"group_ms": median_spread(grouped), "single_ms": median_spread(alone)}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--names", type=int, default=500)
    parser.add_argument("--seconds", type=float, default=5.0)
    options = parser.parse_args()
    honest = Group([Local("honest1"), Local("honest2")])
    single = Local("honest3")
    flood = HostileTunnel("flood", "request_flood", names=options.names)
    try:
        honest.connect()
        single.call(os.getpid)
        figures: dict[str, object] = {"alone": round_trips(honest, single, options.seconds)}
        flood.submit(os.getpid)  # never answered: the flood starts
        server = flood._conn.modserver  # type: ignore[union-attr]
        while server.requests < 2000:
            time.sleep(0.01)
        before, start = server.requests, time.monotonic()
        figures["flooded"] = round_trips(honest, single, options.seconds)
        figures["flood_requests_per_s"] = (server.requests - before) / (time.monotonic() - start)
    finally:
        flood.close()
        honest.close()
        single.close()
    for name, values in figures.items():
        print(f"{name}: {values}")
    print("written to", write_results("request-flood", figures))


if __name__ == "__main__":
    main()
