"""chopsticks_nb over a slow link (25 ms each way), side by side with execnet and mitogen.

``tc netem`` is not available on this machine: every ssh connection goes through
bench/peers/delay_proxy.py as its ProxyCommand, which delays each chunk by ``--delay`` each way
(and, for the transfers, caps each direction at ``--rate`` bytes per second), to the loopback
sshds that bench/bench_peers.py uses. The contenders are bench_peers.py's, each in a worker
process of its own, interleaved in every trial (the order rotating); the floor is the same work
with no library. Measures:

(a) connect + first call                     floor: ``ssh HOST python3 -c pass``
(b) a call on a connected tunnel             floor: a raw echo through an ssh session
(f) a first call importing a 50-module package from the controller: by name, in a function of
    a module the remote has; and a first call of a function of the package itself   floor: one echo
(g) a ``%%remote`` cell using two functions defined in the notebook   floor: one echo
(d) 64 hosts: connect + one call             floor: 64 ``ssh HOST python3 -c pass`` at once
(e) put and fetch of 100 MB under the rate cap (100 Mbit/s)   floor: ``cat`` through ssh

Each figure is reported with its floor and, where it has one, in round trips over the floor:
(time - floor) / (2 x delay). Before them, a check of the link itself: a one-byte echo through
the relay (should take 2 x delay), and ``ssh HOST true`` with and without it.

Usage::

    python bench/bench_slow_link.py             # the full run (about 10 minutes here)
    python bench/bench_slow_link.py --quick     # tiny sizes, one trial (the smoke test's run)

Needs root, openssh-server and openssh-client (the sshds run as in bench_peers.py). Writes
bench/results/slow_link.json (slow_link-quick.json with --quick; --out to choose).
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE / "peers")]

from bench_peers import (  # noqa: E402
    RESULTS,
    Workers,
    machine,
    make_package,
    rates,
    remote_python,
    round_trips,
    spread,
    times,
)
from sshd import alias_config, loopback_hosts, unavailable_reason  # noqa: E402

PROXY = HERE / "peers" / "delay_proxy.py"
CONTENDERS = ["floor", "chopsticks_nb", "execnet", "mitogen"]
REFERENCE = "chopsticks_nb"

FULL = {
    "first_call": 7,
    "round_trip": (5, 20),  # trials, calls per trial
    "package": (5, 50),  # trials, modules
    "cell": 7,
    "group": (3, 64),  # trials, hosts
    "transfer": (3, 100),  # trials, MB
    "link_echoes": 20,
    "link_ssh": 5,
}
QUICK = {
    "first_call": 1,
    "round_trip": (1, 3),
    "package": (1, 5),
    "cell": 1,
    "group": (1, 2),
    "transfer": (1, 2),
    "link_echoes": 3,
    "link_ssh": 1,
}

#: Each measure: its label, its floor, and issue #22's goal in round trips over the floor.
MEASURES = {
    "a_first_call": ("(a) connect + first call", "`ssh HOST python3 -c pass`", 1),
    "b_round_trip": ("(b) a call", "a raw echo through an ssh session", None),
    "f_package": ("(f) first call importing a {modules}-module package by name", "one echo", 1),
    "f_package_function": (
        "(f) first call of a function of a {modules}-module package",
        "one echo",
        1,
    ),
    "g_cell": ("(g) `%%remote` cell with notebook functions", "one echo", 0),
    "d_group": (
        "(d) {hosts} hosts: connect + one call",
        "{hosts} x `ssh HOST python3 -c pass` at once",
        None,
    ),
}


def proxy_argv(host: str, port: str, delay: float, rate: float) -> list[str]:
    python = "/usr/bin/python3" if os.access("/usr/bin/python3", os.X_OK) else sys.executable
    command = [python, "-S", str(PROXY), host, port, "--delay", str(delay)]
    return command + (["--rate", str(rate)] if rate else [])


def proxy_command(delay: float, rate: float) -> str:
    """The ProxyCommand line (ssh fills in %h and %p)."""
    argv = proxy_argv("%h", "%p", delay, rate)
    return " ".join(a if a.startswith("%") else shlex.quote(a) for a in argv)


def slow_config(cluster: Any, count: int, path: Path, delay: float, rate: float) -> list[str]:
    """An ssh_config naming n0..n{count-1}, every connection through the delay relay."""
    names = alias_config(cluster, count, path)
    hosts, _, rest = path.read_text().partition("Host *")
    proxy = f"Host *\n  ProxyCommand {proxy_command(delay, rate)}\n"
    path.write_text(hosts + proxy + "Host *" + rest)
    return names


# ---------------------------------------------------------------------------------------------
# The link itself


def _echo_server() -> tuple[socket.socket, threading.Thread]:
    server = socket.create_server(("127.0.0.1", 0))

    def serve() -> None:
        try:
            conn, _ = server.accept()
        except OSError:
            return
        with conn:
            while data := conn.recv(65536):
                conn.sendall(data)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    return server, thread


def check_link(delay: float, echoes: int, ssh_trials: int, config: Path, plain: Path) -> dict:
    """A one-byte echo through the relay, and ``ssh n0 true`` with and without it."""
    server, thread = _echo_server()
    port = server.getsockname()[1]
    command = proxy_argv("127.0.0.1", str(port), delay, 0)
    proc = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    assert proc.stdin and proc.stdout
    samples = []
    try:
        for _ in range(echoes + 1):
            start = time.perf_counter()
            os.write(proc.stdin.fileno(), b"x")
            os.read(proc.stdout.fileno(), 1)
            samples.append(time.perf_counter() - start)
    finally:
        proc.stdin.close()
        proc.wait()
        proc.stdout.close()
        server.close()
        thread.join(5)
    first, rest = samples[0], samples[1:]

    def ssh_true(cfg: Path) -> float:
        start = time.perf_counter()
        subprocess.run(["ssh", "-F", str(cfg), "n0", "true"], check=True, timeout=60)
        return time.perf_counter() - start

    direct, slow = [], []
    for _ in range(ssh_trials):
        direct.append(ssh_true(plain))
        slow.append(ssh_true(config))
    rtt = 2 * delay
    return {
        "echo_first_s": first,  # includes the relay's start and the TCP handshake's round trip
        "echo": dict(spread(rest), trials=rest),
        "ssh_true_direct": dict(spread(direct), trials=direct),
        "ssh_true_slow": dict(spread(slow), trials=slow),
        "ssh_true_round_trips": (statistics.median(slow) - statistics.median(direct)) / rtt,
    }


# ---------------------------------------------------------------------------------------------
# The measures


def run_slow(workers: Workers, config: dict[str, Any], tmp: Path) -> dict[str, Any]:
    out: dict[str, Any] = {}
    names = workers.names

    def step(label: str) -> None:
        print(f"  {label} ...", file=sys.stderr, flush=True)

    step("(a) connect + first call")
    got = workers.trials(config["first_call"], "first_call")
    out["a_first_call"] = {n: times(got[n]) for n in names}

    trials, calls = config["round_trip"]
    step("(b) a call")
    got = workers.trials(trials, "round_trip", size=8, count=calls)
    out["b_round_trip"] = {n: round_trips(got[n]) for n in names}

    trials, modules = config["package"]
    root, remote = tmp / "packages", tmp / "remote"
    root.mkdir()
    remote.mkdir()
    remote.chmod(0o777)  # execnet's copies are written there by the ssh user
    for key, own in (("f_package", False), ("f_package_function", True)):
        step(f"({key[0]}) first call importing a {modules}-module package" + own * ", its own")
        results: dict[str, list] = {n: [] for n in names}
        for trial in range(trials + 1):  # the first round is the warm-up
            shift = trial % len(names)
            for name in names[shift:] + names[:shift]:
                package = f"slowpkg_{int(own)}_{trial}_{name}"
                make_package(root, package, modules)
                answer = workers.workers[name].ask(
                    "first_import",
                    name=package,
                    root=str(root),
                    remote_dir=str(remote),
                    own_function=own,
                )
                if trial:
                    results[name].append(answer)
        out[key] = {
            n: dict(times(results[n]), modules=modules, round_trips=results[n][-1]["round_trips"])
            for n in names
        }

    step("(g) %%remote cell")
    got = workers.trials(config["cell"], "cell")
    out["g_cell"] = {
        n: dict(times(got[n]), round_trips=got[n][-1].get("round_trips"))
        for n in names
        if got[n][0]["s"] is not None
    }

    trials, hosts = config["group"]
    step(f"(d) {hosts} hosts: connect + one call")
    got = workers.trials(trials, "group", warmup=False, count=hosts)
    out["d_group"] = {
        n: dict(times(got[n]), close=spread([t["close_s"] for t in got[n]]), hosts=hosts)
        for n in names
    }
    return out


def run_transfers(workers: Workers, config: dict[str, Any]) -> dict[str, Any]:
    trials, megabytes = config["transfer"]
    print(f"  (e) {megabytes} MB put and fetch ...", file=sys.stderr, flush=True)
    where = Path("/dev/shm") if os.path.isdir("/dev/shm") else Path(tempfile.gettempdir())
    with tempfile.TemporaryDirectory(dir=where, prefix="chopsticks-nb-slow-") as work:
        os.chmod(work, 0o777)  # the ssh user writes the remote copies there
        source = Path(work) / "source"
        with open(source, "wb") as f:
            for _ in range(megabytes):
                f.write(os.urandom(1 << 20))
        source.chmod(0o644)
        got = workers.trials(trials, "transfer", warmup=False, source=str(source), workdir=work)
    return {
        "megabytes": megabytes,
        "put": {n: rates(got[n], "put_s") for n in workers.names},
        "fetch": {n: rates(got[n], "fetch_s") for n in workers.names},
    }


# ---------------------------------------------------------------------------------------------
# The table


def _ms(seconds: float) -> str:
    value = seconds * 1e3
    return f"{value:.1f}" if value < 100 else f"{value:.0f}"


def render(results: dict[str, Any]) -> str:
    rtt = 2 * results["delay"]
    link = results.get("link")
    lines = []
    if link:
        lines += [
            f"link: one-byte echo through the relay {_ms(link['echo']['median'])} ms "
            f"({_ms(link['echo']['min'])}-{_ms(link['echo']['max'])}; the first, with the "
            f"relay's start and the TCP handshake, {_ms(link['echo_first_s'])} ms); "
            f"`ssh HOST true` {_ms(link['ssh_true_direct']['median'])} ms direct, "
            f"{_ms(link['ssh_true_slow']['median'])} ms through it "
            f"(+{link['ssh_true_round_trips']:.1f} round trips)",
            "",
        ]
    section = results["sections"].get("slow", {})
    lines += [
        f"| measure | floor | {' | '.join(n for n in results['contenders'] if n != 'floor')} |",
        "| --- | ---: |" + " ---: |" * (len(results["contenders"]) - 1),
    ]
    for key, (label, _, _) in MEASURES.items():
        figures = section.get(key)
        if not figures:
            continue
        floor = figures.get("floor", {}).get("median")
        cells = []
        for name in results["contenders"]:
            if name == "floor":
                continue
            f = figures.get(name)
            if f is None:
                cells.append("-")
                continue
            text = f"{_ms(f['median'])} ({_ms(f['min'])}-{_ms(f['max'])})"
            if floor is not None:
                text += f", {(f['median'] - floor) / rtt:+.1f} RT"
            if name != "floor" and f.get("round_trips") is not None:
                text += f" [{f['round_trips']} counted]"
            cells.append(text)
        floor_text = "-" if floor is None else _ms(floor)
        size = next(iter(figures.values()))
        label = label.format(modules=size.get("modules"), hosts=size.get("hosts"))
        lines.append(f"| {label}, ms | {floor_text} | {' | '.join(cells)} |")
    transfer = results["sections"].get("capped")
    if transfer:
        cap = results["rate"] / 1e6
        for way in ("put", "fetch"):
            figures = transfer[way]
            cells = []
            for name in results["contenders"]:
                f = figures.get(name)
                if name == "floor" or f is None:
                    continue
                cells.append(
                    f"{f['median']:.2f} ({f['min']:.2f}-{f['max']:.2f}), "
                    f"{f['median'] / cap:.0%} of the cap"
                )
            floor = figures["floor"]["median"]
            lines.append(
                f"| (e) {way} {transfer['megabytes']} MB at {cap:g} MB/s, MB/s | {floor:.2f} "
                f"| {' | '.join(cells)} |"
            )
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes, one trial")
    parser.add_argument("--delay", type=float, default=0.025, help="seconds each way")
    parser.add_argument(
        "--rate", type=float, default=12.5e6, help="bytes/s each way for (e) (100 Mbit/s)"
    )
    parser.add_argument("--only", nargs="+", choices=CONTENDERS, help="a subset of contenders")
    parser.add_argument(
        "--skip", nargs="+", default=[], choices=["link", "slow", "capped"], help="parts to skip"
    )
    parser.add_argument("--out", type=Path, help="the JSON file to write")
    args = parser.parse_args()
    reason = unavailable_reason()
    if reason:
        raise SystemExit(f"bench_slow_link.py {reason}")

    config = QUICK if args.quick else FULL
    names = [n for n in CONTENDERS if not args.only or n in args.only or n in ("floor", REFERENCE)]
    started = time.time()
    results: dict[str, Any] = {
        "command": " ".join(["python", "bench/bench_slow_link.py", *sys.argv[1:]]),
        "date": time.strftime("%Y-%m-%d %H:%M:%S %z"),
        "machine": machine(),
        "config": config,
        "delay": args.delay,
        "rate": args.rate,
        "contenders": names,
        "goals": {k: v[2] for k, v in MEASURES.items()},
        "floors": {k: v[1] for k, v in MEASURES.items()},
        "sections": {},
    }
    python = remote_python()
    pythons = dict.fromkeys(names, sys.executable)
    hosts_needed = max(config["group"][1], 1)
    with tempfile.TemporaryDirectory(prefix="chopsticks-nb-slow-") as tmp_name:
        tmp = Path(tmp_name)
        tmp.chmod(0o755)
        cwd = tmp / "cwd"
        cwd.mkdir()
        with loopback_hosts(4, python) as cluster:
            plain, slow, capped = tmp / "plain_config", tmp / "slow_config", tmp / "capped_config"
            hosts = alias_config(cluster, hosts_needed, plain)
            slow_config(cluster, hosts_needed, slow, args.delay, 0)
            slow_config(cluster, hosts_needed, capped, args.delay, args.rate)
            if "link" not in args.skip:
                print("the link", file=sys.stderr)
                results["link"] = check_link(
                    args.delay, config["link_echoes"], config["link_ssh"], slow, plain
                )
            for label, cfg in (("slow", slow), ("capped", capped)):
                if label in args.skip:
                    continue
                print(f"{label} link", file=sys.stderr)
                transport = {
                    "kind": "ssh",
                    "config": str(cfg),
                    "hosts": hosts,
                    "options": ["-o", "ControlMaster=no", "-o", "ControlPath=none"],
                    "python": python,
                }
                workers = Workers(names, pythons, transport, str(cwd))
                try:
                    if label == "slow":
                        results["sections"]["slow"] = run_slow(workers, config, tmp)
                    else:
                        results["sections"]["capped"] = run_transfers(workers, config)
                finally:
                    workers.close()
    results["machine"]["loadavg_end"] = os.getloadavg()
    results["seconds"] = time.time() - started
    print(render(results))
    out = args.out or RESULTS / ("slow_link-quick.json" if args.quick else "slow_link.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"written to {out} ({results['seconds']:.0f} s)")


if __name__ == "__main__":
    main()
