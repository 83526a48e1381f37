"""chopsticks_nb side by side with execnet, mitogen, rpyc and the original chopsticks.

Every contender (and the "floor": the same work with no library) runs in a worker process of
its own (bench/peers/worker.py); the runner interleaves them inside every trial, rotating
their order from trial to trial, so that a noisy moment of this shared machine hits all of them.
Over local subprocesses:

(a) nothing to first completed call         (b) trivial call round trip, median and p99
(c) 1 MB bytes argument round trip           (d) N hosts: connect + one call, N = 1, 8, 32
(e) put and fetch of a large file, MB/s      (f) first call importing a 50-module package

and over SSH to loopback sshds (started here, as the tests do), (a), (b) and (d), without and
with ControlMaster reuse. Each measure has one discarded warm-up round.

Usage::

    python bench/bench_peers.py            # the full run (about 6 minutes here)
    python bench/bench_peers.py --quick    # tiny sizes, few repeats (the smoke test's run)

Writes bench/results/peers.json (peers-quick.json with --quick; --out to choose) and prints
the table. The peers come from the ``bench`` extra (scripts/setup.sh installs it). The original
chopsticks runs ``import imp`` remotely, gone in Python 3.12: from a newer interpreter the
runner uses a venv (made once, cached under ~/.cache/chopsticks-nb-bench) on an older pyenv
Python for it, and says so in the results.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import selectors
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
WORKER = HERE / "peers" / "worker.py"
RESULTS = HERE / "results"
sys.path.insert(0, str(HERE / "peers"))

from sshd import (  # noqa: E402
    NO_CONTROLMASTER,
    alias_config,
    close_masters,
    controlmaster_options,
    loopback_hosts,
    open_masters,
    unavailable_reason,
)

CONTENDERS = ["floor", "chopsticks_nb", "chopsticks", "execnet", "mitogen", "rpyc"]
REFERENCE = "chopsticks_nb"

MEASURES = {
    "a": "nothing to first completed call",
    "b": "trivial call round trip (8-byte argument)",
    "c": "bytes argument round trip",
    "d": "N hosts: connect + one call",
    "e": "file put / fetch",
    "f": "first call importing a generated package",
}

#: How the placed (c) rows are named (see bench/_placement.py).
PLACEMENTS = {"one_vcpu": "both ends on one vCPU", "two_vcpus": "one end on each vCPU"}
FULL = {
    "first_call": 21,
    "round_trip": (7, 1000),  # trials, calls per trial
    "big_arg": (7, 40, 1024 * 1024),  # trials, calls per trial, bytes
    "group": (5, [1, 8, 32]),
    "transfer": (5, 200),  # trials, MB: 3 gave medians that one noisy trial could move
    "package": (9, 50),  # trials, modules
    "ssh_first_call": 9,
    "ssh_round_trip": (5, 500),
    "ssh_group": (3, [1, 8, 32]),
    "ssh_hosts": 4,
}
QUICK = {
    "first_call": 2,
    "round_trip": (2, 50),
    "big_arg": (2, 3, 256 * 1024),
    "group": (1, [1, 2]),
    "transfer": (1, 2),
    "package": (1, 10),
    "ssh_first_call": 1,
    "ssh_round_trip": (1, 20),
    "ssh_group": (1, [1, 2]),
    "ssh_hosts": 2,
}

REQUEST_TIMEOUT = 300.0


# ---------------------------------------------------------------------------------------------
# Interpreters and workers


def _pyenv_versions() -> list[Path]:
    roots = []
    try:
        out = subprocess.run(["pyenv", "root"], capture_output=True, text=True, timeout=10)
        roots.append(out.stdout.strip())
    except OSError:
        pass
    roots += [os.environ.get("PYENV_ROOT", ""), os.path.expanduser("~/.pyenv")]
    for root in roots:
        if root and (Path(root) / "versions").is_dir():
            return sorted((Path(root) / "versions").iterdir())
    return []


def chopsticks_python() -> tuple[str, str]:
    """An interpreter that can run the original chopsticks (remote ``import imp``: < 3.12)."""
    if sys.version_info < (3, 12) and importlib.util.find_spec("chopsticks") is not None:
        return sys.executable, "the runner's interpreter"

    def version(path: Path) -> tuple[int, ...]:
        return tuple(int(part) for part in path.name.split(".") if part.isdigit())

    candidates = [
        v / "bin" / "python"
        for v in sorted(_pyenv_versions(), key=version, reverse=True)
        if v.name.startswith(("3.11.", "3.10.", "3.9."))
    ]
    if not candidates:
        raise SystemExit("the original chopsticks needs Python < 3.12: none found (pyenv)")
    base = candidates[0]
    cache = Path(os.environ.get("XDG_CACHE_HOME", os.path.expanduser("~/.cache")))
    venv = cache / "chopsticks-nb-bench" / f"chopsticks-1.0-{base.parent.parent.name}"
    python = venv / "bin" / "python"
    if not python.exists():
        print(f"making {venv} for the original chopsticks (once)", file=sys.stderr)
        subprocess.run([str(base), "-m", "venv", str(venv)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "-q", "chopsticks==1.0"], check=True)
    return str(python), f"a cached venv on {base.parent.parent.name} ({venv})"


def remote_python() -> str:
    """The far side's interpreter over SSH: the system's python3 when the original chopsticks
    can run on it, as a real host would have (and outside /root, whose search permission for
    the test user other test sessions on this machine may take away meanwhile)."""
    system = "/usr/bin/python3"
    if os.access(system, os.X_OK):
        version = subprocess.run(
            [
                system,
                "-c",
                "import sys; print(sys.version_info >= (3, 6) and sys.version_info < (3, 12))",
            ],
            capture_output=True,
            text=True,
            check=False,
        ).stdout.strip()
        if version == "True":
            return system
    return sys.executable


class Worker:
    """One contender's process; ``ask`` sends a request and waits for its answer."""

    def __init__(self, name: str, python: str, transport: dict[str, Any], cwd: str) -> None:
        self.name = name
        env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
        self.proc = subprocess.Popen(
            [python, str(WORKER), name, json.dumps(transport)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            cwd=cwd,  # remote children inherit it: nothing of bench/ is on their path
            env=env,
        )
        self.selector = selectors.DefaultSelector()
        assert self.proc.stdout
        self.selector.register(self.proc.stdout, selectors.EVENT_READ)

    def ask(self, op: str, **args: Any) -> Any:
        assert self.proc.stdin and self.proc.stdout
        self.proc.stdin.write(json.dumps({"op": op, "args": args}) + "\n")
        self.proc.stdin.flush()
        if not self.selector.select(REQUEST_TIMEOUT):
            raise RuntimeError(f"{self.name}: no answer to {op} within {REQUEST_TIMEOUT:g} s")
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"{self.name}: the worker died during {op}")
        answer = json.loads(line)
        if not answer["ok"]:
            raise RuntimeError(f"{self.name} {op}: {answer['error']}\n{answer['traceback']}")
        return answer["result"]

    def close(self) -> None:
        assert self.proc.stdin and self.proc.stdout
        self.proc.stdin.close()
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.proc.stdout.close()
        self.selector.close()


class Workers:
    def __init__(
        self, names: list[str], pythons: dict[str, str], transport: dict[str, Any], cwd: str
    ) -> None:
        self.names = names
        self.workers: dict[str, Worker] = {}
        try:
            for name in names:
                self.workers[name] = Worker(name, pythons[name], transport, cwd)
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        for worker in self.workers.values():
            worker.close()

    def trials(self, repeats: int, op: str, warmup: bool = True, **args: Any) -> dict[str, list]:
        """``repeats`` trials; in each every contender runs once, the order rotating."""
        results: dict[str, list] = {name: [] for name in self.names}
        if warmup:
            for name in self.names:
                self.workers[name].ask(op, **args)
        for trial in range(repeats):
            shift = trial % len(self.names)
            for name in self.names[shift:] + self.names[:shift]:
                results[name].append(self.workers[name].ask(op, **args))
        return results


# ---------------------------------------------------------------------------------------------
# Statistics


def spread(values: list[float]) -> dict[str, float]:
    return {"median": statistics.median(values), "min": min(values), "max": max(values)}


def times(trials: list[dict[str, Any]], key: str = "s") -> dict[str, Any]:
    values = [t[key] for t in trials]
    return dict(spread(values), trials=values)


def round_trips(trials: list[dict[str, Any]]) -> dict[str, Any]:
    """Median and p99 over every call; the spread is that of the per-trial medians."""
    samples = sorted(s for t in trials for s in t["samples"])
    medians = [statistics.median(t["samples"]) for t in trials]
    return {
        "median": statistics.median(samples),
        "p99": samples[min(len(samples) - 1, int(len(samples) * 0.99))],
        "min": min(medians),
        "max": max(medians),
        "calls": len(samples),
        "trial_medians": medians,
    }


def rates(trials: list[dict[str, Any]], key: str) -> dict[str, Any]:
    """MB/s per trial; ``median`` is the rate, ``s`` the median time (ratios use time)."""
    mbps = [t["bytes"] / t[key] / 1e6 for t in trials]
    return dict(spread(mbps), s=statistics.median(t[key] for t in trials), trials=mbps)


# ---------------------------------------------------------------------------------------------
# The measures


def make_package(root: Path, name: str, modules: int) -> None:
    package = root / name
    package.mkdir()
    for i in range(modules):
        (package / f"m{i}.py").write_text(f'"""Module {i} of {name}."""\nVALUE = {i}\n')
    imports = "".join(f"from . import m{i}\n" for i in range(modules))
    count = (
        "\n\ndef module_count():\n"
        "    import sys\n\n"
        f"    return sum(1 for m in list(sys.modules) if m.split('.')[0] == {name!r})\n"
    )
    (package / "__init__.py").write_text(imports + count)


def run_local(workers: Workers, config: dict[str, Any], tmp: Path) -> dict[str, Any]:
    out: dict[str, Any] = {}
    names = workers.names

    def step(label: str) -> None:
        print(f"  {label} ...", file=sys.stderr, flush=True)

    step("(a) first call")
    got = workers.trials(config["first_call"], "first_call")
    out["a_first_call"] = {n: times(got[n]) for n in names}

    step("(b) round trip")
    trials, calls = config["round_trip"]
    got = workers.trials(trials, "round_trip", size=8, count=calls)
    out["b_round_trip"] = {n: round_trips(got[n]) for n in names}

    trials, calls, size = config["big_arg"]
    step(f"(c) {size} byte argument")
    got = workers.trials(trials, "round_trip", size=size, count=calls)
    out["c_big_argument"] = {n: dict(round_trips(got[n]), bytes=size) for n in names}
    if len(os.sched_getaffinity(0)) >= 2:  # the scheduler's choice moves the floor 2x: fix it
        for placement in ("one_vcpu", "two_vcpus"):
            step(f"(c) {size} byte argument, {PLACEMENTS[placement]}")
            got = workers.trials(trials, "round_trip", size=size, count=calls, placement=placement)
            out[f"c_{placement}"] = {n: dict(round_trips(got[n]), bytes=size) for n in names}

    trials, sizes = config["group"]
    out["d_group"] = {}
    for n_hosts in sizes:
        step(f"(d) group of {n_hosts}")
        got = workers.trials(trials, "group", count=n_hosts)
        out["d_group"][str(n_hosts)] = {
            n: dict(times(got[n]), close=spread([t["close_s"] for t in got[n]])) for n in names
        }

    trials, megabytes = config["transfer"]
    step(f"(e) {megabytes} MB put and fetch")
    # On tmpfs where there is one: the measure is the transfer, not the disk's writeback.
    where = Path("/dev/shm") if os.path.isdir("/dev/shm") else tmp
    with tempfile.TemporaryDirectory(dir=where, prefix="chopsticks-nb-bench-") as work:
        source = Path(work) / "source"
        with open(source, "wb") as f:
            for _ in range(megabytes):
                f.write(os.urandom(1 << 20))
        got = workers.trials(trials, "transfer", warmup=False, source=str(source), workdir=work)
    out["e_transfer"] = {
        "directory": str(where),
        "megabytes": megabytes,
        "put": {n: rates(got[n], "put_s") for n in names},
        "fetch": {n: rates(got[n], "fetch_s") for n in names},
    }

    trials, modules = config["package"]
    step(f"(f) first import of a {modules}-module package")
    root, remote = tmp / "packages", tmp / "remote"
    root.mkdir()
    remote.mkdir()
    results: dict[str, list] = {n: [] for n in names}
    for trial in range(trials + 1):  # the first round is the warm-up
        shift = trial % len(names)
        for name in names[shift:] + names[:shift]:
            package = f"benchpkg_{trial}_{name}"
            make_package(root, package, modules)
            answer = workers.workers[name].ask(
                "first_import", name=package, root=str(root), remote_dir=str(remote)
            )
            if trial:
                results[name].append(answer)
    out["f_package"] = {
        n: dict(times(results[n]), modules=modules, round_trips=results[n][-1]["round_trips"])
        for n in names
    }
    return out


def run_ssh(workers: Workers, config: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    names = workers.names
    got = workers.trials(config["ssh_first_call"], "first_call")
    out["a_first_call"] = {n: times(got[n]) for n in names}
    trials, calls = config["ssh_round_trip"]
    got = workers.trials(trials, "round_trip", size=8, count=calls)
    out["b_round_trip"] = {n: round_trips(got[n]) for n in names}
    trials, sizes = config["ssh_group"]
    out["d_group"] = {}
    for n_hosts in sizes:
        got = workers.trials(trials, "group", count=n_hosts)
        out["d_group"][str(n_hosts)] = {
            n: dict(times(got[n]), close=spread([t["close_s"] for t in got[n]])) for n in names
        }
    return out


# ---------------------------------------------------------------------------------------------
# The table


def _ratio(value: float | None, base: float | None) -> float | None:
    return None if not value or not base else value / base


def table_rows(results: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per (transport, measure, contender), with the ratios to the floor and to us.

    Ratios are of times (for transfers: floor MB/s over the contender's MB/s), so > 1 is
    slower than the reference everywhere.
    """
    rows = []

    def add(
        transport: str,
        measure: str,
        figures: dict[str, Any],
        unit: str,
        key: str = "median",
        time_key: str = "median",
        extra: str = "",
    ) -> None:
        floor = figures.get("floor", {}).get(time_key)
        ours = figures.get(REFERENCE, {}).get(time_key)
        for name, f in figures.items():
            t = f.get(time_key)
            rows.append(
                {
                    "transport": transport,
                    "measure": measure,
                    "contender": name,
                    "unit": unit,
                    "median": f[key],
                    "min": f["min"],
                    "max": f["max"],
                    "p99": f.get("p99"),
                    "x_floor": _ratio(t, floor),
                    "x_chopsticks_nb": _ratio(t, ours),
                    "extra": extra
                    or (
                        f"{f['round_trips']} round trips"
                        if f.get("round_trips") is not None
                        else ""
                    ),
                }
            )

    for transport, section in results["sections"].items():
        for measure, figures in section.items():
            if measure == "a_first_call":
                add(transport, "(a) first call", figures, "ms")
            elif measure == "b_round_trip":
                add(transport, "(b) round trip", figures, "us")
            elif measure == "c_big_argument":
                size = next(iter(figures.values()))["bytes"]
                add(transport, f"(c) {size // 1024} KiB argument", figures, "us")
            elif measure in ("c_one_vcpu", "c_two_vcpus"):
                size = next(iter(figures.values()))["bytes"]
                where = PLACEMENTS[measure[2:]]
                add(transport, f"(c) {size // 1024} KiB argument, {where}", figures, "us")
            elif measure == "d_group":
                for n_hosts, per in figures.items():
                    add(transport, f"(d) N={n_hosts}", per, "ms")
            elif measure == "e_transfer":
                mb = figures["megabytes"]
                add(transport, f"(e) put {mb} MB", figures["put"], "MB/s", time_key="s")
                add(transport, f"(e) fetch {mb} MB", figures["fetch"], "MB/s", time_key="s")
            elif measure == "f_package":
                add(transport, "(f) package import", figures, "ms")
    return rows


def _fmt(value: float | None, unit: str) -> str:
    if value is None:
        return "-"
    if unit == "ms":
        value *= 1e3
    elif unit == "us":
        value *= 1e6
    return f"{value:.1f}" if value < 100 else f"{value:.0f}"


def render(rows: list[dict[str, Any]]) -> str:
    lines = []
    transport = None
    for row in rows:
        if row["transport"] != transport:
            transport = row["transport"]
            lines += [
                "",
                f"### {transport}",
                "",
                "| measure | contender | median | min-max | p99 | x floor | x chopsticks_nb | |",
                "| --- | --- | ---: | ---: | ---: | ---: | ---: | --- |",
            ]
        unit = row["unit"]
        x_floor = "-" if row["x_floor"] is None else f"{row['x_floor']:.2f}"
        x_ours = "-" if row["x_chopsticks_nb"] is None else f"{row['x_chopsticks_nb']:.2f}"
        lines.append(
            f"| {row['measure']} | {row['contender']} | {_fmt(row['median'], unit)} {unit} "
            f"| {_fmt(row['min'], unit)}-{_fmt(row['max'], unit)} "
            f"| {_fmt(row['p99'], unit)} | {x_floor} | {x_ours} | {row['extra']} |"
        )
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------------------------------------


def machine() -> dict[str, Any]:
    ssh = subprocess.run(["ssh", "-V"], capture_output=True, text=True, check=False)
    return {
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "cpu": _cpu_model(),
        "python": sys.version.split()[0],
        "executable": sys.executable,
        "ssh": (ssh.stderr or ssh.stdout).strip() if shutil.which("ssh") else None,
        "loadavg_start": os.getloadavg(),
    }


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            return next(ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name"))
    except (OSError, StopIteration):
        return platform.processor()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes, few repeats")
    parser.add_argument("--no-ssh", action="store_true", help="local subprocesses only")
    parser.add_argument("--only", nargs="+", choices=CONTENDERS, help="a subset of contenders")
    parser.add_argument("--out", type=Path, help="the JSON file to write")
    args = parser.parse_args()

    config = QUICK if args.quick else FULL
    names = [n for n in CONTENDERS if not args.only or n in args.only or n in ("floor", REFERENCE)]
    pythons = dict.fromkeys(names, sys.executable)
    chopsticks_note = None
    if "chopsticks" in names:
        pythons["chopsticks"], chopsticks_note = chopsticks_python()
    ssh_reason = None if args.no_ssh else unavailable_reason()
    if args.no_ssh:
        ssh_reason = "--no-ssh"

    started = time.time()
    results: dict[str, Any] = {
        "command": " ".join(["python", "bench/bench_peers.py", *sys.argv[1:]]),
        "date": time.strftime("%Y-%m-%d %H:%M:%S %z"),
        "machine": machine(),
        "config": config,
        "chopsticks_interpreter": chopsticks_note,
        "sections": {},
    }
    with tempfile.TemporaryDirectory(prefix="chopsticks-nb-bench-") as tmp_name:
        tmp = Path(tmp_name)
        cwd = tmp / "cwd"
        cwd.mkdir()
        print("local subprocesses", file=sys.stderr)
        workers = Workers(names, pythons, {"kind": "local"}, str(cwd))
        try:
            results["contenders"] = {n: workers.workers[n].ask("info") for n in names}
            results["sections"]["local"] = run_local(workers, config, tmp)
        finally:
            workers.close()

        if ssh_reason is None:
            ssh_python = remote_python()
            with loopback_hosts(config["ssh_hosts"], ssh_python) as cluster:
                largest = max(config["ssh_group"][1])
                ssh_config = tmp / "ssh_config"
                hosts = alias_config(cluster, largest, ssh_config)
                for label, reuse in (("ssh", False), ("ssh + ControlMaster", True)):
                    print(label, file=sys.stderr)
                    options = controlmaster_options(tmp) if reuse else NO_CONTROLMASTER
                    if reuse:
                        open_masters(ssh_config, options, cluster.names)
                    transport = {
                        "kind": "ssh",
                        "config": str(ssh_config),
                        "hosts": hosts,
                        "options": options,
                        "python": ssh_python,
                    }
                    workers = Workers(names, pythons, transport, str(cwd))
                    try:
                        results["sections"][label] = run_ssh(workers, config)
                    finally:
                        workers.close()
                        if reuse:
                            close_masters(ssh_config, options, cluster.names)
            results["ssh"] = {
                "sshds": config["ssh_hosts"],
                "user": cluster.user,
                "python": ssh_python,
                "note": "host names n0, n1, ... spread round-robin over the sshds",
            }
        else:
            results["ssh"] = {"skipped": ssh_reason}
            print(f"SSH part skipped: {ssh_reason}", file=sys.stderr)

    results["machine"]["loadavg_end"] = os.getloadavg()
    results["seconds"] = time.time() - started
    results["table"] = table_rows(results)
    text = render(results["table"])
    print(text)
    out = args.out or RESULTS / ("peers-quick.json" if args.quick else "peers.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"written to {out} ({results['seconds']:.0f} s)")


if __name__ == "__main__":
    main()
