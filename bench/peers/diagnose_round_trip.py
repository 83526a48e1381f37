"""Where the time of a trivial round trip goes: thread handoffs, and CPU per call on each side.

Two parts, interleaved over several trials (the machine is shared: read the spread):

1. A model with no library: a length-prefixed 8-byte echo over a subprocess's pipes, with or
   without a thread handoff on each side. "controller thread": a reader thread reads the reply
   and completes a concurrent.futures.Future the caller waits on (chopsticks_nb's broker before
   callers read their own answers, execnet's receiver thread). "agent thread": the far side's
   reader thread passes each request through a queue.Queue to its main thread, which answers
   (chopsticks_nb's agent until its main thread read the requests itself, chopsticks' bubble).
2. Every contender's trivial call (the adapters of contenders.py, local subprocesses): wall
   time per call, and the CPU each side burns per call (this process's CPU time, the far
   process's from /proc), so that waiting (handoffs, wake-ups) and work (Python code) separate.

Usage: python bench/peers/diagnose_round_trip.py [--calls 2000] [--trials 5]
"""

from __future__ import annotations

import argparse
import concurrent.futures
import os
import statistics
import subprocess
import sys
import threading
import time
from collections import deque
from typing import Any, Callable

MODEL_SERVER = r"""
import os, queue, struct, sys, threading
threaded = sys.argv[1] == "thread"

def read_exact(n):
    data = b""
    while len(data) < n:
        chunk = os.read(0, n - len(data))
        if not chunk:
            return None
        data += chunk
    return data

def read_message():
    head = read_exact(4)
    return None if head is None else read_exact(struct.unpack(">I", head)[0])

def answer(message):
    os.write(1, struct.pack(">I", 8) + struct.pack(">q", len(message)))

if threaded:
    requests = queue.Queue()
    def reader():
        while True:
            message = read_message()
            requests.put(message)
            if message is None:
                return
    threading.Thread(target=reader, daemon=True).start()
    while True:
        message = requests.get()
        if message is None:
            break
        answer(message)
else:
    while True:
        message = read_message()
        if message is None:
            break
        answer(message)
"""


class ModelClient:
    def __init__(self, agent_thread: bool, controller_thread: bool) -> None:
        mode = "thread" if agent_thread else "direct"
        self.proc = subprocess.Popen(
            [sys.executable, "-c", MODEL_SERVER, mode],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            bufsize=0,
        )
        assert self.proc.stdin and self.proc.stdout
        self.w, self.r = self.proc.stdin.fileno(), self.proc.stdout.fileno()
        self.pending: deque[concurrent.futures.Future[int]] = deque()
        self.reader = None
        if controller_thread:
            self.reader = threading.Thread(target=self.read_loop, daemon=True)
            self.reader.start()

    def read_reply(self) -> int | None:
        data = b""
        while len(data) < 12:
            chunk = os.read(self.r, 12 - len(data))
            if not chunk:
                return None
            data += chunk
        return int.from_bytes(data[4:], "big")

    def read_loop(self) -> None:
        while True:
            value = self.read_reply()
            if value is None:
                return
            self.pending.popleft().set_result(value)

    def call(self, payload: bytes) -> int:
        message = len(payload).to_bytes(4, "big") + payload
        if self.reader is None:
            os.write(self.w, message)
            value = self.read_reply()
            assert value is not None
            return value
        future: concurrent.futures.Future[int] = concurrent.futures.Future()
        self.pending.append(future)
        os.write(self.w, message)
        return future.result()

    def close(self) -> None:
        assert self.proc.stdin and self.proc.stdout
        self.proc.stdin.close()
        self.proc.wait()
        if self.reader is not None:
            self.reader.join()
        self.proc.stdout.close()


def _proc_cpu(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def measure(call: Callable[[bytes], Any], calls: int, pid: int | None) -> dict[str, float]:
    payload = b"x" * 8
    for _ in range(20):
        call(payload)
    samples = []
    cpu0 = time.process_time()
    far0 = _proc_cpu(pid) if pid else 0.0
    wall0 = time.perf_counter()
    for _ in range(calls):
        start = time.perf_counter()
        call(payload)
        samples.append(time.perf_counter() - start)
    wall = time.perf_counter() - wall0
    samples.sort()
    return {
        "median_us": statistics.median(samples) * 1e6,
        "p99_us": samples[int(len(samples) * 0.99)] * 1e6,
        "controller_cpu_us": (time.process_time() - cpu0) / calls * 1e6,
        "agent_cpu_us": ((_proc_cpu(pid) - far0) / calls * 1e6) if pid else float("nan"),
        "wall_us": wall / calls * 1e6,
    }


MODELS = {
    "model: no thread either side (raw echo)": (False, False),
    "model: controller reader thread + future": (False, True),
    "model: agent reader thread + queue": (True, False),
    "model: a reader thread on both sides": (True, True),
}


def run_model(name: str, calls: int) -> dict[str, float]:
    agent_thread, controller_thread = MODELS[name]
    client = ModelClient(agent_thread, controller_thread)
    try:
        return measure(client.call, calls, client.proc.pid)
    finally:
        client.close()


def run_contender(name: str, calls: int) -> dict[str, float]:
    from contenders import CONTENDERS

    contender = CONTENDERS[name]({"kind": "local"})
    handle = contender.connect(0)
    try:
        pid = contender.call_pid(handle)
        return measure(contender.caller(handle), calls, pid)
    finally:
        contender.close(handle)
        shutdown = getattr(contender, "shutdown", None)
        if shutdown is not None:
            shutdown()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--trials", type=int, default=5)
    parser.add_argument(
        "--contenders",
        nargs="*",
        default=["chopsticks_nb", "chopsticks", "execnet", "mitogen", "rpyc"],
    )
    args = parser.parse_args()
    names = list(MODELS) + args.contenders
    runs: dict[str, list[dict[str, float]]] = {name: [] for name in names}
    for trial in range(args.trials):
        shift = trial % len(names)
        for name in names[shift:] + names[:shift]:
            runner = run_model if name in MODELS else run_contender
            runs[name].append(runner(name, args.calls))
    keys = ["median_us", "p99_us", "controller_cpu_us", "agent_cpu_us"]
    print(
        f"{args.trials} trials x {args.calls} calls; medians of the per-trial figures "
        f"(min-max of the per-trial medians); CPU is per call, all threads of each process"
    )
    print(
        f"| {'what':<42} | {'median us':>16} | {'p99 us':>7} | {'controller CPU us':>17} | "
        f"{'agent CPU us':>12} |"
    )
    print(f"| {'---':<42} | {'---:':>16} | {'---:':>7} | {'---:':>17} | {'---:':>12} |")
    for name in names:
        per = {k: statistics.median(r[k] for r in runs[name]) for k in keys}
        medians = [r["median_us"] for r in runs[name]]
        spread = f"{per['median_us']:.0f} ({min(medians):.0f}-{max(medians):.0f})"
        print(
            f"| {name:<42} | {spread:>16} | {per['p99_us']:>7.0f} | "
            f"{per['controller_cpu_us']:>17.1f} | {per['agent_cpu_us']:>12.1f} |"
        )


if __name__ == "__main__":
    main()
