"""Where a benchmark's two ends run: pinned to vCPUs, for measures the scheduler's choice
would otherwise decide (a raw pipe echo is 2x faster when both its processes share a vCPU)."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path


class Placement:
    """Where a round trip's two ends run, when the runner fixes it: "one_vcpu", both on vCPU 0
    (this process's threads are pinned before the remote starts, which inherits it); "two_vcpus",
    this process's threads on vCPU 0 and the remote (every process below this one) on vCPU 1,
    once it runs; None, wherever the scheduler puts them. Afterwards this process may use every
    vCPU again."""

    def __init__(self, placement: str | None) -> None:
        self.placement = placement
        self.everywhere = os.sched_getaffinity(0)

    def __enter__(self) -> Placement:
        if self.placement == "one_vcpu":
            _pin(os.getpid(), {0})
        return self

    def remote_started(self) -> None:
        if self.placement == "two_vcpus":
            _pin(os.getpid(), {0})
            for pid in _descendants(os.getpid()):
                _pin(pid, {1})

    def __exit__(self, *exc: object) -> None:
        if self.placement is not None:
            _pin(os.getpid(), self.everywhere)


def _pin(pid: int, cpus: set[int]) -> None:
    for task in os.listdir(f"/proc/{pid}/task"):
        with contextlib.suppress(OSError):  # a thread that has just ended
            os.sched_setaffinity(int(task), cpus)


def _descendants(pid: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            with contextlib.suppress(OSError):
                stat = Path(f"/proc/{entry}/stat").read_text()
                children.setdefault(int(stat.rsplit(")", 1)[1].split()[1]), []).append(int(entry))
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found
