"""close() of a group whose remotes do not exit when their stdin closes.

Such a remote (a hung host, a wrapper that keeps its session) is signalled after the close
timeout (5 s): closed one after the other, N of them took 5 s each. The remotes here are
tests/security/hostile_agent.py's "deaf" agents (they answer calls, ignore EOF, and exit on
SIGTERM), started through real tunnels.

Usage: python bench/bench_close.py [--sizes 1 8 32] [CHECKOUT]
CHECKOUT (default: this one) names the chopsticks_nb to measure, to compare an older one.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", type=int, nargs="+", default=[1, 8, 32])
    parser.add_argument("checkout", nargs="?", default=str(ROOT))
    options = parser.parse_args()
    sys.path[:0] = [options.checkout, str(ROOT / "tests")]
    from security.hostile import HostileTunnel

    from chopsticks_nb.group import Group

    figures = {}
    with tempfile.TemporaryDirectory() as tmp:
        for size in options.sizes:
            log = os.path.join(tmp, f"{size}.log")
            group = Group([HostileTunnel(f"deaf{n}", "deaf", log=log) for n in range(size)])
            assert group.call(os.getpid).ok
            start = time.perf_counter()
            group.close()
            figures[size] = round(time.perf_counter() - start, 2)
            print(f"close() of {size} remotes that ignore EOF: {figures[size]} s", flush=True)
    print(json.dumps({"checkout": options.checkout, "close_s": figures}))


if __name__ == "__main__":
    main()
