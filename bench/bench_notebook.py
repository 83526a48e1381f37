"""Overhead of ``%%remote`` over the equivalent ``Group.call``, in a real kernel, same run.

A real ipykernel (this interpreter) gets 16 Local hosts, connected and warmed up. Then, in
alternation so both see the same machine state, the client times (execute request -> reply
and the kernel idle again, with every display message received):

* call:   ``group.call(value)``, ``value`` a function defined in the notebook (shipped as
          source), the GroupResult shown as the cell's output (HTML table + text);
* remote: ``%%remote group`` with the same body: parsing, name lookup, the live view (made,
          and settled without being shown: a fast cell ends before it would show), the same
          table;
* quiet:  ``%%remote group --quiet`` (no live view).

The figure of merit is median(remote) - median(call); the target is <= 30 ms. Run::

    python bench/bench_notebook.py [--hosts 16] [--repeats 30]

It prints a table and writes the raw timings as JSON to bench/results/.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("JUPYTER_PLATFORM_DIRS", "1")

from _common import write_results  # noqa: E402
from jupyter_client import KernelManager  # noqa: E402

TARGET_MS = 30.0

SETUP = """
%load_ext chopsticks_nb
from chopsticks_nb import Group, Local
group = Group([Local(f"bench{{i}}") for i in range({hosts})])
group.connect().raise_failures()

def value():
    return 6 * 7
"""

CELLS = {
    "call": "group.call(value)",
    "remote": "%%remote group\n6 * 7",
    "quiet": "%%remote group --quiet\n6 * 7",
}


def execute(client: Any, code: str, timeout: float = 60) -> float:
    """Seconds from the request to the reply with the kernel idle; raises if the cell failed."""
    start = time.perf_counter()
    msg_id = client.execute(code)
    idle = replied = False
    while not (idle and replied):
        if not idle:
            msg = client.get_iopub_msg(timeout=timeout)
            if msg["parent_header"].get("msg_id") != msg_id:
                continue
            if msg["msg_type"] == "error":
                raise RuntimeError(f"cell failed: {msg['content']['evalue']}")
            idle = msg["msg_type"] == "status" and msg["content"]["execution_state"] == "idle"
        else:
            reply = client.get_shell_msg(timeout=timeout)
            if reply["parent_header"].get("msg_id") == msg_id:
                replied = True
                if reply["content"]["status"] != "ok":
                    raise RuntimeError(f"cell failed: {reply['content']}")
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--hosts", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=30)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="chopsticks-bench-") as tmp:
        spec = Path(tmp, "kernels", "python3")
        spec.mkdir(parents=True)
        argv = [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"]
        (spec / "kernel.json").write_text(
            json.dumps({"argv": argv, "language": "python", "display_name": "bench"})
        )
        os.environ["JUPYTER_PATH"] = tmp
        os.environ["IPYTHONDIR"] = str(Path(tmp, "ipython"))
        manager = KernelManager(kernel_name="python3")
        manager.start_kernel(cwd=tmp)
        client = manager.client()
        client.start_channels()
        try:
            client.wait_for_ready(timeout=60)
            execute(client, SETUP.format(hosts=args.hosts))
            for code in CELLS.values():  # warm up: imports, widget classes, first pickles
                for _ in range(3):
                    execute(client, code)
            samples: dict[str, list[float]] = {name: [] for name in CELLS}
            for _ in range(args.repeats):
                for name, code in CELLS.items():
                    samples[name].append(execute(client, code))
            execute(client, "group.close()")
        finally:
            client.stop_channels()
            manager.shutdown_kernel(now=False)

    medians = {name: statistics.median(times) * 1000 for name, times in samples.items()}
    overhead = medians["remote"] - medians["call"]
    print(f"{args.hosts} Local hosts, {args.repeats} rounds, median ms per cell (client side):")
    for name, code in CELLS.items():
        low = min(samples[name]) * 1000
        print(f"  {name:<7} {medians[name]:7.1f}  (min {low:6.1f})   {code.splitlines()[0]}")
    quiet = medians["quiet"] - medians["call"]
    verdict = "OK" if overhead <= TARGET_MS else "OVER TARGET"
    print(
        f"%%remote overhead over Group.call: {overhead:+.1f} ms (target <= {TARGET_MS:.0f} ms:"
        f" {verdict}); --quiet: {quiet:+.1f} ms"
    )
    path = write_results(
        "bench_notebook",
        {
            "hosts": args.hosts,
            "repeats": args.repeats,
            "median_ms": medians,
            "overhead_ms": overhead,
            "quiet_overhead_ms": quiet,
            "target_ms": TARGET_MS,
            "samples_s": samples,
        },
    )
    print(f"raw timings: {path}")


if __name__ == "__main__":
    main()
