"""Slurm job steps as tunnels: how long a step takes to start, and to notice a cancelled job.

Runs against the tests' real two-node cluster (tests/fixtures/slurm.py: slurmctld, slurmd node1
and node2 on this machine, munge), started for the run and stopped after; needs root and
``slurm-wlm``/``munge``. Measures, each over ``--repeats`` trials:

* srun floor: ``srun --jobid J --nodelist node1 --overlap /usr/bin/python3 -c pass``, start to exit;
* step start: ``Srun("node1", job=J).connect()`` on a new tunnel (srun, bootstrap, handshake);
* group of 2: ``Group(job_tunnels(J))``: connect and one call on both nodes;
* call: one ``call(os.getpid)`` round trip through a connected step;
* allocate / release: ``Allocation.create(2)`` until granted, then ``release()``;
* cancel noticed: a call sleeping on each of the 2 nodes; from just before ``scancel J`` until
  both calls have failed with ConnectionLost.

Run::

    .venv/bin/python bench/bench_slurm.py [--repeats 20]

It prints a table and writes the figures as JSON to bench/results/bench_slurm-<time>.json.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from _common import RESULTS, median_spread, write_timestamped  # noqa: E402

from chopsticks_nb.errors import ConnectionLost  # noqa: E402
from chopsticks_nb.group import Group  # noqa: E402
from chopsticks_nb.slurm import Allocation, Srun, job_tunnels  # noqa: E402
from fixtures.slurm import SlurmCluster, start_cluster  # noqa: E402

PYTHON = "/usr/bin/python3"


def trials(repeats: int, trial: Callable[[], float]) -> dict[str, float]:
    return median_spread([trial() for _ in range(repeats)])


def srun_floor(job: str) -> float:
    argv = ["srun", f"--jobid={job}", "--nodelist=node1", "-N1", "-n1", "--overlap", "--quiet"]
    start = time.perf_counter()
    subprocess.run([*argv, PYTHON, "-c", "pass"], check=True)
    return time.perf_counter() - start


def step_start(job: str) -> float:
    tunnel = Srun("node1", job=job, python3=PYTHON)
    start = time.perf_counter()
    tunnel.connect()
    elapsed = time.perf_counter() - start
    tunnel.close()
    return elapsed


def group_connect_call(job: str) -> float:
    start = time.perf_counter()
    group = Group(job_tunnels(job, python3=PYTHON))
    group.call(os.getpid).raise_failures()
    elapsed = time.perf_counter() - start
    group.close()
    return elapsed


def call_round_trips(job: str, repeats: int) -> dict[str, float]:
    with Srun("node1", job=job, python3=PYTHON) as tunnel:
        tunnel.call(os.getpid)
        samples = []
        for _ in range(repeats):
            start = time.perf_counter()
            tunnel.call(os.getpid)
            samples.append(time.perf_counter() - start)
    return median_spread(samples)


def allocate_release() -> tuple[float, float]:
    start = time.perf_counter()
    allocation = Allocation.create(2)
    granted = time.perf_counter() - start
    start = time.perf_counter()
    allocation.release()
    return granted, time.perf_counter() - start


def cancel_noticed(cluster: SlurmCluster) -> float:
    job = cluster.allocate(2)
    # Quiet: srun's messages about the cancelled steps would fill the terminal.
    group = Group(job_tunnels(job, python3=PYTHON, output=lambda stream, text: None))
    try:
        group.connect().raise_failures()
        futures = [tunnel.submit(time.sleep, 60) for tunnel in group]
        time.sleep(0.2)  # the calls are running
        start = time.perf_counter()
        cluster.command("scancel", job)
        for future in futures:
            try:
                future.result(30)
            except ConnectionLost:
                pass
            else:
                raise AssertionError("the call outlived its job")
        return time.perf_counter() - start
    finally:
        group.close()
        cluster.cancel(job)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=20)
    args = parser.parse_args()
    directory = Path(tempfile.mkdtemp(prefix="chopsticks-nb-bench-slurm-"))
    cluster = start_cluster(directory)
    os.environ["SLURM_CONF"] = str(cluster.conf)
    figures: dict[str, Any] = {}
    try:
        job = cluster.allocate(2)
        figures["srun_floor"] = trials(args.repeats, lambda: srun_floor(job))
        figures["step_start"] = trials(args.repeats, lambda: step_start(job))
        figures["group_of_2_connect_call"] = trials(args.repeats, lambda: group_connect_call(job))
        figures["call"] = call_round_trips(job, 20 * args.repeats)
        cluster.cancel(job)
        pairs = [allocate_release() for _ in range(args.repeats)]
        figures["allocate"] = median_spread([granted for granted, _ in pairs])
        figures["release"] = median_spread([released for _, released in pairs])
        figures["cancel_noticed"] = trials(args.repeats, lambda: cancel_noticed(cluster))
    finally:
        cluster.stop()
        shutil.rmtree(directory, ignore_errors=True)
    print(f"{'measure':<26}{'median':>10}{'min':>10}{'max':>10}   (ms)")
    for name, spread in figures.items():
        cells = "".join(f"{spread[key] * 1000:>10.2f}" for key in ("median", "min", "max"))
        print(f"{name:<26}{cells}")
    path = write_timestamped(RESULTS, "bench_slurm", {"repeats": args.repeats, **figures})
    print(f"figures: {path}")


if __name__ == "__main__":
    main()
