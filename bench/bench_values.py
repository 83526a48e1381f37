"""Rich values: how fast arrays come back, and what decoding may cost the controller.

(a) a 100 MB float64 array against a 100 MB bytes result, in the same run, interleaved: MB/s
    of each and the controller's peak RSS growth during each call, as a multiple of the size
(b) decoding CPU per byte of the costliest messages we could construct, honest and hostile
    (1 MB each, in this process): CPU time, ns per byte, and the outcome
(c) a hostile host sending a 1 MB message of ints sharing one hash, beside an honest host
    whose calls go on in a loop: the time to fail the hostile host, and the honest host's
    round trips meanwhile against before

Usage: python bench/bench_values.py [--quick]
"""

from __future__ import annotations

import gc
import os
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))  # tests/security

import _values_remote as remote
from _common import median_spread, write_results

from chopsticks_nb import _agent, errors
from chopsticks_nb.tunnel import Local

PAGE = os.sysconf("SC_PAGE_SIZE")


def rss() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * PAGE


class PeakRSS:
    """The largest RSS this process reaches while the block runs, sampled every ms."""

    def __enter__(self) -> PeakRSS:
        self.base = self.peak = rss()
        self.running = True
        self.thread = threading.Thread(target=self._sample, daemon=True)
        self.thread.start()
        return self

    def _sample(self) -> None:
        while self.running:
            self.peak = max(self.peak, rss())
            time.sleep(0.001)

    def __exit__(self, *exc: object) -> None:
        self.running = False
        self.thread.join()
        self.peak = max(self.peak, rss())


def array_against_bytes(size: int, rounds: int) -> dict[str, object]:
    figures: dict[str, list[float]] = {"bytes_s": [], "float64_s": [], "bytes_rss": [],
                                       "float64_rss": []}  # fmt: skip
    with Local("bench", python3=sys.executable) as tunnel:
        for kind in ("bytes", "float64"):
            tunnel.call(remote.large, kind, size)  # made and kept there; one way back to warm
        for _ in range(rounds):
            for kind in ("bytes", "float64"):
                gc.collect()
                with PeakRSS() as memory:
                    start = time.perf_counter()
                    value = tunnel.call(remote.large, kind, size)
                    figures[f"{kind}_s"].append(time.perf_counter() - start)
                assert len(value) * (8 if kind == "float64" else 1) == size
                del value
                figures[f"{kind}_rss"].append((memory.peak - memory.base) / size)
    bytes_s = median_spread(figures["bytes_s"])
    array_s = median_spread(figures["float64_s"])
    return {
        "size_mb": size / 1e6,
        "bytes_mb_s": size / 1e6 / bytes_s["median"],
        "float64_mb_s": size / 1e6 / array_s["median"],
        "float64_speed_vs_bytes": bytes_s["median"] / array_s["median"],
        "bytes_peak_rss_x_size": median_spread(figures["bytes_rss"]),
        "float64_peak_rss_x_size": median_spread(figures["float64_rss"]),
        "bytes_s": bytes_s,
        "float64_s": array_s,
    }


def decode_costs(size: int) -> dict[str, object]:
    """CPU per byte of decoding each message of the catalogue (built beforehand)."""
    import datetime
    import decimal

    import numpy as np
    import pandas as pd
    from security import hostile_agent

    one_byte = [b"\x00"] * size
    catalogue = {
        "None x 1M (1 byte each)": _list(one_byte),
        "empty tuples": _list([b"\x09\x00\x00\x00\x00"] * (size // 5)),
        "empty lists in a dict": _agent.encode({i: [] for i in range(size // 14)}),
        "small ints": _agent.encode(list(range(size // 9))),
        "short strs": _agent.encode([str(i % 1000) for i in range(size // 8)]),
        "one huge int": bytes([1, _agent.Op.BIGINT]) + _agent.U32.pack(size) + b"\x7f" * size,
        "datetimes": _agent.encode(
            [datetime.datetime(2020, 1, 1, 0, 0, i % 60) for i in range(size // 20)]
        ),
        "short Decimals": _agent.encode([decimal.Decimal(i % 10) for i in range(size // 9)]),
        "pd.NA (3 bytes each)": _agent.encode([pd.NA] * (size // 3)),
        "tiny float arrays": _agent.encode([np.zeros(1) for _ in range(size // 60)]),
        "1-row DataFrames": _agent.encode([pd.DataFrame({"a": [i]}) for i in range(300)]),
    }
    for name in hostile_agent.CRAFTED:
        if name != "deep-tags":
            catalogue[f"hostile: {name}"] = hostile_agent.payload_of(
                {"crafted": name, "size": size}
            )
    _agent.decode(_agent.encode([np.zeros(1), pd.NA]))  # numpy and pandas imported beforehand
    results = {}
    for name, data in catalogue.items():
        start = time.process_time()
        try:
            _agent.decode(data)
            outcome = "decoded"
        except _agent.DecodeError as exc:
            outcome = f"refused: {str(exc)[:70]}"
        spent = time.process_time() - start
        results[name] = {"bytes": len(data), "cpu_ms": spent * 1e3,
                         "ns_per_byte": spent * 1e9 / len(data), "outcome": outcome}  # fmt: skip
        print(f"  {name:40} {len(data) / 1e6:5.2f} MB {spent * 1e3:7.1f} ms "
              f"{spent * 1e9 / len(data):6.1f} ns/B  {outcome}")  # fmt: skip
    return results


def _list(items: list[bytes]) -> bytes:
    return bytes([1, _agent.Op.LIST]) + _agent.U32.pack(len(items)) + b"".join(items)


class CallLoop:
    """Calls ``tunnel`` in a loop in a thread of its own, keeping each round trip's time in
    ``samples`` (which the caller may switch to another list at any time)."""

    def __init__(self, tunnel: Local) -> None:
        self.tunnel = tunnel
        self.samples: list[float] = []
        self.done = threading.Event()
        self.thread = threading.Thread(target=self.run)
        self.thread.start()

    def run(self) -> None:
        while not self.done.is_set():
            start = time.perf_counter()
            self.tunnel.call(remote.nothing)
            self.samples.append(time.perf_counter() - start)

    def stop(self) -> None:
        self.done.set()
        self.thread.join()


def hostile_host(size: int, rounds: int) -> dict[str, object]:
    """The time to fail a host sending ``size`` bytes of ints sharing one hash, and an honest
    host's round trips meanwhile (a loop of calls in another thread) against before."""
    from security.hostile import HostileTunnel

    fail_s = []
    before: list[float] = []
    during: list[float] = []
    with Local("honest", python3=sys.executable) as honest:
        for _ in range(rounds):
            hostile = HostileTunnel(
                "evil", "bad_reply",
                payload={"crafted": "colliding-ints-set", "size": size}, linger=True,
            )  # fmt: skip
            hostile.connect()
            calls = CallLoop(honest)
            time.sleep(1.5)  # the hostile side makes its message before it waits for the call
            calls.samples = during
            start = time.perf_counter()
            try:
                hostile.call(os.getpid)
            except errors.ProtocolError as exc:
                assert "share one hash" in str(exc), exc
            fail_s.append(time.perf_counter() - start)
            calls.samples = before
            time.sleep(0.2)
            calls.stop()
            hostile.close()
    return {
        "message_bytes": size,
        "time_to_fail_s": median_spread(fail_s),
        "honest_round_trip_before_s": median_spread(before),
        "honest_round_trip_during_s": median_spread(during),
        "honest_calls_during": len(during),
    }


def main() -> None:
    quick = "--quick" in sys.argv
    size = 10**6 if quick else 10**8
    print("(b) decoding CPU per byte, 1 MB messages:")
    figures: dict[str, object] = {"b_decode_costs": decode_costs(10**6)}
    figures["a_array_vs_bytes"] = array_against_bytes(size, 2 if quick else 7)
    print("(a)", figures["a_array_vs_bytes"])
    figures["c_hostile_host"] = hostile_host(10**6, 2 if quick else 7)
    print("(c)", figures["c_hostile_host"])
    print("written to", write_results("values-quick" if quick else "values", figures))


if __name__ == "__main__":
    main()
