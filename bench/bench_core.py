"""Core benchmarks on Local tunnels, each against a physical floor measured in the same run.

(a) nothing to first completed call, vs a bare ``python -c pass`` start
(b) trivial call round trip (median, p99), vs a raw pipe echo of the same few bytes
(c) 1 MB bytes argument round trip, vs a raw pipe echo of 1 MB, written and lent (vmsplice,
    as chopsticks_nb sends it); and again with both ends on one vCPU, then on two (the
    scheduler's choice between these moves the written echo 2x)
(e) put and fetch MB/s of a large file (SHA-1 checked), vs ``cat`` through a pipe each way,
    and the fetch also vs that pipe's reader computing SHA-1 as it writes (what the receiving
    end of any checked fetch must do at least); five rounds interleaved
(f) first call importing a generated 50-module package: import round trips and time
(g) a call returning 256 MiB of bytes, vs ``cat`` moving as many through a pipe into memory;
    and the controller's peak RSS for it (in a process of its own), per byte of the result

Usage: python bench/bench_core.py [--quick] [--only a b c e f g]
"""

from __future__ import annotations

import argparse
import fcntl
import hashlib
import io
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable, cast

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import PipeEcho, bare_starts, median_spread, timed, write_results
from _placement import Placement

from chopsticks_nb._lending import LARGE as LEND_FROM
from chopsticks_nb.tunnel import Local

F_SETPIPE_SZ = getattr(fcntl, "F_SETPIPE_SZ", 1031)


def first_call(repeat: int) -> dict[str, object]:
    samples = []
    for _ in range(repeat):
        tunnel = Local("bench")
        start = time.perf_counter()
        tunnel.call(os.getpid)
        samples.append(time.perf_counter() - start)
        tunnel.close()
    ours = median_spread(samples)
    floor = median_spread([bare_starts(1) for _ in range(repeat)])
    return {
        "chopsticks_nb_s": ours,
        "bare_start_s": floor,
        "ratio": ours["median"] / floor["median"],
    }


def round_trip(count: int, size: int) -> dict[str, object]:
    """A call with a ``size``-byte argument and a small result, against the same on a raw pipe."""
    payload = b"x" * size
    echo = PipeEcho(reply=8)
    with Local("bench") as tunnel:
        tunnel.call(len, payload)
        ours = median_spread(timed(lambda: tunnel.call(len, payload), count))
    floor = median_spread(timed(lambda: echo.echo(payload), count))
    echo.close()
    figures = {
        "chopsticks_nb_s": ours,
        "pipe_echo_s": floor,
        "ratio": ours["median"] / floor["median"],
    }
    if size >= LEND_FROM:  # we lend the pipe pages this large (vmsplice): an echo can too
        lent = PipeEcho(reply=8, lend=True)
        lent_s = median_spread(timed(lambda: lent.echo(payload), count))
        lent.close()
        figures["pipe_echo_lent_s"] = lent_s
        figures["ratio_to_lent"] = ours["median"] / lent_s["median"]
    return figures


def placed_round_trips(count: int, rounds: int) -> dict[str, object]:
    """(c) with the placement fixed (see _placement.py), each run in a process of its own,
    alternating "one_vcpu" and "two_vcpus". Left to the scheduler, the raw echo runs both ends
    on one vCPU at times (its fastest case) and ours rarely: see bench/README.md."""
    if not hasattr(os, "sched_setaffinity") or len(os.sched_getaffinity(0)) < 2:
        return {"skipped": "needs two vCPUs and sched_setaffinity"}
    runs: dict[str, list[dict[str, float]]] = {"one_vcpu": [], "two_vcpus": []}
    for _ in range(rounds):
        for placement, runs_of in runs.items():
            command = [sys.executable, __file__, "--placed", placement, str(count)]
            out = subprocess.run(command, check=True, capture_output=True, text=True).stdout
            runs_of.append(json.loads(out))
    return {
        placement: {
            "chopsticks_nb_us": [round(r["ours"] * 1e6) for r in found],
            "pipe_echo_us": [round(r["floor"] * 1e6) for r in found],
            "pipe_echo_lent_us": [round(r["floor_lent"] * 1e6) for r in found],
            "ratio": median_spread([r["ours"] / r["floor"] for r in found]),
        }
        for placement, found in runs.items()
    }


def _placed_round_trip(placement: str, count: int) -> None:
    payload = b"x" * (1024 * 1024)
    with Placement(placement) as place:
        echo, lent = PipeEcho(reply=8), PipeEcho(reply=8, lend=True)
        with Local("bench") as tunnel:
            tunnel.call(len, payload)
            place.remote_started()
            for _ in range(10):
                tunnel.call(len, payload)
                echo.echo(payload)
                lent.echo(payload)
            ours = median_spread(timed(lambda: tunnel.call(len, payload), count))["median"]
        floor = median_spread(timed(lambda: echo.echo(payload), count))["median"]
        floor_lent = median_spread(timed(lambda: lent.echo(payload), count))["median"]
        echo.close()
        lent.close()
    print(json.dumps({"ours": ours, "floor": floor, "floor_lent": floor_lent}))


def transfer(size_mb: int, repeats: int) -> dict[str, object]:
    """(e) ``repeats`` rounds of put, fetch and their floors, interleaved on one connection.

    The floors are what bench_peers.py's floor does: Python writes the file in 1 MB chunks into
    ``cat > target`` through a 1 MB pipe (put), and reads ``cat source`` through one, writing
    the file (fetch); and the same fetch hashing what it reads with SHA-1 (the checked floor).
    ``cat < source > target`` alone is also timed, as a reference only: GNU cat copies file to
    file with ``copy_file_range``, in the kernel, through no pipe at all."""
    # On tmpfs where there is one: the measure is the transfer, not the disk's writeback.
    where = "/dev/shm" if os.path.isdir("/dev/shm") else None
    keys = ("put", "fetch", "cat_put", "cat_fetch", "cat_fetch_sha1", "cat_copy")
    seconds: dict[str, list[float]] = {key: [] for key in keys}
    with tempfile.TemporaryDirectory(dir=where) as tmp:
        source, target = Path(tmp) / "source", Path(tmp) / "target"
        with open(source, "wb") as f:
            for _ in range(size_mb):
                f.write(os.urandom(1024 * 1024))
        with Local("bench") as tunnel:
            tunnel.call(len, b"")
            for _ in range(repeats):
                for key in keys:
                    target.unlink(missing_ok=True)
                    start = time.perf_counter()
                    if key == "put":
                        tunnel.put(str(source), str(target))
                    elif key == "fetch":
                        tunnel.fetch(str(source), str(target))
                    else:
                        _cat(key, source, target)
                    seconds[key].append(time.perf_counter() - start)
    rates = {key: [size_mb / s for s in samples] for key, samples in seconds.items()}

    def per_round(key: str, floor: str) -> dict[str, float]:
        return median_spread([a / b for a, b in zip(rates[key], rates[floor])])

    return {
        "directory": where or tempfile.gettempdir(),
        "size_mb": size_mb,
        "put_mb_s": median_spread(rates["put"]),
        "fetch_mb_s": median_spread(rates["fetch"]),
        "cat_pipe_put_mb_s": median_spread(rates["cat_put"]),
        "cat_pipe_fetch_mb_s": median_spread(rates["cat_fetch"]),
        "cat_pipe_fetch_sha1_mb_s": median_spread(rates["cat_fetch_sha1"]),
        "cat_copy_file_range_mb_s": median_spread(rates["cat_copy"]),
        # Each round's own ratio: the floor moves with the machine from round to round.
        "put_of_floor": per_round("put", "cat_put"),
        "fetch_of_floor": per_round("fetch", "cat_fetch"),
        "fetch_of_checked_floor": per_round("fetch", "cat_fetch_sha1"),
        "checked_floor_of_floor": per_round("cat_fetch_sha1", "cat_fetch"),
    }


def _cat(key: str, source: Path, target: Path) -> None:
    chunk = 1024 * 1024
    if key == "cat_copy":
        with open(source, "rb") as src, open(target, "wb") as dst:
            subprocess.run(["cat"], stdin=src, stdout=dst, check=True)
    elif key == "cat_put":
        with open(target, "wb") as out:
            cat = subprocess.Popen(["cat"], stdin=subprocess.PIPE, stdout=out)
        assert cat.stdin is not None
        fcntl.fcntl(cat.stdin.fileno(), F_SETPIPE_SZ, chunk)
        with open(source, "rb", buffering=0) as f:
            while data := f.read(chunk):
                cat.stdin.write(data)
        cat.stdin.close()
        cat.wait()
    else:
        cat = subprocess.Popen(["cat", str(source)], stdout=subprocess.PIPE)
        assert cat.stdout is not None
        fcntl.fcntl(cat.stdout.fileno(), F_SETPIPE_SZ, chunk)
        sha1 = hashlib.sha1() if key == "cat_fetch_sha1" else None
        with open(target, "wb", buffering=0) as out:
            while data := cat.stdout.read(chunk):
                if sha1 is not None:
                    sha1.update(data)
                out.write(data)
        cat.wait()
        cat.stdout.close()


def large_result(size_mb: int) -> dict[str, object]:
    """(g) one call returning ``size_mb`` MiB of bytes, in a process of its own (for its peak
    RSS), against ``cat`` moving as many bytes through a pipe into this process's memory."""
    proc = subprocess.run(
        [sys.executable, str(Path(__file__).with_name("large_result.py")), str(size_mb)],
        capture_output=True,
        text=True,
        check=True,
    )
    ours = json.loads(proc.stdout)
    size = size_mb * 1024 * 1024
    where = "/dev/shm" if os.path.isdir("/dev/shm") else None
    with tempfile.NamedTemporaryFile(dir=where) as source:
        for _ in range(size_mb):
            source.write(bytes(1024 * 1024))
        source.flush()
        received = bytearray(size)
        start = time.perf_counter()
        with subprocess.Popen(["cat", source.name], stdout=subprocess.PIPE) as cat:
            stdout = cast(io.BufferedReader, cat.stdout)
            with memoryview(received) as view:
                got = 0
                while got < size:
                    got += stdout.readinto(view[got:]) or size
        cat_s = time.perf_counter() - start
    return {
        "size_mb": size_mb,
        "chopsticks_nb_s": ours["seconds"],
        "cat_pipe_s": cat_s,
        "ratio": ours["seconds"] / cat_s,
        "peak_rss_growth_mb": ours["peak_rss_growth_mib"],
        "peak_rss_per_result_byte": ours["peak_rss_growth_mib"] / size_mb,
    }


def package_import(modules: int) -> dict[str, object]:
    with tempfile.TemporaryDirectory() as tmp:
        pkg = Path(tmp) / "benchpkg"
        pkg.mkdir()
        for i in range(modules):
            (pkg / f"m{i}.py").write_text(f"VALUE = {i}\n")
        (pkg / "__init__.py").write_text("".join(f"from . import m{i}\n" for i in range(modules)))
        sys.path.insert(0, tmp)
        try:
            with Local("bench") as tunnel:
                tunnel.call(os.getpid)
                start = time.perf_counter()
                tunnel.call(_import, "benchpkg")
                elapsed = time.perf_counter() - start
                assert tunnel._conn is not None
                trips = tunnel._conn.modserver.requests
        finally:
            sys.path.remove(tmp)
    return {"modules": modules, "first_call_s": elapsed, "import_round_trips": trips}


def _import(name: str) -> int:
    import importlib

    return len(vars(importlib.import_module(name)))


def main() -> None:
    if sys.argv[1:2] == ["--placed"]:
        _placed_round_trip(sys.argv[2], int(sys.argv[3]))
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes, few repeats")
    parser.add_argument("--only", nargs="+", choices=list("abcefg"), help="these measures only")
    args = parser.parse_args()
    quick, only = args.quick, set(args.only or "abcefg")
    measures: dict[str, Callable[[], dict[str, object]]] = {
        "a_first_call": lambda: first_call(3 if quick else 15),
        "b_round_trip": lambda: round_trip(200 if quick else 5000, 8),
        "c_1mb_argument": lambda: round_trip(5 if quick else 100, 1024 * 1024),
        "c_placed": lambda: placed_round_trips(5 if quick else 100, 1 if quick else 5),
        "e_transfer": lambda: transfer(4 if quick else 200, 1 if quick else 5),
        "f_package_import": lambda: package_import(50),
        "g_large_result": lambda: large_result(16 if quick else 256),
    }
    figures = {name: measure() for name, measure in measures.items() if name[0] in only}
    for name, values in figures.items():
        print(f"{name}: {values}")
    suffix = ("-quick" if quick else "") + ("-" + "".join(sorted(only)) if args.only else "")
    written = "core" + suffix
    print("written to", write_results(written, figures))


if __name__ == "__main__":
    main()
