"""Remote output floods against what shows them: the live view, and a kernel's cell.

1. The real ``LiveView`` (html mode, as in a kernel) takes a ``\\r`` progress bar of N MiB
   from one Local host, never a newline. Measured: wall time, the broker thread's CPU time
   (from /proc), the controller's peak traced memory (tracemalloc), the bytes of the grid.
2. A real ipykernel runs ``tunnel.call`` of a function printing 100,000 lines (and a group
   of 4 doing the same). Measured: seconds to the reply with the kernel idle, and the iopub
   messages the cell produced.

Run::

    python bench/bench_output_flood.py [--mib 64 512]

It prints a table and writes the figures as JSON to bench/results/.
"""

from __future__ import annotations

import argparse
import collections
import os
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "tests" / "notebook"))
os.environ.setdefault("JUPYTER_PLATFORM_DIRS", "1")

from _common import write_results  # noqa: E402

from chopsticks_nb._broker import BROKER  # noqa: E402
from chopsticks_nb.group import Group  # noqa: E402
from chopsticks_nb.notebook.live import LiveView  # noqa: E402
from chopsticks_nb.tunnel import Local  # noqa: E402


def thread_cpu(native_id: int) -> float:
    """CPU seconds (user + system) of one thread of this process."""
    fields = Path(f"/proc/self/task/{native_id}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def live_view_flood(mib: int) -> dict[str, Any]:
    import contextlib

    import output_funcs
    from IPython.core.interactiveshell import InteractiveShell
    from traitlets.config import Config

    config = Config()
    config.HistoryManager.hist_file = ":memory:"
    InteractiveShell.instance(config=config)  # displays work (printed: sent to /dev/null)
    group = Group([Local("bar")])
    try:
        group.connect().raise_failures()
        broker = BROKER._thread
        assert broker is not None and broker.native_id is not None
        cpu0 = thread_cpu(broker.native_id)
        view = LiveView(group, mode="html", interval=0.1)
        tracemalloc.start()
        start = time.perf_counter()
        with open(os.devnull, "w") as sink, contextlib.redirect_stdout(sink), view:
            sent = group.run(
                output_funcs.progress_bar, (mib * 2**20,), output=view.output, quiet=True
            )["bar"]
            with view._lock:
                grid = view._grid_bundle()["text/html"]
        wall = time.perf_counter() - start
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        cpu = thread_cpu(broker.native_id) - cpu0
    finally:
        group.close()
    return {
        "mib": mib,
        "sent": sent,
        "wall_s": round(wall, 3),
        "broker_cpu_s": round(cpu, 3),
        "peak_mib": round(peak / 2**20, 2),
        "grid_bytes": len(grid),
    }


def kernel_floods() -> dict[str, Any]:
    from nbhelpers import start_kernel, stop_kernel, write_kernelspec

    base = Path(tempfile.mkdtemp(prefix="bench-flood-"))
    write_kernelspec(base / "jupyter")
    os.environ["JUPYTER_PATH"] = str(base / "jupyter")
    os.environ["IPYTHONDIR"] = str(base / "ipython")
    kernel = start_kernel(base)
    figures: dict[str, Any] = {}
    try:
        kernel.execute(
            f"import sys\nsys.path.insert(0, {str(ROOT / 'tests')!r})\nimport output_funcs\n"
            "%load_ext chopsticks_nb\nfrom chopsticks_nb import Group, Local\n"
            "t = Local('t')\ngroup = Group([Local(f'h{i}') for i in range(4)])\n"
            "t.connect()\ngroup.connect()"
        )
        for name, code in {
            "tunnel.call, 100,000 lines": "t.call(output_funcs.lines, 100_000)",
            "group.call on 4 hosts, 100,000 lines each": "group.call(output_funcs.lines, 100_000)",
            "local print loop, 100,000 lines (for comparison)": (
                "for i in range(100_000):\n    print('line', i)"
            ),
        }.items():
            run = kernel.execute(code, timeout=600)
            counts = collections.Counter(m["msg_type"] for m in run.messages)
            figures[name] = {
                "seconds": round(run.seconds, 2),
                "iopub_messages": sum(counts.values()),
                "by_type": dict(counts),
            }
    finally:
        stop_kernel(kernel)
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--mib", type=int, nargs="+", default=[64, 512])
    args = parser.parse_args()
    results: dict[str, Any] = {"live_view": [live_view_flood(mib) for mib in args.mib]}
    print("LiveView, one host drawing a \\r progress bar (no newline):")
    print(f"{'MiB':>6} {'wall s':>8} {'broker CPU s':>13} {'peak MiB':>9} {'grid bytes':>11}")
    for row in results["live_view"]:
        print(
            f"{row['mib']:>6} {row['wall_s']:>8} {row['broker_cpu_s']:>13} "
            f"{row['peak_mib']:>9} {row['grid_bytes']:>11}"
        )
    results["kernel"] = kernel_floods()
    print("\nIn a real kernel (reply and idle; every iopub message of the cell):")
    for name, row in results["kernel"].items():
        print(f"  {name}: {row['seconds']} s, {row['iopub_messages']} messages {row['by_type']}")
    write_results("output_flood", results)


if __name__ == "__main__":
    main()
