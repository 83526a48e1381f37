"""Group of N Local hosts: connect + one call, against the floor of N bare interpreters.

For each N, each repeat measures, back to back (the order rotating from repeat to repeat):

* floor: N ``python3 -c pass`` processes (the interpreter Local tunnels run) spawned at once and
  waited for together: what starting N interpreters costs on this machine, with nothing else;
* group: ``Group([Local(...) x N]).call(os.getpid)`` on fresh tunnels: spawn, bootstrap,
  handshake and one call on every host (closing is timed apart, not included);
* user module: the same with a function of the user's own module (``--module-lines`` lines of
  functions and classes, importing only ``os`` and ``math``, in a directory on ``sys.path``
  and nowhere on the remote's): every host imports it from the controller first;
* floor with the module: N ``python3 -c "import MODULE"`` with the module on their path (its
  bytecode cached on disk): what the module's own import costs (its classes and functions
  made), as if it were installed on every host.

The figures of merit are median(group) / median(floor) and median(user module) /
median(floor) (issue #22: at most 1.3x at 32 and 128 hosts). Run::

    python bench/bench_group.py [--sizes 1 8 32 64 128] [--repeats 7] [--no-user-module]

It prints a table and writes the raw timings as JSON to bench/results/.
"""

from __future__ import annotations

import argparse
import importlib
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from _common import bare_starts, write_timestamped  # noqa: E402

from chopsticks_nb.group import Group  # noqa: E402
from chopsticks_nb.tunnel import Local  # noqa: E402

TARGET_N = 32
TARGET_RATIO = 1.6
#: Issue #22: a first call from the user's own module at most this many times the floor.
USER_MODULE_TARGET = 1.3
USER_MODULE = "bench_user_module"


def user_module_source(lines: int) -> str:
    """A plain user module of about ``lines`` lines: functions and small classes."""
    parts = [
        '"""A module of the user\'s own (written by bench/bench_group.py)."""\n',
        "import math\nimport os\n\n\n",
        "def work():\n    return os.getpid()\n\n\n",
    ]
    index = 0
    while sum(part.count("\n") for part in parts) < lines:
        parts.append(
            f"def helper_{index}(values, scale={index}):\n"
            f'    """Scale and sum ``values`` ({index})."""\n'
            "    total = 0.0\n"
            "    for value in values:\n"
            "        if value < 0:\n"
            "            continue\n"
            "        total += math.sqrt(value) * scale\n"
            "    return total\n\n\n"
            f"class Record_{index}:\n"
            f'    """A record ({index})."""\n\n'
            "    def __init__(self, name, values):\n"
            "        self.name = name\n"
            "        self.values = list(values)\n\n"
            "    def total(self):\n"
            f"        return helper_{index}(self.values)\n\n\n"
        )
        index += 1
    return "".join(parts)


def starts_importing(n: int, python: str, module: str, directory: str) -> float:
    """Seconds to start and reap ``n`` interpreters importing ``module`` from ``directory``."""
    env = dict(os.environ, PYTHONPATH=directory)
    start = time.perf_counter()
    command = [python, "-c", f"import {module}"]
    # A session each, as Local agents and bare_starts (see there: scheduler autogroups).
    procs = [subprocess.Popen(command, env=env, start_new_session=True) for _ in range(n)]
    for proc in procs:
        proc.wait()
    return time.perf_counter() - start


def timed_group(n: int, func: Callable[[], Any]) -> tuple[float, float]:
    group = Group([Local(f"bench{i}") for i in range(n)])
    start = time.perf_counter()
    result = group.call(func)
    elapsed = time.perf_counter() - start
    failed = dict(result.failures())
    close_start = time.perf_counter()
    group.close()
    closing = time.perf_counter() - close_start
    if failed:
        raise SystemExit(f"hosts failed during the benchmark: {failed}")
    return elapsed, closing


def group_once(n: int) -> tuple[float, float]:
    return timed_group(n, os.getpid)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1, 8, 32, 64])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--module-lines", type=int, default=200)
    parser.add_argument("--no-user-module", action="store_true")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results")
    args = parser.parse_args()

    python = Local.python3
    measures: dict[str, Callable[[int], float]] = {
        "floor": lambda n: bare_starts(n, python),
        "group": lambda n: group_once(n)[0],
    }
    with tempfile.TemporaryDirectory(prefix="chopsticks-nb-bench-") as tmp:
        if not args.no_user_module:
            Path(tmp, f"{USER_MODULE}.py").write_text(user_module_source(args.module_lines))
            sys.path.insert(0, tmp)
            work = importlib.import_module(USER_MODULE).work
            measures["user_module"] = lambda n: timed_group(n, work)[0]
            starts_importing(1, python, USER_MODULE, tmp)  # its bytecode cached on disk
            measures["floor_module"] = lambda n: starts_importing(n, python, USER_MODULE, tmp)
        group_once(2)  # warm up: imports, page cache
        if "user_module" in measures:
            measures["user_module"](2)
        rows = []
        for n in args.sizes:
            samples: dict[str, list[float]] = {name: [] for name in measures}
            names = list(measures)
            for repeat in range(args.repeats):
                shift = repeat % len(names)
                for name in names[shift:] + names[:shift]:
                    samples[name].append(measures[name](n))
            medians = {name: statistics.median(values) for name, values in samples.items()}
            rows.append(
                {
                    "n": n,
                    "samples_s": samples,
                    "median_s": medians,
                    "ratio": {
                        name: medians[name] / medians["floor"] for name in names if name != "floor"
                    },
                }
            )

    print(
        f"Group(Local x N): connect + one call vs N bare `{Path(python).name} -c pass` "
        f"started at once ({args.repeats} repeats, medians and min-max; {os.cpu_count()} CPUs)"
    )
    titles = {
        "floor": "floor ms",
        "group": "group ms",
        "user_module": "user module ms",
        "floor_module": "floor+module ms",
    }
    header = f"{'N':>4}"
    for name in measures:
        header += f" {titles[name]:>18}" + (f" {'ratio':>6}" if name != "floor" else "")
    print(header)
    for row in rows:
        cells = [f"{row['n']:>4}"]
        for name in measures:
            values = row["samples_s"][name]
            low, high = min(values) * 1e3, max(values) * 1e3
            text = f"{row['median_s'][name] * 1e3:.1f} ({low:.0f}-{high:.0f})"
            cells.append(f"{text:>18}")
            if name != "floor":
                cells.append(f"{row['ratio'][name]:>6.2f}")
        print(" ".join(cells))
    for row in rows:
        if row["n"] == TARGET_N:
            ratio = row["ratio"]["group"]
            verdict = "meets" if ratio <= TARGET_RATIO else "MISSES"
            print(f"N={TARGET_N}: group {ratio:.2f}x the floor ({verdict} the {TARGET_RATIO}x)")
        if "user_module" in row["ratio"] and row["n"] >= TARGET_N:
            ratio = row["ratio"]["user_module"]
            verdict = "meets" if ratio <= USER_MODULE_TARGET else "MISSES"
            print(
                f"N={row['n']}: user module {ratio:.2f}x the floor "
                f"({verdict} the {USER_MODULE_TARGET}x target)"
            )

    out = write_timestamped(
        args.out,
        "bench_group",
        {
            "interpreter": python,
            "repeats": args.repeats,
            "module_lines": None if args.no_user_module else args.module_lines,
            "rows": rows,
        },
    )
    print(f"raw timings: {out}")


if __name__ == "__main__":
    main()
