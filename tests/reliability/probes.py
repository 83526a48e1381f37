"""Measuring memory for the reliability and security tests (processes and waiting:
fixtures.system).

Everything here reads the real state of this machine (/proc); nothing is simulated.
"""

from __future__ import annotations

import gc
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["PeakRss", "rss_mib", "watch_rss"]

_PAGE = os.sysconf("SC_PAGE_SIZE")


def rss_mib(pid: int | None = None) -> float:
    """Resident set size of a process (default: this one), in MiB."""
    with open(f"/proc/{pid or 'self'}/statm") as f:
        return int(f.read().split()[1]) * _PAGE / 2**20


class PeakRss:
    """The RSS of this process when the watch began, and the highest seen while it ran."""

    def __init__(self) -> None:
        gc.collect()
        self.start = rss_mib()
        self.peak = self.start

    @property
    def growth(self) -> float:
        """How far above its starting point the RSS went, in MiB."""
        return self.peak - self.start


@contextmanager
def watch_rss(interval: float = 0.005) -> Iterator[PeakRss]:
    """Sample this process's RSS every ``interval`` seconds on a thread; yields the peak so far."""
    peak = PeakRss()
    stop = threading.Event()

    def sample() -> None:
        while not stop.wait(interval):
            peak.peak = max(peak.peak, rss_mib())

    thread = threading.Thread(target=sample, name="rss-watch", daemon=True)
    thread.start()
    try:
        yield peak
    finally:
        stop.set()
        thread.join()
        peak.peak = max(peak.peak, rss_mib())
